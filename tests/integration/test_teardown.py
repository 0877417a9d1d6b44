"""Labs leave nothing behind: not when a test fails, not when a test leaks a
process, and a lab that was killed outright does not block the next one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hygiene
from helpers.system import bridges, links, pid_alive
from lab import Lab, port_open, wait_for

MININET_DIR = Path(__file__).resolve().parents[2] / "mininet"


def ovs_global_config() -> str:
    return subprocess.run(["ovs-vsctl", "--timeout=5", "get", "Open_vSwitch", ".",
                           "other_config"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_teardown_leaves_nothing_even_when_the_body_fails():
    class Boom(Exception):
        pass

    lab = Lab(inside=1, outside=1)
    installed = ovs_global_config()
    with pytest.raises(Boom):
        with lab:
            pids = [lab.controller.proc.pid] + [h.pid for h in lab.net.hosts]
            assert {"s1", "s2"} <= bridges()
            assert lab.switch_ports >= {"s1-eth1", "s1-eth2"} and lab.switch_ports <= links()
            assert len(lab.namespaces) == 2 and hygiene.pids_in(lab.namespaces)
            raise Boom()
    assert not {"s1", "s2"} & bridges()
    assert not [p for p in pids if pid_alive(p)]
    assert not lab.switch_ports & links()
    assert hygiene.pids_in(lab.namespaces) == []
    assert lab.swept == []
    assert ovs_global_config() == installed, \
        "the lab tunes nothing in OVS: figures come from OVS as the install leaves it"
    assert 'max-idle="300"' in installed, "scripts/ovs.sh (run by the install) set it"


def test_a_process_a_test_leaks_in_a_host_is_stopped_and_reported():
    with Lab(inside=1, outside=1) as lab:
        leaked = lab.host("o1").popen(["sleep", "300"])
        time.sleep(0.2)
    assert not pid_alive(leaked.pid)
    assert [cmd for _, cmd in lab.swept] == ["sleep 300"]
    assert hygiene.pids_in(lab.namespaces) == []


def test_a_killed_lab_does_not_block_the_next_one():
    """SIGKILL leaves no chance to clean up: its controller dies with it, and
    the next lab removes the bridges the dead one tagged as its own."""
    script = ("import sys, time; sys.path.insert(0, sys.argv[1]); import lab\n"
              "l = lab.Lab(inside=1, outside=1); l.start()\n"
              "print(l.controller.proc.pid, *(h.pid for h in l.net.hosts), flush=True)\n"
              "time.sleep(120)\n")
    doomed = subprocess.Popen([sys.executable, "-c", script, str(MININET_DIR)],
                              stdout=subprocess.PIPE, text=True)
    try:
        controller_pid, *host_pids = map(int, doomed.stdout.readline().split())
        assert {"s1", "s2"} <= bridges()
        assert hygiene.bridge_owner("s1").startswith(f"{doomed.pid}:")
    finally:
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
    wait_for(lambda: not pid_alive(controller_pid) and not port_open(6653), 10,
             what="the dead lab's controller to exit")
    wait_for(lambda: not [p for p in host_pids if pid_alive(p)], 10,
             what="the dead lab's host shells to go (their terminal closed)")
    with Lab(inside=1, outside=1) as lab:
        out = lab.host("h1").cmd("ping -c 1 -W 2 198.51.100.10")
        assert " 0% packet loss" in out, out
        assert hygiene.bridge_owner("s1") == hygiene.identity(os.getpid())
    assert not {"s1", "s2"} & bridges()
    assert "s1-eth1" not in links()
