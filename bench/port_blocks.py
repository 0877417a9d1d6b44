#!/usr/bin/env python3
"""Port blocks on vs off: set-up rate and the mapping log's size (issue 25).

    python bench/port_blocks.py [--runs 3] [--count 10000] [--json FILE]

Same rig as ``bench/setup_rate.py`` (a fresh stock ``ryu-manager`` per run,
``bench/ofswitch.py`` as the switch over TCP, TCP SYNs with unique 5-tuples
from 250 inside hosts), with the mapping log going to a file
(``mapping_log_file``), in two modes, interleaved run by run:

* ``per session``: every option at its default (``port_block_size = 0``):
  one log line per session created;
* ``blocks of 256``: ``port_block_size = 256``: one log line per block
  allocated (each host's 40 sessions fit one block; 252 blocks of
  1024-65535 cover the 250 hosts).

Reported per mode: sessions/s at 64 packet-ins outstanding, and the bytes
the mapping log holds after ``--count`` new sessions, scaled to 10,000
(creations only: the sessions are still live when it is read; an end writes
as much again, a session's line or a block's).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import controllers  # noqa: E402
import ofswitch  # noqa: E402
from common import Row, arg_parser, report  # noqa: E402
from setup_rate import REMOTE, REMOTE_MAC, flows_for  # noqa: E402

BENCH = "port_blocks"
ANCHOR = "per session"
MODES = {"per session": {}, "blocks of 256": {"port_block_size": 256}}


def one_run(mode: str, count: int, window: int, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="ryu-snat-bench-") as d:
        log = Path(d) / "mappings.log"
        ctl = controllers.start("ryu-snat", nat={"mapping_log_file": str(log), **MODES[mode]})
        switch = ofswitch.FakeSwitch(ctl.of_port, neighbors={REMOTE: REMOTE_MAC})
        try:
            switch.connect(timeout=20)
            switch.settle(0.3)
            flows = flows_for("ryu-snat (TCP)")
            first = ofswitch.run(switch, flows, 1, window=1, timeout=timeout)   # ARP
            if first.completed != 1:
                raise RuntimeError(f"{mode}: first session unanswered; log:\n{ctl.log_tail()}")
            time.sleep(1.5)                         # its line flushed: counted apart
            before = log.stat().st_size if log.exists() else 0
            rate = ofswitch.run(switch, flows, count, window=window, timeout=timeout,
                                ctl_pid=ctl.pid)
            time.sleep(1.5)                         # the last second's lines flushed
            after = log.stat().st_size if log.exists() else 0
            lines = log.read_text().count("\n") if log.exists() else 0
            if not ctl.alive():
                raise RuntimeError(f"{mode}: controller died; log:\n{ctl.log_tail()}")
            return {"rate": rate.rate, "lost": rate.lost,
                    "log_bytes_per_10k": (after - before) * 10000 / max(1, rate.completed),
                    "log_lines": lines}
        finally:
            switch.close()
            ctl.stop()


METRICS = [  # key, metric, unit, higher is better
    ("rate", "setup rate", "sessions/s", True),
    ("log_bytes_per_10k", "mapping log per 10,000 sessions", "bytes", False),
    ("log_lines", "mapping log lines", "lines", False),
    ("lost", "lost", "sessions", False),
]


def main(argv: list[str] | None = None) -> int:
    p = arg_parser(__doc__.split("\n\n")[0], runs=3)
    p.add_argument("--count", type=int, default=10000, help="new sessions per run (10,000)")
    p.add_argument("--window", type=int, default=64, help="packet-ins outstanding (64)")
    p.add_argument("--timeout", type=float, default=5.0, help="a session unanswered this long is lost")
    args = p.parse_args(argv)
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    t0 = time.monotonic()
    for run in range(args.runs):
        for mode in MODES:
            r = one_run(mode, args.count, args.window, args.timeout)
            results[mode].append(r)
            print(f"run {run + 1}/{args.runs} {mode}: {r['rate']:,.0f} sessions/s, log "
                  f"{r['log_bytes_per_10k']:,.0f} bytes per 10,000 sessions ({r['log_lines']} "
                  f"lines), lost {r['lost']}", file=sys.stderr, flush=True)
    rows = [Row(BENCH, f"window {args.window}", mode, metric, unit,
                [r[key] for r in results[mode]], higher, key != "lost")
            for key, metric, unit, higher in METRICS for mode in MODES]
    lost = sum(r["lost"] for rs in results.values() for r in rs)
    report(BENCH, rows, args.json, ANCHOR,
           extra={"parameters": {"count": args.count, "window": args.window, "runs": args.runs},
                  "sessions_lost": lost, "elapsed_s": round(time.monotonic() - t0, 1)})
    print(f"{lost} lost; {time.monotonic() - t0:.0f} s")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
