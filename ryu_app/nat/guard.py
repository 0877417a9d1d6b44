"""The source guard at work on one switch: bindings made, checked, moved and
freed, and the switch rules and session flows that follow them.

:mod:`ryu_app.nat.source_guard` is the bookkeeping; this is what the
switch is told.  A packet path asks :meth:`SourceGuard.host_seen` before
it learns anything from an inside packet.
"""
from __future__ import annotations

import logging

from conntrack import ConnTrack, Refused, RefuseReason
from ryu_app.nat.addresses import ipv4
from ryu_app.nat.counters import GatewayCounters
from ryu_app.nat.flow_book import FlowBook
from ryu_app.nat.inside import InsideSide
from ryu_app.nat.source_guard import Bindings, Claim, InsideHost
from ryu_app.openflow import flows
from ryu_app.openflow.flows import CookieKind
from ryu_app.packets import replies

LOG = logging.getLogger(__name__)

SWEEP_EVERY = 5.0    # seconds between looks for bindings gone idle


class SourceGuard:
    """Inside addresses bound to their port and MAC, as the switch enforces them."""

    def __init__(self, hosts: Bindings, ct: ConnTrack, book: FlowBook, inside: InsideSide,
                 counters: GatewayCounters, max_connections_per_host: int) -> None:
        self.hosts, self.ct, self.book, self.inside = hosts, ct, book, inside
        self.counters = counters
        self.max_connections_per_host = max_connections_per_host
        # Addresses unbound (link down, idle) while sessions of theirs lived:
        # when they are bound again, those sessions' flows follow.
        self.orphans: set[str] = set()
        self.drops: dict[int, int] = {}   # address -> packets its drop rule counted
        self._swept = 0.0

    def host_seen(self, ip: str, mac: str, port: int, now: float) -> list | None:
        """A packet from (port, mac) names ``ip`` as its source.  None when the
        address is bound elsewhere (``ryu_app.nat.source_guard``): refused,
        counted, learned from never.  Otherwise the rules a new binding needs."""
        claim = self.hosts.claim(ip, mac, port, now)
        if claim is Claim.SAME:
            return []
        if claim is not Claim.NEW:
            self.counters.drop("source_guard" if claim is Claim.ELSEWHERE
                               else "source_guard_full")
            return None
        msgs = flows.binding_rules(ip, mac, port)
        while self.hosts.evicted:           # the table was full: the oldest made room
            msgs += flows.delete_binding(self.hosts.evicted.pop())
        if ip in self.orphans:
            self.orphans.discard(ip)
            msgs += self._follow(ip, InsideHost(mac, port))
        return msgs

    def check_quota(self, ip: str) -> None:
        """``max_connections_per_host`` is charged to the (port, MAC) that
        sends, across every address bound there: more addresses are no way
        around it.  Raises :class:`Refused` when it is used up."""
        siblings = self.hosts.siblings(ip)
        if len(siblings) > 1 and sum(self.ct.host_sessions(int(ipv4(a))) for a in siblings) \
                >= self.max_connections_per_host:
            raise Refused(RefuseReason.HOST_QUOTA, f"port and MAC of {ip}")

    def arp_from_inside(self, ip: str, mac: str, port: int, now: float) -> list:
        """An ARP from inside names ``ip`` as its sender.  From where the
        address is bound, or for a free one, it binds as any packet does;
        from elsewhere it starts a move check (both places asked) and
        teaches nothing."""
        self.hosts.answered(ip, mac, port)
        if self.hosts.checking(ip) is not None:
            return []
        old = self.hosts.get(ip)
        if old is None or (old.mac, old.port) == (mac, port):
            msgs = self.host_seen(ip, mac, port, now)
            return msgs or []
        self.counters.drop("source_guard_arp")
        if not self.hosts.start_check(ip, mac, port, now):
            return []
        self.counters.move_checks += 1
        LOG.warning("%s is bound to port %d (%s); %s on port %d claims it: asking both by ARP",
                    ip, old.port, old.mac, mac, port)
        return [self._probe(ip, old), self._probe(ip, InsideHost(mac, port))]

    def _probe(self, ip: str, place: InsideHost) -> object:
        return flows.packet_out(place.port, replies.arp_request(
            self.inside.gateway_mac, self.inside.gateway_ip, ip, place.mac))

    def _follow(self, ip: str, host: InsideHost) -> list:
        """The host of ``ip`` is at ``host`` now: its sessions' flows follow
        (the forward flow matches the port and MAC, so the old one goes)."""
        msgs: list = []
        for rec in self.book.records.values():
            p = rec.spec
            if p.inside_ip != ip or not rec.installed or rec.ending or rec.hairpin:
                continue
            if (p.inside_mac, p.inside_switch_port) == (host.mac, host.port):
                continue
            rec.spec = p._replace(inside_mac=host.mac, inside_switch_port=host.port)
            if CookieKind.SESSION_OUT in rec.installed:
                rec.replace(CookieKind.SESSION_OUT)
                msgs.append(flows.delete_forward_flow(p.session_id))
            msgs += [self.book.flow_of(rec, kind) for kind in sorted(rec.installed)]
        return msgs

    def unbind(self, ips: list[str], why: str) -> list:
        """Free addresses (their port went down, or they idled): their rules go."""
        msgs: list = []
        for ip in ips:
            if self.hosts.unbind(ip) is None:
                continue
            LOG.info("%s unbound (%s)", ip, why)
            self.drops.pop(int(ipv4(ip)), None)
            if self.ct.host_sessions(int(ipv4(ip))):
                self.orphans.add(ip)
            msgs += flows.delete_binding(ip)
        return msgs

    def ports_down(self, ports: set[int]) -> list:
        """Inside ports gone or down: the addresses bound there are free."""
        return self.unbind(self.hosts.on_ports(ports), "port down") if ports else []

    def bound_ports(self) -> set[int]:
        """The inside ports some address is bound to."""
        return {host["port"] for host in self.hosts.as_dict().values()}

    def tick(self, now: float) -> list:
        """Move checks that are due; now and then, bindings gone idle."""
        msgs: list = []
        outcome = self.hosts.due(now)
        msgs += [self._probe(ip, place) for ip, place in outcome.probe]
        for ip, claimant in outcome.refused:
            LOG.warning("%s stays bound: its port answered, or %s on port %d did not",
                        ip, claimant.mac, claimant.port)
            self.counters.drop("source_guard_move_refused")
        for ip, host in outcome.moved:
            LOG.warning("%s moved to port %d (%s): its old place was silent", ip, host.port,
                        host.mac)
            self.counters.hosts_moved += 1
            msgs += flows.delete_binding(ip) + flows.binding_rules(ip, host.mac, host.port)
            msgs += self._follow(ip, host)
        if now - self._swept >= SWEEP_EVERY:
            self._swept = now
            msgs += self.unbind(self.hosts.idle_ones(
                now, lambda ip: self.ct.host_sessions(int(ipv4(ip))) > 0), "idle")
        return msgs
