"""TCP close handled by the switch: Open vSwitch's fin_timeout on every TCP
session flow lowers it to the transitory timeout when a FIN passes, with no
packet-in; the controller reads it in the flow stats (real ryu-manager, OVS
userspace datapath, Mininet hosts, real TCP stacks)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import pytest

from helpers.peers import NETPROBE, Server
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

O1 = "198.51.100.10"
TRANSITORY = 6          # seconds: below the RFC floor, so that a test sees it run out
QUARANTINE = 4
CONNECTIONS = 150


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=1, outside=1, nat_options={
            "stats_interval": 1, "tcp_transitory_timeout": TRANSITORY,
            "port_quarantine": QUARANTINE}) as running:
        yield running
    assert_left_nothing(running)


def session_flows(lab) -> list[dict]:
    return [f for f in lab.flows() if (f["cookie"] >> 40) & 0xFF in (0x10, 0x11)]


def connect_loop(lab, count: int) -> dict:
    proc = lab.host("h1").popen([sys.executable, NETPROBE, "tcp-connect-loop", "--to",
                                 f"{O1}:80", "--seconds", "30", "--max", str(count)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert out.strip(), f"tcp-connect-loop said nothing: {err[-2000:]}"
    return json.loads(out.strip().splitlines()[-1])


def test_short_connections_close_in_the_switch_and_free_their_ports(lab):
    """Each connection's FINs lower both of its flows in the switch (none is
    re-added by the controller: their age goes on), the only packet-in of a
    connection is its SYN, every session reads CLOSING, and once the flows
    idle out the ports go through the quarantine and back to the pool."""
    with Server(lab.host("o1"), "tcp-server", 80, seconds=120):
        before = lab.controller.get("/nat/stats")["packet_ins"]
        done = connect_loop(lab, CONNECTIONS)
        packet_ins = lab.controller.get("/nat/stats")["packet_ins"] - before
    assert (done["ok"], done["failed"]) == (CONNECTIONS, 0), done
    # A SYN each (and nothing for the FINs); a spare few for ARP refreshes.
    assert CONNECTIONS <= packet_ins <= CONNECTIONS + 5, packet_ins
    # OVS applies fin_timeout when its revalidator pushes the datapath
    # flow's stats (TCP flags included) to the rule: the last connections'
    # flows within a round of that, well inside the transitory timeout.
    seen: list[Counter] = []
    try:
        wait_for(lambda: seen.append(Counter(f["idle_timeout"] for f in session_flows(lab)))
                 or seen[-1] == {TRANSITORY: 2 * CONNECTIONS}, 3)
    except TimeoutError:
        pytest.fail(f"not every flow lowered itself to the transitory timeout: {seen[-1]}")
    conns = wait_for(lambda: (c := lab.controller.get("/nat/connections?protocol=tcp"))
                     and all(x["state"] == "CLOSING" for x in c) and c, 5,
                     what="every session CLOSING")
    assert len(conns) == CONNECTIONS
    assert all(x["timeout"] == TRANSITORY for x in conns)
    # Gone TRANSITORY s after their last packet: flow-removed ended them.
    wait_for(lambda: lab.controller.get("/nat/stats")["active"] == 0, TRANSITORY + 6,
             what="the sessions to end")
    stats = lab.controller.get("/nat/stats")
    assert stats["ports_quarantined"]["tcp"] == CONNECTIONS, stats["ports_quarantined"]
    assert stats["ports_in_use"]["tcp"] == 0
    assert session_flows(lab) == []
    wait_for(lambda: lab.controller.get("/nat/stats")["ports_quarantined"]["tcp"] == 0,
             QUARANTINE + 4, what="the quarantine to end")


def test_an_established_connection_keeps_its_flows_until_it_closes(lab):
    """A connection that lives on (an echo every 0.1 s) keeps the
    established timeout on both flows; its close lowers them in the switch,
    the same flows, not new ones."""
    script = ("import socket, time\n"
              f"s = socket.create_connection(('{O1}', 81), timeout=5)\n"
              "end = time.monotonic() + 4\n"
              "while time.monotonic() < end:\n"
              "    s.sendall(b'x'); s.recv(10); time.sleep(0.1)\n"
              "time.sleep(2)\n"
              "s.close(); time.sleep(1.5)\n")
    with Server(lab.host("o1"), "tcp-server", 81, seconds=60):
        proc = lab.host("h1").popen([sys.executable, "-c", script])
        conn = wait_for(lambda: [c for c in lab.controller.get("/nat/connections?protocol=tcp")
                                 if c["remote_port"] == 81 and c["state"] == "ESTABLISHED"],
                        5, what="ESTABLISHED")[0]
        mine = lambda: [f for f in session_flows(lab)  # noqa: E731
                        if f["cookie"] & 0xFFFFFFFF == conn["id"]]
        wait_for(lambda: {f["idle_timeout"] for f in mine()} == {7440}, 5,
                 what="the established timeout on both flows")
        open_ages = {f["cookie"]: f["duration_sec"] for f in mine()}
        assert proc.wait(timeout=20) == 0
    closed = wait_for(lambda: [c for c in lab.controller.get("/nat/connections?protocol=tcp")
                               if c["id"] == conn["id"] and c["state"] == "CLOSING"], 5,
                      what="CLOSING")[0]
    assert closed["timeout"] == TRANSITORY
    flows = mine()
    assert {f["idle_timeout"] for f in flows} == {TRANSITORY}
    assert all(f["duration_sec"] > open_ages[f["cookie"]] for f in flows), \
        "the switch lowered the flows it had; the controller re-added nothing"
