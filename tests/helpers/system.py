"""Read-only looks at the machine, for checking that tests leave nothing behind."""
from __future__ import annotations

import subprocess

import hygiene
from lab import LAB_BRIDGES


def bridges() -> set[str]:
    out = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True)
    return set(out.stdout.split())


def pid_alive(pid: int) -> bool:
    """Running (a zombie has exited: only its parent's wait() is missing)."""
    return hygiene.alive(pid)


def assert_clean_log(log: str) -> None:
    assert "Traceback" not in log, f"controller log holds a traceback:\n{log[-4000:]}"
    errors = [line for line in log.splitlines() if "OpenFlow error" in line]
    assert not errors, f"the switch refused messages of ours: {errors[:5]}"


def links() -> set[str]:
    """Interface names in this (the root) network namespace."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def assert_left_nothing(lab) -> None:
    """After a lab's teardown: no bridge, switch port, process in our hosts'
    namespaces, controller, leaked test process or controller traceback."""
    assert not set(LAB_BRIDGES) & bridges(), "bridges left behind"
    assert not lab.switch_ports & links(), f"interfaces left: {lab.switch_ports & links()}"
    assert not hygiene.pids_in(lab.namespaces), "processes left in the hosts' namespaces"
    assert lab.controller.proc is None or lab.controller.proc.poll() is not None, \
        "ryu-manager left running"
    assert not lab.swept, f"a test left processes running in the hosts: {lab.swept}"
    assert_clean_log(lab.controller.log())
