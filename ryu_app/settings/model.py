"""The checked configuration as frozen values: one per bridge, one per process.

:class:`BridgeConfig` is what one NAT bridge needs (its addresses, uplink,
switch, ports, filtering, forwards, bindings) with two nested groups,
``timers`` and ``admission``; :class:`ControllerConfig` holds what one
controller process has once whatever the number of bridges (the REST token,
the HA pair, the mapping log, the stats poll).  Keeping them apart means no
code reads a process-wide value off "the first bridge".

Only :mod:`ryu_app.settings.load` builds them from options; tests may build
them directly.  The nested groups' defaults are the options' defaults
(``tests/unit/settings/test_config.py`` checks that they agree).  Not ``types.py``:
that name would shadow the standard library's module for a script run from
this directory.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import ClassVar

from conntrack import TCP, UDP
from conntrack.deterministic import DeterministicMap
from ryu_app.settings.forwards import Forward

DEFAULT_GATEWAY_MAC = "02:53:4e:41:54:01"   # locally administered; "SNAT" in hex


@dataclass(frozen=True)
class TimerConfig:
    """Idle timeouts (seconds) of a bridge's sessions, ports and bindings."""

    tcp_established: int = 7440     # tcp_established_timeout
    tcp_transitory: int = 240       # tcp_transitory_timeout
    udp: int = 300                  # udp_timeout
    icmp: int = 60                  # icmp_timeout
    port_quarantine: int = 120      # a freed external port's rest; 0: off
    binding_idle: int = 300         # binding_idle_timeout


@dataclass(frozen=True)
class PortControlConfig:
    """The PCP (RFC 6887) and NAT-PMP (RFC 6886) server: inside hosts ask
    for their own mappings on UDP 5351 of the inside gateway address."""

    enabled: bool = True                    # port_control
    min_lifetime: int = 120                 # port_control_min_lifetime (seconds)
    max_lifetime: int = 7200                # port_control_max_lifetime (seconds)
    max_per_host: int = 16                  # port_control_max_per_host: mappings and peers
    third_party: bool = False               # port_control_third_party: PCP THIRD_PARTY allowed
    rate: int = 10                          # port_control_rate: requests a second per host
    burst: int = 20                         # twice the rate


@dataclass(frozen=True)
class AdmissionConfig:
    """What a bridge lets in: session bounds, source guard, packet-in rates.

    A burst of 0 means as many as the rate (set by ``__post_init__``).
    """

    max_connections: int = 100000
    max_connections_per_host: int = 4096
    max_addresses_per_mac: int = 8          # 0: no limit
    port_rate: int = 3000                   # packet_in_port_rate; 0: no meters
    port_burst: int = 0                     # packet_in_port_burst
    host_rate: int = 0                      # packet_in_host_rate; 0: no hard limit
    host_burst: int = 0                     # packet_in_host_burst

    def __post_init__(self) -> None:
        for burst, rate in (("port_burst", self.port_rate), ("host_burst", self.host_rate)):
            if not getattr(self, burst):
                object.__setattr__(self, burst, rate)


