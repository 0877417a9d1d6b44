"""Who is where: outside next hops resolved by ARP, inside hosts learned.

Pure bookkeeping with the time passed in, so tests need no switch or clock.

* :class:`NextHops` resolves outside next hops.  Packets that need a next hop
  whose MAC is unknown wait in a bounded queue (per hop and in total) for a
  bounded time while the gateway asks by ARP, instead of being dropped.
  A MAC is learned only from an ARP reply to a request of the gateway's own
  (asked within ``solicit_window``): a gratuitous or unsolicited ARP, or a
  packet with a forged source, cannot move a next hop.  A pinned next hop
  (``external_gateway_mac``) is never learned nor asked for.
* Inside hosts are bound to their port and MAC by :mod:`ryu_app.nat.source_guard`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Waiting(Generic[T]):
    since: float
    asked_at: float
    tries: int = 1
    items: list[T] = field(default_factory=list)


class NextHops(Generic[T]):
    """ARP cache of outside next hops with a hold queue for unresolved ones.

    ``hold`` parks an item (whatever the caller needs to resume: a session
    setup) until :meth:`learn` releases it or :meth:`tick` gives up on it.
    """

    def __init__(self, ttl: float = 300.0, retry: float = 1.0, max_tries: int = 3,
                 per_hop: int = 64, max_hops: int = 256, max_entries: int = 4096,
                 pinned: dict[str, str] | None = None, solicit_window: float = 5.0) -> None:
        self.ttl, self.retry, self.max_tries = ttl, retry, max_tries
        self.per_hop, self.max_hops, self.max_entries = per_hop, max_hops, max_entries
        self.pinned = dict(pinned or {})
        self.solicit_window = solicit_window
        self._macs: OrderedDict[str, tuple[str, float]] = OrderedDict()  # ip -> (mac, learned)
        self._waiting: dict[str, _Waiting[T]] = {}
        self._asked: OrderedDict[str, float] = OrderedDict()   # ip -> when we last asked

    def asked(self, ip: str, now: float) -> None:
        """The gateway sent an ARP request for ``ip``: a reply is expected."""
        self._asked[ip] = now
        self._asked.move_to_end(ip)
        while len(self._asked) > self.max_entries:
            self._asked.popitem(last=False)

    def solicited(self, ip: str, now: float) -> bool:
        """Would a reply from ``ip`` answer a request of ours?"""
        if ip in self.pinned:
            return False
        return ip in self._waiting or now - self._asked.get(ip, float("-inf")) <= self.solicit_window

    def lookup(self, ip: str, now: float) -> str | None:
        """The MAC of ``ip`` if pinned, or known and fresh."""
        pinned = self.pinned.get(ip)
        if pinned is not None:
            return pinned
        entry = self._macs.get(ip)
        if entry is None or now - entry[1] > self.ttl:
            return None
        return entry[0]

    def learn(self, ip: str, mac: str, now: float) -> list[T]:
        """Record ``ip`` at ``mac``; return the items that waited for it."""
        if ip in self.pinned:
            return []
        self._macs[ip] = (mac, now)
        self._macs.move_to_end(ip)
        while len(self._macs) > self.max_entries:
            self._macs.popitem(last=False)
        waiting = self._waiting.pop(ip, None)
        return waiting.items if waiting else []

    def hold(self, ip: str, item: T, now: float) -> tuple[bool, bool]:
        """Park ``item`` until ``ip`` resolves: (accepted, send an ARP request now)."""
        waiting = self._waiting.get(ip)
        if waiting is None:
            if len(self._waiting) >= self.max_hops:
                return False, False
            self._waiting[ip] = _Waiting(since=now, asked_at=now, items=[item])
            return True, True
        if len(waiting.items) >= self.per_hop:
            return False, False
        waiting.items.append(item)
        return True, False

    def tick(self, now: float) -> tuple[list[str], list[T]]:
        """(next hops to ask again, items given up on after ``max_tries`` asks)."""
        ask, expired = [], []
        for ip, waiting in list(self._waiting.items()):
            if now - waiting.asked_at < self.retry:
                continue
            if waiting.tries >= self.max_tries:
                expired.extend(self._waiting.pop(ip).items)
                continue
            waiting.tries += 1
            waiting.asked_at = now
            ask.append(ip)
        return ask, expired

    def holds(self, key: Any) -> bool:
        """True if an item whose first element is ``key`` waits (a session id)."""
        return any(isinstance(item, tuple) and item[0] == key
                   for w in self._waiting.values() for item in w.items)

    def pending(self) -> int:
        return sum(len(w.items) for w in self._waiting.values())

    def known(self, now: float) -> dict[str, str]:
        fresh = {ip: mac for ip, (mac, t) in self._macs.items() if now - t <= self.ttl}
        return {**fresh, **self.pinned}
