#!/usr/bin/env python3
"""Controller session set-up rate on a fake switch (not a test: it asserts nothing
but that no session was lost, which is its exit status).

    python bench/setup_rate.py [--runs 5] [--quick] [--systems ...] [--json FILE]

Why: every new inside-to-outside connection costs one packet-in, two
flow-mods and one packet-out at the controller, so sessions per second of the
controller bound the gateway's new connections per second.  The switch is
``bench/ofswitch.py`` over TCP (no OVS, no kernel datapath), driving a fresh
stock ``ryu-manager`` per run:

* ``ryu-snat (TCP)`` / ``ryu-snat (UDP)``: ``ryu_app.snat`` with every NAT
  option at its default (the mapping log on Ryu's logger, to a file), TCP SYNs or
  UDP datagrams with unique 5-tuples from 250 inside hosts to one remote on
  the outside segment (its ARP is answered once, in the warm-up);
* ``packet-out floor``: ``bench/apps/packet_out_floor.py``, one packet-out
  per packet-in: what the framework allows at all;
* ``simple_switch_13``: Ryu's stock learning switch (anchor), taught the
  destination MAC first and then sent unique source MACs, so each packet-in
  costs it one flow-mod and one packet-out.

Per run: W packet-ins outstanding (``--window``, 64) over ``--count`` new
sessions (sessions/s), then one at a time over ``--latency-count`` (p50/p99
round trip, packet-in sent to packet-out read).  A session unanswered for
``--timeout`` s is lost.  The generator's and the controller's CPU time are
reported against wall time: the generator must stay far from a full core.

Targets: ryu-snat >= 12,000 sessions/s at W=64, >= 2.0x simple_switch_13,
p50 <= 0.25 ms one at a time, 0 lost.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import controllers  # noqa: E402
import ofswitch  # noqa: E402
from common import Row, arg_parser, percentile, report  # noqa: E402

BENCH = "setup_rate"
ANCHOR = "simple_switch_13"
REMOTE, REMOTE_MAC = "198.51.100.10", "02:00:c6:33:64:0a"
LEARNED_MAC = "02:00:00:00:00:fe"    # the host simple_switch_13 learns first, on the uplink
# system label -> (controller, protocol of the flows)
SYSTEMS = {"ryu-snat (TCP)": ("ryu-snat", "tcp"), "ryu-snat (UDP)": ("ryu-snat", "udp"),
           "packet-out floor": ("packet-out floor", "udp"),
           "simple_switch_13": ("simple_switch_13", "udp")}
SHORT = {"snat-tcp": "ryu-snat (TCP)", "snat-udp": "ryu-snat (UDP)", "floor": "packet-out floor",
         "ss13": "simple_switch_13"}
TARGET_RATE, TARGET_RATIO, TARGET_P50_MS = 12000, 2.0, 0.25


def new_session_cookie() -> int:
    """The cookie OVS would report: that of ryu-snat's NEW_FLOW rule."""
    from ryu_app.openflow import flows
    return flows.make_cookie(flows.CookieKind.INFRA, flows.InfraRule.NEW_FLOW)


def flows_for(label: str) -> ofswitch.Flows:
    controller, protocol = SYSTEMS[label]
    dport = 80 if protocol == "tcp" else 53
    if controller == "ryu-snat":
        return ofswitch.Flows(protocol, REMOTE, dport, reason=ofswitch.OFPR_ACTION,
                              cookie=new_session_cookie())
    if controller == "simple_switch_13":
        return ofswitch.Flows(protocol, REMOTE, dport, dst_mac=LEARNED_MAC, unique_macs=True)
    return ofswitch.Flows(protocol, REMOTE, dport)


def teach_learning_switch(switch: ofswitch.FakeSwitch) -> None:
    """simple_switch_13 floods until it knows the destination: one frame
    from LEARNED_MAC on the uplink teaches it."""
    frame = ofswitch.udp_datagram(ofswitch.mac("ff:ff:ff:ff:ff:ff"), ofswitch.mac(LEARNED_MAC),
                                  ofswitch.ip4(REMOTE), ofswitch.ip4("10.0.0.2"), 53, 53)
    switch.send(ofswitch.packet_in(frame, ofswitch.UPLINK, switch.next_xid()))
    outs = switch.counters.packet_outs
    deadline = time.monotonic() + 5
    while switch.counters.packet_outs == outs and time.monotonic() < deadline:
        switch.pump(0.05)


def one_run(label: str, count: int, latency_count: int, window: int, timeout: float,
            warmup: int) -> dict:
    """One fresh controller: warm-up, windowed rate, one-at-a-time latency."""
    controller, _protocol = SYSTEMS[label]
    ctl = controllers.start(controller)
    switch = ofswitch.FakeSwitch(ctl.of_port, neighbors={REMOTE: REMOTE_MAC})
    try:
        switch.connect(timeout=20)
        switch.settle(0.3)
        if controller == "simple_switch_13":
            teach_learning_switch(switch)
        flows = flows_for(label)
        first = ofswitch.run(switch, flows, 1, window=1, timeout=timeout)   # ARP, first path
        warm = ofswitch.run(switch, flows, warmup, window=window, timeout=timeout)
        if first.completed != 1 or warm.lost:
            raise RuntimeError(f"{label}: warm-up sessions were not answered; log:\n"
                               + ctl.log_tail())
        rate = ofswitch.run(switch, flows, count, window=window, timeout=timeout, ctl_pid=ctl.pid)
        lat = ofswitch.run(switch, flows, latency_count, window=1, timeout=timeout,
                           ctl_pid=ctl.pid, record_latency=True)
        if not ctl.alive():
            raise RuntimeError(f"{label}: controller died; log:\n{ctl.log_tail()}")
        return {"rate": rate.rate, "sent": rate.sent + lat.sent,
                "lost": rate.lost + lat.lost,
                "p50_ms": percentile(lat.latencies_us, 50) / 1000,
                "p99_ms": percentile(lat.latencies_us, 99) / 1000,
                "gen_cpu_pct": 100 * rate.gen_cpu_share, "ctl_cpu_pct": 100 * rate.ctl_cpu_share,
                "flow_mods_per_session": rate.flow_mods / max(1, rate.completed)}
    finally:
        switch.close()
        ctl.stop()


