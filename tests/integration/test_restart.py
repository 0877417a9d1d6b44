"""Nothing lost: a controller restart and a lost controller link, with a TCP
connection that keeps echoing through them (real ryu-manager, OVS, hosts)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from helpers.echo import EchoLoop, assert_echoed_throughout
from helpers.peers import Server, client
from helpers.system import assert_left_nothing
from lab import Lab, run, wait_for

NAT_IP, O1 = "198.51.100.1", "198.51.100.10"
FORWARD = {"protocol": "udp", "external_port": 5300, "internal_ip": "10.0.0.12",
           "internal_port": 53}
# A forward flow of ours (cookie: app tag, SESSION_OUT, session id 0xFFFF0001)
# whose reverse flow does not exist: half a pair, which no session accounts for.
HALF_PAIR_COOKIE = 0x5A7E_10_00FFFF0001


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    forwards = tmp_path_factory.mktemp("restart") / "forwards.json"
    with Lab(inside=2, outside=1, nat_options={
            "stats_interval": 1, "forwards_file": str(forwards)}) as running:
        running.set_reconnect_backoff(1000)
        yield running
    assert_left_nothing(running)


def find(lab, protocol: str, host: str, sport: int) -> dict | None:
    conns = [c for c in lab.controller.get(f"/nat/connections?protocol={protocol}"
                                           f"&internal_ip={host}")
             if c["internal_port"] == sport]
    return conns[0] if conns else None


def ofctl(*args: str) -> str:
    return run("ovs-ofctl", "-O", "OpenFlow13", *args).stdout


def cookie_flows(cookie: int) -> list[str]:
    return [line for line in ofctl("dump-flows", "s1", f"cookie={cookie:#x}/-1").splitlines()
            if "cookie=" in line]


def test_controller_restart_keeps_a_live_connection_and_its_mapping(lab):
    ctl = lab.controller
    assert ctl.request("POST", "/nat/forwards", FORWARD)[0] == 200
    ofctl("add-flow", "s1", f"cookie={HALF_PAIR_COOKIE:#x},table=0,priority=1000,udp,"
          "nw_src=10.0.0.12,tp_src=5999,nw_dst=198.51.100.10,tp_dst=9,actions=drop")
    with Server(lab.host("o1"), "tcp-server", 7300) as server:
        loop = EchoLoop(lab, 7300, 43500, seconds=14)
        before = wait_for(lambda: (c := find(lab, "tcp", "10.0.0.11", 43500))
                          and c["state"] == "ESTABLISHED" and c, 5, what="ESTABLISHED")
        time.sleep(1)
        ctl.stop()
        away = time.time()
        time.sleep(2.5)                      # established traffic is in the switch
        back = time.time()
        ctl.start()
        after = wait_for(lambda: find(lab, "tcp", "10.0.0.11", 43500), 15,
                         what="the connection listed again")
        result = loop.result()
        peers = server.peers()
    assert_echoed_throughout(result, away, back)
    assert (after["id"], after["external_port"], after["state"]) == \
        (before["id"], before["external_port"], "ESTABLISHED")
    assert peers == {(NAT_IP, before["external_port"])}, "one connection, one mapping"
    stats = ctl.get("/nat/stats")
    assert stats["sessions_adopted"] >= 1 and stats["flows_discarded"] >= 1, stats
    assert not cookie_flows(HALF_PAIR_COOKIE), "half a pair left on the switch"
    assert FORWARD in ctl.get("/nat/forwards"), "the REST forward did not survive"
    assert "mapping restored" in ctl.log()
    # The adopted mapping's port is taken: h2 asking for the same inside port
    # to the same server gets another one, and the connection works.
    with Server(lab.host("o1"), "tcp-server", 7300) as server:
        new = client(lab.host("h2"), "tcp-client", f"--to {O1}:7300", "--sport 43500")
        new_peers = server.peers()
    assert new["connected"] and new["echoed"] == 1024, new
    assert len(new_peers) == 1 and next(iter(new_peers))[1] != before["external_port"], \
        (new_peers, before["external_port"])


def test_lost_controller_link_keeps_live_sessions_and_drops_stale_ones(lab):
    ctl = lab.controller
    with Server(lab.host("o1"), "udp-server", 9400):
        got = client(lab.host("h2"), "udp-client", "--sport 46500", f"--to {O1}:9400",
                     "--count 1")
    assert got["replies"] == {f"{O1}:9400": 1}, got
    stale = wait_for(lambda: find(lab, "udp", "10.0.0.12", 46500), 5, what="the UDP session")
    with Server(lab.host("o1"), "tcp-server", 7400) as server:
        loop = EchoLoop(lab, 7400, 43600, seconds=12)
        before = wait_for(lambda: (c := find(lab, "tcp", "10.0.0.11", 43600))
                          and c["state"] == "ESTABLISHED" and c, 5, what="ESTABLISHED")
        time.sleep(1)
        # The link drops (the switch now dials a port nobody listens on).
        # Not del-controller: OVS flushes a bridge's flows when its last
        # controller is removed.
        lab.set_controller_target("tcp:127.0.0.1:9")
        away = time.time()
        wait_for(lambda: ctl.get("/nat/stats")["switches_connected"] == 0, 10,
                 what="the controller to see the switch go")
        # While the link is down, the UDP session's flows idle out on the switch.
        for kind in (0x10, 0x11):
            ofctl("del-flows", "s1", f"cookie={(0x5A7E << 48) | (kind << 40) | stale['id']:#x}/-1")
        time.sleep(1)
        back = time.time()
        lab.set_controller_target(f"tcp:127.0.0.1:{ctl.of_port}")
        wait_for(lab.switch_ready, 15, what="s1 back with its gateway rules")
        after = wait_for(lambda: find(lab, "tcp", "10.0.0.11", 43600), 10,
                         what="the connection listed again")
        result = loop.result()
        peers = server.peers()
    assert_echoed_throughout(result, away, back)
    assert (after["id"], after["external_port"]) == (before["id"], before["external_port"])
    assert peers == {(NAT_IP, before["external_port"])}
    assert find(lab, "udp", "10.0.0.12", 46500) is None, "a session whose flows are gone"
    # And new sessions are made again after the reconnection.
    with Server(lab.host("o1"), "udp-server", 9400):
        again = client(lab.host("h2"), "udp-client", "--sport 46501", f"--to {O1}:9400",
                       "--count 2")
    assert again["replies"] == {f"{O1}:9400": 2}, again

