#!/usr/bin/env python3
"""ryu-snat at 1k, 10k and 100k live sessions, on the fake switch (not a test).

    python bench/scale.py [--runs 3] [--quick] [--sizes 1000,10000,100000]
                          [--stats-entries] [--json FILE]

Why: a gateway is judged full, not empty.  One fresh ``ryu-manager`` with
``ryu_app.snat`` per run (defaults but ``max_connections = 200000``, so 100k
fit beside the measuring sessions) is filled through ``bench/ofswitch.py``
with new TCP and UDP sessions, alternating, each from a new inside endpoint
(250 hosts, 10.0.0.2-251; ~420 sessions each at 100k, under the per-host
4096).  Endpoint-independent mapping gives every inside ip:port its own
external port and the TCP and UDP pools are separate, so 100k sessions need
~50k ports of each protocol's 64,512 (1024-65535) on the one NAT address:
they fit, up to ~129k sessions of this mix.  At each size:

* setup rate of the next ``--count`` sessions (W=64 outstanding);
* controller RSS (/proc/PID/status VmRSS);
* ``GET /nat/connections?limit=100`` latency, p50/p99 (and the default
  1000-session page, p50), with nothing else going on;
* one-at-a-time setup latency alone, then again while a child process runs
  back-to-back ``limit=100`` GETs: listing must not stall packet-ins;
* the next flow-stats poll (the app polls every ``stats_interval``, 10 s):
  the switch answers it (empty, or with ``--stats-entries`` one entry per
  flow it was given, in 64 KiB parts) and at once sends a new session; that
  session's round trip is how long packet-ins wait behind a poll, and the
  controller's CPU time from the request to that answer is the poll's cost.
"""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import controllers  # noqa: E402
import ofswitch  # noqa: E402
from common import Row, arg_parser, percentile, report  # noqa: E402
from setup_rate import REMOTE, REMOTE_MAC, new_session_cookie  # noqa: E402

BENCH = "scale"
SYSTEM = "ryu-snat"
NAT = {"max_connections": 200000}


def get_ms(port: int, path: str) -> float:
    """One GET on a new connection, as curl would do it, in ms.  (Over a
    kept-alive connection Ryu's WSGI server writes headers and body as two
    segments and, with Nagle on its socket, the body waits ~40 ms for the
    client's delayed ACK: that would measure TCP, not the controller.)"""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {body[:200]!r}")
    return (time.perf_counter() - t0) * 1000


def get_loop(port: int, seconds: float) -> None:
    """Child mode: back-to-back GETs for ``seconds``; prints JSON latencies."""
    lat, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        lat.append(get_ms(port, "/nat/connections?limit=100"))
    print(json.dumps(lat))


def poll_probe(switch: ofswitch.FakeSwitch, flows: ofswitch.Flows, ctl_pid: int,
               wait: float) -> tuple[float, float]:
    """(ms a new session waits right behind a stats poll, controller CPU ms
    from the poll's request to that session's packet-out)."""
    polls = switch.counters.flow_stats_requests
    deadline = time.monotonic() + wait
    while switch.counters.flow_stats_requests == polls:   # pump answers it
        if time.monotonic() > deadline:
            return float("nan"), float("nan")
        switch.pump(0.02)
    cpu0 = ofswitch.process_cpu_s(ctl_pid)
    r = ofswitch.run(switch, flows, 1, window=1, timeout=30, record_latency=True)
    cpu = (ofswitch.process_cpu_s(ctl_pid) - cpu0) * 1000
    return (r.latencies_us[0] / 1000 if r.latencies_us else float("nan")), cpu