METRICS = [  # key, case, metric, unit, higher is better, ratio to the anchor shown
    ("rate", "window {window}", "setup rate", "sessions/s", True, True),
    ("p50_ms", "one at a time", "p50 latency", "ms", False, True),
    ("p99_ms", "one at a time", "p99 latency", "ms", False, True),
    ("lost", "all runs", "lost", "sessions", False, False),
    ("flow_mods_per_session", "window {window}", "flow-mods per session", "msgs", False, False),
    ("gen_cpu_pct", "window {window}", "generator CPU / wall", "%", False, False),
    ("ctl_cpu_pct", "window {window}", "controller CPU / wall", "%", False, False),
]


def targets(rows: list[Row], window: int) -> list[str]:
    """One line per target, with the measured figure and met / not met."""
    by = {(r.system, r.metric): r for r in rows}
    rate_metric = "setup rate"
    lines = []
    anchor = by.get((ANCHOR, rate_metric))
    for label in ("ryu-snat (TCP)", "ryu-snat (UDP)"):
        rate, p50 = by.get((label, rate_metric)), by.get((label, "p50 latency"))
        if rate is None:
            continue
        ok = rate.median >= TARGET_RATE
        lines.append(f"{label}: {rate.median:,.0f} sessions/s (target >= {TARGET_RATE:,}): "
                     f"{'met' if ok else 'NOT met'}")
        if anchor is not None and anchor.median:
            x = rate.median / anchor.median
            lines.append(f"{label}: {x:.2f}x {ANCHOR} (target >= {TARGET_RATIO:.1f}x): "
                         f"{'met' if x >= TARGET_RATIO else 'NOT met'}")
        if p50 is not None:
            lines.append(f"{label}: p50 {p50.median:.3f} ms one at a time (target <= "
                         f"{TARGET_P50_MS} ms): {'met' if p50.median <= TARGET_P50_MS else 'NOT met'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = arg_parser(__doc__.split("\n\n")[0], runs=5)
    p.add_argument("--quick", action="store_true",
                   help="fewer sessions (2,000 + 500) and 3 runs unless --runs is given")
    p.add_argument("--systems", default="snat-tcp,snat-udp,floor,ss13",
                   help=f"comma-separated, of {', '.join(SHORT)} (default: all)")
    p.add_argument("--count", type=int, help="sessions per rate run (default 10,000)")
    p.add_argument("--latency-count", type=int, help="one-at-a-time sessions (default 2,000)")
    p.add_argument("--window", type=int, default=64, help="packet-ins outstanding (default 64)")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds after which an unanswered session is lost (default 5)")
    p.set_defaults(runs=None)
    args = p.parse_args(argv)
    args.runs = args.runs or (3 if args.quick else 5)
    count = args.count or (2000 if args.quick else 10000)
    latency_count = args.latency_count or (500 if args.quick else 2000)
    labels = [SHORT[s.strip()] for s in args.systems.split(",") if s.strip()]

    results: dict[str, list[dict]] = {label: [] for label in labels}
    t0 = time.monotonic()
    for run in range(args.runs):       # interleaved: drift hits every system alike
        for label in labels:
            r = one_run(label, count, latency_count, args.window, args.timeout,
                        warmup=min(1000, count // 4))
            results[label].append(r)
            print(f"run {run + 1}/{args.runs} {label}: {r['rate']:,.0f} sessions/s, "
                  f"p50 {r['p50_ms']:.3f} ms, lost {r['lost']}, generator CPU "
                  f"{r['gen_cpu_pct']:.0f}%, controller CPU {r['ctl_cpu_pct']:.0f}%",
                  file=sys.stderr, flush=True)
    rows = []
    for key, case, metric, unit, higher, compare in METRICS:
        for label in labels:
            rows.append(Row(BENCH, case.format(window=args.window), label, metric, unit,
                            [r[key] for r in results[label]], higher, compare))
    lines = targets(rows, args.window)
    sent = sum(r["sent"] for rs in results.values() for r in rs)
    lost = sum(r["lost"] for rs in results.values() for r in rs)
    report(BENCH, rows, args.json, ANCHOR if ANCHOR in labels else None,
           extra={"targets": lines, "sessions_sent": sent, "sessions_lost": lost,
                  "parameters": {"count": count, "latency_count": latency_count,
                                 "window": args.window, "timeout_s": args.timeout,
                                 "runs": args.runs},
                  "elapsed_s": round(time.monotonic() - t0, 1)})
    print()
    for line in lines:
        print(line)
    print(f"{sent:,} sessions sent, {lost} lost; {time.monotonic() - t0:.0f} s")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
