"""The conntrack engine configured from the gateway's options.

The one place that translates :class:`BridgeConfig` into
:class:`conntrack.ConntrackConfig`, so the two never disagree on a timer.
"""
from __future__ import annotations

from conntrack import TCP, UDP, BlockEventHook, ConnTrack, ConntrackConfig, EventHook, Filtering

from ryu_app.settings.config import BridgeConfig


def conntrack_config(cfg: BridgeConfig) -> ConntrackConfig:
    low, high = cfg.port_range
    return ConntrackConfig(
        external_ip=cfg.external_address,
        external_pool=cfg.nat_addresses,
        port_range=cfg.port_range,
        # RFC 4787 REQ-3a: inside ports below 1024 stay below 1024, unless the
        # operator's range itself reaches into them.
        preserve_low_ports=low >= 1024,
        quarantine=cfg.timers.port_quarantine,
        preserve_parity=cfg.port_parity,
        tcp_established_timeout=cfg.timers.tcp_established,
        tcp_opening_timeout=cfg.timers.tcp_transitory,
        tcp_closing_timeout=cfg.timers.tcp_transitory,
        udp_timeout=cfg.timers.udp,
        icmp_timeout=cfg.timers.icmp,
        max_connections=cfg.admission.max_connections,
        max_connections_per_host=cfg.admission.max_connections_per_host,
        port_block_size=cfg.port_block_size,
        port_blocks_per_host=cfg.port_blocks_per_host,
        deterministic_inside=cfg.internal_subnet if cfg.deterministic else None,
        tcp_filtering=Filtering(cfg.filtering_for(TCP)),
        udp_filtering=Filtering(cfg.filtering_for(UDP)),
        # ICMP queries: OpenFlow cannot match the identifier, so inbound echo
        # requests to the NAT address are answered by the gateway itself.
        icmp_filtering=Filtering.ADDRESS_AND_PORT_DEPENDENT,
    )


def make_engine(cfg: BridgeConfig, on_event: EventHook | None = None,
                on_block: BlockEventHook | None = None) -> ConnTrack:
    return ConnTrack(conntrack_config(cfg), on_event=on_event, on_block=on_block)
