"""ICMP echo through the NAT, although OpenFlow 1.3 cannot see echo identifiers.

An echo flow can match addresses and the echo type, but neither match nor
rewrite the identifier.  So:

* **requests** of a session that kept its identifier (the engine keeps the
  inside identifier whenever no other inside host holds it) go through one
  forward flow per (inside host, remote): rewrite the source address, route.
  A session whose identifier had to change (two inside hosts used the same
  one) is translated in the controller, and any forward flow of its
  (host, remote) pair is taken out so no request leaves untranslated.
* **replies** always come to the controller (the gateway's ICMP rule for the
  NAT address), which finds the session by remote and identifier and
  delivers a rewritten copy.  A reverse flow cannot tell two inside hosts'
  replies apart, and removing one when a second host starts pinging races
  with the datapath's flow cache (a reply or two reach the wrong host), so
  none is ever installed.  Echo traffic is light; correctness wins.

Echo sessions end by the engine's idle timer, not by flow removal, since one
forward flow may serve several sessions of a host.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from conntrack import ICMP, INBOUND, OUTBOUND, Session
from ryu_app import flows
from ryu_app.flows import CookieKind
from ryu_app.packet_info import PacketInfo
from ryu_app.rewrite import rewrite_echo

if TYPE_CHECKING:
    from ryu_app.nat_service import FlowRecord, NatService


class EchoPaths:
    """Forward flows for echo requests where possible; replies in the controller."""

    def __init__(self, nat: "NatService") -> None:
        self.nat = nat
        self.owner: dict[tuple[str, str], int] = {}   # (inside, remote) -> sid on its flow

    def outbound(self, session: Session, next_hop_mac: str, data: bytes, now: float) -> list:
        """An echo request of ``session`` reached the controller: send it on."""
        pair = (str(session.inside_ip), str(session.remote_ip))
        nat = self.nat
        if session.port_preserved:
            msgs: list = []
            if pair not in self.owner:
                path = nat.path(session, next_hop_mac)
                rec = nat.records.get(session.id)
                if rec is None:
                    from ryu_app.nat_service import FlowRecord
                    rec = nat.records[session.id] = FlowRecord(path)
                rec.path, rec.installed, rec.ending = path, {CookieKind.SESSION_OUT}, False
                msgs.append(flows.session_flow(path, CookieKind.SESSION_OUT))
                self.owner[pair] = session.id
            path = nat.records[self.owner[pair]].path
            self._count(session, OUTBOUND, len(data), now)
            return msgs + [flows.packet_out_actions(flows.forward_actions(path), data)]
        msgs = self._unseat(pair)
        frame = rewrite_echo(data, eth_src=nat.config.gateway_mac, eth_dst=next_hop_mac,
                             ident=session.external_port, ip_src=str(session.external_ip))
        if frame is None:
            return msgs + nat._drop("malformed")
        self._count(session, OUTBOUND, len(frame), now)
        return msgs + [flows.packet_out(nat.uplink, frame)]

    def inbound(self, info: PacketInfo, data: bytes, now: float) -> list:
        """An echo reply to the NAT address: deliver it to its inside host."""
        nat = self.nat
        session = nat.ct.lookup_inbound(ICMP, info.src, 0, info.dst, info.dport)
        if session is None:
            return nat._drop("unsolicited_icmp")
        host = nat.hosts.get(str(session.inside_ip))
        if host is None:
            return nat._drop("inbound_unresolved")
        frame = rewrite_echo(data, eth_src=nat.config.gateway_mac, eth_dst=host.mac,
                             ident=session.inside_port, ip_dst=str(session.inside_ip))
        if frame is None:
            return nat._drop("malformed")
        self._count(session, INBOUND, len(frame), now)
        return [flows.packet_out(host.port, frame)]

    def _count(self, session: Session, direction: int, size: int, now: float) -> None:
        """Count a packet translated here (flow stats never see it) and refresh."""
        rec = self.nat.records.get(session.id)
        if rec is not None:
            rec.count_sent(CookieKind.SESSION_OUT if direction == OUTBOUND
                           else CookieKind.SESSION_IN, size)
            self.nat.ct.set_counters(session.id, *rec.totals(), now=now)
            return
        out, back = (1, 0) if direction == OUTBOUND else (0, 1)
        self.nat.ct.set_counters(session.id, session.packets_out + out,
                                 session.bytes_out + size * out, session.packets_in + back,
                                 session.bytes_in + size * back, now=now)

    def flow_gone(self, session: Session, rec: "FlowRecord") -> list:
        """The forward flow idled out: forget it; the next request re-seats it."""
        pair = (str(session.inside_ip), str(session.remote_ip))
        if self.owner.get(pair) == session.id:
            del self.owner[pair]
        return []

    def session_gone(self, session: Session) -> list:
        """An echo session ended (engine timer, operator): take its flow out."""
        pair = (str(session.inside_ip), str(session.remote_ip))
        msgs = self._unseat(pair) if self.owner.get(pair) == session.id else []
        rec = self.nat.records.get(session.id)
        if rec is not None and not rec.installed:
            self.nat.records.pop(session.id, None)
        return msgs

    def _unseat(self, pair: tuple[str, str]) -> list:
        sid = self.owner.pop(pair, None)
        rec = self.nat.records.get(sid) if sid is not None else None
        if rec is None or not rec.installed:
            return []
        rec.ending = True
        return [flows.delete_session_flows(sid)]

    def on_controller_path(self, session: Session) -> bool:
        pair = (str(session.inside_ip), str(session.remote_ip))
        return self.owner.get(pair) is None
