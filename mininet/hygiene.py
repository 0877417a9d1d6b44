"""Leave nothing behind: what a lab owns, found by namespace, tag and PID.

A lab owns the processes that run in its Mininet hosts' network namespaces
(host shells and whatever tests start in them) and the bridges it tags with
its own identity (PID, start time, PID namespace).  A lab that was killed outright (SIGKILL, a CI timeout) cannot
clean up; the next one removes what the dead one tagged, and nothing else.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterable

OWNER_KEY = "ryu-snat-lab"          # external_ids key on the bridges a lab creates
_PR_SET_PDEATHSIG = 1


def netns_of(pid: int) -> int | None:
    """Inode of the network namespace of ``pid`` (None once it is gone)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def pids_in(namespaces: Iterable[int]) -> list[int]:
    """Every process whose network namespace is one of ``namespaces``."""
    wanted = set(namespaces)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and netns_of(int(entry.name)) in wanted:
            found.append(int(entry.name))
    return sorted(found)


def hold_namespaces(pids: Iterable[int]) -> list[int]:
    """Open fds on the network namespaces of ``pids`` (see :func:`release`)."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.open(f"/proc/{pid}/ns/net", os.O_RDONLY))
        except OSError:
            pass
    return fds


def release(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def stop_pids(pids: Iterable[int], grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, by PID."""
    pids = list(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.05)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:   # a zombie has exited; only its parent's wait() is missing
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the process that started it dies,
    so a killed test run never leaves a controller listening on 6653."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _vsctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ovs-vsctl", "--timeout=5", *args], capture_output=True, text=True)


def identity(pid: int) -> str | None:
    """``pid:start-time:pid-namespace`` of a live process: a PID alone may be
    reused, or mean another process in another PID namespace."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        pidns = os.stat(f"/proc/{pid}/ns/pid").st_ino
    except (OSError, IndexError):
        return None
    return f"{pid}:{start}:{pidns}"


def tag_bridges(bridges: Iterable[str], owner: int | None = None) -> None:
    """Mark ``bridges`` as created by the lab running in process ``owner``."""
    tag = identity(os.getpid() if owner is None else owner)
    for bridge in bridges:
        done = _vsctl("set", "bridge", bridge, f'external_ids:{OWNER_KEY}="{tag}"')
        if done.returncode != 0:
            raise RuntimeError(f"could not tag bridge {bridge}: {done.stderr.strip()}")


def bridge_owner(bridge: str) -> str | None:
    """The identity of the lab that created ``bridge``; None if no lab did."""
    out = _vsctl("--if-exists", "get", "bridge", bridge, f"external_ids:{OWNER_KEY}")
    value = out.stdout.strip().strip('"')
    return value if out.returncode == 0 and value.count(":") == 2 else None


def owner_gone(owner: str) -> bool:
    """True only when ``owner`` is a lab of this PID namespace that has ended:
    the process is gone, or its PID now belongs to a newer process."""
    pid, _start, pidns = owner.split(":")
    if not pid.isdigit() or str(os.stat("/proc/self/ns/pid").st_ino) != pidns:
        return False       # another PID namespace (or garbage): not ours to judge
    return identity(int(pid)) != owner


def claim_bridge_names(bridges: Iterable[str]) -> list[str]:
    """Make ``bridges`` free to create: remove those a dead lab left behind.

    Returns what was removed.  Raises RuntimeError for a bridge of a lab that
    still runs, or one that no lab made (someone else's: never touched).
    """
    removed = []
    for bridge in bridges:
        if _vsctl("br-exists", bridge).returncode != 0:
            continue
        owner = bridge_owner(bridge)
        if owner is None or not owner_gone(owner):
            who = "not made by a ryu-snat lab" if owner is None else f"lab {owner} runs"
            raise RuntimeError(f"bridge {bridge} already exists ({who}): is another lab running?")
        ports = _vsctl("list-ports", bridge).stdout.split()
        _vsctl("--if-exists", "del-br", bridge)
        for port in ports:    # veth ends left in the root namespace
            subprocess.run(["ip", "link", "del", port], capture_output=True)
        removed.append(bridge)
    return removed
