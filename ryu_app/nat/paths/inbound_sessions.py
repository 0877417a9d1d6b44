"""Inbound sessions: packets from outside that may open a session.

Two kinds reach the controller through a mapping probe flow: packets to a
port forward (DNAT, always accepted) and, under endpoint-independent or
address-dependent filtering, packets from a new remote to a live mapping.
The engine decides (filtering, limits); this module resolves the inside host
(by ARP when it has never spoken, holding the packet meanwhile) and installs
the session's flows.
"""
from __future__ import annotations

from conntrack import INBOUND, ConnTrack, Refused, Session
from ryu_app.nat.counters import Drop, Report
from ryu_app.nat.flow_book import FlowBook
from ryu_app.nat.inside import InsideSide
from ryu_app.nat.probes import MappingProbes
from ryu_app.nat.source_guard import Bindings
from ryu_app.nat.uplink import Uplink
from ryu_app.openflow import flows
from ryu_app.openflow.flows import CookieKind
from ryu_app.packets.packet_info import PacketInfo
from ryu_app.settings.forwards import Forward


class InboundSessions:
    """Port forwards and inbound-initiated sessions of one switch."""

    def __init__(self, ct: ConnTrack, book: FlowBook, hosts: Bindings, uplink: Uplink,
                 inside: InsideSide, probes: MappingProbes, drop: Drop,
                 report: Report | None = None) -> None:
        self.ct, self.book, self.hosts, self.uplink = ct, book, hosts, uplink
        self.inside, self.probes, self.drop, self.report = inside, probes, drop, report
        self.forwards: dict[tuple[str, int], Forward] = {}

    # -- forwards ---------------------------------------------------------------
    def add_forward(self, fwd: Forward) -> list:
        """Install a forward; Refused (port in use...) or ValueError if it cannot be."""
        if fwd.key in self.forwards:
            raise ValueError(f"{fwd.protocol} port {fwd.external_port} is already forwarded "
                             f"to {self.forwards[fwd.key].internal_ip}:"
                             f"{self.forwards[fwd.key].internal_port}")
        mapping = self.ct.add_forward(fwd.proto, fwd.external_port, fwd.internal_ip,
                                      fwd.internal_port)
        self.forwards[fwd.key] = fwd
        return self.probes.set(fwd.proto, fwd.external_port, add=True,
                               address=str(mapping.external_ip))

    def remove_forward(self, protocol: str, port: int) -> list | None:
        fwd = self.forwards.pop((protocol, port), None)
        if fwd is None:
            return None
        mapping = self.ct.remove_forward(fwd.proto, port)
        if mapping is None:
            return []
        if mapping.count:
            return []          # its live sessions keep the probe until they end
        return self.probes.set(fwd.proto, port, add=False, address=str(mapping.external_ip))

    # -- packets ----------------------------------------------------------------------
    def packet(self, eth_src: str, info: PacketInfo, data: bytes, now: float) -> list:
        """A TCP/UDP packet to the NAT address that a probe flow sent up."""
        try:
            session = self.ct.accept_inbound(info.protocol, info.src, info.sport, info.dst,
                                             info.dport, now, info.tcp_flags)
        except Refused as refused:
            mapping = self.ct.mapping_of_port(info.protocol, info.dport, info.dst)
            if self.report is not None and mapping is not None:   # the host over its quota
                self.report(refused.reason, int(mapping.inside_ip), info.protocol, now)
            return self.drop(f"inbound_{refused.reason.value}")
        # The next hop's MAC comes from ARP alone, never from this packet's
        # source (a forged one would take the session's replies).
        return self.deliver(session, data, now)

    def deliver(self, session: Session, data: bytes, now: float) -> list:
        """Install the session's flows and send ``data`` in through them."""
        up = self.uplink
        host = self.hosts.get(str(session.inside_ip))
        if host is None:
            return self._resolve_inside(session, data, now)
        hop = up.route(str(session.remote_ip))
        mac = up.hops.lookup(hop, now) if hop is not None else None
        if mac is None:
            if hop is not None:       # hold it and ask; the reply releases it
                accepted, ask = up.hops.hold(hop, (session.id, INBOUND, data), now)
                if accepted:
                    return [up.arp_request(hop, now)] if ask else []
            self.drop("inbound_unresolved")
            return self._give_up(session, now)
        msgs = self.book.ensure_flows(session, mac)
        rec = self.book.records[session.id]
        rec.count_sent(CookieKind.SESSION_IN, len(data))
        return msgs + [flows.packet_out_actions(flows.reverse_actions(rec.spec), data)]

    def _resolve_inside(self, session: Session, data: bytes, now: float) -> list:
        ip = str(session.inside_ip)
        accepted, ask = self.inside.waiting.hold(ip, (session.id, INBOUND, data), now)
        if not accepted:
            self.drop("arp_queue_full")
            return self._give_up(session, now)
        return [self.inside.arp_request(ip)] if ask else []

    def _give_up(self, session: Session, now: float) -> list:
        """A session nothing waits for and no flow carries is over (it would
        otherwise linger, flowless, until the engine's backstop)."""
        if session.id in self.book.records or self.inside.waiting.holds(session.id):
            return []
        return self.book.end(session, "inside_host_unresolved", now)

    def learned_inside(self, ip: str, now: float) -> list:
        """An inside host answered ARP: deliver what waited for it."""
        msgs: list = []
        for sid, _direction, data in self.inside.waiting.learn(ip, "", now):
            session = self.ct.get(sid)
            if session is not None:
                msgs += self.deliver(session, data, now)
        return msgs

    def tick(self, now: float) -> list:
        ask, given_up = self.inside.waiting.tick(now)
        msgs = [self.inside.arp_request(ip) for ip in ask]
        for sid, _direction, _data in given_up:
            self.drop("inside_host_unresolved")
            session = self.ct.get(sid)
            if session is not None:
                msgs += self._give_up(session, now)
        return msgs
