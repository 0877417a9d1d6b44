"""What the NAT needs to know of an IPv4 packet, in plain values.

``classify`` turns a frame parsed by ``ryu.lib.packet`` into a
:class:`PacketInfo` or a short drop reason.  Keeping this separate lets the
NAT logic work on ints and strings and never touch ryu's packet classes.
"""
from __future__ import annotations

from dataclasses import dataclass

from ryu.lib.packet import icmp, ipv4, packet, tcp, udp
from ryu.ofproto import inet

from ryu_app import wire

TCP, UDP, ICMP = inet.IPPROTO_TCP, inet.IPPROTO_UDP, inet.IPPROTO_ICMP
IP_MF = 0x1


@dataclass(frozen=True)
class PacketInfo:
    """An IPv4 packet's NAT-relevant fields.  ICMP echo: ports = identifier."""

    protocol: int
    src: str
    dst: str
    sport: int
    dport: int
    ttl: int
    tcp_flags: int = 0
    icmp_type: int = -1

    @property
    def is_echo_request(self) -> bool:
        return self.protocol == ICMP and self.icmp_type == icmp.ICMP_ECHO_REQUEST

    @property
    def is_echo_reply(self) -> bool:
        return self.protocol == ICMP and self.icmp_type == icmp.ICMP_ECHO_REPLY


def classify(pkt: packet.Packet, ip: ipv4.ipv4) -> PacketInfo | str:
    """PacketInfo of a parsed IPv4 packet, or the reason it cannot be NATed."""
    if ip.flags & IP_MF or ip.offset:
        return "fragment"
    if ip.proto == TCP:
        seg = pkt.get_protocol(tcp.tcp)
        if seg is None:
            return "malformed"
        return PacketInfo(TCP, ip.src, ip.dst, seg.src_port, seg.dst_port, ip.ttl, seg.bits)
    if ip.proto == UDP:
        dgram = pkt.get_protocol(udp.udp)
        if dgram is None:
            return "malformed"
        return PacketInfo(UDP, ip.src, ip.dst, dgram.src_port, dgram.dst_port, ip.ttl)
    if ip.proto == ICMP:
        msg = pkt.get_protocol(icmp.icmp)
        if msg is None:
            return "malformed"
        if msg.type in (icmp.ICMP_ECHO_REQUEST, icmp.ICMP_ECHO_REPLY):
            if not isinstance(msg.data, icmp.echo):
                return "malformed"
            ident = msg.data.id
            return PacketInfo(ICMP, ip.src, ip.dst, ident, ident, ip.ttl, icmp_type=msg.type)
        return PacketInfo(ICMP, ip.src, ip.dst, 0, 0, ip.ttl, icmp_type=msg.type)
    return "unsupported_protocol"


def tcp_flags_of(data: bytes) -> int | None:
    """TCP flags of a (possibly truncated) IPv4/TCP frame, or None."""
    try:
        pkt = wire.parse_frame(data)
    except wire.Malformed:
        return None
    seg = pkt.get_protocol(tcp.tcp)
    return None if seg is None else seg.bits
