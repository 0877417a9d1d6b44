"""Which pool address each inside host is translated to (paired pooling).

RFC 4787 REQ-2: a NAT with several external addresses MUST use the same
external address for all mappings of one inside address ("paired"), or
remote peers see one host as several and break (SIP, FTP, banks that bind a
login to an address).  A mixin of :class:`~conntrack.table.ConnTrack`.

* A host is *paired* with an address while it holds any mapping (static
  forwards included); the pairing is counted per address, so new hosts go
  to the address with the fewest paired hosts (ties: pool order).
* A host whose mappings all ended goes back to the address it had last, if
  it comes back (remembered for up to ``REMEMBERED`` hosts, oldest
  forgotten first), so a host keeps one address across quiet periods.
* A host whose address has no port left is refused (POOL_EXHAUSTED), never
  moved to another address: that would break pairing for its live sessions.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Optional

from .config import ConntrackConfig
from .keys import IPLike, ip_to_int

REMEMBERED = 1 << 16  # hosts whose last address is kept once they hold no mapping


class Pairing:
    """Host -> pool address bookkeeping of ConnTrack (kept only when the
    pool has more than one address: one address needs no choice)."""

    _per_host: dict[int, int]  # Limits: inside ip -> live sessions

    def _init_pairing(self, config: ConntrackConfig) -> None:
        self._addresses = config.external_pool
        self._addr_index = {int(a): i for i, a in enumerate(self._addresses)}
        self._paired = len(self._addresses) > 1
        self._host_addr: dict[int, int] = {}    # inside ip -> pool index, while it holds mappings
        self._host_maps: dict[int, int] = {}    # inside ip -> mappings it holds
        self._addr_hosts = [0] * len(self._addresses)  # pool index -> paired hosts
        self._host_last: dict[int, int] = {}    # inside ip -> pool index it had last
        self._det = config.deterministic_map()

    def _address_for(self, inside_ip: int) -> int:
        """Pool index a new mapping of ``inside_ip`` must use (not committed)."""
        index = self._host_addr.get(inside_ip)
        if index is not None:
            return index
        if self._det is not None:    # deterministic: the formula's address (RFC 7422)
            where = self._det.slot(inside_ip)
            return where[0] if where is not None else 0
        index = self._host_last.get(inside_ip)
        if index is not None:
            return index
        hosts = self._addr_hosts
        return hosts.index(min(hosts))

    def _pair(self, inside_ip: int, index: int) -> None:
        """One more mapping of ``inside_ip`` on pool address ``index``."""
        held = self._host_maps.get(inside_ip, 0)
        if not held:
            self._host_addr[inside_ip] = index
            self._addr_hosts[index] += 1
            self._host_last.pop(inside_ip, None)
        self._host_maps[inside_ip] = held + 1

    def _unpair(self, inside_ip: int) -> None:
        """One mapping of ``inside_ip`` fewer; the host is unpaired with its last."""
        left = self._host_maps[inside_ip] - 1
        if left:
            self._host_maps[inside_ip] = left
            return
        del self._host_maps[inside_ip]
        index = self._host_addr.pop(inside_ip)
        self._addr_hosts[index] -= 1
        last = self._host_last
        if len(last) >= REMEMBERED:
            del last[next(iter(last))]
        last[inside_ip] = index

    # -- queries ------------------------------------------------------------
    @property
    def addresses(self) -> tuple[IPv4Address, ...]:
        """The external addresses, in pool order."""
        return self._addresses

    def address_index(self, external_ip: IPLike) -> Optional[int]:
        """Position of ``external_ip`` in the pool, or None if it is not ours."""
        return self._addr_index.get(ip_to_int(external_ip))

    def host_address(self, inside_ip: IPLike) -> Optional[IPv4Address]:
        """The pool address ``inside_ip`` is translated to now (None while it
        holds no mapping)."""
        ip = ip_to_int(inside_ip)
        if not self._paired:
            return self._addresses[0] if ip in self._per_host else None
        index = self._host_addr.get(ip)
        return None if index is None else self._addresses[index]

    def paired_hosts(self) -> list[int]:
        """Inside hosts paired with each pool address, in pool order."""
        if not self._paired:
            return [len(self._per_host)]
        return list(self._addr_hosts)
