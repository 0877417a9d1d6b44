"""Start netprobe peers inside Mininet hosts and read what they saw."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NETPROBE = str(Path(__file__).with_name("netprobe.py"))


class Server:
    """A netprobe server in a Mininet host, stopped (by PID) on exit.

    Ready when the constructor returns: it waits (at most 10 s) for the
    server to say it is bound and listening.
    """

    def __init__(self, host, mode: str, port: int, seconds: float = 120) -> None:
        self.log = Path(tempfile.mkstemp(prefix=f"{host.name}-{mode}-", suffix=".jsonl")[1])
        self.proc = host.popen([sys.executable, NETPROBE, mode, str(port), str(self.log),
                                "--seconds", str(seconds)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._lines() or json.loads(self._lines()[0]).get("event") != "ready":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{mode} on {host.name}:{port} did not start")
            time.sleep(0.05)

    def _lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line]

    def events(self) -> list[dict]:
        """What the server saw, oldest first (its start is not an event)."""
        return [e for e in map(json.loads, self._lines()) if e.get("event") != "ready"]

    def peers(self) -> set[tuple[str, int]]:
        return {(e["peer_ip"], e["peer_port"]) for e in self.events()}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def client(host, *args: str, timeout: float = 60) -> dict:
    """Run a netprobe client in ``host``; its JSON result."""
    out = host.cmd(f"timeout {int(timeout)} {sys.executable} {NETPROBE} " + " ".join(args))
    return json.loads(out.strip().splitlines()[-1])


class Capture:
    """tcpdump in a Mininet host, started and *listening* before the body.

    ``with Capture(h1, "icmp", seconds=4) as cap: ...`` then ``cap.lines``:
    the packets it printed (``-l``, one line each; ``-vv`` adds continuation
    lines).  tcpdump stops on its own after ``seconds``, or at the end.
    """

    def __init__(self, host, bpf: str, seconds: float = 5, verbose: bool = False) -> None:
        flags = "-vv" if verbose else ""
        self.proc = host.popen(
            f"timeout {seconds} tcpdump -n -l {flags} -i {host.name}-eth0 '{bpf}'", shell=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.text = ""
        said = []
        for line in iter(self.proc.stderr.readline, ""):   # ... "listening on h1-eth0, ..."
            said.append(line)
            if "listening on" in line:
                break
        else:
            self.proc.kill()
            raise RuntimeError(f"tcpdump on {host.name} did not start: {''.join(said)!r}")

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        self.text = self.proc.communicate(timeout=30)[0]
        self.lines = [line for line in self.text.splitlines() if line and not line[0].isspace()]
