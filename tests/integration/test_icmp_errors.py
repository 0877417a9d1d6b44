"""ICMP errors through the NAT (RFC 5508 REQ-4/5/10): traceroute and PMTU
discovery from an inside host, across a real router beyond the segment."""
from __future__ import annotations

import re

import pytest

from helpers.system import assert_left_nothing
from lab import Lab

FAR = "203.0.113.10"
HOPS = ["10.0.0.1", "198.51.100.254", FAR]


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=1, outside=1, far=True, far_mtu=1400) as running:
        yield running
    assert_left_nothing(running)


def hops(output: str) -> list[str]:
    return re.findall(r"^\s*\d+\s+(\d+\.\d+\.\d+\.\d+)", output, re.M)


@pytest.mark.parametrize("flavour", ["-U", "-I"], ids=["udp", "icmp"])
def test_traceroute_shows_the_gateway_and_the_outside_hops(lab, flavour):
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
