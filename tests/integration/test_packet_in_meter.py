"""A flood from one inside host cannot starve another's new sessions: h2
floods with scapy (SYNs to new 5-tuples, junk fragments, pings of the
gateway) while h1 keeps opening connections and a transfer runs (real
ryu-manager, OVS meters, Mininet hosts)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from helpers.peers import NETPROBE, Server
from helpers.system import assert_left_nothing
from lab import Lab

O1 = "198.51.100.10"
GATEWAY_MAC = "02:53:4e:41:54:01"
SECONDS = 6
# The limits are at their defaults (500 packet-ins/s per port, 100 per
# source): what a user gets.  With both 0, h1 managed 0.1 new connections a
# second during the same flood on this 2-core machine.


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=2, outside=1, nat_options={"stats_interval": 1}) as running:
        yield running
    assert_left_nothing(running)


def start(host, *args: str) -> subprocess.Popen:
    return host.popen([sys.executable, NETPROBE, *args], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=60)
    assert out.strip(), f"{proc.args[2]} said nothing (exit {proc.returncode}): {err[-2000:]}"
    return json.loads(out.strip().splitlines()[-1])


def connect_loop(lab) -> subprocess.Popen:
    return start(lab.host("h1"), "tcp-connect-loop", "--to", f"{O1}:80",
                 "--seconds", str(SECONDS))


def test_h1_keeps_opening_connections_while_h2_floods(lab):
    with Server(lab.host("o1"), "tcp-server", 80, seconds=120), \
            Server(lab.host("o1"), "tcp-server", 81, seconds=120):
        quiet = result(connect_loop(lab))
        transfer = start(lab.host("h1"), "tcp-echo-loop", "--to", f"{O1}:81",
                         "--sport", "47000", "--seconds", str(SECONDS + 2), "--interval", "0.05")
        time.sleep(0.5)
        flood = start(lab.host("h2"), "flood", "--iface", "h2-eth0", "--gateway-mac",
                      GATEWAY_MAC, "--to", O1, "--seconds", str(SECONDS + 1))
        time.sleep(0.5)
        during = result(connect_loop(lab))
        flooded, echoed = result(flood), result(transfer)
    stats = lab.controller.get("/nat/stats")
    print(f"h1 new connections/s: {quiet['rate']} quiet, {during['rate']} during h2's "
          f"flood of {flooded['pps']} frames/s; metered {stats['packet_ins_metered']}, "
          f"budget drops {stats['drops'].get('packet_in_budget', 0)}")
    assert sum(flooded["sent"].values()) > 5000, f"the flood was not a flood: {flooded}"
    assert stats["packet_ins_metered"]["s1-eth3"] > 1000, "h2's port meter dropped its flood"
    assert stats["packet_ins_metered"]["s1-eth2"] == 0, "h1's port was never over its rate"
    assert quiet["failed"] == 0 and during["failed"] == 0, (quiet, during)
    assert during["rate"] >= 0.3 * quiet["rate"], \
        f"h1 starved: {during['rate']}/s during the flood, {quiet['rate']}/s without"
    assert echoed["error"] is None and len(echoed["echoes"]) > 20, echoed
    gaps = [b - a for a, b in zip(echoed["echoes"], echoed["echoes"][1:])]
    assert max(gaps) < 2.0, f"the transfer stalled for {max(gaps):.2f} s"
    assert stats["handler_errors"] == 0
    h2 = lab.controller.get("/nat/connections?internal_ip=10.0.0.12")
    assert len(h2) <= 100 * (SECONDS + 2) + 100, "h2's sessions came at its budget, no faster"
