"""TimerWheel on its own: exact deadlines, lazy refresh, stale copies."""

from conntrack.timers import TimerWheel


class Item:
    def __init__(self, deadline):
        self.deadline = deadline
        self.dead = False


def deadline_of(item):
    return None if item.dead else item.deadline


def collect(wheel, now):
    due = []

    def on_due(item):
        item.dead = True
        due.append(item)

    wheel.collect(now, deadline_of, on_due)
    return due


def test_collects_exactly_what_is_due_including_within_the_current_second():
    w = TimerWheel()
    items = [Item(d) for d in (5.0, 5.25, 5.75, 6.0, 100.0)]
    for it in items:
        w.add(it, it.deadline)
    assert collect(w, 4.99) == []
    assert collect(w, 5.25) == items[:2]
    assert collect(w, 5.5) == []
    assert collect(w, 6.0) == items[2:4]
    assert w.next_deadline(deadline_of) == 100.0
    assert len(w) == 1


def test_lazy_refresh_and_earlier_copy():
    w = TimerWheel()
    a, b = Item(10.0), Item(10.0)
    w.add(a, 10.0)
    w.add(b, 10.0)
    a.deadline = 50.0  # refreshed: nothing to tell the wheel
    b.deadline = 3.0  # shortened: file a second copy
    w.add(b, 3.0)
    assert w.next_deadline(deadline_of) == 3.0
    assert collect(w, 9.0) == [b]
    assert collect(w, 49.0) == []  # a re-filed at 50, b's stale copy dropped
    assert w.next_deadline(deadline_of) == 50.0
    assert collect(w, 50.0) == [a]
    assert w.next_deadline(deadline_of) is None and len(w) == 0


def test_rebuild_keeps_one_copy_per_item():
    w = TimerWheel()
    items = [Item(float(n)) for n in range(10)]
    for it in items:
        w.add(it, it.deadline)
        w.add(it, it.deadline)
    w.stale = 10
    w.rebuild((it, it.deadline) for it in items if it.deadline >= 5)
    assert len(w) == 5 and w.stale == 0
    assert collect(w, 100.0) == items[5:]
