"""ICMP errors from outside about a NATed packet, translated for the inside host.

A router on the path answers our translated packet (NAT address:external
port -> remote) with Destination Unreachable (incl. 3/4 fragmentation needed,
for PMTU discovery), Time Exceeded (traceroute) or Parameter Problem.  The
error goes to the NAT address and quotes our packet; the inside host only
recognises it once both the outer and the embedded headers are reverted
(RFC 5508 REQ-4/5/10).  OpenFlow 1.3 cannot rewrite bytes inside an ICMP
payload, so the controller does it here, on raw bytes: the quote is usually
truncated, which ``ryu.lib.packet`` parses poorly, and the embedded L4
checksum can then only be adjusted incrementally (RFC 1624), never recomputed.

Pure: sessions and hosts come from the caller's callables.  The lookup must
neither refresh nor end the session (RFC 5508 REQ-6); ``ConnTrack.lookup_embedded``
does neither.
"""
from __future__ import annotations

import ipaddress
import struct
from typing import Callable, Optional

from conntrack import Session
from conntrack.keys import ICMP, TCP, UDP
from ryu.lib import addrconv
from ryu.lib.packet import packet_utils
from ryu_app.packets.checksum import adjust, refresh

ECHO_REQUEST = 8
ERROR_TYPES = frozenset((3, 11, 12))   # Destination Unreachable, Time Exceeded, Parameter Problem
ETH_LEN, ETH_TYPE_IP = 14, 0x0800

#: (protocol, remote ip, remote port, nat ip, external port) -> session or None.
#: ICMP echo: external port = the (translated) identifier, remote port = 0.
Lookup = Callable[[int, str, int, str, int], Optional[Session]]
#: inside ip -> (mac, switch port) or None when the host is unknown.
HostOf = Callable[[str], Optional[tuple[str, int]]]


def translate_inbound_error(data: bytes, *, nat_ip: str, gateway_mac: str, lookup: Lookup,
                            host_of: HostOf) -> tuple[bytes, int] | str:
    """The frame to deliver to the inside host and its switch port, or a drop reason.

    ``data`` is a whole Ethernet frame of an ICMP error to ``nat_ip``.  Outer:
    dst -> inside ip, TTL - 1, MACs gateway -> host, checksums recomputed.
    Embedded: src -> inside ip, source port / echo identifier -> inside port,
    IP header checksum recomputed, L4 checksum adjusted.  Type, code and the
    rest of the message (MTU, pointer, RFC 4884 extensions) are kept.
    """
    nat = ipaddress.IPv4Address(nat_ip)   # a bad nat_ip is the caller's bug: raise
    try:
        parsed = _parse(data, nat.packed)
    except (struct.error, ValueError, IndexError):
        return "malformed"
    if isinstance(parsed, str):
        return parsed
    frame, ip_off, icmp_off, inner_off, l4_off, proto = parsed
    remote = _ntoa(frame[inner_off + 16:inner_off + 20])
    if proto == ICMP:
        rport, eport = 0, struct.unpack_from("!H", frame, l4_off + 4)[0]
    else:
        eport, rport = struct.unpack_from("!HH", frame, l4_off)
    session = lookup(proto, remote, rport, str(nat), eport)
    if session is None:
        return "icmp_error_no_session"
    host = host_of(str(session.inside_ip))
    if host is None:
        return "inbound_unresolved"
    mac, port = host
    inside, new_port = session.inside_ip.packed, session.inside_port

    # Embedded packet: L4 checksum first (it needs the old address), then fields.
    if proto == ICMP:
        adjust(frame, l4_off + 2, struct.pack("!H", eport), struct.pack("!H", new_port))
        struct.pack_into("!H", frame, l4_off + 4, new_port)
        frame[inner_off + 12:inner_off + 16] = inside
        refresh(frame, inner_off + 10, inner_off, l4_off)
    else:
        _rewrite_quote(frame, inner_off, l4_off, proto, 12, 0, inside, new_port)

    # Outer headers.
    frame[0:6] = addrconv.mac.text_to_bin(mac)
    frame[6:12] = addrconv.mac.text_to_bin(gateway_mac)
    frame[ip_off + 8] -= 1
    frame[ip_off + 16:ip_off + 20] = inside
    refresh(frame, ip_off + 10, ip_off, icmp_off)
    refresh(frame, icmp_off + 2, icmp_off, len(frame))
    return bytes(frame), port


#: (protocol, inside ip, inside port, remote ip, remote port) -> session or None.
OutLookup = Callable[[int, str, int, str, int], Optional[Session]]


