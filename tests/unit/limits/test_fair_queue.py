"""Packet-ins queued per source when the controller is behind: served in
turn, bounded, never held back by a fixed budget unless an operator sets one."""
from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_app.limits.fair_queue import FairQueue, frame_source


def drain(queue: FairQueue, now: float = 0.0, most: int | None = None) -> list:
    out = []
    while (most is None or len(out) < most) and (item := queue.take(now)) is not None:
        out.append(item)
    return out


def test_sources_are_served_in_turn_whatever_they_sent():
    """A flooding source gets one packet handled for each one of a quiet
    source that has something waiting: its volume buys it nothing."""
    q: FairQueue = FairQueue(per_source=1000, total=10_000)
    for i in range(300):
        q.offer("flood", ("flood", i), 0.0)
    for i in range(3):
        q.offer("h1", ("h1", i), 0.0)
    first = drain(q, most=6)
    assert Counter(src for src, _ in first) == {"flood": 3, "h1": 3}
    assert [i for src, i in first if src == "h1"] == [0, 1, 2], "each source in its own order"


def test_one_source_alone_gets_everything_at_once():
    """Work-conserving: no budget, no pacing; whatever one source queued is
    handed out without waiting for anyone."""
    q: FairQueue = FairQueue()
    for i in range(50):
        q.offer("h1", i, 0.0)
    assert drain(q) == list(range(50))
    assert q.counters.dropped_full == q.counters.dropped_stale == q.counters.dropped_limit == 0


def test_a_full_source_loses_its_oldest_and_a_full_queue_its_longest_sources_oldest():
    dropped: list = []
    q: FairQueue = FairQueue(per_source=3, total=5, on_drop=lambda item, why: dropped.append(
        (item, why)))
    for i in range(5):
        q.offer("flood", i, 0.0)
    assert dropped == [(0, "full"), (1, "full")], "its own queue keeps the newest"
    for i in range(3):
        q.offer("h1", f"h{i}", 0.0)
    # 3 + 2 = 5 waiting: room for h1's third only by dropping from the longest (flood)
    assert dropped[-1] == (2, "full") and len(q) == 5
    assert drain(q) == [3, "h0", 4, "h1", "h2"]


def test_what_waited_too_long_is_dropped_not_handled():
    dropped: list = []
    q: FairQueue = FairQueue(max_age=1.0, on_drop=lambda item, why: dropped.append((item, why)))
    q.offer("h1", "old", 0.0)
    q.offer("h1", "new", 0.9)
    assert drain(q, now=1.5) == ["new"]
    assert dropped == [("old", "stale")] and q.counters.dropped_stale == 1


def test_an_operators_hard_limit_is_per_source():
    """Hosts behind one port each have their own limit; forging another
    host's address from another port spends nothing of that host's."""
    q: FairQueue = FairQueue(rate=20, burst=20)
    h2, neighbour = (1, 3, b"\x0a\x00\x00\x0c"), (1, 3, b"\x0a\x00\x00\x13")
    admitted = sum(q.within_limit(h2, i, 0.0) for i in range(300))
    assert admitted == 20 and q.counters.dropped_limit == 280
    assert q.within_limit(neighbour, "n", 0.0)
    forged = (1, 2, neighbour[2])
    assert sum(q.within_limit(forged, i, 0.0) for i in range(100)) == 20
    assert q.within_limit(neighbour, "n2", 0.0)
    assert q.within_limit(h2, "later", 1.0), "the limit refills with time"


def test_no_hard_limit_by_default():
    q: FairQueue = FairQueue()
    assert all(q.within_limit("h1", i, 0.0) for i in range(100_000))


def test_the_source_of_a_frame_is_its_mac_inside_and_its_ipv4_source_outside():
    ipv4 = bytes(6) + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00" + bytes(12) + b"\x0a\x00\x00\x0b"
    arp = bytes(6) + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x06" + bytes(28)
    assert frame_source(ipv4) == b"\x00\x00\x00\x00\x00\x01", "inside: the sender's MAC"
    assert frame_source(ipv4, outside=True) == b"\x0a\x00\x00\x0b"
    assert frame_source(arp) == frame_source(arp, outside=True) == b"\x00\x00\x00\x00\x00\x01"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=400))
def test_bounded_and_each_source_in_order(ops):
    """Whatever comes and goes: never more than ``total`` waiting, nothing
    counted twice, and each source's packets leave in the order they came."""
    q: FairQueue = FairQueue(per_source=8, total=20)
    seq: Counter = Counter()
    last: dict = {}
    taken = 0
    for source, take in ops:
        if take:
            item = q.take(0.0)
            if item is not None:
                taken += 1
                src, n = item
                assert n > last.get(src, -1)
                last[src] = n
        else:
            q.offer(source, (source, seq[source]), 0.0)
            seq[source] += 1
        assert len(q) <= 20
    left = len(q)
    assert len(drain(q)) == left and len(q) == 0
    c = q.counters
    assert c.offered == sum(seq.values()) == taken + c.dropped_full + left
