#!/usr/bin/env python3
"""Data-path benchmark: ryu-snat against OVS's own NAT, Linux MASQUERADE and
plain L2 on the same Mininet topology (GitHub issue 8 item 2).

    python bench/dataplane.py [--runs 5] [--quick] [--systems ryu-snat,l2]
                              [--count N] [--iperf-seconds S] [--json FILE]

Every system is the same shape, two userspace OVS bridges (``datapath_type=
netdev``; the kernel datapath where its module is loaded) between one inside
host and one outside server::

    h1 10.0.0.11 -- s1 -- s2 -- o1 198.51.100.10

* ``ryu-snat``: the lab as :class:`lab.Lab` runs it: the stock ``ryu-manager``
  with ``ryu_app.snat`` controls s1, every NAT option at its default (the
  mapping log on Ryu's logger, the packet-in meters and admission on), on
  Open vSwitch as ``scripts/setup.sh`` leaves it (``scripts/ovs.sh``:
  ``other_config:max-idle=300``);
* ``ryu-snat@ovs-default``: the same with ``other_config:max-idle`` removed
  for the run (OVS's own 10 s; put back afterwards): what the install's one
  OVS setting is worth;
* ``ovs-ct-nat``: no controller; static flows on s1 send inside-to-outside IPv4
  through ``ct(commit,nat(src=198.51.100.1))`` and the replies through
  ``ct(nat)`` (OVS's conntrack: the userspace one on netdev), rewrite the MACs
  and decrement the TTL as a router would; h1 and o1 have static neighbour
  entries for the gateway's addresses (no ARP);
* ``masquerade`` (the anchor): s1 and s2 are plain learning bridges and a Linux
  router namespace r1 (10.0.0.1 on s1, 198.51.100.1 on s2) sits between them,
  ``ip_forward=1`` and ``iptables -t nat -A POSTROUTING -o r1-eth1 -j MASQUERADE``;
* ``l2``: the ceiling: s1 and s2 plain learning bridges, no NAT, h1 and o1
  reach each other's subnet on-link.

Every other system runs on the same OVS as the install leaves it.

Each run builds the system's network afresh (clean conntrack and session
tables), holding the machine-wide lab lock (``lab.lab_lock``) for as long as
the network exists, then measures on it:

* ``sequential`` / ``8-way``: ``--count`` short TCP connections (connect, read
  the one line the server writes, close) from h1 to a Python server on o1,
  one at a time, then over 8 forked workers: connections/s, connect time p50
  and p99, failures (timeouts and errors; there must be none).  The server
  writes the address it saw, so a NAT that does not translate is caught;
* ``iperf3``: one ``iperf3`` TCP stream h1 -> o1 for ``--iperf-seconds``:
  Gbit/s received.  For ryu-snat, ``GET /nat/stats`` ``packet_ins`` is read
  one second into the transfer and half a second before its end: packet-ins
  while the connection is established (the goal is 0), and per short
  connection in both cases (SYNs, and RST copies: measured).

Runs of the systems are interleaved (run 1 of each, then run 2...), so slow
drift of the machine spreads over all of them.  Medians (min-max) over
``--runs``; ratios against ``masquerade``.  The exit status is 1 when any
connection or transfer failed, or a run did not complete; the targets below
are printed beside the figures, not asserted.

Targets: ryu-snat >= 0.5x masquerade sequential and 8-way, 8-way connect p99
<= 10 ms, 0 failures, <= 1.2 packet-ins per short connection; iperf3 >= 0.95x
plain L2; 0 packet-ins during established traffic.
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "mininet"))

from common import Row, arg_parser, report  # noqa: E402

BENCH = "dataplane"
ANCHOR = "masquerade"
SYSTEMS = ("ryu-snat", "ryu-snat@ovs-default", "ovs-ct-nat", "masquerade", "l2")
SNATS = ("ryu-snat", "ryu-snat@ovs-default")
SHORT = {"snat": "ryu-snat", "snat-ovs-default": "ryu-snat@ovs-default",
         "ovs": "ovs-ct-nat", "ct": "ovs-ct-nat", "masq": "masquerade",
         "iptables": "masquerade", "plain": "l2"}
PEER = HERE / "dataplane_peer.py"
H1_IP, O1_IP = "10.0.0.11", "198.51.100.10"
GW_IN, NAT_IP = "10.0.0.1", "198.51.100.1"
GW_MAC = "02:62:65:6e:63:01"     # ovs-ct-nat's gateway: locally administered
SERVER_PORT, IPERF_PORT = 7000, 5201
WORKERS = 8
TARGETS = {"rate_ratio": 0.5, "p99_ms": 10.0, "iperf_ratio": 0.95, "packet_ins": 1.2}


class RunTimeout(Exception):
    pass


# -- the networks -----------------------------------------------------------------
def bench_topo(system: str, inside: int = 1):
    """h1 (.. hN) -- s1 -- s2 -- o1 (with r1 between s1 and s2 for masquerade)."""
    from mininet.node import OVSBridge, OVSSwitch
    from mininet.topo import Topo
    from nat_topo import NatHost, NatRouter, default_datapath

    class BenchTopo(Topo):
        def build(self) -> None:
            dp = default_datapath()
            if system == "ovs-ct-nat":
                s1 = self.addSwitch("s1", cls=OVSSwitch, dpid="0000000000000001", datapath=dp,
                                    protocols="OpenFlow13", failMode="secure")
            else:
                s1 = self.addSwitch("s1", cls=OVSBridge, dpid="0000000000000001", datapath=dp)
            s2 = self.addSwitch("s2", cls=OVSBridge, dpid="0000000000000002", datapath=dp)
            route = f"via {GW_IN}" if system != "l2" else None
            if system == "masquerade":
                self.addHost("r1", cls=NatRouter, ip=f"{GW_IN}/24")
                self.addLink("r1", s1)                                        # r1-eth0
                self.addLink("r1", s2, params1={"ip": f"{NAT_IP}/24"})        # r1-eth1
            else:
                self.addLink(s1, s2)                  # s1 port 1: the uplink
            for i in range(1, inside + 1):           # h1 10.0.0.11 on s1 port 2 (3 with r1)
                self.addHost(f"h{i}", cls=NatHost, ip=f"10.0.0.{10 + i}/24", defaultRoute=route)
                self.addLink(f"h{i}", s1)
            self.addHost("o1", cls=NatHost, ip=f"{O1_IP}/24")
            self.addLink("o1", s2)

    return BenchTopo()


def static_network(system: str, inside: int = 1):
    """A :class:`lab.Lab` whose start builds ``system``'s network without a
    controller; its stop (Mininet down, sweep of the hosts' namespaces by PID,
    the lab lock given back) is Lab's own."""
    import hygiene
    from lab import LAB_BRIDGES, Lab, acquire_lab_lock, ensure_ovs

    class StaticNet(Lab):
        def __init__(self) -> None:
            super().__init__(inside=inside, outside=1)
            shutil.rmtree(self.controller.workdir, ignore_errors=True)  # never started
            self.system = system

        def start(self) -> None:
            from mininet.log import setLogLevel
            from mininet.net import Mininet

            if not self._locked:
                acquire_lab_lock(what=f"bench/dataplane {system}")
                self._locked = True
            self.ovs = ensure_ovs()
            stale = hygiene.claim_bridge_names(LAB_BRIDGES)
            if stale:
                print(f"removed bridges {stale} left by a lab that was killed", file=sys.stderr)
            setLogLevel(os.environ.get("MININET_LOGLEVEL", "warning"))
            self.net = Mininet(topo=bench_topo(system, inside), controller=None,
                               autoSetMacs=True, waitConnected=False, build=False)
            self.net.build()
            root = hygiene.netns_of(os.getpid())
            self.namespaces = {hygiene.netns_of(h.pid) for h in self.net.hosts} - {None, root}
            self._namespace_fds = hygiene.hold_namespaces(h.pid for h in self.net.hosts)
            self.switch_ports = {i.name for sw in self.net.switches for i in sw.intfList()
                                 if i.name != "lo"}
            self.net.start()
            hygiene.tag_bridges(sw.name for sw in self.net.switches)
            configure(self, system)

    return StaticNet()


