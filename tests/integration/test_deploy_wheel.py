"""docs/deploy.md's install, as written: the wheel into a fresh venv on
Python 3.11 with current pip and one environment variable
(PIP_BUILD_CONSTRAINT), then the ryu-snat launcher serves.  No lab needed."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from localports import free_tcp_port, port_open

ROOT = Path(__file__).resolve().parents[2]


def sh(*cmd: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         env=env)
    assert res.returncode == 0, f"{cmd}: {res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def test_the_documented_wheel_install_runs_the_launcher(tmp_path):
    python311 = sorted(glob.glob("/root/.pyenv/versions/3.11.*/bin/python"))
    assert python311, "no pyenv Python 3.11"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_CONSTRAINT") and not k.startswith("PIP_BUILD")}
    # Build the wheel (hatchling; ryu-snat's own build needs no constraint).
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
       str(ROOT), env=env)
    wheel = next((tmp_path / "dist").glob("ryu_snat-*.whl"))
    venv = tmp_path / "opt-ryu-snat"
    sh(python311[-1], "-m", "venv", str(venv))
    pip = str(venv / "bin" / "pip")
    sh(pip, "install", "-q", "--upgrade", "pip", env=env)
    # The one variable of docs/deploy.md: ryu 4.34 builds only with setuptools<67.
    install_env = {**env, "PIP_BUILD_CONSTRAINT": str(ROOT / "constraints" / "build.txt")}
    sh(pip, "install", "-q", "-c", str(ROOT / "constraints" / "runtime.txt"), str(wheel),
       env=install_env, timeout=600)
    launcher = str(venv / "bin" / "ryu-snat")
    assert "--config-file" in sh(launcher, "--help", env=env)

    of_port, rest_port = free_tcp_port(), free_tcp_port()
    sample = (ROOT / "etc" / "ryu-snat.conf").read_text()
    conf = tmp_path / "ryu-snat.conf"
    conf.write_text(sample.replace("wsapi_port = 8080", f"wsapi_port = {rest_port}")
                    .replace("ofp_tcp_listen_port = 6653", f"ofp_tcp_listen_port = {of_port}"))
    log = tmp_path / "ryu-snat.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([launcher, "--config-file", str(conf)], cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while not (port_open(rest_port) and port_open(of_port)):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/nat/stats", timeout=5) as r:
            assert json.loads(r.read())["switches_connected"] == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/stats/switches",
                                    timeout=5) as r:
            assert json.loads(r.read()) == []          # ofctl_rest, the launcher's default
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert "Traceback" not in log.read_text(), log.read_text()
