#!/usr/bin/env python3
"""Benchmark of the conntrack engine (not a test: it asserts nothing).

    python bench/conntrack_bench.py [--sizes 1000,100000,1000000] [--json FILE]

For each table size N, in a fresh child process (so one size's freed memory
does not flatter the next): build N live TCP sessions (creates/s), look up
random existing sessions by original and by reply tuple (lookups/s, the best
of three passes over one random sample of 500,000), then
expire a fixed share of them while the rest stay (expiries/s) and time
sweeps with nothing due (mean of 1,000: shows a sweep does not scan the
table). Memory
per entry is the RSS growth over the build divided by N, and (largest size,
unless --no-tracemalloc) the bytes traced by tracemalloc in a second build.

Workload: min(N/4, 60,000) inside endpoints (60 ports per host) keep one
external port each (EIM, one external address) and talk to N/endpoints
remotes each (~17 sessions per mapping at 1M). Sessions are created with a
SYN at t=0 (the first K = min(N/2, 50,000), which expire at 240 s) and at
t=100 (the rest).

Targets (one core): >= 1,000,000 lookups/s, >= 200,000 creates/s, expiry cost
independent of table size, <= 400 bytes per entry at 1M entries.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conntrack import TCP, ConnTrack, ConntrackConfig  # noqa: E402

ENDPOINTS = 60_000
PASSES = 3   # lookups: best of this many passes over the same sample (as timeit does)
PORTS_PER_HOST = 60
SYN = 0x02


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tuple_at(i: int, endpoints: int) -> tuple[int, int, int, int, int]:
    """Original tuple (proto, inside ip, inside port, remote ip, remote port) of session i."""
    j = i % endpoints
    return (TCP, 0x0A000001 + j // PORTS_PER_HOST, 20000 + j % PORTS_PER_HOST, 0x64400000 + i // endpoints, 443)


def endpoints_for(n: int) -> int:
    """Inside endpoints: at least 4 sessions each, so the expiry phase (which
    ends 2 sessions per endpoint) frees no port at any size and the sizes are
    comparable."""
    return max(1, min(n // 4, ENDPOINTS))


def workload(n: int) -> list[tuple[int, int, int, int, int]]:
    return [tuple_at(i, endpoints_for(n)) for i in range(n)]


def new_table(n: int) -> ConnTrack:
    config = ConntrackConfig(
        external_ip="198.51.100.1",
        max_connections=max(n, 1) + 1,
        max_connections_per_host=max(n, 1) + 1,
    )
    return ConnTrack(config, rng=random.Random(1))


def build(ct: ConnTrack, tuples: list, old: int) -> float:
    """Create all sessions; the first ``old`` at t=0, the rest at t=100."""
    create = ct.create_outbound
    start = time.perf_counter()
    for i, (proto, host, port, remote, rport) in enumerate(tuples):
        create(proto, host, port, remote, rport, 0.0 if i < old else 100.0, SYN)
    return time.perf_counter() - start


def measure(n: int, lookups: int) -> dict:
    tuples = workload(n)
    old = min(n // 2, 50_000)
    ct = new_table(n)
    gc.collect()
    rss0 = rss_bytes()
    build_s = build(ct, tuples, old)
    gc.collect()
    rss1 = rss_bytes()
    assert len(ct) == n

    # Keys of random existing sessions, built afresh in lookup order like the
    # fields of parsed packets (reusing the build's objects would add cache
    # misses on the benchmark's side, not the table's).
    rng = random.Random(2)
    endpoints = endpoints_for(n)
    sample = [tuple_at(rng.randrange(n), endpoints) for _ in range(lookups)]
    lookup = ct.lookup_outbound
    out_s = math.inf
    for _ in range(PASSES):
        start = time.perf_counter()
        for proto, host, port, remote, rport in sample:
            lookup(proto, host, port, remote, rport)
        out_s = min(out_s, time.perf_counter() - start)

    ext = int(ct.config.external_ip)
    replies = []
    for proto, host, port, remote, rport in sample:
        s = lookup(proto, host, port, remote, rport)
        # "+ 0" gives a fresh int, as a parsed packet would (not the mapping's object).
        replies.append((proto, remote, rport, ext, s.external_port + 0))
    lookup_in = ct.lookup_inbound
    in_s = math.inf
    for _ in range(PASSES):
        start = time.perf_counter()
        for proto, remote, rport, ext_ip, ext_port in replies:
            lookup_in(proto, remote, rport, ext_ip, ext_port)
        in_s = min(in_s, time.perf_counter() - start)

    start = time.perf_counter()
    gone = ct.expire(250.0)  # the `old` sessions created at t=0 (deadline 240)
    expire_s = time.perf_counter() - start
    assert len(gone) == old and len(ct) == n - old
    start = time.perf_counter()
    for _ in range(1000):  # sweeps with nothing due: their cost must not grow with N
        assert not ct.expire(251.0)
    idle_s = (time.perf_counter() - start) / 1000
    return {
        "entries": n,
        "creates_per_s": n / build_s,
        "lookups_out_per_s": lookups / out_s,
        "lookups_in_per_s": lookups / in_s,
        "expired": old,
        "expiries_per_s": old / expire_s,
        "idle_sweep_us": idle_s * 1e6,
        "rss_bytes_per_entry": (rss1 - rss0) / n,
    }


def traced_bytes_per_entry(n: int) -> float:
    tuples = workload(n)
    ct = new_table(n)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    build(ct, tuples, min(n // 2, 50_000))
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used / n


def run_child(args: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(v: float) -> str:
    return f"{v:,.0f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated table sizes")
    p.add_argument("--lookups", type=int, default=500_000, help="lookups timed per size")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--no-tracemalloc", action="store_true", help="skip the tracemalloc build at the largest size")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-traced", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.lookups)))
        return 0
    if args.child_traced is not None:
        print(json.dumps({"traced_bytes_per_entry": traced_bytes_per_entry(args.child_traced)}))
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        print(f"measuring {n:,} entries ...", file=sys.stderr, flush=True)
        rows.append(run_child(["--child", str(n), "--lookups", str(args.lookups)]))
    traced = None
    if not args.no_tracemalloc:
        print(f"tracemalloc build of {max(sizes):,} entries ...", file=sys.stderr, flush=True)
        traced = run_child(["--child-traced", str(max(sizes))])["traced_bytes_per_entry"]

    head = ["entries", "creates/s", "lookups/s out", "lookups/s in", "expired", "expiries/s", "idle sweep us", "RSS B/entry"]
    table = [head] + [
        [
            fmt(r["entries"]),
            fmt(r["creates_per_s"]),
            fmt(r["lookups_out_per_s"]),
            fmt(r["lookups_in_per_s"]),
            fmt(r["expired"]),
            fmt(r["expiries_per_s"]),
            f"{r['idle_sweep_us']:.1f}",
            f"{r['rss_bytes_per_entry']:.0f}",
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    print(f"conntrack benchmark, Python {sys.version.split()[0]}, one core")
    for k, row in enumerate(table):
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    if traced is not None:
        print(f"tracemalloc at {max(sizes):,} entries: {traced:.0f} bytes/entry")
    print("targets: >= 1,000,000 lookups/s, >= 200,000 creates/s, flat expiries/s, <= 400 B/entry at 1M")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "traced_bytes_per_entry": traced}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
