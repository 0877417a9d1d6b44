#!/usr/bin/env python3
"""Failover of a controller pair: how long s1 has no MASTER after the MASTER
is killed, and what is lost.

    sudo .venv/bin/python bench/failover.py [--runs 5] [--json FILE]

The lab as :class:`lab.Lab` with ``pair=True`` runs it: two real
``ryu-manager`` processes on s1 elected through a redis-server of the lab's
own (``ha_lease`` 2 s, ``ha_interval`` 0.25 s, the defaults), h1 keeping one
TCP connection echoing to o1 every 0.1 s, h2 holding three UDP mappings.
Each run kills the current MASTER with SIGKILL (no lock released: the lease
must run out) and measures, from the kill, until the survivor reports the
switch taken over (MASTER claimed and every flow adopted: ``GET /nat/ha``);
then the mappings the survivor lists are compared with the dead MASTER's,
a new TCP connection is made through the gateway, and the killed controller
is started again as the new standby.  The anchor is the lease itself, the
part of the failover that is waiting for the dead MASTER's lock to expire.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "mininet"))
sys.path.insert(0, str(REPO / "tests"))

from common import Row, arg_parser, report  # noqa: E402

BENCH = "failover"
O1 = "198.51.100.10"


def mappings(ctl) -> set[tuple]:
    return {(c["protocol"], c["internal_ip"], c["internal_port"], c["external_port"],
             c["remote_ip"], c["remote_port"]) for c in ctl.get("/nat/connections")
            if c["protocol"] != "icmp"}


def master_of(lab):
    return next(c for c in lab.controllers if c.proc.poll() is None
                and c.get("/nat/ha")["switches"].get("0000000000000001", {}).get("role")
                == "MASTER")


def one_failover(lab, run: int) -> dict:
    from helpers.echo import EchoLoop
    from helpers.peers import Server, client
    from lab import wait_for

    master = master_of(lab)
    standby = next(c for c in lab.controllers if c is not master)
    wait_for(lambda: standby.get("/nat/ha")["switches"].get("0000000000000001", {})
             .get("role") == "SLAVE", 20, what="the standby SLAVE")
    with Server(lab.host("o1"), "tcp-server", 7600 + run) as _server:
        loop = EchoLoop(lab, 7600 + run, 44000 + run, seconds=10)
        wait_for(lambda: any(c["internal_port"] == 44000 + run and c["state"] == "ESTABLISHED"
                             for c in master.get("/nat/connections?protocol=tcp")), 5,
                 what="the echo connection")
        before = mappings(master)
        wait_for(lambda: mappings(standby) >= before, 10, what="the warm table")
        seen = len(standby.get("/nat/ha")["takeovers"])
        master.proc.kill()
        killed = time.monotonic()
        wait_for(lambda: len(standby.get("/nat/ha")["takeovers"]) > seen, 15, interval=0.02,
                 what="the takeover")
        took = time.monotonic() - killed
        after = mappings(standby)
        new = client(lab.host("h2"), "tcp-client", f"--to {O1}:{7600 + run}")
        echoes = loop.result()["echoes"]
    gaps = [b - a for a, b in zip(echoes, echoes[1:])]
    master.start()                                    # back, as the new standby
    return {"takeover_s": round(took, 3), "lost": len(before - after), "kept": len(before),
            "new_connection": bool(new.get("connected")),
            "longest_echo_gap_s": round(max(gaps), 3) if gaps else None}


def main() -> int:
    p = arg_parser(__doc__.splitlines()[0], runs=5)
    a = p.parse_args()
    from helpers.peers import client
    from lab import Lab

    runs = []
    with Lab(inside=2, outside=1, pair=True, nat_options={"stats_interval": 1}) as lab:
        lab.set_reconnect_backoff(1000)
        lease = float(lab.controller.options.get("ha_lease", 2))
        for sport in (46700, 46701, 46702):
            client(lab.host("h2"), "udp-client", f"--sport {sport}", f"--to {O1}:9",
                   "--count 1")
        for run in range(a.runs):
            runs.append(one_failover(lab, run))
            print(f"run {run + 1}: {runs[-1]}", file=sys.stderr)
    rows = [
        Row(BENCH, "kill -9 MASTER", "ryu-snat pair", "no MASTER at s1", "s",
            [r["takeover_s"] for r in runs], higher_is_better=False, compare=False),
        Row(BENCH, "kill -9 MASTER", "lease (anchor)", "lock outlives the MASTER", "s",
            [lease] * len(runs), higher_is_better=False, compare=False),
        Row(BENCH, "kill -9 MASTER", "ryu-snat pair", "takeover beyond the lease", "s",
            [r["takeover_s"] - lease for r in runs], higher_is_better=False, compare=False),
        Row(BENCH, "kill -9 MASTER", "ryu-snat pair", "mappings lost", "mappings",
            [r["lost"] for r in runs], higher_is_better=False, compare=False),
        Row(BENCH, "kill -9 MASTER", "ryu-snat pair", "longest echo gap", "s",
            [r["longest_echo_gap_s"] for r in runs], higher_is_better=False, compare=False),
    ]
    report(BENCH, rows, a.json, extra={"runs_detail": runs})
    bad = [r for r in runs if r["lost"] or not r["new_connection"] or r["takeover_s"] >= 3]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
