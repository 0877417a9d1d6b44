"""Session events for ``snatctl watch`` (as ``conntrack -E`` shows them).

The engine's event hook feeds a bounded ring of numbered events; ``GET
/nat/events?after=N`` long-polls it.  A client that falls more than the
ring's size behind is told so (``missed``) instead of silently skipping.
"""
from __future__ import annotations

import time
from collections import deque

from conntrack import Event, EventKind

# conntrack -E's words: [NEW], [UPDATE], [DESTROY]; restored by a restart.
KIND_NAMES = {EventKind.CREATED: "new", EventKind.RESTORED: "restored",
              EventKind.UPDATED: "update", EventKind.EXPIRED: "destroy",
              EventKind.REMOVED: "destroy"}


class EventFeed:
    """The last ``size`` session events of every switch, numbered from 1."""

    def __init__(self, size: int = 4096) -> None:
        self._ring: deque[dict] = deque(maxlen=size)
        self.last = 0

    def record(self, dpid: int, event: Event) -> None:
        s = event.session
        self.last += 1
        self._ring.append({
            "seq": self.last, "event": KIND_NAMES.get(event.kind, event.kind.value),
            "time": round(time.time(), 3), "dpid": dpid, "id": s.id,
            "protocol": s.protocol_name, "state": s.state.value,
            "internal_ip": str(s.inside_ip), "internal_port": s.inside_port,
            "external_ip": str(s.external_ip), "external_port": s.external_port,
            "remote_ip": str(s.remote_ip), "remote_port": s.remote_port,
            "reason": event.reason})

    def since(self, after: int, limit: int = 1000) -> tuple[list[dict], int]:
        """Events numbered above ``after`` (at most ``limit``), and how many
        of those are gone from the ring already."""
        first = self._ring[0]["seq"] if self._ring else self.last + 1
        missed = max(0, first - after - 1) if after < self.last else 0
        events = [e for e in self._ring if e["seq"] > after][:limit]
        return events, missed
