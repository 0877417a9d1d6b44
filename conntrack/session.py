"""Sessions and the mappings they share.

A :class:`Mapping` is one inside endpoint's external port (endpoint-independent
mapping, RFC 4787 REQ-1): every session of that endpoint uses it, and it lives
while any of them does (or forever, for a static forward).

A :class:`Session` is one (inside endpoint, remote endpoint) pair. Memory is
what limits a million of them, so a session has 12 slots, no per-session dict
or set, and derives its addresses from its packed key instead of storing them.
Sessions of a mapping form an intrusive doubly linked list (two slots), which
is how address-dependent filtering asks "has this mapping talked to X?".
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any, Iterator, Optional, Union

from .keys import ICMP, MAX_IP, MAX_PORT, PROTOCOL_NAMES, FiveTuple
from .policy import ProtoPolicy
from .states import DEAD, INBOUND_INIT, REPLIED, State


class Mapping:
    """An inside endpoint's external port, shared by all its sessions."""

    __slots__ = ("ikey", "external_port", "policy", "head", "count", "static")

    def __init__(self, ikey: int, external_port: int, policy: ProtoPolicy, static: bool = False) -> None:
        self.ikey = ikey
        self.external_port = external_port
        self.policy = policy
        self.head: Optional[Session] = None  # first session of the linked list
        self.count = 0  # live sessions
        self.static = static  # a port forward: kept with no sessions

    @property
    def protocol(self) -> int:
        """IP protocol number of the mapping."""
        return self.ikey >> 48

    @property
    def inside_ip(self) -> IPv4Address:
        """Inside endpoint's address."""
        return IPv4Address((self.ikey >> 16) & MAX_IP)

    @property
    def inside_port(self) -> int:
        """Inside endpoint's port (ICMP: echo identifier)."""
        return self.ikey & MAX_PORT

    @property
    def external_ip(self) -> IPv4Address:
        """The NAT address."""
        return IPv4Address(self.policy.external_ip)

    def sessions(self) -> Iterator["Session"]:
        """Live sessions of this mapping, newest first."""
        s = self.head
        while s is not None:
            yield s
            s = s._next

    def __repr__(self) -> str:
        kind = "static " if self.static else ""
        return (
            f"<{kind}Mapping {self.policy.name} {self.inside_ip}:{self.inside_port} -> "
            f"{self.external_ip}:{self.external_port} sessions={self.count}>"
        )


