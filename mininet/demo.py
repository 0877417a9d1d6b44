#!/usr/bin/env python3
"""The ryu-snat demo: bring the whole lab up, send real traffic, show, tear down.

Run through ``scripts/demo.sh`` (which sets up the venv first).  Everything it
starts is stopped on the way out, also on Ctrl-C, SIGTERM or a failure.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import hygiene
from lab import Lab, bridges_of_lab

NAT_IP = "198.51.100.1"


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)   # unwinds through Lab.__exit__


class Checks:
    """What the demo shows is also checked: a broken NAT fails the demo."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def __call__(self, ok: bool, what: str) -> None:
        print(f"  [{'ok' if ok else 'FAILED'}] {what}", flush=True)
        if not ok:
            self.failed.append(what)


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 66 - len(title)), flush=True)


def show(host, command: str) -> str:
    print(f"{host.name}$ {command}")
    out = host.cmd(command).rstrip()
    print(out, flush=True)
    return out


def snatctl(lab, *args: str) -> subprocess.CompletedProcess:
    """The operator's CLI of this venv, against the lab's controller."""
    exe = Path(sys.executable).parent / "snatctl"
    print(f"$ snatctl {' '.join(args)}")
    done = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ,
                               "SNATCTL_URL": f"http://127.0.0.1:{lab.controller.rest_port}"})
    print((done.stdout + done.stderr).rstrip(), flush=True)
    return done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inside", type=int, default=2, help="inside hosts (default 2)")
    ap.add_argument("--outside", type=int, default=2, help="outside servers (default 2)")
    args = ap.parse_args()
    if args.inside < 1 or args.outside < 1:
        ap.error("--inside and --outside need at least 1 host each")
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    check = Checks()
    lab = Lab(inside=args.inside, outside=args.outside, nat_options={"stats_interval": 2})
    with lab:
        section("lab up")
        print(f"Open vSwitch: {lab.ovs}; ryu-manager pid {lab.controller.proc.pid}, "
              f"REST on 127.0.0.1:{lab.controller.rest_port}, log {lab.controller.log_file}")
        for host in lab.net.hosts:
            print(f"  {host.name:4s} {host.IP():15s} {host.MAC()}")
        inside = [lab.host(f"h{i}") for i in range(1, args.inside + 1)]
        outside = [lab.host(f"o{i}") for i in range(1, args.outside + 1)]
        o1 = outside[0]
        section("the gateway answers on both sides")
        check(" 0% packet loss" in show(inside[0], "ping -c 2 -i 0.2 -W 2 10.0.0.1"),
              "h1 pings its gateway 10.0.0.1")
        check(" 0% packet loss" in show(o1, f"ping -c 2 -i 0.2 -W 2 {NAT_IP}"),
              f"o1 pings the NAT address {NAT_IP}")
        section(f"inside hosts fetch a page from o1 ({o1.IP()}) through the NAT")
        server = o1.popen(["python3", "-m", "http.server", "80", "--bind", o1.IP()],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            for host in inside:
                out = show(host, f"curl -s -m 5 -o /dev/null -w 'HTTP %{{http_code}}, "
                                 f"%{{size_download}} bytes\\n' http://{o1.IP()}/")
                check(out.startswith("HTTP 200"), f"{host.name} gets HTTP 200")
        finally:
            server.terminate()
            _, log = server.communicate(timeout=5)
        requests = [line for line in log.splitlines() if "GET" in line]
        print("o1's web server log:")
        print("  " + "\n  ".join(requests))
        check(len(requests) == len(inside) and all(r.startswith(NAT_IP + " ") for r in requests),
              "every request reached o1 from the NAT address, none from an inside one")
        section("inside hosts ping the outside servers at the same time")
        pings = [(h, o, h.popen(f"ping -c 4 -i 0.2 -W 2 {o.IP()}", shell=True,
                                stdout=subprocess.PIPE, text=True))
                 for h in inside for o in outside]
        time.sleep(0.4)
        live = snatctl(lab, "connections", "--protocol", "icmp")
        check(live.returncode == 0 and "icmp" in live.stdout,
              "snatctl connections shows the pings' sessions while they run")
        for h, o, proc in pings:
            out = proc.communicate(timeout=30)[0]
            summary = re.search(r"^\d+ packets transmitted.*$", out, re.M)
            print(f"  {h.name} -> {o.name}: {summary.group(0) if summary else '(no summary)'}")
            check(bool(summary) and " 0% packet loss" in summary.group(0),
                  f"{h.name} pings {o.name} without loss")
        section("unsolicited traffic from outside is dropped in the switch")
        asked = time.monotonic()
        out = show(o1, f"nc -z -w 2 {NAT_IP} 22; echo \"nc exit status $?\"")
        waited = time.monotonic() - asked
        check("exit status 0" not in out and waited >= 1.8,
              f"o1 gets no connection and no RST: nc waited {waited:.1f} s for an answer")
        time.sleep(2.5)   # one stats interval: counters come from flow stats
        section("the NAT table (snatctl connections; GET /nat/connections)")
        conns = lab.controller.get("/nat/connections")
        snatctl(lab, "connections")
        check(len([c for c in conns if c["protocol"] == "tcp"]) >= len(inside)
              and len([c for c in conns if c["protocol"] == "icmp"]) >= len(inside) * len(outside),
              "a TCP session per page fetch and an ICMP session per ping are tracked")
        section("GET /nat/stats")
        print(json.dumps(lab.controller.get("/nat/stats"), indent=1))
        section("NAT flows on s1 (ovs-ofctl dump-flows, session flows first)")
        dump = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--rsort", "dump-flows", "s1"],
                              capture_output=True, text=True).stdout
        print(dump)
        check("cookie=0x5a7e10" in dump and "cookie=0x5a7e11" in dump,
              "forward (0x5a7e10..) and reverse (0x5a7e11..) session flows are in the switch")
        section("tearing down")
    left = sorted(bridges_of_lab() | set(map(str, hygiene.pids_in(lab.namespaces))))
    check(not left and lab.controller.proc.poll() is not None, "nothing left running")
    print(f"done in {time.monotonic() - started:.1f}s: "
          + (f"{len(check.failed)} check(s) FAILED: {check.failed}" if check.failed
             else "every check passed"))
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
