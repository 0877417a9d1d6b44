"""bench/dataplane.py runs for real, briefly: no connection fails and it
writes its rows (the figures themselves are the bench's business, not a test's)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers.system import bridges
from lab import port_open

ROOT = Path(__file__).resolve().parents[2]


def test_dataplane_bench_quick_run_has_rows_and_no_failures(tmp_path):
    out = tmp_path / "dataplane.json"
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "dataplane.py"), "--quick",
                          "--runs", "1", "--systems", "ryu-snat,l2", "--json", str(out)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["problems"] == []
    rows = {(r["case"], r["system"], r["metric"]): r for r in doc["rows"]}
    for system in ("ryu-snat", "l2"):
        for case in ("sequential", "8-way"):
            assert rows[(case, system, "connections/s")]["median"] > 0
            assert rows[(case, system, "failures")]["runs"] == [0]
        assert rows[("iperf3", system, "throughput")]["median"] > 0
        assert rows[("iperf3", system, "failures")]["runs"] == [0]
    assert ("iperf3", "ryu-snat", "packet-ins during transfer") in rows
    assert not {"s1", "s2", "s3"} & bridges() and not port_open(6653)
