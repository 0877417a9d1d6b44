#!/usr/bin/env python3
"""Where one new connection's time goes through ryu-snat (Mininet, root),
beside Linux MASQUERADE on the same topology in the same invocation.

    python bench/where_time_goes.py [--count 500] [--json FILE]

The profile behind ``docs/performance.md``'s account of the connection-rate
targets, on the networks ``bench/dataplane.py`` builds (h1 - s1 - s2 - o1,
every option at its default, Open vSwitch as the install leaves it; for
MASQUERADE a Linux router between s1 and s2):

* **One at a time, on the wire.**  tcpdump on h1's switch port, on the
  uplink and on the OpenFlow channel while h1 makes ``--count`` short
  connections one after another; for each one: SYN in -> packet-in sent by
  OVS -> the controller's first answer -> SYN out of the uplink -> SYN-ACK
  back in -> SYN-ACK out to h1, then the whole connection (to the next
  SYN).  Medians, in ms.  MASQUERADE has no controller or uplink of its
  own to watch: its connect and whole connection, on h1's port.
* **Eight at a time, in OVS.**  ``--count`` connections over 8 workers:
  CPU time per connection of each ovs-vswitchd thread (from /proc) and of
  ryu-manager, and OVS's own coverage counters per connection (datapath
  flow translations, upcalls, flow-table revalidations...).

Not a benchmark with targets: it says where the time goes, so that what is
cut is chosen from it.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "mininet"))

import dataplane as dp  # noqa: E402
from common import arg_parser  # noqa: E402

OFPT_PACKET_IN = 10
STEPS = ("SYN in -> packet-in", "packet-in -> controller's answer", "answer -> SYN out",
         "SYN out -> SYN-ACK in", "SYN-ACK in -> out", "connect (SYN in -> SYN-ACK out)",
         "whole connection")
COVERAGE = ("xlate_actions", "rev_flow_table", "upcall_flow_limit_hit", "dpif_flow_del",
            "dpif_flow_put", "dpif_execute", "ofproto_packet_out", "ofproto_recv_openflow",
            "netdev_received", "netdev_sent", "seq_change", "util_xalloc")


def thread_cpu(pid: int) -> Counter:
    """CPU seconds of each thread of ``pid``, by thread name (numbers dropped)."""
    out: Counter = Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = re.sub(r"\d+$", "", stat.split("(", 1)[1].rsplit(")", 1)[0])
        fields = stat.rsplit(")", 1)[1].split()
        out[name] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def coverage() -> dict[str, int]:
    text = subprocess.run(["ovs-appctl", "coverage/show"], capture_output=True, text=True,
                          timeout=10).stdout
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\S+)\s+.*total:\s*(\d+)", text, re.M)}


def capture(iface: str, expr: str, path: Path) -> subprocess.Popen:
    return subprocess.Popen(["timeout", "120", "tcpdump", "-i", iface, "-n", "-s", "128",
                             "-B", "16384", "-w", str(path), expr],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_at_a_time(lab, count: int, workdir: Path, system: str) -> dict[str, float]:
    from scapy.all import TCP, Raw, rdpcap

    h1 = lab.host("h1")
    inside, uplink = (f"s1-eth{n}" for n in (2, 1))     # h1's port on both networks
    files = {name: workdir / f"{name}.pcap" for name in (inside, uplink, "lo")}
    caps = [capture(inside, f"tcp port {dp.SERVER_PORT}", files[inside])]
    if system == "ryu-snat":
        caps += [capture(uplink, f"tcp port {dp.SERVER_PORT}", files[uplink]),
                 capture("lo", f"tcp port {lab.controller.of_port}", files["lo"])]
    time.sleep(1.5)
    dp.connections(h1, count, 1, max(10.0, count / 50))
    time.sleep(0.5)
    for cap in caps:
        cap.terminate()
        cap.wait(timeout=10)

    def tcp_of(path: Path) -> list:
        return [(float(p.time), p) for p in rdpcap(str(path)) if TCP in p]

    def flags(p) -> str:
        return str(p[TCP].flags)

    ins = tcp_of(files[inside])
    syns = [(t, p) for t, p in ins if flags(p) == "S"]

    def first(items, after: float, ok) -> float | None:
        return next((t for t, *rest in items if t >= after and ok(*rest)), None)

    steps: dict[str, list[float]] = {step: [] for step in STEPS}
    if system != "ryu-snat":
        for (t0, syn), (t_next, _) in zip(syns, syns[1:]):
            sport = syn[TCP].sport
            synack_out = first(ins, t0, lambda p: flags(p) == "SA" and p[TCP].dport == sport)
            if synack_out is not None and synack_out <= t_next:
                steps[STEPS[5]].append(synack_out - t0)
                steps[STEPS[6]].append(t_next - t0)
        return medians(steps)
    ups = tcp_of(files[uplink])
    channel = []            # (time, to the controller?, first message's type)
    for t, p in tcp_of(files["lo"]):
        if Raw in p:
            channel.append((t, p[TCP].dport == lab.controller.of_port, bytes(p[Raw])[1]))
    for (t0, syn), (t_next, _) in zip(syns, syns[1:]):
        sport = syn[TCP].sport
        pin = first(channel, t0, lambda up, kind: up and kind == OFPT_PACKET_IN)
        answer = pin and first(channel, pin, lambda up, kind: not up)
        syn_out = first(ups, t0, lambda p: flags(p) == "S")
        synack_in = first(ups, t0, lambda p: flags(p) == "SA")
        synack_out = first(ins, t0, lambda p: flags(p) == "SA" and p[TCP].dport == sport)
        marks = (t0, pin, answer, syn_out, synack_in, synack_out)
        if None in marks or synack_out > t_next:
            continue
        for step, (a, b) in zip(STEPS, zip(marks, marks[1:])):
            steps[step].append(b - a)
        steps[STEPS[5]].append(synack_out - t0)
        steps[STEPS[6]].append(t_next - t0)
    return medians(steps)


def medians(steps: dict[str, list[float]]) -> dict[str, float]:
    return {step: round(1000 * statistics.median(v), 3) for step, v in steps.items() if v} | {
        "connections timed": len(steps[STEPS[6]])}


def eight_at_a_time(lab, count: int, system: str) -> dict:
    h1 = lab.host("h1")
    ovs_pid = dp.ovs_vswitchd_pid()
    ctl_pid = lab.controller.proc.pid if system == "ryu-snat" else None
    cov0, cpu0, ctl0 = coverage(), thread_cpu(ovs_pid), dp.cpu_seconds(ctl_pid)
    got = dp.connections(h1, count, dp.WORKERS, max(10.0, count / 50))
    cpu1, ctl1 = thread_cpu(ovs_pid), dp.cpu_seconds(ctl_pid)
    time.sleep(2.5)        # each OVS thread adds its counts to the totals about once a second
    cov1 = coverage()
    ok = got["ok"] or 1
    return {
        "connections/s": got["rate"],
        "ms of CPU per connection": {
            **{f"ovs-vswitchd {name}": round(1000 * (cpu1[name] - cpu0[name]) / ok, 3)
               for name in cpu1 if cpu1[name] - cpu0[name] > 0},
            **({"ryu-manager": round(1000 * (ctl1 - ctl0) / ok, 3)} if ctl_pid else {})},
        "OVS coverage per connection": {
            name: round((cov1.get(name, 0) - cov0.get(name, 0)) / ok, 2) for name in COVERAGE},
    }


def main() -> int:
    ap = arg_parser(__doc__.splitlines()[0], runs=1)
    ap.add_argument("--count", type=int, default=500)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (Mininet, tcpdump)", file=sys.stderr)
        return 2
    workdir = Path(f"/tmp/ryu-snat-where-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    result = {}
    for system in ("ryu-snat", dp.ANCHOR):
        with dp.open_network(system) as lab:
            server = dp.start_server(lab.host("o1"), 300)
            try:
                ping = lab.host("h1").cmd(f"ping -c 2 -i 0.2 -W 2 {dp.O1_IP}")
                if " 0% packet loss" not in ping:
                    raise RuntimeError(f"h1 cannot ping o1 through {system}:\n{ping}")
                dp.connections(lab.host("h1"), 20, 1, 20)      # warm: ARP, bindings
                result[system] = {
                    "one at a time, medians [ms]": one_at_a_time(lab, args.count, workdir,
                                                                 system),
                    "eight at a time": eight_at_a_time(lab, args.count * 6, system)}
            finally:
                server.terminate()
                server.wait(timeout=5)
        for path in workdir.glob("*.pcap"):
            path.unlink()
    workdir.rmdir()
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
