"""SIGTERM, as a service manager sends it, to the MASTER of a controller
pair while h1 opens new UDP flows one after another: the MASTER gives its
lock back, so the standby leads in under a second (not after the 2 s
lease), and every session it made before the signal is in its mapping log
file (real ryu-manager x2, redis-server, OVS, Mininet hosts)."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers.peers import NETPROBE, Server
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

O1 = "198.51.100.10"
TAKEOVER_LIMIT = 1.0
CREATED = re.compile(r"mapping created: udp 10\.0\.0\.11:(\d+) -> 198\.51\.100\.1:(\d+) "
                     r"\(session (\d+)\)")


@pytest.fixture(scope="module")
def lab():
    # A relative mapping_log_file: each controller's own, in its work directory.
    with Lab(inside=2, outside=1, pair=True,
             nat_options={"stats_interval": 1, "mapping_log_file": "mappings.log"}) as running:
        yield running
    assert_left_nothing(running)


def sweep_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_sigterm_hands_the_pair_over_at_once_and_logs_every_session(lab):
    master, standby = lab.controllers
    wait_for(lambda: standby.get("/nat/ha")["switches"].get("0000000000000001", {})
             .get("role") == "SLAVE", 15, what="the second controller SLAVE at s1")
    assert master.get("/nat/ha")["leader"] and not standby.get("/nat/ha")["leader"]
    log = Path(tempfile.mkstemp(prefix="h1-udp-sweep-", suffix=".jsonl")[1])
    with Server(lab.host("o1"), "udp-server", 9600, seconds=60):
        sweep = lab.host("h1").popen(
            [sys.executable, NETPROBE, "udp-sweep", "--first-sport", "50000", "--count", "3000",
             "--to", f"{O1}:9600", "--seconds", "10", "--interval", "0.005", str(log)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: sum(1 for e in sweep_events(log) if e["answered"]) >= 100, 15,
                     interval=0.05, what="h1's first 100 flows answered")
            listed = {(int(c["internal_port"]), int(c["external_port"]), int(c["id"]))
                      for c in master.get("/nat/connections?protocol=udp")}
            signalled = time.time()
            master.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: standby.get("/nat/ha")["leader"], 5, interval=0.02,
                     what="the standby to lead")
            took = time.time() - signalled
            exit_code = master.proc.wait(timeout=10)
            out, err = sweep.communicate(timeout=30)
        finally:
            if sweep.poll() is None:
                sweep.kill()
                sweep.wait(timeout=5)
    events = sweep_events(log)
    log.unlink()
    mapping_log = (master.workdir / "mappings.log").read_text()
    logged = {tuple(map(int, m)) for m in CREATED.findall(mapping_log)}
    logged_ports = {port for port, _, _ in logged}
    answered_before = {e["sport"] for e in events if e["answered"] and e["answered"] < signalled}
    went_on = [e for e in events if e["answered"] and e["sent"] > signalled + took]

    print(f"clean stop: standby led {took:.3f} s after SIGTERM; {len(listed)} sessions "
          f"listed, {len(answered_before)} flows answered before it; {len(logged)} in the "
          f"MASTER's mapping log; {len(went_on)} flows answered after the takeover")
    assert len(listed) >= 100 and len(answered_before) >= 100, (len(listed), out, err)
    assert listed <= logged, (f"{len(listed - logged)} sessions listed by the MASTER are not "
                              f"in its mapping log: {sorted(listed - logged)[:5]}...")
    assert answered_before <= logged_ports, (
        f"{len(answered_before - logged_ports)} flows answered before SIGTERM are not in the "
        f"MASTER's mapping log: {sorted(answered_before - logged_ports)[:5]}...")
    assert took < TAKEOVER_LIMIT, f"the standby led {took:.2f} s after SIGTERM"
    assert exit_code == 0, master.log()[-2000:]
    assert "stopping on SIGTERM" in master.log()
    assert "MASTER lock released" in master.log()
    # The pair goes on: flows opened after the takeover are answered.
    assert went_on, f"no flow answered after the takeover: {out}"
