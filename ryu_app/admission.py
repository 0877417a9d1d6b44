"""Which inside packets may open a session at all (before any mapping).

Pure policy on addresses and a few header fields: the source must be an
inside host (not the gateway), the destination an outside unicast address,
the TTL must survive this hop, and ICMP must be an echo request (errors are
translated, not mapped: :mod:`ryu_app.icmp_signals`).
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from ryu_app.config import NatConfig
from ryu_app.packet_info import ICMP, PacketInfo

_NOT_UNICAST = [ipaddress.IPv4Network(n) for n in
                ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4")]


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


@lru_cache(maxsize=65536)
def _not_unicast(dst: ipaddress.IPv4Address) -> bool:
    return dst == _BROADCAST or any(dst in n for n in _NOT_UNICAST)


def outbound_problem(cfg: NatConfig, src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address,
                     info: PacketInfo) -> str:
    """Why an inside packet cannot be translated out (a drop reason), or ""."""
    if src not in cfg.internal_subnet or src == cfg.internal_gateway_ip:
        return "spoofed_source"
    if dst in cfg.internal_subnet:
        return "inside_destination"
    ext_net = cfg.external_ip.network
    if _not_unicast(dst) \
            or dst in (ext_net.network_address, ext_net.broadcast_address):
        return "not_unicast"
    if info.ttl <= 1:
        return "ttl_expired"
    if info.protocol == ICMP and not info.is_echo_request:
        return "icmp_unsupported"
    return ""