class Session:
    """One translated conversation; read its attributes, never set them.

    Attributes (plain slots): ``id`` (1..2**32-1, unique among live sessions,
    fits an OpenFlow cookie), ``created_at``, ``last_seen`` (caller's clock),
    ``packets_out``, ``bytes_out``, ``packets_in``, ``bytes_in`` (as last set
    from flow stats). Everything else is a derived property.
    """

    __slots__ = (
        "id",
        "okey",
        "mapping",
        "code",
        "created_at",
        "last_seen",
        "_prev",
        "_next",
        "packets_out",
        "bytes_out",
        "packets_in",
        "bytes_in",
    )

    def __init__(self, sid: int, okey: int, mapping: Mapping, code: int, created_at: float, last_seen: float) -> None:
        self.id = sid
        self.okey = okey  # packed original tuple, see keys.py
        self.mapping = mapping
        self.code = code  # state bits, see states.py
        self.created_at = created_at
        self.last_seen = last_seen
        self._prev: Optional[Session] = None
        self._next: Optional[Session] = None
        self.packets_out = 0
        self.bytes_out = 0
        self.packets_in = 0
        self.bytes_in = 0

    # -- addresses --------------------------------------------------------
    @property
    def protocol(self) -> int:
        """IP protocol number: 6 TCP, 17 UDP, 1 ICMP."""
        return self.okey >> 96

    @property
    def protocol_name(self) -> str:
        """"tcp", "udp" or "icmp"."""
        return PROTOCOL_NAMES[self.okey >> 96]

    @property
    def inside_ip(self) -> IPv4Address:
        """Inside host's address (the original source)."""
        return IPv4Address((self.okey >> 64) & MAX_IP)

    @property
    def inside_port(self) -> int:
        """Inside source port (ICMP: the inside echo identifier)."""
        return (self.okey >> 48) & MAX_PORT

    @property
    def remote_ip(self) -> IPv4Address:
        """Remote peer's address (the original destination)."""
        return IPv4Address((self.okey >> 16) & MAX_IP)

    @property
    def remote_port(self) -> int:
        """Remote port (always 0 for ICMP)."""
        return self.okey & MAX_PORT

    @property
    def external_ip(self) -> IPv4Address:
        """The NAT address the inside endpoint is translated to."""
        return IPv4Address(self.mapping.policy.external_ip)

    @property
    def external_port(self) -> int:
        """External source port (ICMP: the external echo identifier)."""
        return self.mapping.external_port

    @property
    def port_preserved(self) -> bool:
        """True when external port == inside port (for ICMP: the identifier
        needs no rewriting, which OpenFlow 1.3 cannot do)."""
        return self.mapping.external_port == (self.okey >> 48) & MAX_PORT

    @property
    def original(self) -> FiveTuple:
        """Outbound packet before translation: inside -> remote."""
        return FiveTuple(self.protocol, self.inside_ip, self.inside_port, self.remote_ip, self.remote_port)

    @property
    def translated(self) -> FiveTuple:
        """Outbound packet after translation: external -> remote."""
        return FiveTuple(self.protocol, self.external_ip, self.external_port, self.remote_ip, self.remote_port)

    @property
    def reply(self) -> FiveTuple:
        """Inbound reply before translation: remote -> external (what
        :meth:`ConnTrack.lookup_inbound` takes)."""
        return FiveTuple(self.protocol, self.remote_ip, self.remote_port, self.external_ip, self.external_port)

    # -- state and timing -------------------------------------------------
    @property
    def state(self) -> State:
        """Named state: TCP SYN_SENT..CLOSING, UDP/ICMP UNREPLIED/REPLIED."""
        return self.mapping.policy.states[self.code]

    @property
    def timeout(self) -> float:
        """Idle timeout that applies in the current state (use it as the
        flows' idle_timeout)."""
        return self.mapping.policy.timeouts[self.code]

    @property
    def expires_at(self) -> float:
        """``last_seen + timeout``: expire() removes the session at or after this time."""
        return self.last_seen + self.mapping.policy.timeouts[self.code]

    @property
    def alive(self) -> bool:
        """False once the session expired or was removed."""
        return not self.code & DEAD

    @property
    def inbound_initiated(self) -> bool:
        """Created by an inbound packet (filtering let it in, or a forward)."""
        return bool(self.code & INBOUND_INIT)

    @property
    def replied(self) -> bool:
        """Packets were seen in both directions."""
        return bool(self.code & REPLIED)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (for REST and mapping logs)."""
        return {
            "id": self.id,
            "protocol": self.protocol_name,
            "inside": f"{self.inside_ip}:{self.inside_port}",
            "external": f"{self.external_ip}:{self.external_port}",
            "remote": f"{self.remote_ip}:{self.remote_port}",
            "state": self.state.value,
            "inbound_initiated": self.inbound_initiated,
            "created_at": self.created_at,
            "last_seen": self.last_seen,
            "timeout": self.timeout,
            "expires_at": self.expires_at,
            "packets_out": self.packets_out,
            "bytes_out": self.bytes_out,
            "packets_in": self.packets_in,
            "bytes_in": self.bytes_in,
            "alive": self.alive,
        }

    def __repr__(self) -> str:
        proto = self.protocol_name
        rport = "" if self.protocol == ICMP else f":{self.remote_port}"
        return (
            f"<Session {self.id} {proto} {self.inside_ip}:{self.inside_port} -> "
            f"{self.external_ip}:{self.external_port} -> {self.remote_ip}{rport} {self.state.value}"
            f"{'' if self.alive else ' dead'}>"
        )


SessionRef = Union[Session, int]
"""A session, or the id of one (what ``remove``/``touch``/``observe`` accept)."""