def translate_outbound_error(data: bytes, *, lookup: OutLookup) -> tuple[bytearray, Session] | str:
    """An inside host's ICMP error about a packet it got through the NAT
    (RFC 5508 REQ-5): the frame with the quote and the outer source
    translated (MACs left for the caller), and its session; or a drop reason.

    The quoted packet is what the host received: remote -> inside ip:port.
    It becomes what the remote sent, remote -> NAT address:external port
    (the session's: one of the pool); the outer source becomes that NAT
    address, TTL - 1.  The outer
    destination stays: the remote, or the NAT address itself when the packet
    was hairpinned (the caller then translates it once more, inbound).
    """
    try:
        parsed = _parse_error(data)
    except (struct.error, ValueError, IndexError):
        return "malformed"
    if isinstance(parsed, str):
        return parsed
    frame, ip_off, icmp_off, inner_off, l4_off, proto = parsed
    inside = bytes(frame[ip_off + 12:ip_off + 16])
    if frame[inner_off + 16:inner_off + 20] != inside:
        return "icmp_error_not_ours"         # not about a packet this host received
    if frame[ip_off + 16:ip_off + 20] != frame[inner_off + 12:inner_off + 16]:
        return "icmp_error_not_ours"         # an error goes back to whoever sent the packet
    if proto not in (TCP, UDP):
        return "icmp_error_no_session"       # only TCP/UDP come in to inside hosts
    remote = _ntoa(frame[inner_off + 12:inner_off + 16])
    rport, iport = struct.unpack_from("!HH", frame, l4_off)
    session = lookup(proto, _ntoa(inside), iport, remote, rport)
    if session is None:
        return "icmp_error_no_session"
    nat = session.external_ip.packed
    _rewrite_quote(frame, inner_off, l4_off, proto, 16, 2, nat, session.external_port)
    frame[ip_off + 8] -= 1
    frame[ip_off + 12:ip_off + 16] = nat
    refresh(frame, ip_off + 10, ip_off, icmp_off)
    refresh(frame, icmp_off + 2, icmp_off, len(frame))
    return frame, session


def _rewrite_quote(frame: bytearray, inner_off: int, l4_off: int, proto: int, addr_at: int,
                   port_at: int, new_addr: bytes, new_port: int) -> None:
    """Put ``new_addr:new_port`` into one side of the quoted TCP/UDP packet
    (``addr_at``/``port_at``: offsets in its IP/L4 header), fixing its
    checksums; a quote too short for the L4 checksum only loses that."""
    old_addr = bytes(frame[inner_off + addr_at:inner_off + addr_at + 4])
    old_port = bytes(frame[l4_off + port_at:l4_off + port_at + 2])
    csum_at = l4_off + (16 if proto == TCP else 6)
    if csum_at + 2 <= len(frame) and (proto == TCP or frame[csum_at:csum_at + 2] != b"\0\0"):
        adjust(frame, csum_at, old_addr + old_port, new_addr + struct.pack("!H", new_port),
               udp=proto == UDP)
    struct.pack_into("!H", frame, l4_off + port_at, new_port)
    frame[inner_off + addr_at:inner_off + addr_at + 4] = new_addr
    refresh(frame, inner_off + 10, inner_off, l4_off)


def _parse(data: bytes, nat: bytes) -> tuple[bytearray, int, int, int, int, int] | str:
    """An inbound error: to ``nat``, quoting a packet we sent from ``nat``."""
    parsed = _parse_error(data)
    if isinstance(parsed, str):
        return parsed
    frame, ip_off, icmp_off, inner_off, l4_off, proto = parsed
    if frame[ip_off + 16:ip_off + 20] != nat or frame[inner_off + 12:inner_off + 16] != nat:
        return "icmp_error_not_ours"
    if proto == ICMP and frame[l4_off] != ECHO_REQUEST:
        return "icmp_error_no_session"       # we only ever send echo requests out
    return parsed


def _parse_error(data: bytes) -> tuple[bytearray, int, int, int, int, int] | str:
    """Check an ICMP error frame and what it quotes; (frame trimmed to the IP
    packet, offsets of outer IP, ICMP, quoted IP and quoted L4, quoted protocol)."""
    if len(data) < ETH_LEN + 20 or struct.unpack_from("!H", data, 12)[0] != ETH_TYPE_IP:
        return "malformed"
    ip_off = ETH_LEN
    ver_ihl, total = data[ip_off], struct.unpack_from("!H", data, ip_off + 2)[0]
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20 or total < ihl or ip_off + total > len(data):
        return "malformed"
    frame = bytearray(data[:ip_off + total])   # without Ethernet padding
    icmp_off = ip_off + ihl
    if packet_utils.checksum(frame[ip_off:icmp_off]) != 0:
        return "malformed"
    if struct.unpack_from("!H", frame, ip_off + 6)[0] & 0x3FFF:   # MF or offset
        return "fragment"
    if frame[ip_off + 9] != ICMP:
        return "icmp_error_not_ours"
    if len(frame) < icmp_off + 8:
        return "malformed"
    if frame[icmp_off] not in ERROR_TYPES:
        return "icmp_unsupported"
    if packet_utils.checksum(frame[icmp_off:]) != 0:
        return "icmp_error_bad_checksum"     # RFC 5508 REQ-3
    if frame[ip_off + 8] <= 1:
        return "ttl_exceeded"
    inner_off = icmp_off + 8
    if len(frame) < inner_off + 20:
        return "malformed"
    inner_ihl = (frame[inner_off] & 0x0F) * 4
    l4_off = inner_off + inner_ihl
    if frame[inner_off] >> 4 != 4 or inner_ihl < 20 or len(frame) < l4_off + 8:
        return "malformed"
    proto = frame[inner_off + 9]
    if struct.unpack_from("!H", frame, inner_off + 6)[0] & 0x1FFF:   # no L4 header quoted
        return "icmp_error_no_session"
    if proto not in (TCP, UDP, ICMP):
        return "icmp_error_no_session"
    return frame, ip_off, icmp_off, inner_off, l4_off, proto


def _ntoa(packed: bytes | bytearray) -> str:
    return str(ipaddress.IPv4Address(bytes(packed)))
