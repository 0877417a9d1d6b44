"""Translate a packet in the controller, for what OpenFlow 1.3 cannot rewrite.

OpenFlow 1.3 has no field for the ICMP echo identifier, so echo traffic whose
identifier had to change (two inside hosts pinging with the same one) is
translated here and sent with a packet-out.  Built on ``ryu.lib.packet``:
parse, change fields, let the serializer recompute the checksums.
"""
from __future__ import annotations

from ryu.lib.packet import ethernet, icmp, ipv4

from ryu_app.packets import wire


def rewrite_echo(data: bytes, *, eth_src: str, eth_dst: str, ident: int,
                 ip_src: str | None = None, ip_dst: str | None = None) -> bytes | None:
    """The echo request/reply in ``data`` with new MACs, address, identifier
    and TTL one lower; None if it is not an intact, unfragmented echo or its
    TTL would expire."""
    try:
        pkt = wire.parse_frame(data)
    except wire.Malformed:
        return None
    eth, ip, echo = (pkt.get_protocol(p) for p in (ethernet.ethernet, ipv4.ipv4, icmp.icmp))
    if eth is None or ip is None or echo is None or not isinstance(echo.data, icmp.echo):
        return None
    if ip.ttl <= 1 or ip.flags & 0x1 or ip.offset:
        return None
    eth.src, eth.dst = eth_src, eth_dst
    if ip_src is not None:
        ip.src = ip_src
    if ip_dst is not None:
        ip.dst = ip_dst
    ip.ttl -= 1
    ip.csum = 0
    echo.data.id = ident
    echo.csum = 0
    pkt.serialize()
    return bytes(pkt.data)
