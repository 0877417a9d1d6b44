"""Read-only looks at the machine, for checking that tests leave nothing behind."""
from __future__ import annotations

import os
import subprocess


def bridges() -> set[str]:
    out = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True)
    return set(out.stdout.split())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_clean_log(log: str) -> None:
    assert "Traceback" not in log, f"controller log holds a traceback:\n{log[-4000:]}"
