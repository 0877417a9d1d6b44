"""The engine's settings: one frozen object, checked once when it is built.

Operator-facing validation (option names, RFC floors as hard errors or
warnings) belongs to the app; this module only refuses settings the engine
cannot work with, by raising ValueError naming the field.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Optional

from .deterministic import DeterministicMap

from .keys import ICMP, TCP, UDP, ip_to_int

# RFC floors, used by ConntrackConfig.rfc_warnings().
RFC_MIN_TCP_ESTABLISHED = 7440.0  # RFC 5382 REQ-5: 2 h 4 min
RFC_MIN_TCP_TRANSITORY = 240.0  # RFC 5382 REQ-5: 4 min
RFC_MIN_UDP = 120.0  # RFC 4787 REQ-5
RFC_RECOMMENDED_UDP = 300.0  # RFC 4787 REQ-5 default
RFC_MIN_ICMP = 60.0  # RFC 5508 REQ-2
RFC_QUARANTINE = 120.0  # RFC 6888 REQ-8


class Filtering(str, enum.Enum):
    """Which inbound packets may use an existing mapping (RFC 4787 section 5)."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


def _range(name: str, value: Any, lo: int, hi: int) -> tuple[int, int]:
    try:
        first, last = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (first, last) pair, got {value!r}") from None
    for v in (first, last):
        if type(v) is not int or not lo <= v <= hi:
            raise ValueError(f"{name} bounds must be ints in {lo}..{hi}, got {value!r}")
    if first > last:
        raise ValueError(f"{name} is empty: {value!r}")
    return first, last


MAX_POOL = 256  # each pool address keeps its own port tables (about 9 MiB)