def sh(host, command: str) -> str:
    """Run in ``host``; raise with its output if it fails."""
    out = host.cmd(f"{command}; echo rc=$?").rstrip()
    body, _, rc = out.rpartition("rc=")
    if rc.strip() != "0":
        raise RuntimeError(f"{host.name}$ {command}: {out}")
    return body


def ovs(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def configure(lab, system: str) -> None:
    h1, o1 = lab.host("h1"), lab.host("o1")
    if system == "l2":
        for host in lab.net.hosts:
            if host.name.startswith("h"):
                sh(host, f"ip route replace 198.51.100.0/24 dev {host.name}-eth0")
        sh(o1, "ip route replace 10.0.0.0/24 dev o1-eth0")
    elif system == "masquerade":
        r1 = lab.host("r1")
        sh(r1, "sysctl -qw net.ipv4.ip_forward=1")
        sh(r1, "iptables -t nat -A POSTROUTING -s 10.0.0.0/24 -o r1-eth1 -j MASQUERADE")
    elif system == "ovs-ct-nat":
        sh(h1, f"ip neigh replace {GW_IN} lladdr {GW_MAC} dev h1-eth0 nud permanent")
        sh(o1, f"ip neigh replace {NAT_IP} lladdr {GW_MAC} dev o1-eth0 nud permanent")
        uplink, inside = ofport("s1-eth1"), ofport("s1-eth2")
        out = f"mod_dl_src:{GW_MAC},mod_dl_dst:{o1.MAC()},dec_ttl,output:{uplink}"
        back = f"mod_dl_src:{GW_MAC},mod_dl_dst:{h1.MAC()},dec_ttl,output:{inside}"
        flows = [
            "table=0,priority=0,actions=drop",
            f"table=0,priority=10,ip,in_port={inside},nw_src=10.0.0.0/24,"
            f"actions=ct(table=1,zone=1,nat)",
            f"table=0,priority=10,ip,in_port={uplink},nw_dst={NAT_IP},"
            f"actions=ct(table=2,zone=1,nat)",
            "table=1,priority=0,actions=drop",
            f"table=1,priority=10,ip,ct_state=+trk+new,"
            f"actions=ct(commit,zone=1,nat(src={NAT_IP})),{out}",
            f"table=1,priority=10,ip,ct_state=+trk+est,actions={out}",
            f"table=1,priority=10,ip,ct_state=+trk+rel,actions={out}",
            "table=2,priority=0,actions=drop",
            f"table=2,priority=10,ip,ct_state=+trk+est,actions={back}",
            f"table=2,priority=10,ip,ct_state=+trk+rel,actions={back}",
        ]
        ovs("ovs-ofctl", "-O", "OpenFlow13", "del-flows", "s1")
        done = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flows", "s1", "-"],
                              input="\n".join(flows) + "\n", capture_output=True, text=True,
                              timeout=20)
        if done.returncode != 0:
            raise RuntimeError(f"ovs-ofctl add-flows s1: {done.stderr.strip()}")


