#!/usr/bin/env python3
"""Packet-in admission at the defaults: one host alone is not throttled,
hosts together share evenly, a flooding host does not starve another
(Mininet, root; GitHub issue 21 item 2).

    python bench/admission.py [--runs 3] [--quick] [--json FILE]

The topology is ``bench/dataplane.py``'s (hN -- s1 -- s2 -- o1, a Linux router
r1 with MASQUERADE for the anchor), ryu-snat at every option's default on
Open vSwitch as the install leaves it.  Per run, each network built afresh:

* ``alone``: h1, ``--count`` short connections over 8 workers, through
  ryu-snat at the defaults and through ryu-snat with admission off
  (``packet_in_port_rate = 0``: no meters; the fair queue only ever holds
  what the controller could not handle at once).  Target: >= 0.9x.
* ``four hosts``: h1..h4 together, 8 workers and ``--count`` connections each,
  through ryu-snat and through MASQUERADE: connections/s of all four, Jain's
  index of their rates, the worst connect p99.  Targets: >= 0.5x MASQUERADE,
  Jain >= 0.9, p99 <= 10 ms.
* ``flood``: h1 one connection at a time, quiet, then while h2 floods (scapy:
  SYNs to new 5-tuples, junk fragments, pings of the gateway, as fast as
  it goes for ``--flood-seconds``; h1 starts 1.5 s in), through ryu-snat
  and through MASQUERADE.  Also counted: the SYNs of the flood that reached
  o1 (the RSTs o1's kernel sent back: nothing listens on port 80), whether
  the gateway is up after it (REST answers, ryu-manager alive).  Target
  (ryu-snat): during >= 0.5x quiet.

Medians (min-max) over ``--runs``; every loop bounded in count and time;
exit status 1 when a run failed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "mininet"))

import dataplane as dp  # noqa: E402
import where_time_goes as where  # noqa: E402
from common import Row, arg_parser, report  # noqa: E402

BENCH = "admission"
NETPROBE = HERE.parent / "tests" / "helpers" / "netprobe.py"
WORKERS = 8
GATEWAY_MAC = "02:53:4e:41:54:01"          # ryu-snat's default gateway_mac
TARGETS = {"alone": 0.9, "four": 0.5, "jain": 0.9, "p99_ms": 10.0, "flood": 0.5}


clients, result = dp.start_clients, dp.clients_result


def o1_resets(o1) -> int:
    """RSTs o1's kernel has sent: one for each flood SYN that reached it (no
    listener on port 80), counted exactly, where a capture would drop some."""
    out = o1.cmd("nstat -az TcpOutRsts")
    for line in out.splitlines():
        if line.startswith("TcpOutRsts"):
            return int(line.split()[1])
    raise RuntimeError(f"nstat on o1 said: {out!r}")


def jain(rates: list[float]) -> float:
    return sum(rates) ** 2 / (len(rates) * sum(r * r for r in rates)) if any(rates) else 0.0


def warm(lab, hosts: list) -> None:
    for host in hosts:
        ping = host.cmd(f"ping -c 2 -i 0.2 -W 2 {dp.O1_IP}")
        if " 0% packet loss" not in ping:
            raise RuntimeError(f"{host.name} cannot ping o1:\n{ping}")


def with_network(system: str, inside: int, nat_options: dict | None, body) -> dict:
    net = dp.open_network(system, inside, nat_options)
    with net as lab:
        server = dp.start_server(lab.host("o1"), 300)
        try:
            return body(lab)
        finally:
            server.terminate()
            server.wait(timeout=5)


def alone(system: str, nat_options: dict | None, count: int) -> dict:
    def body(lab) -> dict:
        h1 = lab.host("h1")
        warm(lab, [h1])
        deadline = max(10.0, count / 50)
        return result(clients(h1, count, WORKERS, deadline), deadline)
    return with_network(system, 1, nat_options, body)


def four(system: str, count: int) -> dict:
    def body(lab) -> dict:
        hosts = [lab.host(f"h{i}") for i in range(1, 5)]
        warm(lab, hosts)
        deadline = max(10.0, count / 20)
        started = time.monotonic()
        procs = [clients(h, count, WORKERS, deadline) for h in hosts]
        got = [result(p, deadline) for p in procs]
        wall = time.monotonic() - started
        return {"rate": sum(g["ok"] for g in got) / wall, "jain": jain([g["rate"] for g in got]),
                "p99_ms": max(g["connect_p99_ms"] or 0 for g in got),
                "failures": sum(g["failures"] for g in got)}
    return with_network(system, 4, None, body)


def flood(system: str, count: int, seconds: float) -> dict:
    def body(lab) -> dict:
        h1, h2, o1 = lab.host("h1"), lab.host("h2"), lab.host("o1")
        warm(lab, [h1, h2])
        quiet = result(clients(h1, count, 1, 20), 20)
        resets = o1_resets(o1)
        flooder = h2.popen([sys.executable, str(NETPROBE), "flood", "--iface", "h2-eth0",
                            "--gateway-mac", GATEWAY_MAC if system in dp.SNATS
                            else lab.host("r1").MAC("r1-eth0"),
                            "--to", dp.O1_IP, "--seconds", str(seconds)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        cpu_before = cpu_shares(lab, system, flooder.pid)
        started = time.monotonic()
        during = result(clients(h1, count, 1, max(2.0, seconds - 2.5)), seconds)
        cpu = {who: (used - cpu_before.get(who, 0.0)) / (time.monotonic() - started)
               for who, used in cpu_shares(lab, system, flooder.pid).items()}
        out, err = flooder.communicate(timeout=seconds + 30)
        time.sleep(0.5)
        reached = o1_resets(o1) - resets
        try:
            sent = json.loads(out.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            raise RuntimeError(f"the flood printed nothing: {err[-1000:]!r}")
        up = True
        if system in dp.SNATS:
            up = lab.controller.proc.poll() is None and lab.controller.get("/nat/stats") is not None
        return {"quiet": quiet["rate"], "during": during["rate"],
                "ratio": during["rate"] / quiet["rate"] if quiet["rate"] else 0.0,
                "during_p99_ms": during["connect_p99_ms"], "failures": during["failures"],
                "flood_pps": sent["pps"], "flood_syns": sent["sent"]["syn"],
                "syns_reached_o1": reached, "up": up, "cpu": cpu}
    return with_network(system, 2, None, body)


def cpu_shares(lab, system: str, flooder: int) -> dict[str, float]:
    """CPU seconds so far of what shares the machine during the flood:
    ovs-vswitchd's main thread and revalidator, ryu-manager, the flooder."""
    threads = where.thread_cpu(dp.ovs_vswitchd_pid())
    shares = {"ovs-vswitchd main": threads["ovs-vswitchd"],
              "ovs-vswitchd revalidator": threads["revalidator"],
              "flooder": dp.cpu_seconds(flooder)}
    if system in dp.SNATS:
        shares["ryu-manager"] = dp.cpu_seconds(lab.controller.proc.pid)
    return shares


