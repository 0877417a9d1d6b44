#!/usr/bin/env python3
"""Charts and a Markdown report from the benches' JSON files.

    python bench/charts.py [--results bench/results] [--out docs/bench]

Why: the docs (docs/performance.md) show figures, and figures without the run behind them are
not evidence.  For every ``*.json`` written by a bench (``bench/common.py``
rows) this draws one PNG: bars of the median with min-max error bars, one
panel per metric, cases along the axis and ryu-snat beside its anchors; a
bench with sizes (``scale``) gets lines over size instead.  The conntrack
bench's own JSON gets lines over table size.  ``results.md`` holds every
table with its date, machine and exact command, and links the PNGs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, fmt, table  # noqa: E402

HERE = Path(__file__).resolve().parent
ORDER = ["setup_rate", "scale", "dataplane", "admission", "port_blocks", "conntrack"]
SNAT_COLOR, ANCHOR_COLORS = "#1f77b4", ["#999999", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
SNAT_SHADES = ["#1f77b4", "#6baed6", "#08519c", "#9ecae1"]   # several ryu-snat variants


def load_rows(doc: dict) -> list[Row]:
    fields = set(Row.__dataclass_fields__)
    return [Row(**{k: v for k, v in r.items() if k in fields}) for r in doc.get("rows", [])]


def _panels(n: int, width: float = 4.2, height: float = 3.2):
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def bars(name: str, doc: dict, path: Path) -> None:
    """One panel per (metric, unit); cases on the x axis, a bar per system."""
    rows = [r for r in load_rows(doc) if r.runs]
    metrics = list(dict.fromkeys((r.metric, r.unit) for r in rows if r.compare)) or \
        list(dict.fromkeys((r.metric, r.unit) for r in rows))
    systems = list(dict.fromkeys(r.system for r in rows))
    colors = {}
    anchors, shades = iter(ANCHOR_COLORS), iter(SNAT_SHADES)
    for s in systems:
        colors[s] = next(shades, SNAT_COLOR) if "ryu-snat" in s else next(anchors, "#cccccc")
    fig, axes = _panels(len(metrics))
    for ax, (metric, unit) in zip(axes, metrics):
        mine = [r for r in rows if (r.metric, r.unit) == (metric, unit)]
        cases = list(dict.fromkeys(r.case for r in mine))
        present = [s for s in systems if any(r.system == s for r in mine)]
        width = 0.8 / max(1, len(present))
        for k, system in enumerate(present):
            xs, ys, lo, hi = [], [], [], []
            for i, case in enumerate(cases):
                r = next((r for r in mine if r.case == case and r.system == system), None)
                if r is None:
                    continue
                xs.append(i - 0.4 + width * (k + 0.5))
                ys.append(r.median)
                lo.append(r.median - r.lo)
                hi.append(r.hi - r.median)
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=system, color=colors[system])
        ax.set_xticks(range(len(cases)))
        ax.set_xticklabels(cases, fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    n = max((len(r.runs) for r in rows), default=0)
    fig.suptitle(f"{name}: median, min-max over {n} runs ({doc.get('machine', {}).get('date', '')})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def lines(name: str, doc: dict, path: Path) -> None:
    """A bench measured at several sizes: one panel per metric, x = size."""
    rows = [r for r in load_rows(doc) if r.runs]
    sizes = doc["sizes"]
    cases = list(dict.fromkeys(r.case for r in rows))
    size_of = dict(zip(cases, sizes))
    metrics = list(dict.fromkeys((r.metric, r.unit) for r in rows))
    metrics = [m for m in metrics if m[0] not in ("lost", "generator CPU / wall")]
    fig, axes = _panels(len(metrics), 3.8, 2.9)
    for ax, (metric, unit) in zip(axes, metrics):
        for system in dict.fromkeys(r.system for r in rows):
            mine = [r for r in rows if (r.metric, r.unit, r.system) == (metric, unit, system)]
            xs = [size_of[r.case] for r in mine]
            ax.plot(xs, [r.median for r in mine], marker="o", color=SNAT_COLOR, label=system)
            ax.fill_between(xs, [r.lo for r in mine], [r.hi for r in mine], alpha=0.2,
                            color=SNAT_COLOR)
        ax.set_xscale("log")
        ax.set_xlabel("live sessions")
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.set_title(metric, fontsize=9)
        ax.grid(alpha=0.3)
    n = max((len(r.runs) for r in rows), default=0)
    fig.suptitle(f"{name}: median, min-max band over {n} runs "
                 f"({doc.get('machine', {}).get('date', '')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


CONNTRACK_METRICS = [("creates_per_s", "creates/s"), ("lookups_out_per_s", "lookups/s out"),
                     ("lookups_in_per_s", "lookups/s in"), ("expiries_per_s", "expiries/s"),
                     ("idle_sweep_us", "idle sweep [us]"), ("rss_bytes_per_entry", "RSS B/entry")]


def conntrack(doc: dict, path: Path) -> str:
    """The conntrack bench's JSON (one dict per size): lines, and its table."""
    rows = doc["rows"]
    xs = [r["entries"] for r in rows]
    fig, axes = _panels(len(CONNTRACK_METRICS), 3.6, 2.7)
    for ax, (key, label) in zip(axes, CONNTRACK_METRICS):
        ax.plot(xs, [r.get(key, float("nan")) for r in rows], marker="o", color=SNAT_COLOR)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("entries")
        ax.grid(alpha=0.3)
    fig.suptitle("conntrack engine, one core", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    head = ["entries"] + [label for _, label in CONNTRACK_METRICS]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join([fmt(r["entries"])] + [fmt(r.get(k, float("nan")))
                                                             for k, _ in CONNTRACK_METRICS]) + " |")
    if doc.get("traced_bytes_per_entry"):
        out.append(f"\ntracemalloc: {doc['traced_bytes_per_entry']:.0f} bytes/entry at "
                   f"{max(xs):,} entries")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--out", default=str(HERE.parent / "docs" / "bench"))
    args = p.parse_args(argv)
    results, out = Path(args.results), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    docs = {f.stem: json.loads(f.read_text()) for f in sorted(results.glob("*.json"))
            if f.stem != "run_all"}
    run_all = results / "run_all.json"
    summary = json.loads(run_all.read_text()) if run_all.exists() else {}
    names = sorted(docs, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    md = ["# Benchmark results", "",
          "Written by `bench/charts.py` from the JSON of `bench/run_all.py`; do not edit by hand.",
          ""]
    if summary:
        md += [f"Run: `{summary.get('command', '')}`, started {summary.get('started', '')}.", ""]
        md += ["| bench | command | exit | seconds |", "|---|---|---|---|"]
        md += [f"| {b['name']} | `{b['command']}` | {b['exit']} | {b['elapsed_s']:.0f} |"
               for b in summary.get("benches", [])]
        md.append("")
    for name in names:
        doc = docs[name]
        png = out / f"{name}.png"
        md += [f"## {name}", ""]
        if name == "conntrack" or "bench" not in doc:
            md += [conntrack(doc, png), ""]
        else:
            m = doc.get("machine", {})
            md += [f"{m.get('date', '')}; {m.get('cpu', '')}, {m.get('cores', '')} cores, "
                   f"kernel {m.get('kernel', '')}, Python {m.get('python', '')}.", "",
                   f"    $ {doc.get('command', '')}", ""]
            (lines if "sizes" in doc else bars)(name, doc, png)
            md += [table(load_rows(doc), doc.get("anchor")), ""]
            for line in doc.get("targets", []):
                md.append(f"- {line}")
            if doc.get("targets"):
                md.append("")
        md += [f"![{name}]({png.name})", ""]
        print(f"[charts] {png}", flush=True)
    (out / "results.md").write_text("\n".join(md))
    print(f"[charts] {out / 'results.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
