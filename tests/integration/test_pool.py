"""Several NAT addresses (``external_pool``) for real: the stock ryu-manager,
OVS and Mininet hosts.  The outside server must see each inside host on one
pool address for TCP, UDP and ICMP alike (paired pooling, RFC 4787 REQ-2),
hosts spread over the pool, every pool address answered; a host whose
address has no port left gets ICMP 3/13 and is counted, never moved to
another address, while the other address keeps serving.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from helpers.peers import Capture, Server, client
from helpers.system import assert_left_nothing
from lab import Lab

O1 = "198.51.100.10"
A, B = "198.51.100.2", "198.51.100.3"
HOSTS = {"h1": "10.0.0.11", "h2": "10.0.0.12", "h3": "10.0.0.13"}


@pytest.fixture(scope="module")
def lab():
    # Four ports a protocol on each address: small enough to run one out.
    with Lab(inside=3, outside=1, nat_options={
            "external_pool": f"{A}-{B}", "port_range": "40000-40003"}) as running:
        yield running
    assert_left_nothing(running)


def test_each_host_is_seen_on_one_pool_address_for_tcp_udp_and_icmp(lab):
    o1 = lab.host("o1")
    seen: dict[str, set[str]] = {}
    with Server(o1, "udp-server", 9400) as udp, Server(o1, "tcp-server", 7500) as tcp:
        for n, (name, ip) in enumerate(HOSTS.items(), start=1):
            host = lab.host(name)
            before = (udp.peers(), tcp.peers())
            assert client(host, "udp-client", f"--sport 5{n}01", f"--to {O1}:9400",
                          "--count 2")["replies"] == {f"{O1}:9400": 2}
            assert client(host, "tcp-client", f"--to {O1}:7500", f"--sport 43{n}00")["connected"]
            with Capture(o1, "icmp[icmptype] == 8", seconds=4) as pings:
                assert " 0% packet loss" in host.cmd(f"ping -c 1 -W 2 {O1}")
            [echo] = pings.lines
            # What the server saw of this host: a UDP and a TCP peer, an echo request.
            [from_udp] = udp.peers() - before[0]
            [from_tcp] = tcp.peers() - before[1]
            seen[ip] = {from_udp[0], from_tcp[0], re.search(r"IP (\S+) > ", echo).group(1)}
        table = lab.controller.get("/nat/connections")
    for conn in table:      # the REST table agrees
        assert conn["external_ip"] in seen[conn["internal_ip"]], conn
    assert all(len(addrs) == 1 for addrs in seen.values()), seen
    assert {a for addrs in seen.values() for a in addrs} == {A, B}, "hosts spread over the pool"
    assert seen[HOSTS["h1"]] == seen[HOSTS["h3"]] == {A} and seen[HOSTS["h2"]] == {B}

    stats = lab.controller.get("/nat/stats")["addresses"]
    assert {a: row["hosts"] for a, row in stats.items()} == {A: 2, B: 1}
    with urllib.request.urlopen(f"http://127.0.0.1:{lab.controller.rest_port}/metrics") as r:
        metrics = r.read().decode()
    assert f'ryu_snat_address_hosts{{address="{B}"}} 1.0' in metrics
    [bridge] = lab.controller.get("/nat/bridges")
    assert bridge["external_pool"] == [A, B]
    env = {**os.environ, "SNATCTL_URL": f"http://127.0.0.1:{lab.controller.rest_port}"}
    shown = subprocess.run([str(Path(sys.executable).parent / "snatctl"), "stats"],
                           capture_output=True, text=True, env=env, timeout=30).stdout
    assert f"{A}: hosts=2 " in shown and f"{B}: hosts=1 " in shown, shown


def test_every_pool_address_answers_arp_and_ping(lab):
    o1 = lab.host("o1")
    for address in (A, B, "198.51.100.1"):
        assert " 0% packet loss" in o1.cmd(f"ping -c 1 -W 2 {address}"), address
    assert re.search(rf"\({re.escape(B)}\) at 02:53:4e:41:54:01", o1.cmd("arp -an"))


def test_a_full_address_refuses_its_host_and_the_other_keeps_serving(lab):
    h2, h1 = lab.host("h2"), lab.host("h1")
    with Server(lab.host("o1"), "udp-server", 9401):
        # h2 is alone on B, which has one UDP port left taken for 5201: three more fill it.
        for sport in (5202, 5203, 5204):
            assert client(h2, "udp-client", f"--sport {sport}", f"--to {O1}:9401",
                          "--count 1")["replies"] == {f"{O1}:9401": 1}
        refused_before = lab.controller.get("/nat/stats")["refused"].get("pool_exhausted", 0)
        with Capture(h2, "icmp[icmptype] == 3 and icmp[icmpcode] == 13", seconds=4) as cap:
            out = client(h2, "udp-client", "--sport 5205", f"--to {O1}:9401", "--count 1")
        assert not any(out["replies"].values()), out
        assert cap.lines, "the refused host is told: ICMP 3/13"
        stats = lab.controller.get("/nat/stats")
        assert stats["refused"]["pool_exhausted"] > refused_before
        assert stats["addresses"][B]["ports_in_use"]["udp"] == 4
        # h1 on A still gets new mappings, on its own address.
        assert client(h1, "udp-client", "--sport 5105", f"--to {O1}:9401",
                      "--count 1")["replies"] == {f"{O1}:9401": 1}
    mine = [c for c in lab.controller.get("/nat/connections") if c["internal_ip"] == HOSTS["h2"]]
    assert {c["external_ip"] for c in mine} == {B}, "never moved to another address"