def main() -> int:
    ap = arg_parser(__doc__.split("\n\n")[0], runs=3)
    ap.add_argument("--quick", action="store_true", help="fewer connections")
    ap.add_argument("--count", type=int, help="connections per client (default 500)")
    ap.add_argument("--flood-seconds", type=float, default=8.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("needs root (Open vSwitch and Mininet)")
    os.environ.setdefault("SHELL", "/bin/bash")
    count = args.count or (150 if args.quick else 500)
    started = time.monotonic()
    rows: dict[tuple, Row] = {}
    problems: list[str] = []

    def add(case: str, system: str, metric: str, unit: str, value: float,
            higher: bool = True, compare: bool = True) -> None:
        key = (case, system, metric)
        if key not in rows:
            rows[key] = Row(BENCH, case, system, metric, unit, [], higher, compare)
        rows[key].runs.append(value)

    for run in range(1, max(1, args.runs) + 1):
        steps = [
            ("alone", "ryu-snat", lambda: alone("ryu-snat", None, count)),
            ("alone", "ryu-snat, admission off",
             lambda: alone("ryu-snat", {"packet_in_port_rate": 0}, count)),
            ("four hosts", "ryu-snat", lambda: four("ryu-snat", count)),
            ("four hosts", "masquerade", lambda: four("masquerade", count)),
            ("flood", "ryu-snat", lambda: flood("ryu-snat", count, args.flood_seconds)),
            ("flood", "masquerade", lambda: flood("masquerade", count, args.flood_seconds)),
        ]
        for case, system, step in steps:
            try:
                got = step()
            except Exception as err:  # noqa: BLE001 - reported; the exit status says so
                problems.append(f"run {run} {case} {system}: {type(err).__name__}: {err}")
                print(f"run {run} {case} {system}: FAILED {err}", file=sys.stderr, flush=True)
                continue
            print(f"run {run} {case:10} {system:24} {json.dumps(got)[:300]}", file=sys.stderr,
                  flush=True)
            if case == "alone":
                add(case, system, "connections/s", "1/s", got["rate"])
                add(case, system, "connect p99", "ms", got["connect_p99_ms"], False)
                add(case, system, "failures", "count", got["failures"], False, False)
            elif case == "four hosts":
                add(case, system, "connections/s, all four", "1/s", got["rate"])
                add(case, system, "Jain's index", "", got["jain"], compare=False)
                add(case, system, "worst connect p99", "ms", got["p99_ms"], False)
                add(case, system, "failures", "count", got["failures"], False, False)
            else:
                add(case, system, "h1 quiet", "1/s", got["quiet"])
                add(case, system, "h1 during the flood", "1/s", got["during"])
                add(case, system, "during / quiet", "x", got["ratio"], compare=False)
                add(case, system, "h1 connect p99 during", "ms", got["during_p99_ms"], False)
                add(case, system, "h1 failures during", "count", got["failures"], False, False)
                add(case, system, "flood frames/s", "1/s", got["flood_pps"], compare=False)
                add(case, system, "flood SYNs sent", "count", got["flood_syns"], compare=False)
                add(case, system, "flood SYNs at o1", "count", got["syns_reached_o1"], False,
                    False)
                add(case, system, "gateway up after", "bool", float(got["up"]), compare=False)
                for who, share in got["cpu"].items():
                    add(case, system, f"{who} CPU / wall during", "cores", share, False, False)
                if not got["up"]:
                    problems.append(f"run {run} flood {system}: the gateway was down after it")
    found = targets(rows)
    report(BENCH, rows.values(), args.json, anchor_system="masquerade",
           extra={"targets": found, "problems": problems, "count": count, "workers": WORKERS,
                  "flood_seconds": args.flood_seconds, "ovs_max_idle_ms": dp.ovs_max_idle(),
                  "seconds": round(time.monotonic() - started, 1)})
    dp.print_targets(found)
    print(f"\ndone in {time.monotonic() - started:.0f}s")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


def targets(rows: dict) -> list[dict]:
    def med(case: str, system: str, metric: str) -> float | None:
        row = rows.get((case, system, metric))
        return row.median if row and row.runs else None

    found: list[dict] = []

    def target(what: str, value: float | None, goal: str, ok) -> None:
        found.append({"target": what, "value": value, "goal": goal,
                      "met": None if value is None else bool(ok(value))})

    on, off = (med("alone", s, "connections/s") for s in ("ryu-snat", "ryu-snat, admission off"))
    target("h1 alone, defaults / admission off", on / off if on and off else None,
           f">= {TARGETS['alone']}x", lambda v: v >= TARGETS["alone"])
    snat, masq = (med("four hosts", s, "connections/s, all four") for s in ("ryu-snat",
                                                                          "masquerade"))
    target("four hosts together, ryu-snat / masquerade", snat / masq if snat and masq else None,
           f">= {TARGETS['four']}x", lambda v: v >= TARGETS["four"])
    target("four hosts, Jain's index (ryu-snat)", med("four hosts", "ryu-snat", "Jain's index"),
           f">= {TARGETS['jain']}", lambda v: v >= TARGETS["jain"])
    target("four hosts, worst connect p99 (ryu-snat) [ms]",
           med("four hosts", "ryu-snat", "worst connect p99"), f"<= {TARGETS['p99_ms']} ms",
           lambda v: v <= TARGETS["p99_ms"])
    target("h1 during h2's flood / quiet (ryu-snat)", med("flood", "ryu-snat", "during / quiet"),
           f">= {TARGETS['flood']}x", lambda v: v >= TARGETS["flood"])
    return found


if __name__ == "__main__":
    sys.exit(main())
