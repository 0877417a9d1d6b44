"""Expiry timers: one-second buckets in a heap, refreshed lazily.

Each live item is filed in the bucket of the whole second at or before its
deadline. A refresh (deadline later) costs nothing: when the old bucket comes
due the item is re-filed. A deadline that moves earlier (e.g. TCP going to
CLOSING) files a second copy; the stale copy is skipped later. So a sweep
touches only the buckets that are due, i.e. what expires plus what was
refreshed since it was filed, never the whole table.

Invariant: every live item has a copy in a bucket whose second is <= floor of
its current deadline. Hence ``collect(now)`` finds every item with
deadline <= now and, since it checks the real deadline, nothing earlier.
"""

from __future__ import annotations

import heapq
import math
from typing import Callable, Generic, Iterable, Optional, TypeVar

T = TypeVar("T")
# Returns the item's current deadline, or None if the item is dead.
DeadlineOf = Callable[[T], Optional[float]]
_floor = math.floor


class TimerWheel(Generic[T]):
    """Deadline index with cost per sweep proportional to the due buckets."""

    __slots__ = ("_buckets", "_ticks", "stale", "filed")

    def __init__(self) -> None:
        self._buckets: dict[int, list[T]] = {}
        self._ticks: list[int] = []  # heap of the keys of _buckets
        self.stale = 0  # estimate of dead or duplicate copies held
        self.filed = 0  # copies held, live or not

    def add(self, item: T, deadline: float) -> None:
        """File ``item`` to be due at ``deadline``."""
        tick = _floor(deadline)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = []
            heapq.heappush(self._ticks, tick)
        bucket.append(item)
        self.filed += 1

    def collect(self, now: float, deadline_of: DeadlineOf[T], on_due: Callable[[T], None]) -> None:
        """Call ``on_due(item)`` for every live item with deadline <= now.

        ``on_due`` must make the item dead (``deadline_of`` -> None) so that a
        duplicate copy is not reported twice. Live items not yet due are
        re-filed under their current deadline.
        """
        ticks, buckets = self._ticks, self._buckets
        if now == math.inf:   # everything is due
            current = max(ticks) if ticks else 0
        else:
            current = math.floor(now)
        while ticks and ticks[0] <= current:
            tick = ticks[0]
            bucket = buckets[tick]
            partial = tick == current  # the second we are in: keep what is not due
            if not partial:
                heapq.heappop(ticks)
                del buckets[tick]
                self.filed -= len(bucket)
            keep: list[T] = []
            for item in bucket:
                deadline = deadline_of(item)
                if deadline is None:
                    if self.stale > 0:
                        self.stale -= 1
                    continue
                if deadline <= now:
                    on_due(item)
                elif partial and math.floor(deadline) == tick:
                    keep.append(item)
                else:
                    self.add(item, deadline)
            if partial:
                self.filed -= len(bucket) - len(keep)
                if keep:
                    buckets[tick] = keep
                else:
                    heapq.heappop(ticks)
                    del buckets[tick]
                break

    def next_deadline(self, deadline_of: DeadlineOf[T]) -> Optional[float]:
        """Earliest deadline of a live item, or None when nothing is filed.

        Cleans the head buckets on the way (drops dead copies, re-files
        refreshed items), so its cost is that of the work a sweep would do.
        """
        ticks, buckets = self._ticks, self._buckets
        while ticks:
            tick = ticks[0]
            bucket = buckets[tick]
            heapq.heappop(ticks)
            del buckets[tick]
            self.filed -= len(bucket)
            keep: list[T] = []
            best = math.inf
            for item in bucket:
                deadline = deadline_of(item)
                if deadline is None:
                    if self.stale > 0:
                        self.stale -= 1
                elif math.floor(deadline) > tick:
                    self.add(item, deadline)
                else:
                    keep.append(item)
                    best = min(best, deadline)
            if keep:
                buckets[tick] = keep
                heapq.heappush(ticks, tick)
                self.filed += len(keep)
                return best
        return None

    def rebuild(self, items: Iterable[tuple[T, float]]) -> None:
        """Replace everything with one copy per (item, deadline): drops all stale copies."""
        self._buckets = {}
        self._ticks = []
        self.stale = 0
        self.filed = 0
        for item, deadline in items:
            self.add(item, deadline)

    def __len__(self) -> int:
        """Number of copies filed (live, dead or duplicate)."""
        return self.filed
