"""The one path by which ryu-snat sends OpenFlow messages.

Each event's messages leave in one write: they are serialised (Ryu-built
ones by Ryu, :class:`~ryu_app.flow_encoding.Encoded` ones by us) with their
xids, concatenated and queued once on the datapath, instead of one queue
entry, greenlet switch and ``sendall`` per message.  Recent messages are
remembered by xid, so an OpenFlow error from the switch can be logged next
to the message that caused it.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Iterable

from ryu_app.flow_encoding import Encoded

LOG = logging.getLogger(__name__)


class Sender:
    """Sends message lists in order; keeps the last ``memory`` by xid."""

    def __init__(self, memory: int = 4096) -> None:
        self._memory = memory
        self._recent: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self.sent = 0
        self.failed = 0

    def send(self, datapath: Any, msgs: Iterable[Any]) -> None:
        bufs, recent = [], self._recent
        max_xid = datapath.ofproto.MAX_XID
        for msg in msgs:
            datapath.xid = xid = (datapath.xid + 1) & max_xid
            if isinstance(msg, Encoded):
                bufs.append(msg.serialize(xid))
            else:
                msg.datapath = datapath
                msg.xid = xid
                msg.serialize()
                bufs.append(msg.buf)
            recent[(datapath.id, xid)] = msg
        if not bufs:
            return
        while len(recent) > self._memory:
            recent.popitem(last=False)
        if not datapath.send(b"".join(bufs)):
            # Ryu returns False once the connection is closing; the switch
            # will reconnect and be re-programmed from scratch.
            self.failed += len(bufs)
            LOG.warning("switch %s: could not send %d messages", datapath.id, len(bufs))
            return
        self.sent += len(bufs)

    def culprit(self, dpid: int, xid: int) -> Any | None:
        """The message we sent to ``dpid`` with ``xid``, if still remembered."""
        return self._recent.get((dpid, xid))
