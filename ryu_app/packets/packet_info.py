"""What the NAT needs to know of an IPv4 packet, in plain values.

``classify`` turns a frame parsed by ``ryu.lib.packet`` into a
:class:`PacketInfo` or a short drop reason.  Keeping this separate lets the
NAT logic work on ints and strings and never touch ryu's packet classes.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from functools import lru_cache

from ryu.lib.packet import icmp, ipv4, packet, tcp, udp

# TCP, UDP and ICMP are also imported from here by ryu_app.nat; their one
# home is conntrack.keys.
from conntrack.keys import ICMP, TCP, UDP
from ryu_app.packets import wire

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


_ip_text = lru_cache(maxsize=65536)(socket.inet_ntoa)


def quick_classify(data: bytes) -> tuple[str, PacketInfo] | None:
    """(source MAC, PacketInfo) of an Ethernet/IPv4 TCP or UDP frame that is
    not a fragment, read in place; None for anything else, which then takes
    :func:`wire.parse_frame` and :func:`classify`.

    This is nearly every packet-in: a new flow's first packet.  The full
    parse turns both MACs and both addresses into text through netaddr and
    builds an object per TCP option, a third of the packet's cost in the
    controller.  Whatever it accepts, the full parse would have parsed the
    same way: the same safety checks (``wire.ipv4_problem``,
    ``wire.tcp_options_problem``) run first, and ``tests/unit/packets/test_wire.py``
    proves the results equal over random and malformed frames.
    """
    if len(data) < 34 or data[12] != 0x08 or data[13] != 0x00:
        return None
    ip = bytes(data[14:])           # Ryu hands packet-in data over as a bytearray
    proto = ip[9]
    if proto != TCP and proto != UDP:
        return None
    if wire.ipv4_problem(ip) or int.from_bytes(ip[6:8], "big") & 0x3FFF:
        return None
    l4 = ip[(ip[0] & 0x0F) * 4:int.from_bytes(ip[2:4], "big")]
    src, dst = _ip_text(ip[12:16]), _ip_text(ip[16:20])
    sport, dport = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
    if proto == TCP:
        if len(l4) < 20:
            return None
        try:
            if wire.tcp_options_problem(l4):
                return None
        except (ValueError, TypeError, IndexError, KeyError):
            return None
        return data[6:12].hex(":"), PacketInfo(TCP, src, dst, sport, dport, ip[8], l4[13] & 0x3F)
    if len(l4) < 8:
        return None
    return data[6:12].hex(":"), PacketInfo(UDP, src, dst, sport, dport, ip[8])


def tcp_flags_of(data: bytes) -> int | None:
    """TCP flags of a (possibly truncated) IPv4/TCP frame, or None."""
    return wire.tcp_flags(data)
