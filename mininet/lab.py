"""Bring up the whole ryu-snat lab for real, and always take it down again.

Used by the demo (``mininet/demo.py``) and the integration tests: Open vSwitch
(started when it is not running), the stock ``ryu-manager`` of this venv as a
subprocess running ``ryu_app.snat`` and ``ryu.app.ofctl_rest``, and the
:mod:`nat_topo` Mininet network.  Only processes this module started are
stopped, by PID.

One lab per machine: :meth:`Lab.start` takes an exclusive ``flock`` on
``/run/ryu-snat-lab.lock`` (waiting up to 15 minutes, saying who holds it) and
:meth:`Lab.stop` gives it back; benchmarks that build their own networks take
the same lock with :func:`lab_lock`.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import hygiene
from localports import free_tcp_port, port_open
from nat_topo import NAT_DPID, SECOND_DPID, NatTopo, remote_controller_class

REPO = Path(__file__).resolve().parent.parent

LAB_BRIDGES = ("s1", "s2", "s3", "s4")

BASE_NAT_OPTIONS = {
    "external_ip": "198.51.100.1/24",
    "external_port": "s1-eth1",
    "internal_subnet": "10.0.0.0/24",
    "internal_gateway_ip": "10.0.0.1",
}
# The two NAT bridges of ``Lab(bridges=2)``: one [nat:NAME] profile each.
TWO_BRIDGE_PROFILES = {
    "s1": {"dpid": f"0x{NAT_DPID}", **BASE_NAT_OPTIONS},
    "s4": {"dpid": f"0x{SECOND_DPID}", "external_ip": "198.51.100.2/24",
           "external_port": "s4-eth1", "internal_subnet": "10.0.1.0/24",
           "internal_gateway_ip": "10.0.1.1", "gateway_mac": "02:53:4e:41:54:04"},
}


def run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, timeout=timeout, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def daemon_up(name: str) -> bool:
    """The OVS daemon ``name`` answers on its control socket."""
    return run("ovs-appctl", "--timeout=3", "-t", name, "version", check=False).returncode == 0


def ovs_running() -> bool:
    return daemon_up("ovsdb-server") and daemon_up("ovs-vswitchd")


def ensure_ovs() -> str:
    """Open vSwitch as ryu-snat's install leaves it (``scripts/ovs.sh``:
    started unless it runs, the install's setting applied); say how."""
    if ovs_running():
        return "already running"
    done = run("bash", str(REPO / "scripts" / "ovs.sh"), check=False, timeout=90)
    if done.returncode != 0 or not ovs_running():
        raise RuntimeError(f"Open vSwitch did not start (scripts/ovs.sh):\n{done.stdout}")
    return "started by scripts/ovs.sh"


