"""A second controller on the ports of a running one stops with one line.

eventlet listens with SO_REUSEPORT, so without the check the second
ryu-manager binds beside the first and the kernel shares the switches'
connections between them.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.system import assert_clean_log
from localports import free_tcp_port

RYU_MANAGER = str(Path(sys.executable).parent / "ryu-manager")


def second_controller(lab, *extra: str) -> subprocess.CompletedProcess:
    """ryu-manager with the running controller's own config file."""
    return subprocess.run([RYU_MANAGER, "--config-file", str(lab.controller.config_file),
                           *extra, "ryu_app.snat", "ryu.app.ofctl_rest"],
                          capture_output=True, text=True, timeout=60,
                          cwd=lab.controller.workdir)


def ours(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ryu-snat: ")
            and "NAT address" not in line]


def assert_first_still_serves(lab) -> None:
    out = lab.host("h1").cmd("ping -c 2 -i 0.2 -W 2 198.51.100.10")
    assert "2 received" in out, out
    stats = lab.controller.get("/nat/stats")
    assert stats["switches_connected"] == 1, stats
    assert lab.controller.proc.poll() is None


def test_a_second_controller_on_the_openflow_port_exits_with_one_line(lab):
    res = second_controller(lab)
    assert res.returncode == 1, res.stderr[-3000:]
    assert ours(res.stderr) == [
        f"ryu-snat: the OpenFlow port 127.0.0.1:{lab.controller.of_port} is already in use "
        "(ofp_tcp_listen_port): is another controller running?"], res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert_first_still_serves(lab)


def test_a_second_controller_on_the_rest_port_exits_with_one_line(lab):
    res = second_controller(lab, "--ofp-tcp-listen-port", str(free_tcp_port()))
    assert res.returncode == 1, res.stderr[-3000:]
    assert ours(res.stderr) == [
        f"ryu-snat: the REST port 127.0.0.1:{lab.controller.rest_port} is already in use "
        "(wsapi_port): is another controller running?"], res.stderr[-3000:]
    assert_first_still_serves(lab)
    assert_clean_log(lab.controller.log())
