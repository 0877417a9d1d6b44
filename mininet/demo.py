#!/usr/bin/env python3
"""The ryu-snat demo: bring the whole lab up, send real traffic, show, tear down.

Run through ``scripts/demo.sh`` (which sets up the venv first).  Everything it
starts is stopped on the way out, also on Ctrl-C, SIGTERM or a failure.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time

from lab import Lab


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)   # unwinds through Lab.__exit__


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 66 - len(title)), flush=True)


def show(host, command: str) -> str:
    print(f"{host.name}$ {command}")
    out = host.cmd(command).rstrip()
    print(out, flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inside", type=int, default=2, help="inside hosts (default 2)")
    ap.add_argument("--outside", type=int, default=2, help="outside servers (default 2)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    with Lab(inside=args.inside, outside=args.outside) as lab:
        section("lab up")
        print(f"Open vSwitch: {lab.ovs}; ryu-manager pid {lab.controller.proc.pid}, "
              f"REST on 127.0.0.1:{lab.controller.rest_port}, log {lab.controller.log_file}")
        for host in lab.net.hosts:
            print(f"  {host.name:4s} {host.IP():15s} {host.MAC()}")
        section("inside hosts ping their gateway 10.0.0.1")
        for name in [f"h{i}" for i in range(1, args.inside + 1)]:
            show(lab.host(name), "ping -c 2 -i 0.2 -W 2 10.0.0.1")
        section("an outside server pings the NAT address 198.51.100.1")
        show(lab.host("o1"), "ping -c 2 -i 0.2 -W 2 198.51.100.1")
        show(lab.host("h1"), "ip neigh show 10.0.0.1")
        section("GET /nat/stats")
        print(json.dumps(lab.controller.get("/nat/stats"), indent=1))
        section("flows on s1 (ovs-ofctl dump-flows)")
        print(subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "s1"],
                             capture_output=True, text=True).stdout)
        section("tearing down")
    print(f"done in {time.monotonic() - started:.1f}s; nothing left running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
