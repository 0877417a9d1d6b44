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
    """A netprobe server in a Mininet host, stopped (by PID) on exit."""

    def __init__(self, host, mode: str, port: int, seconds: float = 120) -> None:
        self.log = Path(tempfile.mkstemp(prefix=f"{host.name}-{mode}-", suffix=".jsonl")[1])
        self.proc = host.popen([sys.executable, NETPROBE, mode, str(port), str(self.log),
                                "--seconds", str(seconds)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

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
