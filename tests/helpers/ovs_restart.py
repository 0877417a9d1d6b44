"""Open vSwitch restarted under a live connection: ovs-vswitchd goes (a
crash, or ``ovs-ctl restart`` as an upgrade does) while h1's TCP connection
echoes through the gateway, and the check that it came back as it was."""
from __future__ import annotations

import time
from typing import Callable

from helpers.echo import EchoLoop
from helpers.peers import Server
from lab import REPO, run, wait_for

NAT_IP = "198.51.100.1"
OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"


def vswitchd_up() -> bool:
    return run("ovs-appctl", "--timeout=3", "-t", "ovs-vswitchd", "version",
               check=False).returncode == 0


def crash_vswitchd() -> None:
    """ovs-vswitchd goes away without saving its flows (as a crash does) and
    is started again as the install starts it (``scripts/ovs.sh``): the
    bridges come back from the database, empty."""
    run("ovs-appctl", "--timeout=5", "-t", "ovs-vswitchd", "exit", check=False)
    wait_for(lambda: not vswitchd_up(), 10, what="ovs-vswitchd gone")
    done = run("bash", str(REPO / "scripts" / "ovs.sh"), check=False, timeout=90)
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
        try:
            before = wait_for(lambda: (c := find(ctl, sport)) and c["state"] == "ESTABLISHED"
                              and c, 5, what="ESTABLISHED")
            time.sleep(1)
            switch_goes()
            back = time.time()
            wait_for(lab.switch_ready, 15, what="s1 back with its gateway rules")
            after = wait_for(lambda: find(ctl, sport), 10, what="the connection listed again")
            result = loop.result()
        finally:
            if loop.proc.poll() is None:      # the test failed before the loop ended
                loop.proc.kill()
                loop.proc.wait()
        peers = server.peers()
    assert result["connected"] and result["error"] is None, result["error"]
    resumed = [t for t in result["echoes"] if t > back]
    assert resumed and resumed[0] - back < 2.0, \
        f"echoes resumed {resumed[0] - back if resumed else None} s after the switch came back"
    assert len([t for t in result["echoes"] if t > back + 2]) >= 20, "and went on"
    assert (after["id"], after["external_port"]) == (before["id"], before["external_port"])
    assert peers == {(NAT_IP, before["external_port"])}, "one connection, one mapping"

