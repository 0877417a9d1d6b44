"""ICMP errors through the NAT (RFC 5508 REQ-4/5/10): traceroute and PMTU
discovery from an inside host, across a real router beyond the segment."""
from __future__ import annotations

import re
import time

import pytest

from helpers.peers import Capture, Server, client
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

FAR = "203.0.113.10"
NAT_IP = "198.51.100.1"
HOPS = ["10.0.0.1", "198.51.100.254", FAR]


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=1, outside=1, far=True, far_mtu=1400,
             nat_options={"stats_interval": 2}) as running:
        yield running
    assert_left_nothing(running)


def hops(output: str) -> list[str]:
    return re.findall(r"^\s*\d+\s+(\d+\.\d+\.\d+\.\d+)", output, re.M)


@pytest.mark.parametrize("flavour", ["-U", "-I", "-T -p 80"], ids=["udp", "icmp", "tcp"])
def test_traceroute_shows_the_gateway_and_the_outside_hops(lab, flavour):
    """Time Exceeded about UDP, echo and TCP SYN probes, each translated back."""
    out = lab.host("h1").cmd(f"timeout 30 traceroute -n {flavour} -w 2 -q 1 -m 6 {FAR}")
    assert hops(out) == HOPS, out


def test_path_mtu_discovery_learns_the_narrow_link(lab):
    h1 = lab.host("h1")
    before = lab.controller.get("/nat/stats")["icmp_errors_translated"]
    out = h1.cmd(f"timeout 30 tracepath -n -m 6 {FAR}")
    assert re.search(r"Resume: pmtu 1400 hops 3", out), out
    h1.cmd(f"ping -c 1 -M do -s 1450 -W 2 {FAR}")
    assert "mtu 1400" in h1.cmd(f"ip route get {FAR}")
    assert lab.controller.get("/nat/stats")["icmp_errors_translated"] > before
    # Packets that fit the path now get through, unfragmented.
    assert " 0% packet loss" in h1.cmd(f"ping -c 2 -M do -s 1372 -W 2 {FAR}")


def test_an_error_with_a_bad_checksum_is_dropped_and_refreshes_nothing(lab):
    """RFC 5508 REQ-3 and REQ-6, seen from h1: a forged error with a bad
    checksum never arrives, a good one does (about h1's own datagram), and
    neither changes the session."""
    h1, r1 = lab.host("h1"), lab.host("r1")
    with Server(lab.host("f1"), "udp-server", 9800):
        client(h1, "udp-client", "--sport 49500", f"--to {FAR}:9800", "--count 1")

    def ours():   # once a stats poll has seen the reply: last_seen as traffic left it
        found = [c for c in lab.controller.get("/nat/connections?protocol=udp")
                 if c["internal_port"] == 49500 and c["packets_in"]]
        return found[0] if found else None

    conn = wait_for(ours, 5, what="the session's counters")
    time.sleep(2.5)                                  # and one more poll, with nothing new
    conn = ours()
    for bad, expect in ((True, 0), (False, 1)):
        with Capture(h1, "icmp", seconds=3, verbose=True) as cap:
            # r1 is the router beyond the segment: it "answers" h1's datagram.
            client(r1, "icmp-error", f"--to {NAT_IP}",
                   f"--quote-src {NAT_IP}:{conn['external_port']}",
                   f"--quote-dst {FAR} --quote-dport 9800", "--bad-checksum" if bad else "")
        seen, out = [line for line in cap.text.splitlines() if "unreachable" in line], cap.text
        assert len(seen) == expect, out
        if expect:   # from the router, about h1's own datagram: h1:49500 -> f1:9800
            assert "198.51.100.254 > 10.0.0.11: ICMP" in seen[0], out
            assert f"10.0.0.11.49500 > {FAR}.9800: " in out, out
    after = [c for c in lab.controller.get("/nat/connections?protocol=udp")
             if c["id"] == conn["id"]][0]
    # (views turn monotonic times into wall-clock ones, to the millisecond)
    assert abs(after["last_seen"] - conn["last_seen"]) < 0.05, "an ICMP error refreshed it"
    drops = lab.controller.get("/nat/stats")["drops"]
    assert drops.get("icmp_error_bad_checksum", 0) >= 1
