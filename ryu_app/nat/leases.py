"""Mappings inside hosts asked for over PCP or NAT-PMP, with their lifetimes.

The engine holds the mapping (:meth:`conntrack.ConnTrack.request_mapping`,
:meth:`~conntrack.ConnTrack.hold_peer`); a :class:`Lease` says who asked,
how (PCP with its nonce, or NAT-PMP), and until when.  The book ends leases
on the tick; the switch keeps a copy of each (a record flow,
:mod:`ryu_app.openflow.lease_records`) so a restarted controller has them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

PCP, NATPMP = "pcp", "natpmp"


@dataclass
class Lease:
    """One requested mapping (``peer`` None: PCP MAP or NAT-PMP) or held peer (PCP PEER)."""

    ident: int                         # the record flow's cookie id
    origin: str                        # PCP or NATPMP
    protocol: int
    internal_ip: str
    internal_port: int
    external_ip: str
    external_port: int
    expires: float                     # monotonic
    lifetime: int                      # as last granted (seconds)
    nonce: bytes = b""                 # PCP's 12 bytes; empty for NAT-PMP
    peer: tuple[str, int] | None = None
    created: float = field(default=0.0)   # wall clock, for operators
    companion: bool = False            # NAT-PMP: the other protocol's port is kept for it

    @property
    def key(self) -> tuple:
        return (self.protocol, self.internal_ip, self.internal_port, self.peer)

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires - now + 0.5))


class LeaseBook:
    """The leases of one switch, by endpoint (and peer) and by inside host."""

    def __init__(self) -> None:
        self._by_key: dict[tuple, Lease] = {}
        self._next = 1

    def __iter__(self) -> Iterator[Lease]:
        return iter(list(self._by_key.values()))

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, protocol: int, ip: str, port: int,
            peer: tuple[str, int] | None = None) -> Lease | None:
        return self._by_key.get((protocol, ip, port, peer))

    def of_host(self, ip: str) -> list[Lease]:
        return [lease for lease in self._by_key.values() if lease.internal_ip == ip]

    def new_ident(self) -> int:
        ident = self._next
        self._next = ident + 1 if ident < 0xFFFFFFFF else 1
        while self._next in self._idents():
            self._next += 1
        return ident

    def add(self, lease: Lease) -> None:
        self._by_key[lease.key] = lease
        if lease.ident >= self._next:
            self._next = lease.ident + 1

    def remove(self, lease: Lease) -> None:
        self._by_key.pop(lease.key, None)

    def due(self, now: float) -> list[Lease]:
        """Leases whose lifetime ran out."""
        return [lease for lease in self._by_key.values() if lease.expires <= now]

    def _idents(self) -> set[int]:
        return {lease.ident for lease in self._by_key.values()}
