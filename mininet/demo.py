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


def print_connections(conns: list[dict]) -> None:
    """The connection table, conntrack-style, one session a line."""
    print(f"{'id':>3} {'proto':5} {'state':12} {'inside':21} {'external':21} {'remote':21} "
          f"{'pkts out/in':>11} {'bytes out/in':>15} {'path':10}")
    for c in conns:
        print(f"{c['id']:>3} {c['protocol']:5} {c['state']:12} "
              f"{c['internal_ip'] + ':' + str(c['internal_port']):21} "
              f"{c['external_ip'] + ':' + str(c['external_port']):21} "
              f"{c['remote_ip'] + ':' + str(c['remote_port']):21} "
              f"{str(c['packets_out']) + '/' + str(c['packets_in']):>11} "
              f"{str(c['bytes_out']) + '/' + str(c['bytes_in']):>15} {c['path']:10}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inside", type=int, default=2, help="inside hosts (default 2)")
    ap.add_argument("--outside", type=int, default=2, help="outside servers (default 2)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    with Lab(inside=args.inside, outside=args.outside,
             nat_options={"stats_interval": 2}) as lab:
        section("lab up")
        print(f"Open vSwitch: {lab.ovs}; ryu-manager pid {lab.controller.proc.pid}, "
              f"REST on 127.0.0.1:{lab.controller.rest_port}, log {lab.controller.log_file}")
        for host in lab.net.hosts:
            print(f"  {host.name:4s} {host.IP():15s} {host.MAC()}")
        inside = [lab.host(f"h{i}") for i in range(1, args.inside + 1)]
        o1 = lab.host("o1")
        section("the gateway answers on both sides")
        show(inside[0], "ping -c 2 -i 0.2 -W 2 10.0.0.1")
        show(o1, "ping -c 2 -i 0.2 -W 2 198.51.100.1")
        section("inside hosts fetch a page from o1 (198.51.100.10) through the NAT")
        server = o1.popen(["python3", "-m", "http.server", "80", "--bind", o1.IP()],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            for host in inside:
                show(host, f"curl -s -m 5 -o /dev/null -w 'HTTP %{{http_code}}, "
                           f"%{{size_download}} bytes\\n' http://{o1.IP()}/")
        finally:
            server.terminate()
            _, log = server.communicate(timeout=5)
        print("o1's web server log: every request comes from the NAT address")
        print("  " + "\n  ".join(line for line in log.splitlines() if "GET" in line))
        section("inside hosts ping the outside servers at the same time")
        pings = [h.popen(f"ping -c 4 -i 0.2 -W 2 {o.IP()}", shell=True,
                         stdout=subprocess.PIPE, text=True)
                 for h in inside for o in lab.net.hosts if o.name.startswith("o")]
        for proc in pings:
            out = proc.communicate(timeout=30)[0]
            print("  " + (out.strip().splitlines() or ["(no output)"])[-2])
        section("unsolicited traffic from outside is dropped in the switch")
        show(o1, "nc -z -w 2 198.51.100.1 22; echo \"nc exit status $? (no answer, no RST)\"")
        time.sleep(2.5)   # one stats interval: counters come from flow stats
        section("GET /nat/connections")
        print_connections(lab.controller.get("/nat/connections"))
        section("GET /nat/stats")
        print(json.dumps(lab.controller.get("/nat/stats"), indent=1))
        section("NAT flows on s1 (ovs-ofctl dump-flows, session flows first)")
        dump = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--rsort", "dump-flows", "s1"],
                              capture_output=True, text=True).stdout
        print(dump)
        section("tearing down")
    print(f"done in {time.monotonic() - started:.1f}s; nothing left running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
