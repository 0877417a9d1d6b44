"""Packet-in admission at the defaults, from the hosts' side (real
ryu-manager, OVS meters, Mininet hosts, real TCP clients): one host alone is
never throttled, hosts that open connections together share the controller
evenly, and a host flooding the gateway cannot starve another's new
connections (h2 floods with scapy: SYNs to new 5-tuples, junk fragments,
pings of the gateway)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.peers import NETPROBE, Server
from helpers.system import assert_left_nothing
from lab import Lab

O1 = "198.51.100.10"
GATEWAY_MAC = "02:53:4e:41:54:01"
PEER = str(Path(__file__).resolve().parents[2] / "bench" / "dataplane_peer.py")
PORT = 7000
FLOOD_SECONDS = 7


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=4, outside=1) as running:
        server = running.host("o1").popen(
            [sys.executable, PEER, "server", str(PORT), "--seconds", "300"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert server.stdout.readline().strip() == "ready"
            yield running
        finally:
            server.terminate()
            server.wait(timeout=10)
    assert_left_nothing(running)


def clients(host, count: int, workers: int, deadline: float = 20) -> subprocess.Popen:
    return host.popen([sys.executable, PEER, "client", "--to", f"{O1}:{PORT}", "--count",
                       str(count), "--workers", str(workers), "--timeout", "3",
                       "--deadline", str(deadline)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=90)
    assert out.strip(), f"{proc.args[1:3]} printed nothing (exit {proc.returncode}): {err[-2000:]}"
    return json.loads(out.strip().splitlines()[-1])


def queue_drops(stats: dict) -> int:
    return sum(stats["drops"].get(k, 0) for k in
               ("packet_in_queue_full", "packet_in_stale", "packet_in_budget"))


def test_one_host_alone_is_never_throttled(lab):
    """Hundreds of connections a second from one host: every SYN is served
    (no drop, no SYN waiting for its 1 s retransmission), where a fixed
    per-host budget made every connection above it wait a second."""
    lab.host("h1").cmd(f"ping -c 1 -W 2 {O1}")
    got = result(clients(lab.host("h1"), 600, 1))
    stats = lab.controller.get("/nat/stats")
    print(f"h1 alone: {got['rate']:.0f} connections/s, p99 {got['connect_p99_ms']:.2f} ms")
    assert got["ok"] == 600 and got["failures"] == 0, got
    assert got["connect_max_ms"] < 900, "a SYN was dropped and retransmitted"
    assert queue_drops(stats) == 0 and sum(stats["packet_ins_metered"].values()) == 0


def jain(rates: list[float]) -> float:
    return sum(rates) ** 2 / (len(rates) * sum(r * r for r in rates))


def test_hosts_opening_connections_together_share_evenly(lab):
    hosts = [lab.host(f"h{i}") for i in range(1, 5)]
    for host in hosts:
        host.cmd(f"ping -c 1 -W 2 {O1}")
    procs = [clients(host, 400, 8) for host in hosts]
    got = [result(p) for p in procs]
    rates = [g["rate"] for g in got]
    print(f"four hosts: {[round(r) for r in rates]} connections/s, Jain {jain(rates):.3f}")
    assert all(g["ok"] == 400 and g["failures"] == 0 for g in got), got
    assert jain(rates) >= 0.9, rates


def test_a_flooding_host_does_not_starve_another(lab):
    """h2's port meter is cut to h1's rate in the switch once the controller
    falls behind (ryu_app.openflow.punt_meters), h1's is left alone, h1 goes on
    opening connections with none lost, and h3's established transfer never
    stalls."""
    h1, h2, h3 = lab.host("h1"), lab.host("h2"), lab.host("h3")
    quiet = result(clients(h1, 600, 1))
    echo_server = Server(lab.host("o1"), "tcp-server", 81, seconds=60)
    transfer = h3.popen([sys.executable, NETPROBE, "tcp-echo-loop", "--to", f"{O1}:81",
                         "--sport", "47000", "--seconds", str(FLOOD_SECONDS + 2),
                         "--interval", "0.05"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True)
    time.sleep(0.5)
    flood = h2.popen([sys.executable, NETPROBE, "flood", "--iface", "h2-eth0", "--gateway-mac",
                      GATEWAY_MAC, "--to", O1, "--seconds", str(FLOOD_SECONDS)],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)                        # the flood is on
    h1_clients = clients(h1, 600, 1, deadline=FLOOD_SECONDS - 3)
    lowest: dict[str, int] = {}
    while h1_clients.poll() is None:       # the meters while both want the controller
        for port, rate in lab.controller.get("/nat/stats")["packet_in_meter_rates"].items():
            lowest[port] = min(rate, lowest.get(port, rate))
        time.sleep(0.2)
    during = result(h1_clients)
    flooded = result(flood)
    echoed = result(transfer)
    echo_server.stop()
    after = lab.controller.get("/nat/stats")
    print(f"h1: {quiet['rate']:.0f}/s quiet, {during['rate']:.0f}/s during h2's flood of "
          f"{flooded['pps']} frames/s; lowest meter rates meanwhile {lowest}; the controller's queue "
          f"dropped {queue_drops(after)}; h1's errors {during['errors']}")
    assert sum(flooded["sent"].values()) > FLOOD_SECONDS * 3000, \
        f"the flood was not a flood: {flooded}"
    assert lowest["s1-eth3"] < 1000 and lowest["s1-eth2"] == 3000, \
        "h2's meter was cut to a share, h1's not"
    # Starved would be: connections failing, or SYNs dropped and waiting a
    # second for their retransmission, or a handful made in the 4 s.
    # Connections the clients' deadline left unstarted are not lost.  (How
    # close h1 stays to its quiet rate is bench/admission.py's figure: on 2
    # cores it is mostly the flooder's and OVS's CPU, 0.08-0.5x here.)
    lost = during["failures"] - during["errors"].get("not run (deadline)", 0)
    assert lost == 0 and during["ok"] >= 50, during
    assert during["connect_max_ms"] < 900, f"a SYN of h1 was dropped and retransmitted: {during}"
    assert after["handler_errors"] == 0
    assert echoed["error"] is None and len(echoed["echoes"]) > 20, echoed
    gaps = [b - a for a, b in zip(echoed["echoes"], echoed["echoes"][1:])]
    assert max(gaps) < 1.0, f"h3's transfer stalled for {max(gaps):.2f} s"
    h2_sessions = lab.controller.get("/nat/connections?internal_ip=10.0.0.12&limit=10000")
    assert len(h2_sessions) <= 4096, "h2 stays within its quota: the flood stops at the gateway"