def ofport(name: str) -> int:
    return int(ovs("ovs-vsctl", "--timeout=5", "get", "Interface", name, "ofport").strip())


def ovs_max_idle() -> str | None:
    """Open vSwitch's other_config:max-idle now (None: unset, OVS's default)."""
    got = subprocess.run(["ovs-vsctl", "--timeout=5", "--if-exists", "get", "Open_vSwitch", ".",
                          "other_config:max-idle"], capture_output=True, text=True, timeout=10)
    value = got.stdout.strip().strip('"')
    return value or None


@contextlib.contextmanager
def ovs_default_max_idle():
    """OVS's own max-idle for a run (the install's value put back after)."""
    before = ovs_max_idle()
    if before is not None:
        ovs("ovs-vsctl", "--timeout=5", "remove", "Open_vSwitch", ".", "other_config", "max-idle")
    try:
        yield
    finally:
        if before is not None:
            ovs("ovs-vsctl", "--timeout=5", "set", "Open_vSwitch", ".",
                f"other_config:max-idle={before}")


def datapath_features() -> dict:
    """What s1's datapath says it supports (ct, ct_nat...)."""
    out = subprocess.run(["ovs-appctl", "dpif/show-dp-features", "s1"], capture_output=True,
                         text=True, timeout=10).stdout
    keep = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip().startswith(("CT ", "Conntrack")):
            keep[key.strip()] = value.strip()
    return keep


