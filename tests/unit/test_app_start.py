"""The stock ryu-manager with our app: a bad option stops it with one clear line."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RYU_MANAGER = str(Path(sys.executable).parent / "ryu-manager")


@pytest.mark.parametrize("option,value,message", [
    ("port_range", "2000-1000", "invalid [nat] port_range='2000-1000': needs 1 <= LOW <= HIGH"),
    ("external_ip", "198.51.100.1", "invalid [nat] external_ip='198.51.100.1': needs a prefix"),
    ("forwards", "tcp:80=8.8.8.8:80", "invalid [nat] forwards='tcp:80=8.8.8.8:80'"),
])
def test_bad_option_stops_ryu_manager_with_one_line(tmp_path, option, value, message):
    conf = tmp_path / "bad.conf"
    base = (ROOT / "etc" / "ryu-snat.conf").read_text()
    base = re.sub(rf"^{option} = .*\n", "", base, flags=re.M)     # the sample's own value
    conf.write_text(base.replace("[nat]\n", f"[nat]\n{option} = {value}\n", 1)
                    .replace("wsapi_port = 8080", "wsapi_port = 0")
                    .replace("ofp_tcp_listen_port = 6653", "ofp_tcp_listen_port = 0"))
    res = subprocess.run([RYU_MANAGER, "--config-file", str(conf), "ryu_app.snat"],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("ryu-snat: ")]
    assert len(lines) == 1 and message in lines[0], res.stderr[-2000:]
    assert "Traceback" not in res.stderr
