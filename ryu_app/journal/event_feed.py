"""Session events for ``snatctl watch`` (as ``conntrack -E`` shows them).

The engine's event hook feeds a bounded ring of numbered events; ``GET
/nat/events?after=N`` long-polls it.  A client that falls more than the
ring's size behind is told so (``missed``) instead of silently skipping.
Every new session records an event, and most are never read: the ring keeps
plain values, and an event becomes a dict (addresses as text) only when a
client asks for it.

Numbers start again at 1 when the controller starts, so the feed has a
``boot`` id, random per start: a watcher that sees it change knows its
``after`` means nothing any more and starts again from the new feed's
beginning (the sessions a restart restored come first).
"""
from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Any

from conntrack import Event, EventKind, State

# conntrack -E's words: [NEW], [UPDATE], [DESTROY]; restored by a restart.
KIND_NAMES = {EventKind.CREATED: "new", EventKind.RESTORED: "restored",
              EventKind.UPDATED: "update", EventKind.EXPIRED: "destroy",
              EventKind.REMOVED: "destroy"}


MAX_WAITERS = 32   # long polls waiting at once; each is a green thread and a socket

# One recorded event: (number, wall-clock time, dpid, event, session state and
# idle timeout then).
_Entry = tuple[int, float, int, Event, State, int]


class EventFeed:
    """The last ``size`` session events of every switch, numbered from 1.
    At most ``max_waiters`` clients wait for the next ones at once."""

    def __init__(self, size: int = 4096, max_waiters: int = MAX_WAITERS) -> None:
        self._ring: deque[_Entry] = deque(maxlen=size)
        self.last = 0
        self.max_waiters = max_waiters
        self.waiters = 0
        self.boot = uuid.uuid4().hex[:16]      # this start of the controller

    def record(self, dpid: int, event: Event) -> None:
        # The session's addresses and ports never change; its state does, so
        # that is taken now.
        self.last += 1
        s = event.session
        self._ring.append((self.last, time.time(), dpid, event, s.state, int(s.timeout)))

    def since(self, after: int, limit: int = 1000) -> tuple[list[dict[str, Any]], int]:
        """Events numbered above ``after`` (at most ``limit``), and how many
        of those are gone from the ring already."""
        first = self._ring[0][0] if self._ring else self.last + 1
        missed = max(0, first - after - 1) if after < self.last else 0
        events = [_as_dict(e) for e in self._ring if e[0] > after][:limit]
        return events, missed


def _as_dict(entry: _Entry) -> dict[str, Any]:
    seq, at, dpid, event, state, timeout = entry
    s = event.session
    out: dict[str, Any] = {
        "seq": seq, "event": KIND_NAMES.get(event.kind, event.kind.value),
        "time": round(at, 3), "dpid": dpid, "id": s.id, "protocol": s.protocol_name,
        "state": state.value, "internal_ip": str(s.inside_ip), "internal_port": s.inside_port,
        "external_ip": str(s.external_ip), "external_port": s.external_port,
        "remote_ip": str(s.remote_ip), "remote_port": s.remote_port,
        "reason": event.reason, "timeout": timeout}
    if not s.alive:       # a destroyed session's counters are final: conntrack -E shows them
        out.update(packets_out=s.packets_out, bytes_out=s.bytes_out,
                   packets_in=s.packets_in, bytes_in=s.bytes_in)
    return out
