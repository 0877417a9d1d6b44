"""bench/soak.py runs for real, briefly: thousands of sessions come and go
through the Mininet gateway and the table, the port pool and the switch's
flow table end where they began (the full soak is the bench's business)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_soak_ends_back_at_the_baseline(tmp_path):
    out = tmp_path / "soak.json"
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "0.35",
                          "--round", "7", "--udp", "150", "--max-rss-growth", "64",
                          "--json", str(out)],
                         capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["problems"] == []
    assert doc["final"]["created"] >= 2000, "thousands of sessions, not a handful"
    assert doc["final"]["expired"] >= 1000, "sessions aged out while the soak ran"
    assert max(r["active"] for r in doc["rounds"]) > 100
    final, baseline = doc["final"], doc["baseline"]
    assert (final["active"], final["ports_in_use"], final["ports_quarantined"],
            final["flow_records"]) == (0, 0, 0, 0)
    assert final["flows"] == baseline["flows"]
