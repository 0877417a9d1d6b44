"""The walking skeleton, for real: OVS + ryu-manager + Mininet hosts."""
from __future__ import annotations

import re

from helpers.system import assert_clean_log
from ryu_app.settings.config import DEFAULT_GATEWAY_MAC
from ryu_app.openflow.flows import parse_cookie


def ping_ok(host, address: str, count: int = 3) -> str:
    out = host.cmd(f"ping -c {count} -i 0.2 -W 2 {address}")
    assert re.search(rf"{count} received", out), out
    return out


def test_inside_host_resolves_and_pings_the_inside_gateway(lab):
    h1 = lab.host("h1")
    ping_ok(h1, "10.0.0.1")
    neigh = h1.cmd("ip neigh show 10.0.0.1")
    assert DEFAULT_GATEWAY_MAC in neigh, neigh


def test_outside_host_resolves_and_pings_the_nat_address(lab):
    o1 = lab.host("o1")
    ping_ok(o1, "198.51.100.1")
    assert DEFAULT_GATEWAY_MAC in o1.cmd("ip neigh show 198.51.100.1")


def test_every_inside_host_is_answered(lab):
    for name in ("h1", "h2"):
        ping_ok(lab.host(name), "10.0.0.1", count=1)


def test_stats_over_rest(lab):
    before = lab.controller.get("/nat/stats")
    h2 = lab.host("h2")
    h2.cmd("ip neigh flush dev h2-eth0")
    ping_ok(h2, "10.0.0.1", count=3)
    stats = lab.controller.get("/nat/stats")
    assert stats["switches_connected"] == 1
    assert stats["arp_replies"] >= before["arp_replies"] + 1, (before, stats)
    assert stats["icmp_echo_replies"] == before["icmp_echo_replies"] + 3, (before, stats)
    assert stats["packet_ins"] >= before["packet_ins"] + 4
    status, body = lab.controller.request("GET", "/nat/nonexistent")
    assert status == 404 and "error" in body


def test_flows_are_ours_and_readable_over_ofctl_rest(lab):
    flows = lab.flows()
    assert flows, "ofctl_rest shows no flows on s1"
    assert all(parse_cookie(f["cookie"]) for f in flows), flows
    arp_targets = {f["match"].get("arp_tpa") for f in flows} - {None}
    assert arp_targets == {"10.0.0.1", "198.51.100.1"}


def test_controller_log_has_no_traceback(lab):
    assert_clean_log(lab.controller.log())