def open_network(system: str, inside: int = 1, nat_options: dict | None = None):
    if system in SNATS:
        from lab import Lab
        # every [nat] option at its default, unless a case says otherwise
        return Lab(inside=inside, outside=1, nat_options=nat_options)
    return static_network(system, inside)


# -- measurements ---------------------------------------------------------------------
def start_server(o1, seconds: float):
    proc = o1.popen([sys.executable, str(PEER), "server", str(SERVER_PORT),
                     "--seconds", str(int(seconds))],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"the server on o1 did not start: {line!r}")
    return proc


def start_clients(host, count: int, workers: int, deadline: float) -> subprocess.Popen:
    """``count`` short connections from ``host`` to o1's server over ``workers``."""
    return host.popen([sys.executable, str(PEER), "client", "--to", f"{O1_IP}:{SERVER_PORT}",
                       "--count", str(count), "--workers", str(workers),
                       "--timeout", "3", "--deadline", str(deadline)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def clients_result(proc: subprocess.Popen, deadline: float) -> dict:
    """What the clients of ``start_clients`` printed (they end by ``deadline``)."""
    try:
        out, err = proc.communicate(timeout=deadline + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)
        raise RuntimeError(f"the clients ({proc.args[2:4]}) hung")
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise RuntimeError(f"the clients printed no result: {out!r} {err[-2000:]!r}")


def connections(h1, count: int, workers: int, deadline: float) -> dict:
    return clients_result(start_clients(h1, count, workers, deadline), deadline)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process and all its threads (0 if gone)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ovs_vswitchd_pid() -> int | None:
    try:
        return int(Path("/var/run/openvswitch/ovs-vswitchd.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def packet_ins(lab) -> int:
    return int(lab.controller.get("/nat/stats")["packet_ins"])


def iperf(lab, system: str, seconds: int) -> dict:
    h1, o1 = lab.host("h1"), lab.host("o1")
    server = o1.popen(["timeout", str(seconds + 30), "iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = None
    try:
        deadline = time.monotonic() + 5
        while f":{IPERF_PORT}" not in o1.cmd(f"ss -Hltn 'sport = :{IPERF_PORT}'"):
            if time.monotonic() > deadline:
                raise RuntimeError("iperf3 -s did not listen on o1")
            time.sleep(0.05)
        client = h1.popen(["timeout", str(seconds + 20), "iperf3", "-c", O1_IP,
                           "-p", str(IPERF_PORT), "-t", str(seconds), "-J",
                           "--connect-timeout", "3000"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started = time.monotonic()
        during = None
        if system in SNATS:
            time.sleep(1.0)                      # the connections are up, data flows
            first = packet_ins(lab)
            time.sleep(max(0.0, started + seconds - 0.5 - time.monotonic()))
            alive = client.poll() is None        # still in the transfer
            during = packet_ins(lab) - first if alive else None
        out, _ = client.communicate(timeout=seconds + 30)
        try:
            doc = json.loads(out)
        except json.JSONDecodeError:
            return {"ok": False, "error": f"iperf3 printed no JSON: {out[-500:]!r}",
                    "packet_ins": during}
        if "error" in doc:
            return {"ok": False, "error": doc["error"], "packet_ins": during}
        bps = doc["end"]["sum_received"]["bits_per_second"]
        return {"ok": True, "gbps": bps / 1e9, "packet_ins": during,
                "retransmits": doc["end"].get("sum_sent", {}).get("retransmits")}
    finally:
        for proc in (client, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def expected_peer(system: str) -> str:
    return H1_IP if system == "l2" else NAT_IP


def measure(lab, system: str, args) -> dict:
    """One run on a network that is up: warm-up, sequential, 8-way, iperf3."""
    h1, o1 = lab.host("h1"), lab.host("o1")
    result: dict = {"system": system}
    server = start_server(o1, args.run_timeout + 30)
    try:
        ping = h1.cmd(f"ping -c 2 -i 0.2 -W 2 {O1_IP}")
        if " 0% packet loss" not in ping:     # resolves neighbours; must pass
            raise RuntimeError(f"h1 cannot ping o1 through {system}:\n{ping}")
        warm = connections(h1, 20, 1, 20)
        if warm["ok"] == 0:
            raise RuntimeError(f"no connection through {system}: {warm}")
        seen = set(warm["seen_as"])
        if seen != {expected_peer(system)}:
            raise RuntimeError(f"o1 saw h1 as {seen}, not {expected_peer(system)}")
        budget = max(10.0, args.count / 50)
        ovs_pid = ovs_vswitchd_pid()
        ctl_pid = lab.controller.proc.pid if system in SNATS else None
        for case, workers in (("sequential", 1), ("8-way", WORKERS)):
            before = packet_ins(lab) if system in SNATS else None
            cpu0 = (cpu_seconds(ovs_pid), cpu_seconds(ctl_pid))
            result[case] = connections(h1, args.count, workers, budget)
            ok = result[case]["ok"]
            if ok:   # CPU per connection: what the switch and the controller spend on one
                result[case]["ovs_ms_per_connection"] = (
                    1000 * (cpu_seconds(ovs_pid) - cpu0[0]) / ok)
                if ctl_pid is not None:
                    result[case]["controller_ms_per_connection"] = (
                        1000 * (cpu_seconds(ctl_pid) - cpu0[1]) / ok)
            if before is not None:
                result[case]["packet_ins_per_connection"] = (
                    (packet_ins(lab) - before) / ok if ok else None)
        for case in ("sequential", "8-way"):
            if set(result[case]["seen_as"]) - {expected_peer(system)}:
                raise RuntimeError(f"{case}: o1 saw h1 as {result[case]['seen_as']}")
        result["iperf3"] = iperf(lab, system, args.iperf_seconds)
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
    return result


def one_run(system: str, args) -> dict:
    """Build ``system``'s network, measure once, tear it down (always)."""
    def expired(_signum, _frame):
        raise RunTimeout(f"{system}: run took longer than {args.run_timeout}s")

    previous = signal.signal(signal.SIGALRM, expired)
    net = open_network(system)
    ovs_setting = (ovs_default_max_idle() if system == "ryu-snat@ovs-default"
                   else contextlib.nullcontext())
    try:
        with ovs_setting, net as lab:
            try:
                signal.alarm(int(args.run_timeout))
                result = measure(lab, system, args)
                if system == "ovs-ct-nat" and not args.features:
                    args.features = datapath_features()
            finally:
                signal.alarm(0)
    except BaseException:
        if net.controller.workdir.exists():
            print(f"{system}: controller files kept in {net.controller.workdir}", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGALRM, previous)
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(net.controller.workdir, ignore_errors=True)
    return result


# -- rows, targets ------------------------------------------------------------------
def rows_of(results: list[dict], systems: list[str]) -> list[Row]:
    rows: list[Row] = []

    def row(case, system, metric, unit, values, higher=True, compare=True):
        values = [v for v in values if v is not None]
        if values:
            rows.append(Row(BENCH, case, system, metric, unit, values, higher, compare))

    for case in ("sequential", "8-way"):
        for system in systems:
            mine = [r[case] for r in results if r["system"] == system and case in r]
            row(case, system, "connections/s", "1/s", [m["rate"] for m in mine])
            row(case, system, "connect p50", "ms", [m["connect_p50_ms"] for m in mine], False)
            row(case, system, "connect p99", "ms", [m["connect_p99_ms"] for m in mine], False)
            row(case, system, "failures", "count", [m["failures"] for m in mine], False, False)
            if system in SNATS:
                row(case, system, "packet-ins/connection", "count",
                    [m.get("packet_ins_per_connection") for m in mine], False, False)
                row(case, system, "ryu-manager CPU/connection", "ms",
                    [m.get("controller_ms_per_connection") for m in mine], False, False)
            row(case, system, "ovs-vswitchd CPU/connection", "ms",
                [m.get("ovs_ms_per_connection") for m in mine], False, False)
    for system in systems:
        mine = [r["iperf3"] for r in results if r["system"] == system and "iperf3" in r]
        row("iperf3", system, "throughput", "Gbit/s", [m.get("gbps") for m in mine if m["ok"]])
        row("iperf3", system, "failures", "count", [0 if m["ok"] else 1 for m in mine],
            False, False)
        if system in SNATS:
            row("iperf3", system, "packet-ins during transfer", "count",
                [m["packet_ins"] for m in mine], False, False)
    return rows


def targets(rows: list[Row]) -> list[dict]:
    by = {(r.case, r.system, r.metric): r for r in rows}

    def med(case, system, metric):
        r = by.get((case, system, metric))
        return r.median if r else None

    found = []

    def target(what, value, goal, ok):
        found.append({"target": what, "value": value, "goal": goal,
                      "met": None if value is None else bool(ok(value))})

    for case in ("sequential", "8-way"):
        snat, masq = med(case, "ryu-snat", "connections/s"), med(case, ANCHOR, "connections/s")
        target(f"{case} connections/s ryu-snat / masquerade",
               snat / masq if snat and masq else None, f">= {TARGETS['rate_ratio']}x",
               lambda v: v >= TARGETS["rate_ratio"])
    target("8-way connect p99 ryu-snat [ms]", med("8-way", "ryu-snat", "connect p99"),
           f"<= {TARGETS['p99_ms']} ms", lambda v: v <= TARGETS["p99_ms"])
    for case in ("sequential", "8-way"):
        target(f"{case} packet-ins per connection ryu-snat",
               med(case, "ryu-snat", "packet-ins/connection"), f"<= {TARGETS['packet_ins']}",
               lambda v: v <= TARGETS["packet_ins"])
    fails = [r for r in rows if r.system == "ryu-snat" and r.metric == "failures"]
    target("ryu-snat failures (all runs, all cases)",
           sum(sum(r.runs) for r in fails) if fails else None, "0", lambda v: v == 0)
    snat, l2 = med("iperf3", "ryu-snat", "throughput"), med("iperf3", "l2", "throughput")
    target("iperf3 ryu-snat / l2", snat / l2 if snat and l2 else None,
           f">= {TARGETS['iperf_ratio']}x", lambda v: v >= TARGETS["iperf_ratio"])
    pins = by.get(("iperf3", "ryu-snat", "packet-ins during transfer"))
    target("ryu-snat packet-ins during established traffic (max over runs)",
           max(pins.runs) if pins else None, "0", lambda v: v == 0)
    return found


def print_targets(found: list[dict]) -> None:
    print("\ntargets:")
    for t in found:
        mark = "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED")
        value = "-" if t["value"] is None else f"{t['value']:.3g}"
        print(f"  [{mark:6}] {t['target']}: {value} (goal {t['goal']})")


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


def parse_systems(text: str, ap) -> list[str]:
    chosen = []
    for name in filter(None, (s.strip() for s in text.split(","))):
        name = SHORT.get(name, name)
        if name not in SYSTEMS:
            ap.error(f"--systems: unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        ap.error("--systems: name at least one system")
    return [s for s in SYSTEMS if s in chosen]


def main() -> int:
    ap = arg_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help=f"comma-separated subset of {','.join(SYSTEMS)} (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="100 connections per case and a 2 s iperf3 (default 500 and 5 s)")
    ap.add_argument("--count", type=int, help="short connections per case and run")
    ap.add_argument("--iperf-seconds", type=int, help="iperf3 duration")
    ap.add_argument("--run-timeout", type=float, default=90,
                    help="give up on one run after this many seconds (default 90)")
    ap.add_argument("--budget", type=float, default=540,
                    help="start no new run after this many seconds (default 540)")
    args = ap.parse_args()
    systems = parse_systems(args.systems, ap)
    args.count = max(1, min(args.count or (100 if args.quick else 500), 20000))
    args.iperf_seconds = max(2, min(args.iperf_seconds or (2 if args.quick else 5), 60))
    args.runs = max(1, args.runs)
    args.features = {}
    if os.geteuid() != 0:
        ap.error("needs root (Open vSwitch and Mininet)")
    if "masquerade" in systems and shutil.which("iptables") is None:
        ap.error("masquerade needs iptables: run scripts/setup.sh")
    os.environ.setdefault("SHELL", "/bin/bash")
    signal.signal(signal.SIGTERM, _terminate)      # unwinds through the networks' teardown
    started = time.monotonic()
    results: list[dict] = []
    problems: list[str] = []
    for run in range(1, args.runs + 1):
        for system in systems:
            if time.monotonic() - started > args.budget:
                problems.append(f"budget of {args.budget:.0f}s spent: run {run} of {system} "
                                "and later ones not run")
                break
            t0 = time.monotonic()
            try:
                result = one_run(system, args)
            except Exception as err:     # noqa: BLE001 - reported, and the exit status says so
                problems.append(f"run {run} of {system}: {type(err).__name__}: {err}")
                print(f"run {run} {system}: FAILED: {err}", file=sys.stderr, flush=True)
                continue
            results.append(result)
            seq, par, ip = result["sequential"], result["8-way"], result["iperf3"]
            print(f"run {run} {system:10} {time.monotonic() - t0:5.1f}s: "
                  f"seq {seq['rate']:.0f}/s p50 {seq['connect_p50_ms'] or 0:.3f} ms "
                  f"fail {seq['failures']}; 8-way {par['rate']:.0f}/s fail {par['failures']}; "
                  f"iperf3 {ip.get('gbps', 0):.2f} Gbit/s"
                  + (f" packet-ins {ip['packet_ins']}" if system in SNATS else "")
                  + ("" if ip["ok"] else f" FAILED {ip['error']}"),
                  file=sys.stderr, flush=True)
            for case in ("sequential", "8-way"):
                if result[case]["failures"]:
                    problems.append(f"run {run} of {system} {case}: "
                                    f"{result[case]['failures']} failures {result[case]['errors']}")
            if not ip["ok"]:
                problems.append(f"run {run} of {system} iperf3: {ip['error']}")
        else:
            continue
        break
    rows = rows_of(results, systems)
    found = targets(rows)
    report(BENCH, rows, args.json, anchor_system=ANCHOR if ANCHOR in systems else None,
           extra={"targets": found, "problems": problems, "datapath_features": args.features,
                  "count": args.count, "workers": WORKERS, "iperf_seconds": args.iperf_seconds,
                  "ovs_max_idle_ms": ovs_max_idle(),
                  "seconds": round(time.monotonic() - started, 1)})
    print_targets(found)
    print(f"\nOVS other_config:max-idle = {ovs_max_idle()} ms as installed (scripts/ovs.sh); "
          "ryu-snat@ovs-default ran without it")
    if args.features:
        print(f"\ns1 datapath features (ovs-ct-nat): {args.features}")
    print(f"\ndone in {time.monotonic() - started:.0f}s")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