def _pool(value: Any, external_ip: IPv4Address) -> tuple[IPv4Address, ...]:
    if isinstance(value, (str, bytes)):
        raise ValueError(f"external_pool must be a sequence of addresses, got {value!r}")
    try:
        pool = tuple(IPv4Address(ip_to_int(a)) for a in value)
    except TypeError:
        raise ValueError(f"external_pool must be a sequence of addresses, got {value!r}") from None
    if not pool:
        return (external_ip,)
    if len(set(pool)) != len(pool):
        raise ValueError(f"external_pool lists an address twice: {[str(a) for a in pool]}")
    if len(pool) > MAX_POOL:
        raise ValueError(f"external_pool has {len(pool)} addresses; at most {MAX_POOL}")
    return pool


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or math.isinf(value):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class ConntrackConfig:
    """Settings of a :class:`~conntrack.ConnTrack` (immutable; times in seconds).

    external_ip: the address inside hosts are translated to when
        ``external_pool`` is empty.
    external_pool: the addresses inside hosts are translated to (empty: just
        ``external_ip``). Paired pooling (RFC 4787 REQ-2): all mappings of
        one inside address use one pool address, each with its own ports.
    port_range: external ports for inside source ports >= 1024 (TCP, UDP).
    preserve_low_ports: inside ports 0-1023 map into ``low_port_range``
        (RFC 4787 REQ-3a); when False everything maps into ``port_range``.
    low_port_range: external ports for inside ports < 1024; must not overlap
        ``port_range`` while ``preserve_low_ports`` is on.
    preserve_parity: external port has the parity of the inside port (REQ-4).
    icmp_id_range: external ICMP echo identifiers.
    quarantine: a freed port is not handed to another inside endpoint for this
        long unless its pool is otherwise exhausted (RFC 6888 REQ-8); 0 = off.
    tcp_established_timeout, tcp_opening_timeout, tcp_closing_timeout,
    udp_timeout, icmp_timeout: idle timeouts (RFC 5382, 7857, 4787, 5508).
    max_connections: bound on live sessions.
    max_connections_per_host: bound on live sessions per inside address
        (RFC 6888 REQ-4).
    tcp_filtering, udp_filtering, icmp_filtering: :class:`Filtering` (or its
        string value) per protocol (RFC 7857 sections 5-6).
    port_block_size: 0 allocates ports one mapping at a time; N hands each
        inside host blocks of N consecutive ports of ``port_range`` (ICMP:
        ``icmp_id_range``) per protocol and pool address (RFC 7422 s2; the
        low-port range then goes unused), see blocks.py.
    port_blocks_per_host: most blocks one host holds per protocol.
    deterministic_inside: the inside prefix for deterministic mode (RFC
        7422, needs ``port_block_size``): each of its addresses owns one
        fixed block per protocol, see deterministic.py; None: off.
    """

    external_ip: IPv4Address
    external_pool: tuple[IPv4Address, ...] = ()
    port_range: tuple[int, int] = (1024, 65535)
    preserve_low_ports: bool = True
    low_port_range: tuple[int, int] = (1, 1023)
    preserve_parity: bool = False
    icmp_id_range: tuple[int, int] = (0, 65535)
    quarantine: float = RFC_QUARANTINE
    tcp_established_timeout: float = RFC_MIN_TCP_ESTABLISHED
    tcp_opening_timeout: float = RFC_MIN_TCP_TRANSITORY
    tcp_closing_timeout: float = RFC_MIN_TCP_TRANSITORY
    udp_timeout: float = RFC_RECOMMENDED_UDP
    icmp_timeout: float = RFC_MIN_ICMP
    max_connections: int = 1 << 20
    max_connections_per_host: int = 1 << 14
    tcp_filtering: Filtering = Filtering.ADDRESS_AND_PORT_DEPENDENT
    udp_filtering: Filtering = Filtering.ADDRESS_AND_PORT_DEPENDENT
    icmp_filtering: Filtering = Filtering.ADDRESS_AND_PORT_DEPENDENT
    port_block_size: int = 0
    port_blocks_per_host: int = 4
    deterministic_inside: Optional[IPv4Network] = None

    def __post_init__(self) -> None:
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        fix("external_ip", IPv4Address(ip_to_int(self.external_ip)))
        fix("external_pool", _pool(self.external_pool, self.external_ip))
        fix("port_range", _range("port_range", self.port_range, 1, 65535))
        fix("low_port_range", _range("low_port_range", self.low_port_range, 1, 1023))
        fix("icmp_id_range", _range("icmp_id_range", self.icmp_id_range, 0, 65535))
        for name in ("preserve_low_ports", "preserve_parity"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool")
        if self.preserve_low_ports:
            lo, hi = self.low_port_range
            if not (self.port_range[1] < lo or self.port_range[0] > hi):
                raise ValueError("port_range overlaps low_port_range while preserve_low_ports is on")
            if self.port_range[0] < 1024:
                # RFC 4787 REQ-3a both ways: inside ports >= 1024 stay >= 1024.
                raise ValueError("port_range must start at 1024 or above while preserve_low_ports is on")
        fix("quarantine", _positive("quarantine", self.quarantine, allow_zero=True))
        for name in (
            "tcp_established_timeout",
            "tcp_opening_timeout",
            "tcp_closing_timeout",
            "udp_timeout",
            "icmp_timeout",
        ):
            fix(name, _positive(name, getattr(self, name)))
        for name in ("max_connections", "max_connections_per_host"):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value < 2**32 - 1:
                raise ValueError(f"{name} must be an int in 1..2**32-2, got {value!r}")
        size, per_host = self.port_block_size, self.port_blocks_per_host
        smallest = min(self.port_range[1] - self.port_range[0], self.icmp_id_range[1] - self.icmp_id_range[0]) + 1
        if type(size) is not int or not (size == 0 or 1 <= size <= smallest):
            raise ValueError(f"port_block_size must be 0 or an int in 1..{smallest} (the ranges' size), got {size!r}")
        if type(per_host) is not int or not 1 <= per_host <= 65535:
            raise ValueError(f"port_blocks_per_host must be an int in 1..65535, got {per_host!r}")
        if self.deterministic_inside is not None:
            fix("deterministic_inside", IPv4Network(self.deterministic_inside))
            if not size:
                raise ValueError("deterministic_inside needs port_block_size")
            self.deterministic_map()  # raises when the prefix does not fit the pool
        for name in ("tcp_filtering", "udp_filtering", "icmp_filtering"):
            try:
                fix(name, Filtering(getattr(self, name)))
            except ValueError:
                choices = ", ".join(f.value for f in Filtering)
                raise ValueError(f"{name} must be one of {choices}") from None

    def deterministic_map(self) -> Optional[DeterministicMap]:
        """The fixed inside address -> block map, or None out of deterministic mode."""
        if self.deterministic_inside is None:
            return None
        low, high = self.port_range
        return DeterministicMap(self.deterministic_inside, self.external_pool, low, high, self.port_block_size)

    def filtering(self, protocol: int) -> Filtering:
        """Filtering mode configured for an IP protocol number."""
        return {TCP: self.tcp_filtering, UDP: self.udp_filtering, ICMP: self.icmp_filtering}[protocol]

    def timeouts(self) -> dict[str, float]:
        """All idle timeouts by name (for logs and the REST view)."""
        return {
            "tcp_established": self.tcp_established_timeout,
            "tcp_opening": self.tcp_opening_timeout,
            "tcp_closing": self.tcp_closing_timeout,
            "udp": self.udp_timeout,
            "icmp": self.icmp_timeout,
        }

    def rfc_warnings(self) -> list[str]:
        """Human-readable notes on settings below an RFC floor (empty when compliant).

        Below-floor values are allowed (RFC 7857 lets operators shorten the
        transitory timeout); the app decides whether to warn or refuse.
        """
        notes = []
        floors = (
            ("tcp_established_timeout", RFC_MIN_TCP_ESTABLISHED, "RFC 5382 REQ-5"),
            ("tcp_opening_timeout", RFC_MIN_TCP_TRANSITORY, "RFC 5382 REQ-5"),
            ("tcp_closing_timeout", RFC_MIN_TCP_TRANSITORY, "RFC 5382 REQ-5"),
            ("udp_timeout", RFC_MIN_UDP, "RFC 4787 REQ-5"),
            ("icmp_timeout", RFC_MIN_ICMP, "RFC 5508 REQ-2"),
            ("quarantine", RFC_QUARANTINE, "RFC 6888 REQ-8"),
        )
        for name, floor, ref in floors:
            if getattr(self, name) < floor:
                notes.append(f"{name}={getattr(self, name):g} is below {floor:g} s ({ref})")
        return notes