@dataclass(frozen=True)
class BridgeConfig:
    """One NAT bridge's checked profile (``[nat]``, or ``[nat:NAME]`` over it)."""

    external_ip: ipaddress.IPv4Interface
    external_port: int | str                 # OpenFlow port number or interface name
    internal_subnet: ipaddress.IPv4Network
    internal_gateway_ip: ipaddress.IPv4Address
    external_gateway_ip: ipaddress.IPv4Address | None = None
    external_pool: tuple[ipaddress.IPv4Address, ...] = ()   # empty: external_ip alone
    external_gateway_mac: str | None = None   # pinned: never learned, never asked
    gateway_mac: str = DEFAULT_GATEWAY_MAC
    name: str = "nat"                         # the profile: "nat", or NAME of [nat:NAME]
    dpid: int | None = None                   # None: the first switch that connects
    port_range: tuple[int, int] = (1024, 65535)
    port_parity: bool = False
    port_block_size: int = 0                  # 0: per mapping; N: blocks of N ports per host
    port_blocks_per_host: int = 4
    deterministic: bool = False               # RFC 7422: one fixed block per inside address
    filtering: str = "address-and-port-dependent"
    # Per protocol (RFC 7857 s5-6); None (only when built directly) means ``filtering``.
    tcp_filtering: str | None = None
    udp_filtering: str | None = None
    tcp_fin_upcall: bool = False
    forwards: tuple[Forward, ...] = ()
    forwards_file: str | None = None
    static_bindings: tuple[tuple[str, str, int], ...] = ()   # ((address, mac, port), ...)
    timers: TimerConfig = field(default_factory=TimerConfig)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    port_control: PortControlConfig = field(default_factory=PortControlConfig)

    def __post_init__(self) -> None:
        for name in ("tcp_filtering", "udp_filtering"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.filtering)
        # First and last address of each side's prefix, as ints: every
        # first packet is checked against them (ryu_app.nat.admission).
        for name, net in (("inside_range", self.internal_subnet),
                          ("external_range", self.external_ip.network)):
            object.__setattr__(self, name, (int(net.network_address),
                                            int(net.broadcast_address)))

    # Set by __post_init__ from the two prefixes (not fields: never given).
    inside_range: ClassVar[tuple[int, int]]
    external_range: ClassVar[tuple[int, int]]

    def filtering_for(self, protocol: int) -> str:
        """The filtering mode of an IP protocol number: TCP's, UDP's, else ``filtering``."""
        mode = {TCP: self.tcp_filtering, UDP: self.udp_filtering}.get(protocol)
        return mode or self.filtering

    @property
    def external_address(self) -> ipaddress.IPv4Address:
        """The gateway's own address outside (ARP, its ICMP errors)."""
        return self.external_ip.ip

    @property
    def nat_addresses(self) -> tuple[ipaddress.IPv4Address, ...]:
        """The addresses inside hosts are translated to, in pool order."""
        return self.external_pool or (self.external_ip.ip,)

    def deterministic_map(self) -> DeterministicMap | None:
        """The inside address <-> (NAT address, port block) map of deterministic mode."""
        if not self.deterministic:
            return None
        low, high = self.port_range
        return DeterministicMap(self.internal_subnet, self.nat_addresses, low, high,
                                self.port_block_size)

    @property
    def outside_addresses(self) -> tuple[ipaddress.IPv4Address, ...]:
        """Every address the gateway owns outside: its own, then the pool's."""
        own = self.external_ip.ip
        return (own, *(a for a in self.external_pool if a != own))


@dataclass(frozen=True)
class HaConfig:
    """A controller pair: the coordination engine that elects the MASTER."""

    coordination_url: str | None = None     # None: alone, no election
    group: str = "ryu-snat"                 # ha_group
    lease: int = 2                          # ha_lease (seconds)
    interval: float = 0.25                  # ha_interval (seconds)

    @property
    def enabled(self) -> bool:
        return self.coordination_url is not None


@dataclass(frozen=True)
class MappingLogConfig:
    """The RFC 6888 mapping log: on or off, and where it goes."""

    enabled: bool = True                    # log_mappings
    file: str | None = None                 # mapping_log_file; None: the logger
    max_bytes: int = 100 * 1024 * 1024      # mapping_log_max_bytes; 0: never rotate
    backups: int = 5                        # mapping_log_backups
    syslog: str | None = None               # mapping_log_syslog: HOST:PORT or a socket path


@dataclass(frozen=True)
class IpfixConfig:
    """NAT events as IPFIX (RFC 8158) to a collector, or off."""

    collector: tuple[str, int] | None = None   # ipfix_collector: (address, UDP port)
    log_destination: bool = False           # ipfix_log_destination (RFC 6888 REQ-12)
    template_interval: int = 60             # ipfix_template_interval: seconds

    @property
    def enabled(self) -> bool:
        return self.collector is not None


@dataclass(frozen=True)
class ControllerConfig:
    """What one controller process has once: only ``[nat]`` sets it."""

    rest_token: str | None = None           # None: REST changes need no token
    stats_interval: int = 10                # seconds between flow-stats polls
    ha: HaConfig = field(default_factory=HaConfig)
    mapping_log: MappingLogConfig = field(default_factory=MappingLogConfig)
    ipfix: IpfixConfig = field(default_factory=IpfixConfig)
