"""Parse frames from the wire with ``ryu.lib.packet``, but only where it is safe.

Ryu's parsers trust the bytes they are given.  Two ways hostile traffic
exploits that, both closed here before Ryu sees the bytes:

* A TCP option whose length byte is 0 (of a kind Ryu does not know, or
  hidden after one Ryu skips by its fixed size) makes Ryu's option loop spin
  forever, allocating an option object each turn: the controller hangs, then
  runs out of memory.  One SYN from inside, one FIN to a session or one
  fragment to the NAT address would do.  The options are walked here first,
  with Ryu's own option parser and a check that every step moves on.
* A non-first IPv4 fragment carries no L4 header, but Ryu parses its payload
  as one anyway.  Fragments are parsed down to IPv4 only.

Also refused: IPv4 headers that are not version 4, shorter than 20 bytes or
longer than their packet.  Beyond Ethernet only ARP and IPv4 are parsed
(nothing else is translated).  The result is a normal ``packet.Packet``.
"""
from __future__ import annotations

import struct

from ryu.lib.packet import arp, ethernet, icmp, ipv4, packet, tcp, udp
from ryu.ofproto import ether

from conntrack.keys import ICMP, TCP, UDP

_L4 = {TCP: tcp.tcp, UDP: udp.udp, ICMP: icmp.icmp}


class Malformed(ValueError):
    """The frame cannot be parsed safely; ``str()`` is a short reason."""


def parse_frame(data: bytes) -> packet.Packet:
    """A ``packet.Packet`` of ``data`` (its ``data`` is the original bytes).

    Raises :class:`Malformed` for frames Ryu must not parse.  Truncated
    frames (the 128-byte copies FIN/RST watches send up) parse as far as
    they go, like Ryu's own ``Packet`` does.
    """
    try:
        eth, _, rest = ethernet.ethernet.parser(data)
    except (struct.error, ValueError, TypeError) as exc:
        raise Malformed("ethernet header") from exc
    protocols: list = [eth]
    if eth.ethertype == ether.ETH_TYPE_ARP:
        protocols += _parse_one(arp.arp, rest, "arp")
    elif eth.ethertype == ether.ETH_TYPE_IP:
        protocols += _parse_ipv4(rest)
    pkt = packet.Packet(protocols=protocols)
    pkt.data = data
    return pkt


def tcp_flags(data: bytes) -> int | None:
    """The TCP flags (Ryu's ``tcp.bits``) of an Ethernet/IPv4/TCP frame, whole
    or a truncated copy; None where :func:`parse_frame` would refuse it or
    find no TCP header (not IPv4, a fragment, not TCP, cut short, unsafe).

    Every FIN and RST copy from the watch table needs only these bits; read
    at their offsets they cost a sixth of a full parse (which converts both
    MAC and IP addresses to text).  ``tests/unit/packets/test_wire.py`` proves the
    answer equal to the full parse's over truncations and malformations.
    """
    if len(data) < 14 or data[12] != 0x08 or data[13] != 0x00:
        return None
    ip = data[14:]
    if ipv4_problem(ip) or ip[9] != TCP or int.from_bytes(ip[6:8], "big") & 0x3FFF:
        return None                       # refused, not TCP, or a fragment (MF or offset)
    seg = ip[(ip[0] & 0x0F) * 4:int.from_bytes(ip[2:4], "big")]
    if len(seg) < 20:
        return None
    try:
        if tcp_options_problem(seg):
            return None
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    return seg[13] & 0x3F


def _parse_ipv4(buf: bytes) -> list:
    problem = ipv4_problem(buf)
    if problem:
        raise Malformed(problem)
    ip, _, rest = ipv4.ipv4.parser(buf)
    out: list = [ip]
    fragment = ip.flags & 0x1 or ip.offset
    l4 = _L4.get(ip.proto)
    if fragment or l4 is None:
        return out + ([rest] if rest else [])
    if ip.proto == TCP:
        problem = tcp_options_problem(rest)
        if problem:
            raise Malformed(problem)
    return out + _parse_one(l4, rest, l4.__name__, tolerate_short=True)


def _parse_one(cls, buf: bytes, what: str, tolerate_short: bool = False) -> list:
    """``cls.parser(buf)``: the header and any payload after it.

    With ``tolerate_short`` a header cut short (a truncated copy) is simply
    missing from the result, as Ryu's ``Packet`` would leave it out.
    """
    try:
        proto, _, rest = cls.parser(buf)
    except struct.error as exc:
        if tolerate_short:
            return [buf] if buf else []
        raise Malformed(f"{what} header") from exc
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise Malformed(f"{what} header") from exc
    return [proto] + ([rest] if rest else [])


def ipv4_problem(buf: bytes) -> str:
    """Why an IPv4 header (at the start of ``buf``) must not be parsed, or ""."""
    if len(buf) < 20:
        return "ipv4 header truncated"
    version, ihl = buf[0] >> 4, buf[0] & 0x0F
    if version != 4:
        return "ipv4 version"
    if ihl < 5 or ihl * 4 > len(buf):
        return "ipv4 header length"
    total = int.from_bytes(buf[2:4], "big")
    if total < ihl * 4:
        return "ipv4 total length"
    return ""


def tcp_options_problem(seg: bytes) -> str:
    """Why the options of the TCP header at the start of ``seg`` are unsafe, or "".

    Runs Ryu's own option parser over them one option at a time, as
    ``tcp.tcp.parser`` would, and refuses the header as soon as a step does
    not move forward: that is the step Ryu would repeat forever.  (Ryu
    advances known options by their fixed size and others by their length
    byte, so only Ryu's own walk can tell.)  Options Ryu cannot parse at all
    it skips whole, which is safe.
    """
    if len(seg) < 20:
        return ""
    declared = (seg[12] >> 4) * 4
    if declared < 20:
        return "tcp data offset"
    buf = bytes(seg[20:declared])
    while buf:
        try:
            _, rest = tcp.TCPOption.parser(buf)
        except struct.error:
            return ""
        if len(rest) >= len(buf):
            return "tcp option length"
        buf = rest
    return ""
