"""The one path by which ryu-snat sends OpenFlow messages.

It attaches the datapath to messages built elsewhere (``datapath=None``) and
remembers recent messages by xid, so an OpenFlow error from the switch can be
logged next to the message that caused it.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Iterable

LOG = logging.getLogger(__name__)


class Sender:
    """Sends message lists in order; keeps the last ``memory`` by xid."""

    def __init__(self, memory: int = 4096) -> None:
        self._memory = memory
        self._recent: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self.sent = 0
        self.failed = 0

    def send(self, datapath: Any, msgs: Iterable[Any]) -> None:
        for msg in msgs:
            msg.datapath = datapath
            if not datapath.send_msg(msg):
                # Ryu returns False once the connection is closing; the switch
                # will reconnect and be re-programmed from scratch.
                self.failed += 1
                LOG.warning("switch %s: could not send %s", datapath.id, type(msg).__name__)
                continue
            self.sent += 1
            self._recent[(datapath.id, msg.xid)] = msg
            if len(self._recent) > self._memory:
                self._recent.popitem(last=False)

    def culprit(self, dpid: int, xid: int) -> Any | None:
        """The message we sent to ``dpid`` with ``xid``, if still remembered."""
        return self._recent.get((dpid, xid))
