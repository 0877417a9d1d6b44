"""Deterministic NAT (RFC 7422): each inside address owns one fixed block.

With the inside prefix, the pool and the block size known, the external
address and ports of every inside address follow from the configuration
alone, both ways, so no per-session or per-block log is needed to answer
"who was 198.51.100.2:4100?".  The formula (the docs show it too)::

    k     = inside_ip - network_address(inside prefix)      # 0 .. size-1
    n     = len(pool);  B = (port_high - port_low + 1) // block_size
    address = pool[k mod n];   j = k div n                  # block j of it
    ports = port_low + j*block_size .. port_low + (j+1)*block_size - 1

and back: ``k = ((port - port_low) div block_size) * n + index(address)``.
Consecutive inside addresses go to consecutive pool addresses, as paired
pooling spreads hosts.  Every address of the prefix has a block (network and
broadcast included: the formula stays one line), so the prefix must fit:
``2**(32 - prefixlen) <= n * B``.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Optional

from .keys import IPLike, ip_to_int


@dataclass(frozen=True)
class DeterministicMap:
    """The fixed inside address <-> (external address, port block) map."""

    inside: IPv4Network
    pool: tuple[IPv4Address, ...]
    port_low: int
    port_high: int
    block_size: int

    def __post_init__(self) -> None:
        if self.inside.num_addresses > self.capacity:
            raise ValueError(
                f"deterministic mode needs a block for each of the {self.inside.num_addresses} addresses "
                f"of {self.inside}; {len(self.pool)} address(es) x {self.blocks_per_address} blocks of "
                f"{self.block_size} ports give {self.capacity}"
            )

    @property
    def blocks_per_address(self) -> int:
        return (self.port_high - self.port_low + 1) // self.block_size

    @property
    def capacity(self) -> int:
        """Inside addresses the pool can give a block each."""
        return len(self.pool) * self.blocks_per_address

    def slot(self, inside_ip: IPLike) -> Optional[tuple[int, int]]:
        """(pool index, block index) of an inside address; None outside the prefix."""
        k = ip_to_int(inside_ip) - int(self.inside.network_address)
        if not 0 <= k < self.inside.num_addresses:
            return None
        n = len(self.pool)
        return k % n, k // n

    def block_of(self, inside_ip: IPLike) -> Optional[tuple[IPv4Address, int, int]]:
        """(external address, first port, last port) of an inside address."""
        where = self.slot(inside_ip)
        if where is None:
            return None
        index, block = where
        first = self.port_low + block * self.block_size
        return self.pool[index], first, first + self.block_size - 1

    def owner_of(self, external_ip: IPLike, port: int) -> Optional[IPv4Address]:
        """The inside address that owns ``external_ip:port``, or None when
        no inside address does (not a pool address, a port outside every block)."""
        try:
            index = self.pool.index(IPv4Address(ip_to_int(external_ip)))
        except ValueError:
            return None
        block = (port - self.port_low) // self.block_size
        if port < self.port_low or block >= self.blocks_per_address:
            return None
        k = block * len(self.pool) + index
        if k >= self.inside.num_addresses:
            return None
        return IPv4Address(int(self.inside.network_address) + k)
