"""Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8): inside to inside through
the NAT address.

An inside host A sends to NAT:P, where P is another inside host B's mapping
or a port forward.  A gets (or keeps) its own mapping NAT:Pa, exactly as if
NAT:P were a remote.  The packet then enters B's mapping as if it came from
the outside remote NAT:Pa, so the filtering mode decides as for any inbound
packet (forwards accept everyone).  B sees NAT:Pa as its peer, never A's
inside address.  Each direction is one flow that rewrites source *and*
destination and goes straight back inside; it carries the cookie of the
session whose forward direction it is, so flow-removed ends that session.
"""
from __future__ import annotations

from ryu.ofproto import ofproto_v1_3_parser as parser

from conntrack import ConnTrack, Refused, RefuseReason, Session
from ryu_app.nat.addresses import ipv4
from ryu_app.nat.counters import Drop, Report
from ryu_app.nat.flow_book import FlowBook
from ryu_app.nat.flow_record import FlowRecord
from ryu_app.nat.inside import InsideSide
from ryu_app.nat.source_guard import Bindings
from ryu_app.nat.uplink import Uplink
from ryu_app.openflow import flows
from ryu_app.openflow.flows import CookieKind
from ryu_app.packets.packet_info import PacketInfo

_L4 = flows.L4_MATCH_FIELDS


def _actions(src_port: int, to: Session, peer_port: int, mac: str, out_port: int,
             gateway_mac: str, nat_ip: str) -> list:
    """Source NAT:src_port, destination the inside end of ``to``."""
    sport, dport = _L4[to.protocol]
    return [parser.OFPActionSetField(eth_src=gateway_mac), parser.OFPActionSetField(eth_dst=mac),
            parser.OFPActionSetField(ipv4_src=nat_ip),
            parser.OFPActionSetField(**{sport: src_port}),
            parser.OFPActionSetField(ipv4_dst=str(to.inside_ip)),
            parser.OFPActionSetField(**{dport: to.inside_port}),
            parser.OFPActionDecNwTtl(), parser.OFPActionOutput(out_port, 0)]


class Hairpin:
    """Hairpinned sessions of one switch."""

    def __init__(self, ct: ConnTrack, book: FlowBook, hosts: Bindings, inside: InsideSide,
                 uplink: Uplink, drop: Drop, report: Report | None = None) -> None:
        self.ct, self.book, self.hosts, self.inside = ct, book, hosts, inside
        self.uplink, self.drop, self.report = uplink, drop, report

    def packet(self, info: PacketInfo, data: bytes, now: float) -> list:
        """A TCP/UDP packet from inside to NAT:port (the first of its flow)."""
        ct, book, hosts, up = self.ct, self.book, self.hosts, self.uplink
        if info.protocol not in _L4:
            return self.drop("hairpin_unsupported")
        if ct.mapping_of_port(info.protocol, info.dport, info.dst) is None:
            return self.drop("hairpin_no_mapping")
        sender = ct.lookup_outbound(info.protocol, info.src, info.sport, info.dst, info.dport)
        fresh = sender is None
        try:
            if sender is None:
                sender = ct.create_outbound(info.protocol, info.src, info.sport, info.dst,
                                            info.dport, now, info.tcp_flags)
            # The target sees the sender at the sender's own NAT address.
            target = ct.accept_inbound(info.protocol, str(sender.external_ip), sender.external_port,
                                       info.dst, info.dport, now, info.tcp_flags)
        except Refused as refused:
            # Refused by the target's filtering, the sender's session stays:
            # it is what lets the target's answer in (RFC 4787 REQ-9a: two
            # hosts that each send to the other's external ip:port get
            # through, each once its own first datagram has left).  Any
            # other refusal takes back a mapping made for this packet.
            if fresh and sender is not None and refused.reason != RefuseReason.FILTERED:
                book.end(sender, "hairpin_refused", now)
            if self.report is not None:     # whose quota: the sender's, else the target's
                target_map = ct.mapping_of_port(info.protocol, info.dport, info.dst)
                whose = (int(ipv4(info.src)) if sender is None or target_map is None
                         else int(target_map.inside_ip))
                self.report(refused.reason, whose, info.protocol, now)
            return self.drop(f"hairpin_{refused.reason.value}")
        a, b = hosts.get(str(sender.inside_ip)), hosts.get(str(target.inside_ip))
        if a is None or b is None:      # B never spoke: ask, the sender will retry
            return self.drop("hairpin_unresolved") + [
                self.inside.arp_request(str(target.inside_ip))]
        there = _actions(sender.external_port, target, sender.external_port, b.mac, b.port,
                         up.gateway_mac, str(sender.external_ip))
        back = _actions(target.external_port, sender, target.external_port, a.mac, a.port,
                        up.gateway_mac, str(target.external_ip))
        msgs = (self._flow(sender, there, a.mac, target.id)
                + self._flow(target, back, b.mac, sender.id))
        book.records[sender.id].count_sent(CookieKind.SESSION_OUT, len(data))
        return msgs + [flows.packet_out_actions(there, data)]

    def _flow(self, session: Session, actions: list, next_mac: str, peer: int) -> list:
        """The one flow of ``session`` (its forward direction), once; for TCP
        it is watched for FIN/RST like any other TCP session flow, so the
        pair's state (and timeouts) follow the connection."""
        book = self.book
        rec = book.records.get(session.id)
        if rec is not None and CookieKind.SESSION_OUT in rec.installed:
            rec.peer = peer          # the other end may be a new session by now
            return []
        spec = book.spec(session, next_mac)
        assert spec is not None     # both hosts were found bound
        if rec is None:
            rec = book.records[session.id] = FlowRecord(spec)
        rec.spec, rec.installed, rec.ending = spec, {CookieKind.SESSION_OUT}, False
        rec.hairpin, rec.actions, rec.peer = True, actions, peer
        return [book.flow_of(rec, CookieKind.SESSION_OUT)]