def measure_size(switch: ofswitch.FakeSwitch, flows: ofswitch.Flows, ctl: controllers.Controller,
                 count: int, lat_count: int, gets: int, stats_wait: float) -> dict:
    out: dict[str, float] = {}
    rate = ofswitch.run(switch, flows, count, window=64, ctl_pid=ctl.pid)
    out["rate"], out["lost"] = rate.rate, rate.lost
    out["gen_cpu_pct"] = 100 * rate.gen_cpu_share
    out["rss_mib"] = ofswitch.process_rss_bytes(ctl.pid) / 2 ** 20
    lat = [get_ms(ctl.wsapi_port, "/nat/connections?limit=100") for _ in range(gets)]
    out["get100_p50"], out["get100_p99"] = percentile(lat, 50), percentile(lat, 99)
    out["get1000_p50"] = percentile([get_ms(ctl.wsapi_port, "/nat/connections")
                                     for _ in range(5)], 50)
    switch.pump(0)   # echo requests that came meanwhile
    alone = ofswitch.run(switch, flows, lat_count, window=1, record_latency=True)
    out["setup_p50"] = percentile(alone.latencies_us, 50) / 1000
    out["setup_p99"] = percentile(alone.latencies_us, 99) / 1000
    # The same while a child GETs back to back (it starts first, ends last).
    seconds = max(1.0, alone.wall_s * 1.5 + 0.5)
    child = subprocess.Popen([sys.executable, __file__, "--get-loop", str(ctl.wsapi_port),
                              str(seconds)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        busy = ofswitch.run(switch, flows, lat_count, window=1, record_latency=True)
        got, _ = child.communicate(timeout=seconds + 30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    get_lat = json.loads(got or "[]")
    out["setup_p50_gets"] = percentile(busy.latencies_us, 50) / 1000
    out["setup_p99_gets"] = percentile(busy.latencies_us, 99) / 1000
    out["gets_per_s"] = len(get_lat) / seconds
    out["lost"] += alone.lost + busy.lost
    out["poll_wait_ms"], out["poll_cpu_ms"] = poll_probe(switch, flows, ctl.pid, stats_wait)
    return out


def one_run(sizes: list[int], count: int, lat_count: int, gets: int,
            stats_entries: bool) -> dict[int, dict]:
    ctl = controllers.start(SYSTEM, nat=NAT)
    switch = ofswitch.FakeSwitch(ctl.of_port, neighbors={REMOTE: REMOTE_MAC})
    switch.track_cookies = stats_entries
    if stats_entries:
        switch.stats_cookies = lambda: list(switch.flow_cookies)
    flows = ofswitch.Flows("mixed", REMOTE, 5353, reason=ofswitch.OFPR_ACTION,
                           cookie=new_session_cookie())
    results = {}
    try:
        switch.connect(timeout=20)
        switch.settle(0.3)
        controllers.wait_http(ctl.wsapi_port)
        first = ofswitch.run(switch, flows, 1, window=1)
        if first.completed != 1:
            raise RuntimeError("first session not answered; log:\n" + ctl.log_tail())
        for size in sizes:
            t0 = time.monotonic()
            build = ofswitch.run(switch, flows, max(0, size - flows.next_index), window=64)
            print(f"  {size:,} sessions: built at {build.rate:,.0f}/s in "
                  f"{time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
            r = measure_size(switch, flows, ctl, count, lat_count, gets, stats_wait=12)
            r["lost"] += build.lost
            r["live"] = flows.next_index
            results[size] = r
            print(f"  {size:,}: {r['rate']:,.0f}/s, RSS {r['rss_mib']:.0f} MiB, GET p50 "
                  f"{r['get100_p50']:.2f} ms, setup p50 {r['setup_p50']:.3f} / with GETs "
                  f"{r['setup_p50_gets']:.3f} ms, behind a poll {r['poll_wait_ms']:.1f} ms",
                  file=sys.stderr, flush=True)
            if not ctl.alive():
                raise RuntimeError("controller died; log:\n" + ctl.log_tail())
    finally:
        switch.close()
        ctl.stop()
    return results


METRICS = [  # key, metric, unit, higher is better
    ("rate", "setup rate of the next sessions", "sessions/s", True),
    ("rss_mib", "controller RSS", "MiB", False),
    ("get100_p50", "GET limit=100 p50", "ms", False),
    ("get100_p99", "GET limit=100 p99", "ms", False),
    ("get1000_p50", "GET default page (1000) p50", "ms", False),
    ("setup_p50", "setup p50, alone", "ms", False),
    ("setup_p99", "setup p99, alone", "ms", False),
    ("setup_p50_gets", "setup p50, GETs running", "ms", False),
    ("setup_p99_gets", "setup p99, GETs running", "ms", False),
    ("gets_per_s", "GETs/s alongside", "requests/s", True),
    ("poll_wait_ms", "new session behind a stats poll", "ms", False),
    ("poll_cpu_ms", "controller CPU per stats poll", "ms", False),
    ("lost", "lost", "sessions", False),
    ("gen_cpu_pct", "generator CPU / wall", "%", False),
]


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 4 and sys.argv[1] == "--get-loop":
        get_loop(int(sys.argv[2]), float(sys.argv[3]))
        return 0
    p = arg_parser(__doc__.split("\n\n")[0], runs=3)
    p.add_argument("--quick", action="store_true",
                   help="sizes 1,000 and 10,000, fewer samples, 1 run unless --runs is given")
    p.add_argument("--sizes", help="comma-separated live-session counts (default 1000,10000,100000)")
    p.add_argument("--count", type=int, help="sessions per rate measurement (default 5,000)")
    p.add_argument("--stats-entries", action="store_true",
                   help="answer flow-stats polls with an entry per flow (default: empty replies)")
    p.set_defaults(runs=None)
    args = p.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    sizes = [int(s) for s in (args.sizes or ("1000,10000" if args.quick
                                              else "1000,10000,100000")).split(",")]
    count = args.count or (1000 if args.quick else 5000)
    lat_count, gets = (200, 20) if args.quick else (500, 50)
    t0 = time.monotonic()
    runs = []
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", file=sys.stderr, flush=True)
        runs.append(one_run(sizes, count, lat_count, gets, args.stats_entries))
    rows = [Row(BENCH, f"{size:,} sessions", SYSTEM, metric, unit,
                [r[size][key] for r in runs], higher, False)
            for key, metric, unit, higher in METRICS for size in sizes]
    lost = sum(r[s]["lost"] for r in runs for s in sizes)
    report(BENCH, rows, args.json, None,
           extra={"sizes": sizes, "sessions_lost": lost,
                  "parameters": {"count": count, "latency_count": lat_count, "gets": gets,
                                 "runs": args.runs, "stats_entries": args.stats_entries,
                                 "nat": NAT},
                  "elapsed_s": round(time.monotonic() - t0, 1)})
    print(f"\n{lost} sessions lost; {time.monotonic() - t0:.0f} s")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
