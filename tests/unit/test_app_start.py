"""The stock ryu-manager with our app: a bad option stops it with one clear line."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from localports import free_tcp_port, port_open

ROOT = Path(__file__).resolve().parents[2]
RYU_MANAGER = str(Path(sys.executable).parent / "ryu-manager")


@pytest.mark.parametrize("option,value,message", [
    ("port_range", "2000-1000", "invalid [nat] port_range='2000-1000': needs 1 <= LOW <= HIGH"),
    ("external_ip", "198.51.100.1", "invalid [nat] external_ip='198.51.100.1': needs a prefix"),
    ("forwards", "tcp:80=8.8.8.8:80", "invalid [nat] forwards='tcp:80=8.8.8.8:80'"),
    ("udp_timeout", "five", "invalid [nat] udp_timeout='five': must be an integer"),
    ("port_parity", "maybe", "invalid [nat] port_parity='maybe': must be true or false"),
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


def test_the_sample_config_starts_stock_ryu_manager_with_ofctl_rest(tmp_path):
    """The README's own command line, from another directory; only the two
    listening ports are moved to free ones."""
    of_port, rest_port = free_tcp_port(), free_tcp_port()
    conf = tmp_path / "sample.conf"
    sample = (ROOT / "etc" / "ryu-snat.conf").read_text()
    moved = (sample.replace("wsapi_port = 8080", f"wsapi_port = {rest_port}")
             .replace("ofp_tcp_listen_port = 6653", f"ofp_tcp_listen_port = {of_port}"))
    assert moved.count(str(of_port)) == 1 and moved.count(str(rest_port)) == 1, \
        "the sample's ports moved, so no lab's switch can reach this controller"
    conf.write_text(moved)
    log = tmp_path / "ryu-manager.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([RYU_MANAGER, "--config-file", str(conf), "ryu_app.snat",
                                 "ryu.app.ofctl_rest"], cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not (port_open(rest_port) and port_open(of_port)):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/nat/stats", timeout=5) as r:
            stats = json.loads(r.read())
        assert stats["switches_connected"] == 0 and stats["active"] == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/stats/switches",
                                    timeout=5) as r:
            assert json.loads(r.read()) == []          # ofctl_rest is loaded
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert "Traceback" not in log.read_text(), log.read_text()


def test_a_busy_port_stops_ryu_manager_with_one_line(tmp_path):
    """A listener with SO_REUSEPORT (as eventlet's) on the REST port: the
    stock ryu-manager would bind beside it; the app stops it first."""
    import socket
    of_port, rest_port = free_tcp_port(), free_tcp_port()
    conf = tmp_path / "busy.conf"
    conf.write_text((ROOT / "etc" / "ryu-snat.conf").read_text()
                    .replace("wsapi_port = 8080", f"wsapi_port = {rest_port}")
                    .replace("ofp_tcp_listen_port = 6653", f"ofp_tcp_listen_port = {of_port}"))
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(("127.0.0.1", rest_port))
        held.listen()
        res = subprocess.run([RYU_MANAGER, "--config-file", str(conf), "ryu_app.snat"],
                             capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert res.returncode == 1, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines()
             if line.startswith("ryu-snat: ") and "NAT address" not in line]
    assert lines == [f"ryu-snat: the REST port 127.0.0.1:{rest_port} is already in use "
                     "(wsapi_port): is another controller running?"], res.stderr[-2000:]
    assert "Traceback" not in res.stderr
