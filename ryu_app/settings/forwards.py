"""Static port forwards (DNAT): external port -> inside host:port.

One validated type, :class:`Forward`, built from the config string form
``tcp:8080=10.0.0.11:80`` or from a REST JSON body.  Both paths raise
``ValueError`` with a message that names the problem.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Iterable

from conntrack.keys import PROTOCOL_NAMES, TCP, UDP

PROTOCOL_NUMBERS = {PROTOCOL_NAMES[p]: p for p in (TCP, UDP)}   # "tcp" -> 6, "udp" -> 17
_SPEC = re.compile(r"\s*(tcp|udp):(\d+)=(\d+\.\d+\.\d+\.\d+):(\d+)\s*", re.I)


@dataclass(frozen=True)
class Forward:
    protocol: str          # "tcp" or "udp"
    external_port: int
    internal_ip: str
    internal_port: int

    @property
    def proto(self) -> int:
        return PROTOCOL_NUMBERS[self.protocol]

    @property
    def key(self) -> tuple[str, int]:
        return self.protocol, self.external_port

    @property
    def inside(self) -> tuple[str, str, int]:
        """The inside endpoint: under EIM it has one external port only."""
        return self.protocol, self.internal_ip, self.internal_port

    def as_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "external_port": self.external_port,
                "internal_ip": self.internal_ip, "internal_port": self.internal_port}

    def __str__(self) -> str:
        return f"{self.protocol}:{self.external_port}={self.internal_ip}:{self.internal_port}"


def _port(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{name} must be an integer 1..65535, got {value!r}")
    return value


def make_forward(protocol: Any, external_port: Any, internal_ip: Any, internal_port: Any,
                 inside: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address) -> Forward:
    """A checked forward; ValueError names the bad field."""
    if not isinstance(protocol, str) or protocol.lower() not in PROTOCOL_NUMBERS:
        raise ValueError(f"protocol must be tcp or udp, got {protocol!r}")
    try:
        if not isinstance(internal_ip, str):     # IPv4Address(167772171) would be 10.0.0.11
            raise TypeError
        ip = ipaddress.IPv4Address(internal_ip)
    except (ValueError, TypeError):
        raise ValueError(f"internal_ip {internal_ip!r} is not an IPv4 address") from None
    if ip not in inside or ip in (inside.network_address, inside.broadcast_address, gateway):
        raise ValueError(f"internal_ip {ip} is not an inside host of {inside}")
    return Forward(protocol.lower(), _port("external_port", external_port), str(ip),
                   _port("internal_port", internal_port))


def parse_spec(spec: str, inside: ipaddress.IPv4Network,
               gateway: ipaddress.IPv4Address) -> Forward:
    """``tcp:8080=10.0.0.11:80`` -> Forward."""
    match = _SPEC.fullmatch(spec)
    if not match:
        raise ValueError(f"{spec!r} is not PROTOCOL:PORT=INSIDE_IP:PORT, e.g. tcp:8080=10.0.0.11:80")
    proto, ext, ip, port = match.groups()
    return make_forward(proto, int(ext), ip, int(port), inside, gateway)


def from_json(body: Any, inside: ipaddress.IPv4Network,
              gateway: ipaddress.IPv4Address) -> Forward:
    """A REST body ``{"protocol", "external_port", "internal_ip", "internal_port"}``."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    fields = ("protocol", "external_port", "internal_ip", "internal_port")
    missing = [f for f in fields if f not in body]
    unknown = sorted(set(body) - set(fields))
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    return make_forward(body["protocol"], body["external_port"], body["internal_ip"],
                        body["internal_port"], inside, gateway)


def conflict(fwd: Forward, existing: Iterable[Forward]) -> str:
    """Why ``fwd`` cannot join ``existing`` forwards, or "".

    An external port forwards to one inside endpoint, and an inside endpoint
    is reached through one external port (endpoint-independent mapping: the
    endpoint's own traffic leaves from that port).
    """
    for other in existing:
        if other.key == fwd.key:
            return (f"{fwd.protocol} port {fwd.external_port} is already forwarded "
                    f"to {other.internal_ip}:{other.internal_port}")
        if other.inside == fwd.inside:
            return (f"{fwd.internal_ip}:{fwd.internal_port} ({fwd.protocol}) is already "
                    f"forwarded from port {other.external_port}")
    return ""
