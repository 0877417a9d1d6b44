"""Nothing lost when Open vSwitch restarts: ovs-vswitchd goes (a crash, or
``ovs-ctl restart`` as an upgrade does) while h1's TCP connection echoes
through the gateway; the controller puts the session's flows back with the
same external port, and the echoes resume within 2 s of the switch's
return (real ryu-manager, OVS, hosts; a controller pair too)."""
from __future__ import annotations

import time
from typing import Callable

import pytest

from helpers.echo import EchoLoop
from helpers.peers import Server
from helpers.system import assert_left_nothing
from lab import Lab, run, wait_for

NAT_IP = "198.51.100.1"
OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=2, outside=1, nat_options={"stats_interval": 1}) as running:
        running.set_reconnect_backoff(1000)
        yield running
    assert_left_nothing(running)


def vswitchd_up() -> bool:
    return run("ovs-appctl", "--timeout=3", "-t", "ovs-vswitchd", "version",
               check=False).returncode == 0


def crash_vswitchd() -> None:
    """ovs-vswitchd goes away without saving its flows (as a crash does) and
    is started again: the bridges come back from the database, empty."""
    run("ovs-appctl", "--timeout=5", "-t", "ovs-vswitchd", "exit", check=False)
    done = run(OVS_CTL, "--no-ovsdb-server", "start", check=False, timeout=60)
    assert wait_for(vswitchd_up, 15, what="ovs-vswitchd back"), done.stdout


def restart_vswitchd() -> None:
    """``ovs-ctl --no-ovsdb-server restart``, as an upgrade does (it saves the
    flows and restores what it can)."""
    done = run(OVS_CTL, "--no-ovsdb-server", "restart", check=False, timeout=60)
    assert done.returncode == 0 and vswitchd_up(), done.stdout


def find(ctl, sport: int) -> dict | None:
    conns = [c for c in ctl.get("/nat/connections?protocol=tcp&internal_ip=10.0.0.11")
             if c["internal_port"] == sport]
    return conns[0] if conns else None


def echo_through(lab, ctl, sport: int, switch_goes: Callable[[], None]) -> None:
    with Server(lab.host("o1"), "tcp-server", 7500) as server:
        loop = EchoLoop(lab, 7500, sport, seconds=12, patience=10)
        before = wait_for(lambda: (c := find(ctl, sport)) and c["state"] == "ESTABLISHED"
                          and c, 5, what="ESTABLISHED")
        time.sleep(1)
        switch_goes()
        back = time.time()
        wait_for(lab.switch_ready, 15, what="s1 back with its gateway rules")
        after = wait_for(lambda: find(ctl, sport), 10, what="the connection listed again")
        result = loop.result()
        peers = server.peers()
    assert result["connected"] and result["error"] is None, result["error"]
    resumed = [t for t in result["echoes"] if t > back]
    assert resumed and resumed[0] - back < 2.0, \
        f"echoes resumed {resumed[0] - back if resumed else None} s after the switch came back"
    assert len([t for t in result["echoes"] if t > back + 2]) >= 20, "and went on"
    assert (after["id"], after["external_port"]) == (before["id"], before["external_port"])
    assert peers == {(NAT_IP, before["external_port"])}, "one connection, one mapping"


def test_a_crashed_switch_gets_its_sessions_back_with_their_ports(lab):
    echo_through(lab, lab.controller, 43700, crash_vswitchd)
    assert lab.controller.get("/nat/stats")["sessions_put_back"] >= 1


def test_an_ovs_restart_keeps_every_session_and_its_port(lab):
    echo_through(lab, lab.controller, 43701, restart_vswitchd)


def test_a_controller_pairs_master_puts_the_sessions_back():
    with Lab(inside=2, outside=1, pair=True, nat_options={"stats_interval": 1}) as pair:
        pair.set_reconnect_backoff(1000)
        master, standby = pair.controllers
        wait_for(lambda: standby.get("/nat/ha")["switches"].get("0000000000000001", {})
                 .get("role") == "SLAVE", 15, what="the second controller SLAVE at s1")
        echo_through(pair, master, 43702, crash_vswitchd)
        assert master.get("/nat/ha")["switches"]["0000000000000001"]["role"] == "MASTER"
    assert_left_nothing(pair)
