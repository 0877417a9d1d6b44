"""TCP state followed in the switch era, with real TCP stacks on both sides."""
from __future__ import annotations

import sys

import pytest

from helpers.peers import NETPROBE, Server
from helpers.system import assert_clean_log
from lab import Lab, wait_for

O1 = "198.51.100.10"
TRANSITORY = 200


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=2, outside=1, nat_options={
            "stats_interval": 1, "tcp_transitory_timeout": TRANSITORY}) as running:
        yield running
        log = running.controller.log()
    assert_clean_log(log)


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
        assert {f["idle_timeout"] for f in session_flows(lab, established["id"])} == {7440}
        assert proc.wait(timeout=15) == 0
        closing = wait_for(lambda: (c := find(lab, sport)) and c["state"] == "CLOSING" and c,
                           5, what="CLOSING")
        events = [e.get("event") for e in server.events()]
    assert closing["timeout"] == TRANSITORY
    assert {f["idle_timeout"] for f in session_flows(lab, closing["id"])} == {TRANSITORY}
    assert events[0] == "accept" and "data" in events
