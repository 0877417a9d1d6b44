"""Packet-ins shared fairly when the controller falls behind, never held back
when it keeps up.

Every new session's first packet costs the controller a packet-in.  A fixed
budget per host (what ryu-snat did first) throttles a quiet network: one
host alone opening connections fast lost every SYN above its budget to a 1 s
retransmission.  Here nothing waits while the controller keeps up: a
packet-in that finds the queue empty is handled at once.  When packet-ins
come faster than they are handled, they queue per source, and the sources
are served in turn (round robin, one packet each), so a source that sends
ten times more gets no more of the controller than a quiet one that has a
packet waiting.  What does not fit is dropped from the source that has
most queued (as Open vSwitch's own packet-in scheduler, ``pinsched``,
drops from its longest per-port queue), and a packet that waited longer
than ``max_age`` is dropped unhandled: its sender retransmitted by then.
A source alone may fill the whole queue (a host opening 150 UDP flows at
once loses none of them); ``per_source`` bounds one source below that.

A source is whatever key the caller gives (the gateway uses switch, port
and sender: ``frame_source``).  An optional hard limit per source (a token bucket,
off by default) is for operators who want one.  Time is passed in; nothing
here knows Ryu.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

from ryu_app.limits.ratelimit import PerKeyBuckets

T = TypeVar("T")
_IPV4 = b"\x08\x00"


def frame_source(data: bytes, outside: bool = False) -> bytes:
    """Who sent a frame, as far as the packet-in's first bytes tell.  Inside,
    its Ethernet source: the share follows the (port, MAC) that sent the
    packet, not the address it claims, so rotating forged source addresses
    earns no extra turns.  From the uplink every remote comes from the
    router's MAC, so its IPv4 source tells remotes apart there."""
    if outside and data[12:14] == _IPV4:
        return data[26:30]
    return data[6:12]


@dataclass
class FairQueueCounters:
    offered: int = 0
    queued_max: int = 0      # the most packets waiting at once
    dropped_full: int = 0    # no room: dropped from the longest queue
    dropped_stale: int = 0   # waited longer than max_age
    dropped_limit: int = 0   # over the operator's hard per-source limit

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class FairQueue(Generic[T]):
    """Per-source FIFO queues served round robin, bounded in all."""

    def __init__(self, per_source: int = 4096, total: int = 4096, max_age: float = 1.0,
                 rate: float = 0.0, burst: float = 0.0, max_sources: int = 4096,
                 on_drop: Callable[[T, str], None] | None = None) -> None:
        """``on_drop(item, reason)`` hears of every packet dropped: reason
        ``full``, ``stale`` or ``limit``."""
        self.per_source, self.total, self.max_age = per_source, total, max_age
        self._limit = PerKeyBuckets(rate, burst or rate, max_keys=max_sources) if rate else None
        self._on_drop = on_drop
        # source -> its waiting (arrival time, item), oldest first; only
        # sources with something waiting, in the order they are served.
        self._queues: OrderedDict[Hashable, deque[tuple[float, T]]] = OrderedDict()
        self._waiting = 0
        self.counters = FairQueueCounters()

    def __len__(self) -> int:
        return self._waiting

    def within_limit(self, source: Hashable, item: T, now: float) -> bool:
        """The operator's hard per-source limit (if any) lets ``item`` in;
        also for packets handled at once, without the queue."""
        if self._limit is None or self._limit.take(source, now):
            return True
        self.counters.dropped_limit += 1
        self._dropped(item, "limit")
        return False

    def offer(self, source: Hashable, item: T, now: float) -> None:
        """Queue ``item`` of ``source`` (the hard limit is the caller's:
        ``within_limit``).  Room is made by dropping the oldest packet of the
        source (its own queue full) or of the longest queue (all full)."""
        self.counters.offered += 1
        queue = self._queues.get(source)
        if queue is None:
            queue = self._queues[source] = deque()
        elif len(queue) >= self.per_source:
            self._drop_oldest(queue)
        if self._waiting >= self.total:
            self._drop_oldest(max(self._queues.values(), key=len))
        queue.append((now, item))
        self._waiting += 1
        if self._waiting > self.counters.queued_max:
            self.counters.queued_max = self._waiting

    def take(self, now: float) -> T | None:
        """The next packet to handle (the next source's oldest), or None."""
        queues = self._queues
        while queues:
            source, queue = next(iter(queues.items()))
            if not queue:
                del queues[source]
                continue
            arrived, item = queue.popleft()
            self._waiting -= 1
            if queue:
                queues.move_to_end(source)      # its turn is over
            else:
                del queues[source]
            if now - arrived > self.max_age:
                self.counters.dropped_stale += 1
                self._dropped(item, "stale")
                continue
            return item
        return None

    def _drop_oldest(self, queue: deque) -> None:
        _arrived, item = queue.popleft()
        self._waiting -= 1
        self.counters.dropped_full += 1
        self._dropped(item, "full")

    def _dropped(self, item: T, reason: str) -> None:
        if self._on_drop is not None:
            self._on_drop(item, reason)

    def sources(self) -> int:
        """Sources with packets waiting."""
        return sum(1 for q in self._queues.values() if q)
