"""Which sessions a REST call means: ``GET`` and ``DELETE /nat/connections``
and ``snatctl connections|delete|flush`` share these filters, applied in the
controller (conntrack -L's ``-p``, ``-s``, ``--sport``, ``--src-nat``...).

Every query value is checked here; a bad one is a :class:`FilterError`
naming it (a JSON 400).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, fields

from conntrack import Session, State
from conntrack.keys import PROTOCOL_NAMES

PROTOCOLS = {name: number for number, name in PROTOCOL_NAMES.items()}
STATES = {state.value for state in State}
_DIGITS = re.compile(r"[0-9]{1,10}")
_HEX = re.compile(r"0[xX][0-9a-fA-F]{1,16}")


class FilterError(ValueError):
    """A filter value that is not what its name says (one line)."""


@dataclass(frozen=True)
class ConnectionFilter:
    """Every field None matches every session; set fields must all match."""

    protocol: int | None = None
    internal_ip: str | None = None
    internal_port: int | None = None
    external_ip: str | None = None
    external_port: int | None = None
    remote_ip: str | None = None
    remote_port: int | None = None
    state: str | None = None
    dpid: int | None = None

    @classmethod
    def from_query(cls, query: dict[str, str]) -> "ConnectionFilter":
        """The filter of a query string (other keys are ignored here)."""
        values: dict = {}
        for name in NAMES:
            raw = query.get(name)
            if raw is not None:
                values[name] = _PARSE[name.rpartition("_")[2]](name, raw)
        return cls(**values)

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def __call__(self, dpid: int, s: Session) -> bool:
        return ((self.protocol is None or s.protocol == self.protocol)
                and (self.dpid is None or dpid == self.dpid)
                and (self.state is None or s.state.value == self.state)
                and (self.internal_port is None or s.inside_port == self.internal_port)
                and (self.external_port is None or s.external_port == self.external_port)
                and (self.remote_port is None or s.remote_port == self.remote_port)
                and (self.internal_ip is None or str(s.inside_ip) == self.internal_ip)
                and (self.external_ip is None or str(s.external_ip) == self.external_ip)
                and (self.remote_ip is None or str(s.remote_ip) == self.remote_ip))


def _ip(name: str, raw: str) -> str:
    try:
        return str(ipaddress.IPv4Address(raw))
    except ValueError:
        raise FilterError(f"{name} {raw!r} is not an IPv4 address") from None


def _port(name: str, raw: str) -> int:
    if not _DIGITS.fullmatch(raw) or not 0 <= int(raw) <= 65535:
        raise FilterError(f"{name} must be an integer 0..65535, got {raw!r}")
    return int(raw)


def _protocol(name: str, raw: str) -> int:
    number = PROTOCOLS.get(raw.lower())
    if number is None:
        raise FilterError(f"{name} must be one of {', '.join(PROTOCOLS)}")
    return number


def _state(name: str, raw: str) -> str:
    if raw.upper() not in STATES:
        raise FilterError(f"{name} must be one of {', '.join(sorted(STATES))}, got {raw!r}")
    return raw.upper()


def _dpid(name: str, raw: str) -> int:
    if not _HEX.fullmatch(raw) and not re.fullmatch(r"[0-9]{1,20}", raw):
        raise FilterError(f"{name} must be an integer (0x... for hex), got {raw!r}")
    return int(raw, 16) if raw.lower().startswith("0x") else int(raw)


_PARSE = {"protocol": _protocol, "ip": _ip, "port": _port, "state": _state, "dpid": _dpid}
NAMES = tuple(f.name for f in fields(ConnectionFilter))


def split_endpoint(raw: str) -> tuple[str, int]:
    """``IP:PORT`` (the ``who`` question) as a checked pair."""
    ip, sep, port = raw.rpartition(":")
    if not sep:
        raise FilterError(f"external must be IP:PORT, got {raw!r}")
    return _ip("external", ip), _port("external", port)
