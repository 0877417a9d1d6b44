"""The outside side of one switch: its port, its addresses, its next hops.

Every packet path that sends outwards needs the same few facts (which port,
which source MAC and address, which next hop for a remote) and the one way
to ask for a next hop's MAC.  They live here, not in the service, so a path
is handed this object and nothing more of the outside.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ryu_app.nat.addresses import ipv4
from ryu_app.nat.neighbors import NextHops
from ryu_app.openflow import flows
from ryu_app.packets import replies

#: What waits for a next hop: (session id, direction, frame).
Held = tuple[int, int, bytes]


@dataclass
class Uplink:
    """Mutable only in ``port``: a switch may renumber its uplink."""

    port: int
    address: str                     # the gateway's own address outside, as text
    gateway_mac: str                 # our MAC on both sides
    hops: NextHops[Held]
    direct: tuple[int, int]          # hosts of the external prefix, as ints
    gateway: str | None = None       # next hop for remotes off the prefix
    # The NAT addresses in pool order (by default the own address alone), as text.
    pool: tuple[str, ...] = ()
    addresses: frozenset[str] = field(init=False, default=frozenset())   # the pool, as a set
    # Pool address as an int (a mapping's policy.external_ip) -> as text: the
    # flows need text, and making it per session cost 7% of a first packet.
    text_of: dict[int, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not self.pool:
            self.pool = (self.address,)
        self.addresses = frozenset(self.pool)
        self.text_of = {int(ipv4(a)): a for a in self.pool}

    def route(self, remote: str) -> str | None:
        """Remotes on the external prefix directly, others via the gateway."""
        low, high = self.direct
        if low <= int(ipv4(remote)) <= high:
            return remote
        return self.gateway

    def arp_request(self, ip: str, now: float) -> object:
        """Ask the outside who has ``ip`` (and remember we asked: only a
        reply to our own request may teach a next hop)."""
        self.hops.asked(ip, now)
        frame = replies.arp_request(self.gateway_mac, self.address, ip)
        return flows.packet_out(self.port, frame)
