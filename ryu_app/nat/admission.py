"""Which inside packets may open a session at all (before any mapping).

Pure policy on addresses and a few header fields: the source must be an
inside host (not the gateway), the destination an outside unicast address,
the TTL must survive this hop, and ICMP must be an echo request (errors are
translated, not mapped: :mod:`ryu_app.nat.paths.icmp_signals`).
"""
from __future__ import annotations

import ipaddress

from ryu_app.settings.config import BridgeConfig
from conntrack import ICMP
from ryu_app.packets.packet_info import PacketInfo


def _not_unicast(dst: int) -> bool:
    """0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 (multicast), 240.0.0.0/4 (and the
    limited broadcast in it): no unicast destination."""
    return (dst >> 24) in (0, 127) or (dst >> 28) >= 14


def outbound_problem(cfg: BridgeConfig, src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address,
                     info: PacketInfo) -> str:
    """Why an inside packet cannot be translated out (a drop reason), or "".
    Addresses are compared as ints (this runs for every first packet)."""
    s, d = int(src), int(dst)
    low, high = cfg.inside_range
    if not low <= s <= high or src == cfg.internal_gateway_ip:
        return "spoofed_source"
    if low <= d <= high:
        return "inside_destination"
    if _not_unicast(d) or d in cfg.external_range:
        return "not_unicast"
    if info.ttl <= 1:
        return "ttl_expired"
    if info.protocol == ICMP and not info.is_echo_request:
        return "icmp_unsupported"
    return ""
