"""Token buckets: the gateway's own ICMP errors must never become a flood,
and no one host's packet-ins may take the controller's time from the others."""
from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; time passed in."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp: float | None = None

    def take(self, now: float) -> bool:
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class PerKeyBuckets:
    """One bucket per key (an inside host), at most ``max_keys`` of them
    (the least recently used goes), under one shared bucket for all: no key
    can use up the others' share, and all together stay bounded."""

    def __init__(self, rate: float, burst: float, total_rate: float | None = None,
                 total_burst: float | None = None, max_keys: int = 1024) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self.total = None if total_rate is None else TokenBucket(total_rate, total_burst or 1)
        self._buckets: OrderedDict[object, TokenBucket] = OrderedDict()

    def take(self, key: object, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        if not bucket.take(now):
            return False
        if self.total is None or self.total.take(now):
            return True
        bucket.tokens += 1          # refused in all: the host's token is not spent
        return False
