"""Instructions the gateway spends on one first packet, counted by callgrind.

Wall-clock rates on this 2-core machine move by 30% between sittings (the
anchors too); an instruction count does not.  This runs N TCP SYNs of new
5-tuples through ``Gateway.packet_in`` (the whole first-packet path: the
packet-in read, admission, conntrack, the mapping, two flows and a
packet-out encoded; no socket, no OVS), with Python's collector set as the
controller sets it (``ryu_app.ops.collector``), under ``valgrind
--tool=callgrind`` at two sizes and prints the difference per packet, so
start-up cancels out.

    .venv/bin/python bench/first_packet_cost.py            # needs valgrind
    .venv/bin/python bench/first_packet_cost.py --run 1000 # one pass, no valgrind
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

INSIDE_HOSTS = 200
SERVER = ("198.51.100.10", "02:00:c6:33:64:0a")


def frames(count: int, gateway_mac: str) -> list[bytes]:
    """SYNs from INSIDE_HOSTS inside hosts, each to a new 5-tuple."""
    from ryu.lib.packet import ethernet, ipv4, packet, tcp
    out = []
    for i in range(count):
        host = 11 + i % INSIDE_HOSTS
        pkt = packet.Packet()
        pkt.add_protocol(ethernet.ethernet(dst=gateway_mac, src=f"02:00:00:00:00:{host:02x}",
                                           ethertype=0x0800))
        pkt.add_protocol(ipv4.ipv4(src=f"10.0.0.{host}", dst=SERVER[0], proto=6, ttl=64))
        pkt.add_protocol(tcp.tcp(src_port=10000 + i, dst_port=80, bits=0x02, seq=1))
        pkt.serialize()
        out.append(bytes(pkt.data))
    return out


def run(count: int, built: int) -> None:
    """Set up a gateway on a fake datapath, then feed it ``count`` first
    packets (of ``built`` made, so that both sizes build alike)."""
    from oslo_config import cfg

    from ryu_app.nat.gateway import Gateway
    from ryu_app.ops import collector
    from ryu_app.settings import config

    conf = cfg.ConfigOpts()
    config.register(conf)
    conf(args=[], default_config_files=[])
    for name, value in {"external_ip": "198.51.100.1/24", "external_port": "s1-eth1",
                        "internal_subnet": "10.0.0.0/24"}.items():
        conf.set_override(name, value, group=config.GROUP)
    nat_config = config.load(conf, warn=lambda message: None)
    gateway = Gateway(nat_config)
    gateway.switch_connected(1)
    gateway.ports_described(1, {"s1-eth1": 1, "s1-eth2": 2})
    nat = gateway.switches[1].nat
    nat.adopting = False                      # no flow dump to wait for
    nat.next_hops.learn(SERVER[0], SERVER[1], 0.0)
    collector.tune()                          # the collector as the running controller has it
    now = 1.0
    for frame in frames(max(count, built), nat_config.gateway_mac)[:count]:
        gateway.packet_in(1, 2, frame, now)
        now += 0.0001
    assert len(list(nat.ct.sessions())) == count, "every first packet made a session"


def instructions(count: int, built: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
             sys.executable, os.path.abspath(__file__), "--run", str(count),
             "--build", str(built)],
            capture_output=True, text=True, check=True)
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if not found:
        raise SystemExit(f"callgrind printed no total:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=int, metavar="N", help="one pass of N packets, no valgrind")
    parser.add_argument("--build", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=3000)
    args = parser.parse_args()
    if args.run is not None:
        run(args.run, args.build)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (Debian: apt-get install valgrind)")
    small, large = (instructions(n, args.large) for n in (args.small, args.large))
    per_packet = (large - small) / (args.large - args.small)
    print(f"{per_packet:,.0f} instructions per first packet "
          f"(callgrind: {small:,} at {args.small}, {large:,} at {args.large} packet-ins)")


if __name__ == "__main__":
    main()
