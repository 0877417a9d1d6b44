"""The one path by which ryu-snat sends OpenFlow messages.

Each event's messages leave in one write: they are serialised (Ryu-built
ones by Ryu, :class:`~ryu_app.openflow.flow_encoding.Encoded` ones by us) with their
xids, concatenated and queued once on the datapath, instead of one queue
entry, greenlet switch and ``sendall`` per message, and written at once
when the connection is idle (:mod:`~ryu_app.openflow.writer`).  Inside ``batch()``
(queued packet-ins handled one after another) the writes of several events
are held and leave together at ``flush()``: a loopback ``send`` costs the
controller the switch's side of TCP too.  Recent messages are remembered by
xid, so an OpenFlow error from the switch can be logged next to the message
that caused it.
"""
from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from typing import Any, Iterable, Iterator

from ryu_app.openflow import writer
from ryu_app.openflow.flow_encoding import Encoded

LOG = logging.getLogger(__name__)


class Sender:
    """Sends message lists in order; keeps the last ``memory`` by xid."""

    def __init__(self, memory: int = 4096) -> None:
        self._memory = memory
        self._recent: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self.sent = 0
        self.failed = 0
        self._held: dict[int, tuple[Any, list[bytes]]] | None = None   # dpid -> (dp, writes)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold the writes of every ``send`` in the block; send them, one
        write per switch, when it ends (or at ``flush``)."""
        if self._held is not None:          # nested: the outer block sends
            yield
            return
        self._held = {}
        try:
            yield
        finally:
            self.flush()
            self._held = None

    def flush(self) -> None:
        """Send what a batch holds so far."""
        if not self._held:
            return
        held, self._held = self._held, {}
        for datapath, bufs in held.values():
            self._write(datapath, b"".join(bufs), len(bufs))

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
        if self._held is not None:
            self._held.setdefault(datapath.id, (datapath, []))[1].extend(bufs)
            return
        self._write(datapath, b"".join(bufs), len(bufs))

    def _write(self, datapath: Any, buf: bytes, count: int) -> None:
        if not writer.write(datapath, buf):
            # Ryu returns False once the connection is closing; the switch
            # will reconnect and be re-programmed from scratch.
            self.failed += count
            LOG.warning("switch %s: could not send %d messages", datapath.id, count)
            return
        self.sent += count

    def culprit(self, dpid: int, xid: int) -> Any | None:
        """The message we sent to ``dpid`` with ``xid``, if still remembered."""
        return self._recent.get((dpid, xid))
