"""JSON views of the gateway's state for REST (and the demo).

Times inside the app are monotonic; here they become wall-clock epoch seconds
(``created``, ``last_seen``) and a countdown (``expires_in``).
"""
from __future__ import annotations

import bisect
import heapq
import ipaddress
import itertools
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from conntrack import ConnTrack, Session
from conntrack.keys import PROTOCOL_NAMES
from ryu_app.nat.flow_record import FlowRecord
from ryu_app.nat.gateway import Gateway
from ryu_app.nat.paths.port_control import PortControl


class SwitchNat(Protocol):
    """What the views read of one switch's NAT (and nothing else)."""
    ct: ConnTrack
    switch_drops: dict[str, int]
    port_control: PortControl

    @property
    def records(self) -> dict[int, FlowRecord]: ...

    def where(self, session: Session) -> str: ...

PROTOCOLS = {name: number for number, name in PROTOCOL_NAMES.items()}   # "tcp" -> 6, ...
SWITCH_DROP_NAMES = {"unsolicited_drop": "unsolicited_inbound",
                     "outside_drop": "outside_other", "inside_ipv6_drop": "inside_ipv6",
                     "spoofed_inside_drop": "spoofed_inside_source"}


DEFAULT_LIMIT = 1000     # sessions per page of GET /nat/connections
MAX_LIMIT = 10000
SCAN_BUDGET = 10000      # sessions one page may look at (filters that rarely match)


@dataclass
class Page:
    """One page of connections; ``next_after`` is the cursor of the next
    page (the last id looked at), None when nothing follows."""

    items: list[dict]
    next_after: int | None


