"""Hairpinned UDP under the default filtering (address-and-port-dependent),
as two peers behind one NAT try it (RFC 4787 REQ-9/9a): each learns its
external ip:port from an outside reflector, then each sends to the other's.
Also after a controller restart, which must keep the pair in the switch."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from helpers.peers import NETPROBE, Server, client
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

NAT_IP, O1 = "198.51.100.1", "198.51.100.10"
PEERS = (("h1", 5561), ("h2", 5562))


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=2, outside=1, nat_options={"stats_interval": 1}) as running:
        running.set_reconnect_backoff(1000)
        yield running
    assert_left_nothing(running)


def punch(lab, ports: dict[str, int]) -> dict[str, dict]:
    """Both peers send 5 datagrams, 0.3 s apart, to the other's external port
    at once (both sockets are bound before either sends)."""
    procs, at = {}, time.time() + 1.0
    for (name, sport), (other, _sport) in zip(PEERS, reversed(PEERS)):
        procs[name] = lab.host(name).popen(
            [sys.executable, NETPROBE, "udp-punch", "--sport", str(sport),
             "--to", f"{NAT_IP}:{ports[other]}", "--count", "5", "--interval", "0.3", "--at", str(at)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=30)
        assert out.strip(), err
        results[name] = json.loads(out.strip().splitlines()[-1])
    return results


def from_other(results: dict, ports: dict[str, int]) -> dict[str, list[str]]:
    """What each peer received from the other's external ip:port (payloads)."""
    (a, _), (b, _) = PEERS
    return {me: [text for source, text in results[me]["received"]
                 if source == f"{NAT_IP}:{ports[other]}"]
            for me, other in ((a, b), (b, a))}


def test_two_peers_reach_each_other_through_their_mappings(lab):
    with Server(lab.host("o1"), "udp-reflector", 3478):
        learned = {name: client(lab.host(name), "udp-learn", f"--sport {sport}",
                                f"--to {O1}:3478")["external"] for name, sport in PEERS}
    assert all(v and v.startswith(f"{NAT_IP}:") for v in learned.values()), learned
    ports = {name: int(v.rsplit(":", 1)[1]) for name, v in learned.items()}
    got = from_other(punch(lab, ports), ports)
    # Whoever sends first meets the other's filter once; after that, everything.
    assert sum(len(v) for v in got.values()) >= 9, got
    assert all(len(v) >= 4 for v in got.values()), got
    assert all(v == sorted(v) and v[-1] == "punch 4" for v in got.values()), got
    pairs = [c for c in lab.controller.get("/nat/connections?protocol=udp")
             if c["remote_ip"] == NAT_IP]
    assert sorted((c["internal_port"], c["external_port"], c["remote_port"]) for c in pairs) == \
        sorted([(5561, ports["h1"], ports["h2"]), (5562, ports["h2"], ports["h1"])]), pairs

    # A controller restart: the pair stays in the switch and is adopted,
    # so every datagram gets through, the first ones too.
    ctl = lab.controller
    ctl.stop()
    time.sleep(1)
    ctl.start()
    wait_for(lambda: len([c for c in ctl.get("/nat/connections?protocol=udp")
                          if c["remote_ip"] == NAT_IP]) == 2, 15,
             what="the hairpinned pair listed again")
    stats = ctl.get("/nat/stats")
    assert stats["flows_discarded"] == 0, stats
    again = from_other(punch(lab, ports), ports)
    assert again == {name: [f"punch {i}" for i in range(5)] for name, _ in PEERS}, again
