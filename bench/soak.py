#!/usr/bin/env python3
"""Soak: thousands of sessions through the Mininet gateway for minutes, with
churn and expiry; afterwards everything must be back where it started.

    sudo .venv/bin/python bench/soak.py [--minutes 3] [--json FILE]

The lab as :class:`lab.Lab` runs it (real ``ryu-manager``, OVS, hosts),
h1 and h2 inside, o1 outside, with short timers so that sessions expire
while the soak runs (UDP and TCP transitory 10 s, established 30 s, port
quarantine 5 s, flow stats every 2 s) and the packet-in limits off (two
hosts are the whole load).  Each round (``--round`` seconds) h1 opens TCP
connections one after another (connect, echo, close: each session closes
and ages out) and h2 opens ``--udp`` new UDP flows at once from fresh source
ports (each answered once, then idle until it expires).  After every
round the controller's table (``active``), the port pool (``ports_in_use``),
the switch's flow count and the controller's RSS are sampled.

When the rounds are over the soak waits for everything to expire, then
checks the end state against the baseline taken before any traffic:
0 sessions, 0 ports in use or quarantined, no flow records left in the
controller, as many flows in the switch as the gateway's own rules (the
hosts' bindings, ``ryu_app.nat.source_guard``, go once idle for 10 s).  RSS is compared between the end of the first round (warm) and
the end (``--max-rss-growth`` MiB, default 8).  The exit status is 1 when
any check fails or more than 1% of connections or flows failed.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "mininet"))
sys.path.insert(0, str(REPO / "tests"))

from common import Row, arg_parser, report  # noqa: E402

BENCH = "soak"
O1 = "198.51.100.10"
TCP_PORT, UDP_PORT = 7000, 7001
OPTIONS = {"udp_timeout": 10, "tcp_transitory_timeout": 10, "tcp_established_timeout": 30,
           "icmp_timeout": 10, "stats_interval": 2, "port_quarantine": 5,
           "packet_in_port_rate": 0, "packet_in_host_rate": 0,
           "mapping_log_file": "mappings.log",
           # Inside addresses stay bound (two rules each) while idle this long:
           # short, so the end state is the baseline's again.
           "binding_idle_timeout": 10,
           # A round's closed connections count against h1's quota until
           # they idle out (tcp_transitory_timeout): above ~585 connections
           # a second a 7 s round met the default 4096, and the soak
           # measured the quota instead of the churn.
           "max_connections_per_host": 60000}
DRAIN_S = 30 + 2 * 2 + 20        # the longest timer, two polls and the expiry backstop


def flow_count(bridge: str = "s1") -> int:
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate", bridge],
                         capture_output=True, text=True, check=True).stdout
    return int(re.search(r"flow_count=(\d+)", out).group(1))


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def sample(lab) -> dict:
    stats = lab.controller.get("/nat/stats")
    return {"t": round(time.monotonic(), 1), "active": stats["active"],
            "created": stats["created"], "expired": stats["expired"],
            "ports_in_use": sum(stats["ports_in_use"].values()),
            "ports_quarantined": sum(stats["ports_quarantined"].values()),
            "flow_records": stats["flow_records"],
            "flows": flow_count(), "rss_mib": round(rss_mib(lab.controller.proc.pid), 1),
            "handler_errors": stats["handler_errors"]}


def probe(host, *args: str) -> subprocess.Popen:
    from helpers.peers import NETPROBE
    return host.popen([sys.executable, NETPROBE, *args], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    if not out.strip():
        raise RuntimeError(f"{proc.args[2]} printed nothing: {err[-1000:]}")
    return json.loads(out.strip().splitlines()[-1])


def soak(minutes: float, round_s: float, udp: int, max_rss_growth: float) -> dict:
    from helpers.peers import Server
    from lab import Lab, wait_for

    rounds: list[dict] = []
    totals = {"tcp_ok": 0, "tcp_failed": 0, "udp_sent": 0, "udp_answered": 0}
    with Lab(inside=2, outside=1, nat_options=OPTIONS) as lab:
        h1, h2, o1 = lab.host("h1"), lab.host("h2"), lab.host("o1")
        baseline = sample(lab)
        end = time.monotonic() + minutes * 60
        with Server(o1, "tcp-server", TCP_PORT, seconds=minutes * 60 + 120), \
                Server(o1, "udp-server", UDP_PORT, seconds=minutes * 60 + 120):
            # The gateway learns o1's MAC first: until then new flows wait in
            # its (bounded) ARP hold queue, and a burst of 200 would overflow it.
            result(probe(h2, "udp-client", "--sport", "19999", "--to", f"{O1}:{UDP_PORT}",
                         "--count", "1"))
            n = 0
            while time.monotonic() < end:
                began = time.monotonic()
                tcp = probe(h1, "tcp-connect-loop", "--to", f"{O1}:{TCP_PORT}",
                            "--seconds", str(round_s))
                first = 20000 + (n * udp) % 40000      # fresh source ports each round
                udp_ = probe(h2, "udp-many", "--first-sport", str(first), "--sockets", str(udp),
                             "--to", f"{O1}:{UDP_PORT}")
                t, u = result(tcp), result(udp_)
                time.sleep(max(0.0, began + round_s - time.monotonic()))
                totals["tcp_ok"] += t["ok"]
                totals["tcp_failed"] += t["failed"]
                totals["udp_sent"] += u["sent"]
                totals["udp_answered"] += u["answered"]
                rounds.append({**sample(lab), "tcp_rate": t["rate"], "udp_answered": u["answered"]})
                print(f"round {n}: {rounds[-1]}", flush=True)
                n += 1
        drained_in = time.monotonic()
        try:
            wait_for(lambda: (s := sample(lab))["active"] == 0 and s["ports_in_use"] == 0
                     and s["flow_records"] == 0
                     and s["ports_quarantined"] == 0 and s["flows"] == baseline["flows"],
                     DRAIN_S, interval=1.0, what="everything to expire")
        except TimeoutError:
            pass
        drained_in = round(time.monotonic() - drained_in, 1)
        final = sample(lab)
    attempts = totals["tcp_ok"] + totals["tcp_failed"]
    problems = []
    for key in ("active", "ports_in_use", "ports_quarantined", "flow_records"):
        if final[key] != 0:
            problems.append(f"{key} is {final[key]} at the end, not 0")
    if final["flows"] != baseline["flows"]:
        problems.append(f"{final['flows']} flows at the end, {baseline['flows']} before")
    if final["handler_errors"]:
        problems.append(f"{final['handler_errors']} handler errors")
    if totals["tcp_failed"] > 0.01 * max(1, attempts):
        problems.append(f"{totals['tcp_failed']} of {attempts} TCP connections failed")
    if totals["udp_answered"] < 0.99 * totals["udp_sent"]:
        problems.append(f"{totals['udp_answered']} of {totals['udp_sent']} UDP flows answered")
    growth = final["rss_mib"] - rounds[0]["rss_mib"] if rounds else float("nan")
    if growth > max_rss_growth:
        problems.append(f"controller RSS grew {growth:.1f} MiB after the first round")
    return {"baseline": baseline, "rounds": rounds, "final": final, "totals": totals,
            "drained_in_s": drained_in, "rss_growth_mib": round(growth, 1),
            "problems": problems}


def main() -> int:
    p = arg_parser(__doc__.splitlines()[0], runs=1)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--round", type=float, default=10.0, help="seconds per round")
    p.add_argument("--udp", type=int, default=200, help="new UDP flows from h2 per round")
    p.add_argument("--max-rss-growth", type=float, default=8.0,
                   help="MiB the controller's RSS may grow from the first round to the end")
    a = p.parse_args()
    out = soak(a.minutes, a.round, a.udp, a.max_rss_growth)
    created = out["final"]["created"]
    peak = max((r["active"] for r in out["rounds"]), default=0)
    rows = [
        Row(BENCH, "soak", "ryu-snat", "sessions created", "sessions", [created], compare=False),
        Row(BENCH, "soak", "ryu-snat", "peak active", "sessions", [peak], compare=False),
        Row(BENCH, "soak", "ryu-snat", "TCP connections", "connections",
            [out["totals"]["tcp_ok"]], compare=False),
        Row(BENCH, "soak", "ryu-snat", "TCP failures", "connections",
            [out["totals"]["tcp_failed"]], higher_is_better=False, compare=False),
        Row(BENCH, "end", "ryu-snat", "active", "sessions", [out["final"]["active"]],
            higher_is_better=False, compare=False),
        Row(BENCH, "end", "ryu-snat", "ports in use + quarantined", "ports",
            [out["final"]["ports_in_use"] + out["final"]["ports_quarantined"]],
            higher_is_better=False, compare=False),
        Row(BENCH, "end", "ryu-snat", "flows less baseline", "flows",
            [out["final"]["flows"] - out["baseline"]["flows"]], higher_is_better=False,
            compare=False),
        Row(BENCH, "end", "ryu-snat", "RSS growth after round 1", "MiB",
            [out["rss_growth_mib"]], higher_is_better=False, compare=False),
    ]
    report(BENCH, rows, a.json, extra=out)
    print(f"\nbaseline {out['baseline']}\nfinal    {out['final']} (drained in "
          f"{out['drained_in_s']} s)")
    for problem in out["problems"]:
        print(f"PROBLEM: {problem}")
    return 1 if out["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