def make_tls_files(directory: Path) -> dict[str, Path]:
    """A throw-away CA and a controller and a switch certificate signed by
    it (openssl, RSA 2048, two days), for TLS on the OpenFlow channel."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / name for name in (
        "ca.key", "ca.pem", "controller.key", "controller.pem", "switch.key", "switch.pem")}
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=ryu-snat test CA", "-keyout", str(files["ca.key"]),
        "-out", str(files["ca.pem"]))
    for who in ("controller", "switch"):
        csr = directory / f"{who}.csr"
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=ryu-snat {who}",
            "-keyout", str(files[f"{who}.key"]), "-out", str(csr))
        run("openssl", "x509", "-req", "-days", "2", "-in", str(csr),
            "-CA", str(files["ca.pem"]), "-CAkey", str(files["ca.key"]), "-CAcreateserial",
            "-out", str(files[f"{who}.pem"]))
    return files


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# -- one lab per machine ---------------------------------------------------------
LOCK_PATH = Path(os.environ.get("RYU_SNAT_LAB_LOCK", "/run/ryu-snat-lab.lock"))
LOCK_TIMEOUT = float(os.environ.get("RYU_SNAT_LAB_LOCK_TIMEOUT", 15 * 60))

_lock_guard = threading.Lock()
_lock_fd: int | None = None      # the open, flock'ed lock file of this process
_lock_depth = 0                  # how many holders in this process (re-entrant)
_lock_pid = 0                    # the process that took it (a forked child shares the fd)


def _lock_holder() -> str:
    try:
        return LOCK_PATH.read_text().strip() or "?"
    except OSError:
        return "?"


def acquire_lab_lock(timeout: float | None = None, what: str = "lab") -> None:
    """Take the machine-wide lab lock (an exclusive ``flock`` on LOCK_PATH).

    Only one Mininet lab (a Lab, a benchmark's network) can run on a machine
    at a time: they share OVS, bridge names and port 6653.  Waits up to
    ``timeout`` seconds (default LOCK_TIMEOUT, 15 min), saying once on stderr
    who holds it; raises TimeoutError then.  Re-entrant within one process:
    each acquire needs one :func:`release_lab_lock`.  The kernel drops the
    lock when the process dies, however it dies.
    """
    global _lock_fd, _lock_depth, _lock_pid
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    with _lock_guard:
        if _lock_fd is not None and _lock_pid != os.getpid():
            _lock_fd, _lock_depth = None, 0     # a forked child: its parent's lock, not ours
        if _lock_fd is not None:
            _lock_depth += 1
            return
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            deadline = time.monotonic() + timeout
            said = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"the lab lock {LOCK_PATH} is still held by {_lock_holder()} "
                            f"after {timeout:.0f}s") from None
                    if not said:
                        print(f"{what}: waiting up to {timeout:.0f}s for the lab lock "
                              f"{LOCK_PATH}, held by {_lock_holder()}",
                              file=sys.stderr, flush=True)
                        said = True
                    time.sleep(0.5)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        if said:
            print(f"{what}: got the lab lock", file=sys.stderr, flush=True)
        _lock_fd, _lock_depth, _lock_pid = fd, 1, os.getpid()


def release_lab_lock() -> None:
    """Give back one :func:`acquire_lab_lock`; the last one unlocks."""
    global _lock_fd, _lock_depth
    with _lock_guard:
        if _lock_fd is None or _lock_pid != os.getpid():
            return       # never unlock the parent's flock from a forked child
        _lock_depth -= 1
        if _lock_depth > 0:
            return
        fd, _lock_fd = _lock_fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def lab_lock(timeout: float | None = None, what: str = "lab"):
    """``with lab_lock():`` around anything that builds a Mininet network or
    lab bridges outside :class:`Lab` (Lab itself takes it in start())."""
    acquire_lab_lock(timeout, what)
    try:
        yield
    finally:
        release_lab_lock()


def bridges_of_lab() -> set[str]:
    """The lab's bridge names that exist in OVS now."""
    out = run("ovs-vsctl", "--timeout=5", "list-br", check=False).stdout.split()
    return set(LAB_BRIDGES) & set(out)


class Controller:
    """The stock ryu-manager of this venv, as a subprocess we own."""

    def __init__(self, nat_options: dict[str, Any] | None = None, of_port: int = 6653,
                 rest_port: int | None = None, workdir: str | None = None,
                 wsapi_host: str | None = "127.0.0.1",
                 profiles: dict[str, dict[str, Any]] | None = None,
                 tls: dict[str, Path] | None = None) -> None:
        self.options = {**BASE_NAT_OPTIONS, **(nat_options or {})}
        self.tls = tls                        # make_tls_files(): OpenFlow over TLS on of_port
        self.profiles = profiles or {}        # NAME -> options of [nat:NAME]
        self.wsapi_host = wsapi_host          # None: left to the app's default
        self.of_port = of_port
        self.rest_port = rest_port or free_tcp_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="ryu-snat-"))
        self.config_file = self.workdir / "ryu-snat.conf"
        self.log_file = self.workdir / "ryu-manager.log"
        self.proc: subprocess.Popen | None = None

    def write_config(self) -> None:
        lines = ["[DEFAULT]", "ofp_listen_host = 127.0.0.1",
                 f"ofp_tcp_listen_port = {self.of_port}", f"wsapi_port = {self.rest_port}"]
        if self.wsapi_host is not None:
            lines.append(f"wsapi_host = {self.wsapi_host}")
        if self.tls is not None:
            lines += [f"ofp_ssl_listen_port = {self.of_port}",
                      f"ctl_privkey = {self.tls['controller.key']}",
                      f"ctl_cert = {self.tls['controller.pem']}",
                      f"ca_certs = {self.tls['ca.pem']}"]
        lines += ["", "[nat]"]
        lines += [f"{k} = {v}" for k, v in self.options.items()]
        for name, options in self.profiles.items():
            lines += ["", f"[nat:{name}]"] + [f"{k} = {v}" for k, v in options.items()]
        self.config_file.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 20) -> None:
        if port_open(self.of_port):
            raise RuntimeError(f"something already listens on 127.0.0.1:{self.of_port}")
        self.write_config()
        exe = Path(sys.executable).parent / "ryu-manager"
        env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
        restart = self.proc is not None       # a restart keeps the earlier log
        with open(self.log_file, "a" if restart else "w") as log:
            if restart:
                log.write(f"--- ryu-manager restarted at {time.strftime('%H:%M:%S')} ---\n")
                log.flush()
            self.proc = subprocess.Popen(
                [str(exe), "--config-file", str(self.config_file),
                 "ryu_app.snat", "ryu.app.ofctl_rest"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                preexec_fn=hygiene.die_with_parent)
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
    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, raw_body: bytes | None = None
                ) -> tuple[int, Any]:
        """(status, decoded JSON) of a REST call to this controller; a
        ``raw_body`` is sent as it is (bodies that are not JSON)."""
        data = raw_body if raw_body is not None else (
            None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(f"http://127.0.0.1:{self.rest_port}{path}",
                                     data=data, method=method, headers=headers or {})
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


class CoordinationEngine:
    """A Redis server of our own on a free loopback port, for a controller
    pair's election (``coordination_url``); nothing is saved to disk."""

    def __init__(self) -> None:
        self.port = free_tcp_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is missing: run scripts/setup.sh")
        self.proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=hygiene.die_with_parent)
        if not _wait(lambda: port_open(self.port), timeout):
            self.stop()
            raise RuntimeError(f"redis-server did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


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
                 far: bool = False, far_mtu: int = 0, bridges: int = 1,
                 pair: bool = False, tls: bool = False) -> None:
        self.inside, self.outside = inside, outside
        # tls=True: the switches reach the controller over TLS (ssl:), with
        # certificates made for this lab and OVS's set-ssl undone at stop.
        self.tls = make_tls_files(Path(tempfile.mkdtemp(prefix="ryu-snat-tls-"))) if tls else None
        self._ssl_set = False
        self.far, self.far_mtu = far, far_mtu
        self.bridges = bridges                # 2: s1 and s4, one profile each
        if far:      # remotes beyond the segment are reached through r1
            nat_options = {"external_gateway_ip": "198.51.100.254", **(nat_options or {})}
        # pair=True: two controllers on s1 (6653 and 6654) elected through a
        # Redis of our own; ``controller`` is the first (the MASTER at start).
        self.engine = CoordinationEngine() if pair else None
        if pair:
            nat_options = {"coordination_url": self.engine.url, **(nat_options or {})}
        self.controller = Controller(
            nat_options, of_port=of_port,
            profiles=TWO_BRIDGE_PROFILES if bridges == 2 else None, tls=self.tls)
        self.controllers = [self.controller]
        if pair:
            self.controllers.append(Controller(nat_options, of_port=of_port + 1, tls=self.tls))
        self.net = None
        self.ovs = ""
        self.namespaces: set[int] = set()     # of our hosts: what runs there is ours
        self.switch_ports: set[str] = set()   # the bridges' interfaces, in the root namespace
        self.swept: list[tuple[int, str]] = []  # (pid, command) still running at stop
        self._namespace_fds: list[int] = []
        self._locked = False                  # holds the machine-wide lab lock

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

        if not self._locked:
            acquire_lab_lock(what="lab")
            self._locked = True
        self.ovs = ensure_ovs()
        stale = hygiene.claim_bridge_names(LAB_BRIDGES)
        if stale:
            print(f"removed bridges {stale} left by a lab that was killed", file=sys.stderr)
        if self.engine is not None:
            self.engine.start()
        for ctl in self.controllers:
            ctl.start()
            if self.engine is not None and ctl is self.controller:   # elected before the other starts
                wait_for(lambda: ctl.get("/nat/ha")["leader"], 15, what="the first controller elected")
        setLogLevel(os.environ.get("MININET_LOGLEVEL", "warning"))
        topo = NatTopo(self.inside, self.outside, far=self.far, far_mtu=self.far_mtu,
                       bridges=self.bridges)
        self.net = Mininet(topo=topo, controller=None,
                           autoSetMacs=True, waitConnected=False, build=False)
        if self.tls is not None:
            run("ovs-vsctl", "--timeout=5", "set-ssl", str(self.tls["switch.key"]),
                str(self.tls["switch.pem"]), str(self.tls["ca.pem"]))
            self._ssl_set = True
        for i, ctl in enumerate(self.controllers):
            self.net.addController(f"c{i}", controller=remote_controller_class(), ip="127.0.0.1",
                                   port=ctl.of_port,
                                   protocol="ssl" if self.tls is not None else "tcp")
        self.net.build()
        root = hygiene.netns_of(os.getpid())
        self.namespaces = {hygiene.netns_of(h.pid) for h in self.net.hosts} - {None, root}
        # Held open until the sweep: a namespace's number cannot be reused by
        # another one while anything refers to it.
        self._namespace_fds = hygiene.hold_namespaces(h.pid for h in self.net.hosts)
        self.switch_ports = {i.name for sw in self.net.switches for i in sw.intfList()
                             if i.name != "lo"}
        self.net.start()                  # creates the bridges
        hygiene.tag_bridges(sw.name for sw in self.net.switches)
        wait_for(self.switch_ready, 30, what="s1 to connect and get its gateway rules")

    def _controller_records(self, bridge: str) -> list[str]:
        got = run("ovs-vsctl", "--timeout=5", "get", "Bridge", bridge, "controller")
        return got.stdout.strip().strip("[]").replace(",", " ").split()

    def set_reconnect_backoff(self, ms: int, bridge: str = "s1") -> None:
        """Cap how long ``bridge`` waits between attempts to reach the
        controller (OVS's Controller max_backoff: at least 1000 ms; its default is 8000)."""
        for uuid in self._controller_records(bridge):
            run("ovs-vsctl", "--timeout=5", "set", "Controller", uuid, f"max_backoff={int(ms)}")

    def set_controller_target(self, target: str, bridge: str = "s1") -> None:
        """Point ``bridge``'s controller record at ``target``: the link drops
        and the switch dials the new target.  The record stays (removing a
        bridge's last controller makes OVS flush its flows)."""
        for uuid in self._controller_records(bridge):
            run("ovs-vsctl", "--timeout=5", "set", "Controller", uuid, f"target=\"{target}\"")

    def switch_ready(self) -> bool:
        """s1 (and s4, with two NAT bridges) is connected and carries our ARP
        rules (uplink resolved)."""
        dpids = [NAT_DPID] + ([SECOND_DPID] if self.bridges == 2 else [])
        return all(any(f.get("match", {}).get("arp_tpa") for f in self.flows(d)) for d in dpids)

    def flows(self, dpid: str = NAT_DPID) -> list[dict]:
        """A NAT bridge's flow table (s1's by default) as ryu.app.ofctl_rest reports it."""
        status, body = self.controller.request("GET", f"/stats/flow/{int(dpid, 16)}")
        if status != 200 or not isinstance(body, dict):
            return []
        return body.get(str(int(dpid, 16)), [])

    def stop(self) -> None:
        """Mininet down, then whatever still runs in our hosts' namespaces
        (recorded in ``swept``: a test that leaked it), then the controller.

        Ctrl-C and SIGTERM wait until the teardown is done (they are blocked,
        not lost: they arrive right after it).
        """
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self._stop()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _stop(self) -> None:
        try:
            try:
                try:
                    if self.net is not None:
                        net, self.net = self.net, None
                        net.stop()
                finally:
                    self._sweep()
            finally:
                for ctl in self.controllers:
                    ctl.stop()
                if self.engine is not None:
                    self.engine.stop()
                if self._ssl_set:
                    self._ssl_set = False
                    run("ovs-vsctl", "--timeout=5", "del-ssl", check=False)
        finally:
            if self._locked:
                self._locked = False
                release_lab_lock()

    def _sweep(self) -> None:
        """Stop what still runs in our hosts' namespaces, by PID."""
        try:
            if self.namespaces:
                deadline = time.monotonic() + 1.0
                while hygiene.pids_in(self.namespaces) and time.monotonic() < deadline:
                    time.sleep(0.05)
                left = hygiene.pids_in(self.namespaces)
                self.swept += [(pid, hygiene.command_line(pid)) for pid in left]
                hygiene.stop_pids(left)
        finally:
            hygiene.release(self._namespace_fds)
            self._namespace_fds = []

    def host(self, name: str):
        return self.net.get(name)