class LookupError_(Exception):
    """A view question with no answer: ``status`` 400 or 404, and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ConnectionsView:
    """Read-only projections of every switch's NAT, every NAT bridge's."""

    def __init__(self, gateways: Gateway | Sequence[Gateway]) -> None:
        self.gateways = [gateways] if isinstance(gateways, Gateway) else list(gateways)

    def session_counts(self) -> Counter:
        """Live sessions by (protocol, state), every switch together."""
        counts: Counter = Counter()
        for _dpid, nat in self._services():
            counts.update((s.protocol_name, s.state.value) for s in nat.ct.sessions())
        return counts

    def top_hosts(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` inside hosts with the most live sessions."""
        hosts: Counter = Counter()
        for _dpid, nat in self._services():
            hosts.update(str(s.inside_ip) for s in nat.ct.sessions())
        return hosts.most_common(n)

    def per_switch(self) -> list[dict[str, Any]]:
        """Each connected switch's own numbers, with its bridge profile's name."""
        now, out = time.monotonic(), []
        for gw in self.gateways:
            for dpid, st in sorted(gw.switches.items()):
                if st.nat is not None:
                    ct = st.nat.ct.stats(now)
                    out.append({"bridge": gw.config.name, "dpid": dpid, "active": ct.active,
                                "created": ct.created,
                                "ports_in_use": {name: ct.ports_in_use.get(name, 0)
                                                 for name in PROTOCOLS},
                                "addresses": {str(a): {"hosts": hosts, "ports_in_use": ports}
                                              for a, hosts, ports in st.nat.ct.pool_usage()}})
        return out

    def bridges(self) -> list[dict[str, Any]]:
        """``GET /nat/bridges``: each NAT bridge profile and its switches now
        (the status page's first table)."""
        rows = self.per_switch()
        return [{"bridge": gw.config.name,
                 "dpid": None if gw.config.dpid is None else f"{gw.config.dpid:016x}",
                 "external_ip": str(gw.config.external_address),
                 "external_pool": [str(a) for a in gw.config.nat_addresses],
                 "switches": [{"dpid": f"{r['dpid']:016x}", "active": r["active"],
                               "created": r["created"]}
                              for r in rows if r["bridge"] == gw.config.name]}
                for gw in self.gateways]

    def port_mappings(self, dpid: int | None = None) -> list[dict[str, Any]]:
        """``GET /nat/port-mappings``: what inside hosts mapped over PCP and
        NAT-PMP, each with its switch and the seconds it has left."""
        now = time.monotonic()
        return [{**row, "dpid": f"{sw:016x}"} for sw, nat in self._services()
                if dpid is None or sw == dpid for row in nat.port_control.view(now)]

    def _services(self, gateways: list[Gateway] | None = None) -> list[tuple[int, SwitchNat]]:
        """(dpid, its NAT) of every switch with one, of ``gateways`` (default: all)."""
        return sorted(((dpid, st.nat) for gw in (gateways or self.gateways)
                       for dpid, st in gw.switches.items() if st.nat is not None),
                      key=lambda pair: pair[0])

    @staticmethod
    def session(dpid: int, nat: SwitchNat, s: Session, now: float, wall: float) -> dict:
        return {
            "id": s.id, "dpid": dpid, "protocol": s.protocol_name, "state": s.state.value,
            "internal_ip": str(s.inside_ip), "internal_port": s.inside_port,
            "external_ip": str(s.external_ip), "external_port": s.external_port,
            "remote_ip": str(s.remote_ip), "remote_port": s.remote_port,
            "packets_out": s.packets_out, "bytes_out": s.bytes_out,
            "packets_in": s.packets_in, "bytes_in": s.bytes_in,
            "created": round(wall - (now - s.created_at), 3),
            "last_seen": round(wall - (now - s.last_seen), 3),
            "timeout": int(s.timeout),
            "expires_in": round(max(0.0, s.expires_at - now), 1),
            "inbound_initiated": s.inbound_initiated,
            "path": nat.where(s),
        }

    def connections(self, protocol: str | None = None, internal_ip: str | None = None,
                    limit: int = DEFAULT_LIMIT, after: int = 0,
                    match: Callable[[int, Session], bool] | None = None) -> Page:
        """Live sessions with an id above ``after``, ascending by (id, dpid),
        at most ``limit`` of them (plus the other switches' sessions of the
        page's last id, so that ``after`` never splits an id).

        A page is bounded work whatever the table holds: the ids are copied
        and sorted at C speed (about 1 ms per 100,000), then at most
        ``SCAN_BUDGET`` sessions are looked at.  With a filter that matches
        few sessions a page can end with fewer than ``limit`` items; its
        ``next_after`` says where to go on (None: nothing follows).
        ``match`` (ryu_app.ops.filters) is asked of every session looked at.
        """
        proto = None
        if protocol is not None:
            proto = PROTOCOLS.get(protocol.lower())
            if proto is None:
                raise LookupError_(400, f"protocol must be one of {', '.join(PROTOCOLS)}")
        if internal_ip is not None:
            try:
                internal_ip = str(ipaddress.IPv4Address(internal_ip))
            except ValueError:
                raise LookupError_(400, f"internal_ip {internal_ip!r} is not an IPv4 address") from None
        now, wall = time.monotonic(), time.time()
        services = dict(self._services())
        candidates = []
        for dpid, nat in services.items():
            ids = nat.ct.session_ids()
            tail = itertools.islice(ids, bisect.bisect_right(ids, after), None)
            candidates.append(zip(tail, itertools.repeat(dpid)))
        if not candidates:
            return Page([], None)
        merged = candidates[0] if len(candidates) == 1 else heapq.merge(*candidates)
        out: list[dict] = []
        scanned, last = 0, None
        for sid, dpid in merged:
            if sid != last and (len(out) >= limit or scanned >= SCAN_BUDGET):
                return Page(out, last)
            scanned, last = scanned + 1, sid
            nat = services[dpid]
            s = nat.ct.get(sid)
            if s is None:
                continue
            if proto is not None and s.protocol != proto:
                continue
            if internal_ip is not None and str(s.inside_ip) != internal_ip:
                continue
            if match is not None and not match(dpid, s):
                continue
            out.append(self.session(dpid, nat, s, now, wall))
        return Page(out, None)

    def find(self, sid: int, dpid: int | None = None) -> tuple[int, SwitchNat, Session]:
        hits = [(d, nat, s) for d, nat in self._services()
                if (dpid is None or d == dpid) and (s := nat.ct.get(sid)) is not None]
        if not hits:
            raise LookupError_(404, f"no connection {sid}")
        if len(hits) > 1:
            raise LookupError_(400, f"connection {sid} exists on several switches; add ?dpid=")
        return hits[0]

    def connection(self, sid: int, dpid: int | None = None) -> dict:
        d, nat, s = self.find(sid, dpid)
        return self.session(d, nat, s, time.monotonic(), time.time())

    def stats(self) -> dict[str, Any]:
        """Every bridge together, and with several bridges each one under
        ``bridges`` (by profile name)."""
        total = self._stats(self.gateways)
        if len(self.gateways) > 1:
            total["bridges"] = {gw.config.name: {"dpid": gw.config.dpid,
                                                 "external_ip": str(gw.config.external_address),
                                                 "external_pool": [str(a) for a in
                                                                   gw.config.nat_addresses],
                                                 **self._stats([gw])}
                                for gw in self.gateways}
        return total

    def _stats(self, gateways: list[Gateway]) -> dict[str, Any]:
        counters = _sum_counters(gw.counters.as_dict() for gw in gateways)
        totals: Counter = Counter()
        refused: Counter = Counter()
        ports: Counter = Counter()
        quarantined: Counter = Counter()
        switch_drops: Counter = Counter()
        in_switch = records = 0
        now = time.monotonic()
        addresses: dict[str, dict[str, Any]] = {}
        blocks: Counter = Counter()
        leases: Counter = Counter()
        requests: Counter = Counter()
        for _dpid, nat in self._services(gateways):
            st = nat.ct.stats(now)
            leases.update(lease.origin for lease in nat.port_control.leases)
            requests.update(nat.port_control.counts)
            blocks.update(nat.ct.blocks_in_use())
            for address, hosts, in_use in nat.ct.pool_usage():
                row = addresses.setdefault(str(address), {"hosts": 0, "ports_in_use": Counter()})
                row["hosts"] += hosts
                row["ports_in_use"].update(in_use)
            totals.update(active=st.active, created=st.created, expired=st.expired,
                          removed=st.removed, mappings=st.mappings)
            refused.update(st.refused_by_reason)
            ports.update(st.ports_in_use)
            quarantined.update(st.ports_quarantined)
            for name, count in nat.switch_drops.items():
                switch_drops[SWITCH_DROP_NAMES.get(name, name)] += count
            in_switch += sum(1 for r in nat.records.values() if r.installed and not r.ending)
            records += len(nat.records)
        return {
            **counters,
            "switches_connected": sum(len(gw.switches) for gw in gateways),
            "active": totals["active"], "created": totals["created"],
            "expired": totals["expired"], "removed": totals["removed"],
            "mappings": totals["mappings"],
            "sessions_in_switch": in_switch,
            "flow_records": records,     # sessions' flows tracked, ending ones too
            "refused": dict(sorted(refused.items())),
            "switch_drops": dict(sorted(switch_drops.items())),
            "ports_in_use": {name: ports.get(name, 0) for name in PROTOCOLS},
            "ports_quarantined": {name: quarantined.get(name, 0) for name in PROTOCOLS},
            # port_block_size: blocks hosts hold now, per protocol.
            "port_blocks": {name: blocks.get(name, 0) for name in PROTOCOLS},
            # Per NAT address (external_pool): hosts paired with it, ports it holds.
            "addresses": {a: {"hosts": row["hosts"],
                              "ports_in_use": {n: row["ports_in_use"].get(n, 0) for n in PROTOCOLS}}
                          for a, row in sorted(addresses.items(), key=lambda kv: ipaddress.IPv4Address(kv[0]))},
            # PCP and NAT-PMP (port_control): mappings held now, requests by outcome.
            "port_control": {"mappings": {"pcp": leases["pcp"], "natpmp": leases["natpmp"]},
                             "requests": dict(sorted(requests.items()))},
            "packet_ins_metered": self._metered(gateways),
            "packet_in_meter_rates": self._meter_rates(gateways),
        }

    @staticmethod
    def _metered(gateways: list[Gateway]) -> dict[str, int]:
        """Packet-ins each port's meter dropped (last meter-stats poll), by port
        name, and each uplink class's (``uplink-arp``, ...)."""
        out: Counter = Counter()
        for gw in gateways:
            for state in gw.switches.values():
                names = {no: name for name, no in state.ports.items()}
                for port, dropped in state.metered.items():
                    out[names.get(port, str(port))] += dropped
                out.update(state.class_drops)
        return dict(sorted(out.items()))


    @staticmethod
    def _meter_rates(gateways: list[Gateway]) -> dict[str, int]:
        """Each metered port's packet-in rate now (ryu_app.openflow.punt_meters), by port name."""
        out: dict[str, int] = {}
        for gw in gateways:
            for state in gw.switches.values():
                names = {no: name for name, no in state.ports.items()}
                for port in state.metered:
                    out[names.get(port, str(port))] = state.meter_rates.get(
                        port, gw.config.admission.port_rate)
        return dict(sorted(out.items()))


def _sum_counters(dicts: Any) -> dict[str, Any]:
    """GatewayCounters.as_dict() of several gateways added up (``drops`` by reason)."""
    total: dict[str, Any] = {}
    for d in dicts:
        for key, value in d.items():
            if isinstance(value, dict):
                merged = Counter(total.get(key, {}))
                merged.update(value)
                total[key] = dict(sorted(merged.items()))
            else:
                total[key] = total.get(key, 0) + value
    return total
