"""A token bucket: the gateway's own ICMP errors must never become a flood."""
from __future__ import annotations


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
