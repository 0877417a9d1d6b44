"""Inbound sessions: packets from outside that may open a session.

Two kinds reach the controller through a mapping probe flow: packets to a
port forward (DNAT, always accepted) and, under endpoint-independent or
address-dependent filtering, packets from a new remote to a live mapping.
The engine decides (filtering, limits); this module resolves the inside host
(by ARP when it has never spoken, holding the packet meanwhile) and installs
the session's flows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from conntrack import INBOUND, Refused, Session
from ryu_app.openflow import flows
from ryu_app.packets import replies
from ryu_app.openflow.flows import CookieKind
from ryu_app.settings.forwards import Forward
from ryu_app.nat.neighbors import NextHops
from ryu_app.packets.packet_info import PacketInfo

if TYPE_CHECKING:
    from ryu_app.nat.service import NatService


class Inbound:
    """Port forwards and inbound-initiated sessions of one NatService."""

    def __init__(self, nat: "NatService") -> None:
        self.nat = nat
        self.forwards: dict[tuple[str, int], Forward] = {}
        self.inside_arp: NextHops[tuple[int, int, bytes]] = NextHops()
        self.inside_ports: set[int] = set()

    # -- forwards ---------------------------------------------------------------
    def add_forward(self, fwd: Forward) -> list:
        """Install a forward; Refused (port in use...) or ValueError if it cannot be."""
        if fwd.key in self.forwards:
            raise ValueError(f"{fwd.protocol} port {fwd.external_port} is already forwarded "
                             f"to {self.forwards[fwd.key].internal_ip}:"
                             f"{self.forwards[fwd.key].internal_port}")
        self.nat.ct.add_forward(fwd.proto, fwd.external_port, fwd.internal_ip, fwd.internal_port)
        self.forwards[fwd.key] = fwd
        return self.nat.probes.set(fwd.proto, fwd.external_port, add=True)

    def remove_forward(self, protocol: str, port: int) -> list | None:
        fwd = self.forwards.pop((protocol, port), None)
        if fwd is None:
            return None
        mapping = self.nat.ct.remove_forward(fwd.proto, port)
        if mapping is not None and mapping.count:
            return []          # its live sessions keep the probe until they end
        return self.nat.probes.set(fwd.proto, port, add=False)

    # -- packets ----------------------------------------------------------------------
    def packet(self, eth_src: str, info: PacketInfo, data: bytes, now: float) -> list:
        """A TCP/UDP packet to the NAT address that a probe flow sent up."""
        nat = self.nat
        try:
            session = nat.ct.accept_inbound(info.protocol, info.src, info.sport, info.dst,
                                            info.dport, now, info.tcp_flags)
        except Refused as refused:
            return nat._drop(f"inbound_{refused.reason.value}")
        # The next hop's MAC comes from ARP alone, never from this packet's
        # source (a forged one would take the session's replies).
        return self.deliver(session, data, now)

    def deliver(self, session: Session, data: bytes, now: float) -> list:
        """Install the session's flows and send ``data`` in through them."""
        nat = self.nat
        host = nat.hosts.get(str(session.inside_ip))
        if host is None:
            return self._resolve_inside(session, data, now)
        hop = nat.next_hop(str(session.remote_ip))
        mac = nat.next_hops.lookup(hop, now) if hop is not None else None
        if mac is None:
            if hop is not None:       # hold it and ask; the reply releases it
                accepted, ask = nat.next_hops.hold(hop, (session.id, INBOUND, data), now)
                if accepted:
                    return [nat._arp_request(hop, now)] if ask else []
            nat._drop("inbound_unresolved")
            return self._give_up(session, now)
        msgs = nat._ensure_flows(session, mac)
        rec = nat.records[session.id]
        rec.count_sent(CookieKind.SESSION_IN, len(data))
        return msgs + [flows.packet_out_actions(flows.reverse_actions(rec.path), data)]

    def _resolve_inside(self, session: Session, data: bytes, now: float) -> list:
        ip = str(session.inside_ip)
        accepted, ask = self.inside_arp.hold(ip, (session.id, INBOUND, data), now)
        if not accepted:
            self.nat._drop("arp_queue_full")
            return self._give_up(session, now)
        return [self.arp_request(ip)] if ask else []

    def _give_up(self, session: Session, now: float) -> list:
        """A session nothing waits for and no flow carries is over (it would
        otherwise linger, flowless, until the engine's backstop)."""
        if session.id in self.nat.records or self.inside_arp.holds(session.id):
            return []
        return self.nat.end(session, "inside_host_unresolved", now)

    def arp_request(self, ip: str) -> object:
        """Ask every inside port (never the uplink) who has ``ip``."""
        cfg = self.nat.config
        frame = replies.arp_request(cfg.gateway_mac, str(cfg.internal_gateway_ip), ip)
        return flows.packet_out_ports(sorted(self.inside_ports), frame)

    def learned_inside(self, ip: str, now: float) -> list:
        """An inside host answered ARP: deliver what waited for it."""
        msgs: list = []
        for sid, _direction, data in self.inside_arp.learn(ip, "", now):
            session = self.nat.ct.get(sid)
            if session is not None:
                msgs += self.deliver(session, data, now)
        return msgs

    def tick(self, now: float) -> list:
        ask, given_up = self.inside_arp.tick(now)
        msgs = [self.arp_request(ip) for ip in ask]
        for sid, _direction, _data in given_up:
            self.nat._drop("inside_host_unresolved")
            session = self.nat.ct.get(sid)
            if session is not None:
                msgs += self._give_up(session, now)
        return msgs
