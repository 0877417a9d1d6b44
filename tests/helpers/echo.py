"""A TCP connection that keeps echoing through the gateway while the
controller goes away (restart, lost link, failover), and the check that it
never stalled."""
from __future__ import annotations

import json
import subprocess
import sys

from helpers.peers import NETPROBE

O1 = "198.51.100.10"


class EchoLoop:
    """h1 keeps one TCP connection to o1 talking for ``seconds``."""

    def __init__(self, lab, port: int, sport: int, seconds: float,
                 patience: float = 2.0) -> None:
        self.proc = lab.host("h1").popen(
            [sys.executable, NETPROBE, "tcp-echo-loop", "--to", f"{O1}:{port}",
             "--sport", str(sport), "--seconds", str(seconds), "--interval", "0.1",
             "--patience", str(patience)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> dict:
        out, err = self.proc.communicate(timeout=60)
        assert out.strip(), f"echo loop said nothing: {err}"
        return json.loads(out.strip().splitlines()[-1])


def assert_echoed_throughout(result: dict, away: float, back: float) -> None:
    """Echoes never stopped, also while the controller was away."""
    echoes = result["echoes"]
    assert result["connected"] and result["error"] is None, result["error"]
    during = [t for t in echoes if away < t < back]
    assert len(during) >= 5, (f"{len(during)} echoes while the controller was away "
                              f"({back - away:.1f} s)")
    gaps = [b - a for a, b in zip(echoes, echoes[1:])]
    assert max(gaps) < 1.0, f"the connection stalled for {max(gaps):.2f} s"
