"""The conntrack engine configured from the gateway's options.

The one place that translates :class:`NatConfig` into
:class:`conntrack.ConntrackConfig`, so the two never disagree on a timer.
"""
from __future__ import annotations

from conntrack import ConnTrack, ConntrackConfig, EventHook

from ryu_app.settings.config import NatConfig


def conntrack_config(cfg: NatConfig) -> ConntrackConfig:
    low, high = cfg.port_range
    return ConntrackConfig(
        external_ip=cfg.external_address,
        port_range=cfg.port_range,
        # RFC 4787 REQ-3a: inside ports below 1024 stay below 1024, unless the
        # operator's range itself reaches into them.
        preserve_low_ports=low >= 1024,
        quarantine=cfg.port_quarantine,
        preserve_parity=cfg.port_parity,
        tcp_established_timeout=cfg.tcp_established_timeout,
        tcp_opening_timeout=cfg.tcp_transitory_timeout,
        tcp_closing_timeout=cfg.tcp_transitory_timeout,
        udp_timeout=cfg.udp_timeout,
        icmp_timeout=cfg.icmp_timeout,
        max_connections=cfg.max_connections,
        max_connections_per_host=cfg.max_connections_per_host,
        tcp_filtering=cfg.tcp_filtering,
        udp_filtering=cfg.udp_filtering,
        # ICMP queries: OpenFlow cannot match the identifier, so inbound echo
        # requests to the NAT address are answered by the gateway itself.
        icmp_filtering="address-and-port-dependent",
    )


def make_engine(cfg: NatConfig, on_event: EventHook | None = None) -> ConnTrack:
    return ConnTrack(conntrack_config(cfg), on_event=on_event)
