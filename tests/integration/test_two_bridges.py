"""Two NAT bridges under one controller, each with its own ``[nat:NAME]``
profile, translating at the same time (real ryu-manager, OVS, Mininet hosts).

    h1 10.0.0.11 -- s1 (NAT 198.51.100.1, dpid 1) --+
                                                    +-- s2 -- o1 198.51.100.10
    g1 10.0.1.11 -- s4 (NAT 198.51.100.2, dpid 4) --+
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.peers import NETPROBE, Server, client
from helpers.system import assert_left_nothing
from lab import Lab

O1 = "198.51.100.10"


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=1, outside=1, bridges=2, nat_options={"stats_interval": 1}) as running:
        yield running
    assert_left_nothing(running)


def connect_loop(host, seconds: float) -> subprocess.Popen:
    return host.popen([sys.executable, NETPROBE, "tcp-connect-loop", "--to", f"{O1}:7800",
                       "--seconds", str(seconds), "--max", "300"],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=60)
    assert out.strip(), f"netprobe said nothing (exit {proc.returncode}): {err}"
    return json.loads(out.strip().splitlines()[-1])


def test_both_bridges_translate_at_once_each_with_its_own_address(lab):
    ctl = lab.controller
    with Server(lab.host("o1"), "tcp-server", 7800) as server:
        loops = {name: connect_loop(lab.host(name), 3) for name in ("h1", "g1")}
        results = {name: result(proc) for name, proc in loops.items()}
        peers = server.peers()
    for name, got in results.items():
        assert got["ok"] >= 20 and got["failed"] == 0, (name, got)
    seen = {ip for ip, _port in peers}
    assert seen == {"198.51.100.1", "198.51.100.2"}, seen
    by_address = {ip: sum(1 for p in peers if p[0] == ip) for ip in seen}
    assert by_address == {"198.51.100.1": results["h1"]["ok"],
                          "198.51.100.2": results["g1"]["ok"]}, by_address

    stats = ctl.get("/nat/stats")
    assert stats["switches_connected"] == 2
    east, west = stats["bridges"]["s1"], stats["bridges"]["s4"]
    assert (east["dpid"], east["external_ip"]) == (1, "198.51.100.1")
    assert (west["dpid"], west["external_ip"]) == (4, "198.51.100.2")
    assert east["created"] >= results["h1"]["ok"] and west["created"] >= results["g1"]["ok"]
    assert stats["created"] == east["created"] + west["created"]

    # A UDP flow from each side, listed under its own switch and address.
    with Server(lab.host("o1"), "udp-server", 9800):
        for name in ("h1", "g1"):
            got = client(lab.host(name), "udp-client", "--sport 45800", f"--to {O1}:9800",
                         "--count 2")
            assert got["replies"] == {f"{O1}:9800": 2}, (name, got)
    udp = {c["internal_ip"]: c for c in ctl.get("/nat/connections?protocol=udp")}
    assert (udp["10.0.0.11"]["dpid"], udp["10.0.0.11"]["external_ip"]) == (1, "198.51.100.1")
    assert (udp["10.0.1.11"]["dpid"], udp["10.0.1.11"]["external_ip"]) == (4, "198.51.100.2")

    with urllib.request.urlopen(f"http://127.0.0.1:{ctl.rest_port}/metrics") as resp:
        text = resp.read().decode()
    created = {s.labels["bridge"]: s.value for f in text_string_to_metric_families(text)
               for s in f.samples if s.name == "ryu_snat_bridge_sessions_created_total"}
    assert created["s1"] >= results["h1"]["ok"] and created["s4"] >= results["g1"]["ok"], created


def test_a_forward_goes_to_the_bridge_it_names(lab):
    ctl = lab.controller
    fwd = {"protocol": "tcp", "external_port": 8081, "internal_ip": "10.0.1.11",
           "internal_port": 8081}
    status, body = ctl.request("POST", "/nat/forwards", fwd)
    assert status == 400 and "several NAT bridges" in body["error"], body
    assert ctl.request("POST", "/nat/forwards?dpid=4", fwd)[0] == 200
    try:
        with Server(lab.host("g1"), "tcp-server", 8081) as server:
            got = client(lab.host("o1"), "tcp-client", "--to 198.51.100.2:8081")
            missed = client(lab.host("o1"), "tcp-client", "--to 198.51.100.1:8081",
                            timeout=10)
            peers = server.peers()
        assert got["connected"] and got["echoed"] == 1024, got
        assert not missed["connected"], "s1 forwarded a port only s4 has"
        assert {ip for ip, _port in peers} == {O1}, peers     # inbound keeps its source
    finally:
        assert ctl.request("DELETE", "/nat/forwards/tcp/8081?dpid=4")[0] == 200
