"""The README's main job, as a user runs it: it passes, and Ctrl-C tears down."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab import bridges_of_lab, port_open

DEMO = Path(__file__).resolve().parents[2] / "mininet" / "demo.py"


def test_demo_runs_its_checks_and_leaves_nothing():
    # As CI runs it: a runner's environment need not set SHELL (Mininet's
    # popen reads it).
    env = {k: v for k, v in os.environ.items() if k != "SHELL"}
    res = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "FAILED" not in res.stdout
    assert res.stdout.count("[ok]") >= 10
    assert "every check passed" in res.stdout
    assert "198.51.100.1 - - [" in res.stdout, "o1's log shows the NAT address"
    assert not bridges_of_lab() and not port_open(6653)


def test_ctrl_c_in_the_middle_of_the_demo_tears_everything_down():
    demo = subprocess.Popen([sys.executable, str(DEMO)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in demo.stdout:        # until the lab is up and traffic starts
            seen.append(line)
            if line.startswith("=== the gateway answers"):
                break
        assert seen and seen[-1].startswith("=== the gateway answers"), "".join(seen)
        time.sleep(0.5)
        demo.send_signal(signal.SIGINT)
        time.sleep(0.3)                 # a second Ctrl-C, during the teardown
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode != 0, "an interrupted demo must not report success"
    assert "every check passed" not in rest
    assert not bridges_of_lab(), "".join(seen) + rest
    assert not port_open(6653), "the controller outlived the demo"
