"""Session events for ``snatctl watch`` (as ``conntrack -E`` shows them).

The engine's event hook feeds a bounded ring of numbered events; ``GET
/nat/events?after=N`` long-polls it.  A client that falls more than the
ring's size behind is told so (``missed``) instead of silently skipping.
Every new session records an event, and most are never read: the ring keeps
plain values, and an event becomes a dict (addresses as text) only when a
client asks for it.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any

from conntrack import Event, EventKind, State

# conntrack -E's words: [NEW], [UPDATE], [DESTROY]; restored by a restart.
KIND_NAMES = {EventKind.CREATED: "new", EventKind.RESTORED: "restored",
              EventKind.UPDATED: "update", EventKind.EXPIRED: "destroy",
              EventKind.REMOVED: "destroy"}


MAX_WAITERS = 32   # long polls waiting at once; each is a green thread and a socket

# One recorded event: (number, wall-clock time, dpid, event, session state then).
_Entry = tuple[int, float, int, Event, State]


class EventFeed:
    """The last ``size`` session events of every switch, numbered from 1.
    At most ``max_waiters`` clients wait for the next ones at once."""

    def __init__(self, size: int = 4096, max_waiters: int = MAX_WAITERS) -> None:
        self._ring: deque[_Entry] = deque(maxlen=size)
        self.last = 0
        self.max_waiters = max_waiters
        self.waiters = 0

    def record(self, dpid: int, event: Event) -> None:
        # The session's addresses and ports never change; its state does, so
        # that is taken now.
        self.last += 1
        self._ring.append((self.last, time.time(), dpid, event, event.session.state))

    def since(self, after: int, limit: int = 1000) -> tuple[list[dict[str, Any]], int]:
        """Events numbered above ``after`` (at most ``limit``), and how many
        of those are gone from the ring already."""
        first = self._ring[0][0] if self._ring else self.last + 1
        missed = max(0, first - after - 1) if after < self.last else 0
        events = [_as_dict(e) for e in self._ring if e[0] > after][:limit]
        return events, missed


def _as_dict(entry: _Entry) -> dict[str, Any]:
    seq, at, dpid, event, state = entry
    s = event.session
    return {"seq": seq, "event": KIND_NAMES.get(event.kind, event.kind.value),
            "time": round(at, 3), "dpid": dpid, "id": s.id, "protocol": s.protocol_name,
            "state": state.value, "internal_ip": str(s.inside_ip), "internal_port": s.inside_port,
            "external_ip": str(s.external_ip), "external_port": s.external_port,
            "remote_ip": str(s.remote_ip), "remote_port": s.remote_port,
            "reason": event.reason}
