"""IPv4 fragments through the NAT (RFC 4787 REQ-14), with real IP stacks."""
from __future__ import annotations

import re
import sys

import pytest

from helpers.peers import NETPROBE, Server, client
from helpers.system import assert_left_nothing
from lab import Lab

NAT_IP = "198.51.100.1"
O1, O2 = "198.51.100.10", "198.51.100.11"


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=2, outside=2, nat_options={"stats_interval": 2}) as running:
        for host in ("h1", "h2"):       # resolve the servers first: nothing waits on ARP
            for server in (O1, O2):
                running.host(host).cmd(f"ping -c 1 -W 2 {server}")
        yield running
    assert_left_nothing(running)


def test_fragmented_udp_both_ways(lab):
    with Server(lab.host("o1"), "udp-server", 9500) as server:
        result = client(lab.host("h1"), "udp-client", "--sport 49000", f"--to {O1}:9500",
                        "--count 3", "--size 4000")
        events = server.events()
    assert result["replies"] == {f"{O1}:9500": 3}, result
    assert {(e["peer_ip"], e["size"]) for e in events} == {(NAT_IP, 4000)}


@pytest.mark.parametrize("order", ["in-order", "reverse"])
def test_out_of_order_fragments_are_translated(lab, order):
    flag = "--reverse" if order == "reverse" else ""
    sport = 49100 if flag else 49101
    with Server(lab.host("o2"), "udp-server", 9501) as server:
        result = client(lab.host("h2"), "frag-udp", f"--to {O2}:9501", f"--sport {sport}",
                        "--size 2400", flag)
        events = server.events()
    assert result == {"sent": 2400, "echoed": True}, result
    assert [(e["peer_ip"], e["size"]) for e in events] == [(NAT_IP, 2400)]


def test_big_ping_both_ways(lab):
    out = lab.host("h2").cmd(f"ping -c 3 -i 0.2 -s 3000 -W 2 {O1}")
    assert re.search(r"3 received", out), out


def test_fragment_flood_leaves_unfragmented_traffic_unharmed(lab):
    flood = lab.host("o1").popen(
        f"timeout 20 {sys.executable} {NETPROBE} frag-flood --to {NAT_IP} --count 5000",
        shell=True)
    with Server(lab.host("o2"), "udp-server", 9502):
        result = client(lab.host("h1"), "udp-client", "--sport 49200", f"--to {O2}:9502",
                        "--count 10", "--interval 0.05")
    flood.wait(timeout=30)
    assert result["replies"] == {f"{O2}:9502": 10}, result
    drops = lab.controller.get("/nat/stats")["drops"]
    assert drops.get("fragment_queue_full", 0) + drops.get("fragment_timeout", 0) > 0, drops
