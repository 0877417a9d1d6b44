"""What every benchmark in ``bench/`` shares: repeated runs summarised as
median (min-max), ratios against anchors measured in the same invocation, a
printed table and a JSON file that ``bench/charts.py`` draws from.

A result is a flat list of :class:`Row`: one system (ryu-snat, or an anchor
such as ``masquerade``) under one case (``sequential``, ``8-way``...) with one
metric and the value of every run.  Flat rows keep tables and charts generic.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import statistics
import sys
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence


@dataclass
class Row:
    """One metric of one system in one case, over repeated runs."""

    bench: str
    case: str
    system: str
    metric: str
    unit: str
    runs: list[float] = field(default_factory=list)
    higher_is_better: bool = True
    compare: bool = True    # False: a cost or a count, shown without a ratio to the anchor

    @property
    def median(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")

    @property
    def lo(self) -> float:
        return min(self.runs) if self.runs else float("nan")

    @property
    def hi(self) -> float:
        return max(self.runs) if self.runs else float("nan")

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(median=self.median, min=self.lo, max=self.hi)
        return d


def machine() -> dict:
    """Where and when the figures were taken (they mean nothing without it)."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cores": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version()}


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:])


def arg_parser(description: str, runs: int = 5) -> argparse.ArgumentParser:
    """The options every bench command takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    p.add_argument("--runs", type=int, default=runs,
                   help=f"repetitions per measurement; medians and min-max over them (default {runs})")
    return p


def fmt(value: float) -> str:
    if value != value:  # nan
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def ratio(row: Row, anchor: Row | None) -> float | None:
    """row / anchor on medians, oriented so that > 1 means row is better."""
    if anchor is None or not anchor.runs or not row.runs or anchor.median == 0 or row.median == 0:
        return None
    r = row.median / anchor.median
    return r if row.higher_is_better else 1 / r


def table(rows: Sequence[Row], anchor_system: str | None = None) -> str:
    """A plain-text (Markdown) table: median (min-max) and, given an anchor
    system, each row's ratio to the anchor's row of the same case and metric."""
    index = {(r.case, r.metric): r for r in rows if r.system == anchor_system}
    head = ["case", "system", "metric", f"median (min-max), n"]
    if anchor_system:
        head.append(f"vs {anchor_system}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.case, r.system, f"{r.metric} [{r.unit}]",
                 f"{fmt(r.median)} ({fmt(r.lo)}-{fmt(r.hi)}), {len(r.runs)}"]
        if anchor_system:
            x = ratio(r, index.get((r.case, r.metric)))
            cells.append("-" if x is None or r.system == anchor_system or not r.compare
                         else f"{x:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(bench: str, rows: Iterable[Row], json_path: str | None,
           anchor_system: str | None = None, extra: dict | None = None) -> dict:
    """Print the table and write the JSON document; return the document."""
    rows = list(rows)
    doc = {"bench": bench, "machine": machine(), "command": command_line(),
           "anchor": anchor_system, "rows": [r.as_dict() for r in rows], **(extra or {})}
    print(f"\n## {bench}  ({doc['machine']['date']}, {doc['machine']['cores']} cores)")
    print(f"$ {doc['command']}\n")
    print(table(rows, anchor_system))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"\n(wrote {json_path})")
    return doc


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]
