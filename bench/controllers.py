"""Fresh ``ryu-manager`` processes for the benches: start, wait, stop by PID.

Each measured run gets its own controller (no state carried between runs),
on free loopback ports, logging to a file (a terminal would slow it down and
flood the bench's output).  Stopping is always by the PID we started.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RYU_MANAGER = ROOT / ".venv" / "bin" / "ryu-manager"
FLOOR_APP = ROOT / "bench" / "apps" / "packet_out_floor.py"

# The lab's [nat] options (etc/ryu-snat.conf); everything else at its default.
SNAT_NAT = {"external_ip": "198.51.100.1/24", "external_port": "s1-eth1",
            "internal_subnet": "10.0.0.0/24", "internal_gateway_ip": "10.0.0.1"}

# system name -> the Ryu applications it runs
APPS = {"ryu-snat": ["ryu_app.snat"],
        "packet-out floor": [str(FLOOR_APP)],
        "simple_switch_13": ["ryu.app.simple_switch_13"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Controller:
    """A running ryu-manager: its PID, OpenFlow and REST ports, its log."""

    system: str
    proc: subprocess.Popen
    of_port: int
    wsapi_port: int
    workdir: Path
    owns_workdir: bool = False    # made by start(): removed by stop()
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / "ryu.log"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("ryu.log", "stderr.txt"):
            path = self.workdir / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; only this process."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.owns_workdir and os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)


def start(system: str, nat: dict[str, object] | None = None,
          workdir: Path | None = None) -> Controller:
    """Start ``system`` (a key of APPS) on free ports; ``nat`` overrides
    ``[nat]`` options of ryu-snat.  Returns once the process runs; the
    fake switch's connect() retries until the OpenFlow port listens."""
    owns = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="ryu-snat-bench-"))
    of_port, wsapi_port = free_port(), free_port()
    conf = workdir / "bench.conf"
    lines = ["[DEFAULT]", "ofp_listen_host = 127.0.0.1", f"ofp_tcp_listen_port = {of_port}",
             "wsapi_host = 127.0.0.1", f"wsapi_port = {wsapi_port}", ""]
    if system == "ryu-snat":
        # Every option at its default: the RFC 6888 mapping log on, to Ryu's
        # log (--log-file below), the packet-in meters and admission on.
        options = {**SNAT_NAT, **(nat or {})}
        lines += ["[nat]"] + [f"{k} = {v}" for k, v in options.items()]
    conf.write_text("\n".join(lines) + "\n")
    cmd = [str(RYU_MANAGER), "--config-file", str(conf), "--log-file", str(workdir / "ryu.log"),
           "--ofp-tcp-listen-port", str(of_port), *APPS[system]]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(workdir / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=err,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return Controller(system, proc, of_port, wsapi_port, workdir, owns)


def wait_http(port: int, path: str = "/nat/stats", timeout: float = 10.0) -> None:
    """Until the REST server answers (it starts after the OpenFlow listener)."""
    import http.client
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def describe(ctl: Controller) -> str:
    return f"{ctl.system} (pid {ctl.pid}, OpenFlow :{ctl.of_port}, log {ctl.log})"


if __name__ == "__main__":   # manual check: start one, print where, stop on Enter
    c = start(sys.argv[1] if len(sys.argv) > 1 else "ryu-snat")
    print(describe(c))
    try:
        input("Enter stops it ")
    finally:
        c.stop()
