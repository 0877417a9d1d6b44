#!/usr/bin/env python3
"""Run every bench, keep their JSON, draw the charts and docs/bench/results.md.

    python bench/run_all.py [--out bench/results] [--runs N] [--quick]
                            [--skip conntrack,setup_rate,scale,dataplane,admission,port_blocks]

Why one command: figures that go into docs/performance.md must come from one sitting
on one machine, with the exact commands beside them.  Each bench runs as its
own process (a crash or a missed target in one does not stop the others; its
exit status is recorded).  ``bench/dataplane.py`` (Mininet, needs root) runs
only if it exists.  Afterwards ``bench/charts.py`` turns the JSON into
``docs/bench/*.png`` and ``docs/bench/results.md``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHES = ["conntrack", "setup_rate", "scale", "dataplane", "admission", "port_blocks"]


def command(name: str, out: Path, runs: int | None, quick: bool) -> list[str] | None:
    """The command line of bench ``name``, or None when it does not exist."""
    script = HERE / ("conntrack_bench.py" if name == "conntrack" else f"{name}.py")
    if not script.exists():
        return None
    target = out / f"{name}.json"
    if target.resolve().is_relative_to(ROOT):
        target = target.resolve().relative_to(ROOT)
    cmd = [sys.executable, str(script.relative_to(ROOT)), "--json", str(target)]
    if name == "conntrack":   # one build per size in a child; no --runs
        if quick:
            cmd += ["--sizes", "1000,100000", "--no-tracemalloc"]
        return cmd
    if runs is not None:
        cmd += ["--runs", str(runs)]
    if quick and "--quick" in _help(script):
        cmd.append("--quick")
    return cmd


def _help(script: Path) -> str:
    try:
        return subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                              text=True, timeout=60, cwd=ROOT).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(HERE / "results"), help="directory for the JSON files")
    p.add_argument("--runs", type=int, help="passed to every bench that takes --runs")
    p.add_argument("--quick", action="store_true", help="each bench's quick mode")
    p.add_argument("--skip", default="", help="comma-separated benches to leave out")
    p.add_argument("--docs", default=str(ROOT / "docs" / "bench"),
                   help="where charts.py writes the PNGs and results.md")
    p.add_argument("--no-charts", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    summary = {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
               "command": " ".join(shlex.quote(a) for a in ["bench/run_all.py"] + sys.argv[1:]),
               "benches": []}
    failed = 0
    for name in BENCHES:
        if name in skip:
            continue
        cmd = command(name, out, args.runs, args.quick)
        if cmd is None:
            print(f"[run_all] {name}: no bench/{name}.py, skipped", flush=True)
            continue
        shown = " ".join(shlex.quote(c) for c in [Path(cmd[0]).name] + cmd[1:])
        print(f"[run_all] $ {shown}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        elapsed = time.monotonic() - t0
        print(f"[run_all] {name}: exit {rc} in {elapsed:.0f} s", flush=True)
        failed += rc != 0
        summary["benches"].append({"name": name, "command": shown, "exit": rc,
                                   "elapsed_s": round(elapsed, 1),
                                   "json": str(out / f"{name}.json")})
    (out / "run_all.json").write_text(json.dumps(summary, indent=1) + "\n")
    if not args.no_charts:
        rc = subprocess.run([sys.executable, str(HERE / "charts.py"), "--results", str(out),
                             "--out", args.docs], cwd=ROOT).returncode
        failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
