"""TCP state followed in the switch era, with real TCP stacks on both sides."""
from __future__ import annotations

import sys
import time

import pytest

from helpers.peers import Server
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

O1 = "198.51.100.10"
TRANSITORY = 200


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=2, outside=1, nat_options={
            "stats_interval": 1, "tcp_transitory_timeout": TRANSITORY}) as running:
        yield running
    assert_left_nothing(running)


def session_flows(lab, sid: int) -> list[dict]:
    return [f for f in lab.flows()
            if f["cookie"] & 0xFFFFFFFF == sid and (f["cookie"] >> 40) & 0xFF in (0x10, 0x11)]


def find(lab, sport: int) -> dict | None:
    conns = [c for c in lab.controller.get("/nat/connections?protocol=tcp")
             if c["internal_port"] == sport]
    return conns[0] if conns else None


@pytest.mark.parametrize("how,sport", [("close", 43000), ("reset", 43001)])
def test_closed_connection_moves_to_the_transitory_timeout(lab, how, sport):
    linger = "s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n" \
        if how == "reset" else ""
    script = (f"import socket, struct, time\n"
              f"s = socket.socket(); s.bind(('0.0.0.0', {sport}))\n"
              f"s.connect(('{O1}', 7100)); s.sendall(b'hello')\n"
              f"s.recv(100); time.sleep(2.5)\n{linger}s.close(); time.sleep(1)\n")
    with Server(lab.host("o1"), "tcp-server", 7100) as server:
        proc = lab.host("h1").popen([sys.executable, "-c", script])
        established = wait_for(lambda: (c := find(lab, sport)) and c["state"] == "ESTABLISHED"
                               and c, 5, what="ESTABLISHED")
        # Its flows get the established timeout a poll later (a FIN may be
        # on its way up; ryu_app.nat.paths.tcp_tracking.TcpTracking.follow_timeout).
        wait_for(lambda: {f["idle_timeout"] for f in session_flows(lab, established["id"])}
                 == {7440}, 2.2, what="the established timeout on both flows")
        assert proc.wait(timeout=15) == 0
        closing = wait_for(lambda: (c := find(lab, sport)) and c["state"] == "CLOSING" and c,
                           5, what="CLOSING")
        events = [e.get("event") for e in server.events()]
    assert closing["timeout"] == TRANSITORY
    assert {f["idle_timeout"] for f in session_flows(lab, closing["id"])} == {TRANSITORY}
    assert events[0] == "accept" and "data" in events
    # From the far side: the server saw the end the client chose, translated
    # (RFC 7857 s2.2: a matching RST is translated, not dropped).
    assert events[-1] == ("reset" if how == "reset" else "close"), events


def connect_script(bind_port: int, peer: str, peer_port: int) -> str:
    """Connect from a fixed port (no listener anywhere: a simultaneous open)."""
    return (f"import socket, time, sys\n"
            f"deadline = time.monotonic() + 10\n"
            f"while time.monotonic() < deadline:\n"
            f"    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"    s.bind(('0.0.0.0', {bind_port})); s.settimeout(3)\n"
            f"    try:\n"
            f"        s.connect(('{peer}', {peer_port})); break\n"
            f"    except OSError:\n"
            f"        s.close(); time.sleep(0.2)\n"
            f"else:\n"
            f"    sys.exit('no connection')\n"
            f"s.sendall(b'hi from {bind_port}'); print(s.recv(100).decode())\n")


def test_simultaneous_open_through_the_nat(lab):
    """RFC 5382 REQ-4: the outside SYN that comes first is dropped silently
    (no RST), and once the inside SYN follows, the two SYNs cross and the
    connection opens (TCP hole punching)."""
    o1, h1 = lab.host("o1"), lab.host("h1")
    outside = o1.popen([sys.executable, "-c", connect_script(44000, "198.51.100.1", 44100)],
                       stdout=-1, text=True)
    time.sleep(1.5)                       # o1's first SYNs meet the drop rule
    inside = h1.popen([sys.executable, "-c", connect_script(44100, O1, 44000)],
                      stdout=-1, text=True)
    got_inside = inside.communicate(timeout=20)[0].strip()
    got_outside = outside.communicate(timeout=20)[0].strip()
    assert (got_inside, got_outside) == ("hi from 44000", "hi from 44100"), \
        (got_inside, got_outside)
    conn = find(lab, 44100)
    assert conn and conn["external_port"] == 44100 and conn["remote_port"] == 44000


def test_unsolicited_syn_gets_no_answer_for_six_seconds(lab):
    """RFC 5382 REQ-4: no SYN-ACK and no RST for an unsolicited inbound SYN."""
    o1 = lab.host("o1")
    started = time.monotonic()
    out = o1.cmd("timeout 10 nc -z -w 7 198.51.100.1 44999; echo rc=$?")
    assert "rc=0" not in out and time.monotonic() - started >= 6, out
