"""Bring up the whole ryu-snat lab for real, and always take it down again.

Used by the demo (``mininet/demo.py``) and the integration tests: Open vSwitch
(started when it is not running), the stock ``ryu-manager`` of this venv as a
subprocess running ``ryu_app.snat`` and ``ryu.app.ofctl_rest``, and the
:mod:`nat_topo` Mininet network.  Only processes this module started are
stopped, by PID.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from nat_topo import NAT_DPID, NatTopo

REPO = Path(__file__).resolve().parent.parent
OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"

BASE_NAT_OPTIONS = {
    "external_ip": "198.51.100.1/24",
    "external_port": "s1-eth1",
    "internal_subnet": "10.0.0.0/24",
    "internal_gateway_ip": "10.0.0.1",
}


def run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, timeout=timeout, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def ovs_running() -> bool:
    return run("ovs-vsctl", "--timeout=3", "show", check=False).returncode == 0


def ensure_ovs() -> str:
    """Start ovsdb-server and ovs-vswitchd unless they run; say how."""
    if ovs_running():
        return "already running"
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        run("systemctl", "start", "openvswitch-switch", check=False, timeout=60)
        how = "systemctl"
    else:  # containers and machines without systemd
        run(OVS_CTL, "start", "--system-id=random", check=False, timeout=60)
        how = "ovs-ctl"
    for _ in range(50):
        if ovs_running():
            return f"started with {how}"
        time.sleep(0.1)
    raise RuntimeError(f"Open vSwitch did not start ({how}); see /var/log/openvswitch/")


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Controller:
    """The stock ryu-manager of this venv, as a subprocess we own."""

    def __init__(self, nat_options: dict[str, Any] | None = None, of_port: int = 6653,
                 rest_port: int | None = None, workdir: str | None = None) -> None:
        self.options = {**BASE_NAT_OPTIONS, **(nat_options or {})}
        self.of_port = of_port
        self.rest_port = rest_port or free_tcp_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="ryu-snat-"))
        self.config_file = self.workdir / "ryu-snat.conf"
        self.log_file = self.workdir / "ryu-manager.log"
        self.proc: subprocess.Popen | None = None

    def write_config(self) -> None:
        lines = ["[DEFAULT]", "ofp_listen_host = 127.0.0.1",
                 f"ofp_tcp_listen_port = {self.of_port}",
                 "wsapi_host = 127.0.0.1", f"wsapi_port = {self.rest_port}", "", "[nat]"]
        lines += [f"{k} = {v}" for k, v in self.options.items()]
        self.config_file.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 20) -> None:
        if port_open(self.of_port):
            raise RuntimeError(f"something already listens on 127.0.0.1:{self.of_port}")
        self.write_config()
        exe = Path(sys.executable).parent / "ryu-manager"
        env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
        with open(self.log_file, "w") as log:
            self.proc = subprocess.Popen(
                [str(exe), "--config-file", str(self.config_file),
                 "ryu_app.snat", "ryu.app.ofctl_rest"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ryu-manager exited with {self.proc.returncode}:\n{self.log()}")
            if port_open(self.rest_port) and port_open(self.of_port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"ryu-manager did not listen within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- REST -------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON) of a REST call to this controller."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.rest_port}{path}",
                                     data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {body}")
        return body


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Lab:
    """OVS + ryu-manager + the Mininet topology; use as a context manager.

    ``__exit__`` always tears everything down, in reverse order, even when the
    body or start-up failed half way.
    """

    def __init__(self, inside: int = 2, outside: int = 2,
                 nat_options: dict[str, Any] | None = None, of_port: int = 6653,
                 far: bool = False, far_mtu: int = 0) -> None:
        self.inside, self.outside = inside, outside
        self.far, self.far_mtu = far, far_mtu
        if far:      # remotes beyond the segment are reached through r1
            nat_options = {"external_gateway_ip": "198.51.100.254", **(nat_options or {})}
        self.controller = Controller(nat_options, of_port=of_port)
        self.net = None
        self.ovs = ""

    def __enter__(self) -> "Lab":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import RemoteController

        self.ovs = ensure_ovs()
        for bridge in ("s1", "s2", "s3"):
            if run("ovs-vsctl", "br-exists", bridge, check=False).returncode == 0:
                raise RuntimeError(f"bridge {bridge} already exists: is another lab running?")
        self.controller.start()
        setLogLevel(os.environ.get("MININET_LOGLEVEL", "warning"))
        topo = NatTopo(self.inside, self.outside, far=self.far, far_mtu=self.far_mtu)
        self.net = Mininet(topo=topo, controller=None,
                           autoSetMacs=True, waitConnected=False, build=False)
        self.net.addController("c0", controller=RemoteController, ip="127.0.0.1",
                               port=self.controller.of_port)
        self.net.build()
        self.net.start()
        wait_for(self.switch_ready, 30, what="s1 to connect and get its gateway rules")

    def switch_ready(self) -> bool:
        """s1 is connected and carries our ARP rules (uplink resolved)."""
        flows = self.flows()
        return any(f.get("match", {}).get("arp_tpa") for f in flows)

    def flows(self) -> list[dict]:
        """s1's flow table as ryu.app.ofctl_rest reports it."""
        status, body = self.controller.request("GET", f"/stats/flow/{int(NAT_DPID, 16)}")
        if status != 200 or not isinstance(body, dict):
            return []
        return body.get(str(int(NAT_DPID, 16)), [])

    def stop(self) -> None:
        try:
            if self.net is not None:
                self.net.stop()
                self.net = None
        finally:
            self.controller.stop()

    def host(self, name: str):
        return self.net.get(name)
