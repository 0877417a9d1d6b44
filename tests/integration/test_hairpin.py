"""Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8): inside hosts reach each
other through the NAT address and see each other's external ip:port."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from helpers.peers import NETPROBE, Server, client
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

NAT_IP = "198.51.100.1"
O1 = "198.51.100.10"


@pytest.fixture(scope="module")
def lab():
    options = {"filtering": "endpoint-independent", "stats_interval": 2,
               "forwards": "tcp:8081=10.0.0.13:80,udp:5301=10.0.0.12:5301"}
    with Lab(inside=3, outside=1, nat_options=options) as running:
        yield running
    assert_left_nothing(running)


def external_port_of(lab, internal_ip: str, **match) -> int:
    conns = [c for c in lab.controller.get(f"/nat/connections?internal_ip={internal_ip}")
             if all(c[k] == v for k, v in match.items())]
    assert conns, (internal_ip, match)
    return conns[0]["external_port"]


def test_inside_host_reaches_a_port_forward_through_the_nat_address(lab):
    with Server(lab.host("h3"), "tcp-server", 80) as server:
        result = client(lab.host("h1"), "tcp-client", f"--to {NAT_IP}:8081", "--send 2000")
        peers = server.peers()
    assert result["connected"] and result["echoed"] == 2000, result
    mapped = external_port_of(lab, "10.0.0.11", remote_ip=NAT_IP, remote_port=8081)
    assert peers == {(NAT_IP, mapped)}, "the target sees the sender's external ip:port"


def test_inside_host_reaches_another_hosts_mapping(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    with Server(lab.host("o1"), "udp-server", 9400):      # h2's socket gets a mapping
        client(h2, "udp-client", "--sport 47000", f"--to {O1}:9400", "--count 1")
    h2_port = external_port_of(lab, "10.0.0.12", internal_port=47000, remote_ip=O1)
    with Server(h2, "udp-server", 47000) as server:
        result = client(h1, "udp-client", "--sport 48000", f"--to {NAT_IP}:{h2_port}",
                        "--count 3")
        peers = server.peers()
    assert result["replies"] == {f"{NAT_IP}:{h2_port}": 3}, result
    h1_port = external_port_of(lab, "10.0.0.11", internal_port=48000)
    assert peers == {(NAT_IP, h1_port)}, peers


def test_hairpin_to_a_port_nobody_holds_is_dropped(lab):
    result = client(lab.host("h1"), "udp-client", "--sport 48001", f"--to {NAT_IP}:9999",
                    "--count 1")
    assert result["replies"] == {f"{NAT_IP}:9999": 0}
    assert lab.controller.get("/nat/stats")["drops"].get("hairpin_no_mapping", 0) >= 1


def test_inside_host_pings_the_nat_address(lab):
    out = lab.host("h2").cmd(f"ping -c 2 -i 0.2 -W 2 {NAT_IP}")
    assert re.search(r"2 received", out), out


def test_a_hairpinned_error_reaches_the_sender(lab):
    """RFC 5508 REQ-7: h1's datagram to NAT:5301 reaches h2, which has no
    socket there; h2's port unreachable goes back through the NAT address,
    and h1's kernel matches it to h1's own socket (the quote was reverted)."""
    result = client(lab.host("h1"), "udp-probe", f"--to {NAT_IP}:5301", "--sport 48100",
                    "--tries 3")
    assert result["refused"], result


def test_a_hairpinned_tcp_connection_gets_the_established_timeout(lab):
    """RFC 5382 REQ-5 for hairpinned TCP too: both sessions of the pair
    follow the connection (established 7440 s while open)."""
    with Server(lab.host("h3"), "tcp-server", 80):
        proc = lab.host("h1").popen(
            f"{sys.executable} {NETPROBE} tcp-client --to {NAT_IP}:8081 --sport 48200 "
            "--send 1000 --hold 15", shell=True, stdout=subprocess.PIPE, text=True)

        def pair():
            sender = [c for c in lab.controller.get("/nat/connections?internal_ip=10.0.0.11")
                      if c["internal_port"] == 48200]
            target = [c for c in lab.controller.get("/nat/connections?internal_ip=10.0.0.13")
                      if sender and c["remote_port"] == sender[0]["external_port"]]
            both = sender + target
            return both if len(both) == 2 and {c["state"] for c in both} == {"ESTABLISHED"} \
                else None

        both = wait_for(pair, 10, what="both hairpinned sessions ESTABLISHED")
        assert {c["timeout"] for c in both} == {7440}, both
        assert json.loads(proc.communicate(timeout=30)[0])["connected"]
