"""The switch connection's receive loop, made cheap enough for a packet-in
per new connection.

Profiled under load (``bench/setup_rate.py``, py-spy on ``ryu-manager``),
Ryu 4.34's ``Datapath._recv_loop`` took half the controller's time and the
gateway's own work a tenth: it reads each message with two ``recv`` calls
(its 8-byte header, then the rest), waits in the hub between them, copies
what is left of its buffer after every message, and turns every packet-in
into Ryu's full parse (an ``OFPMatch`` with its old-API shadow objects), an
event and a walk over the observers.

``install(consumer)`` replaces that loop, for every switch, by one that
reads up to 64 KiB at a time and walks its buffer by offset.  Every message
but a packet-in takes Ryu's own path, unchanged (parse, observers, the
handshake handlers).  A packet-in is read with ``struct`` into a
:class:`PacketIn` (proven equal to Ryu's parse in
``tests/unit/openflow/test_ofp_channel.py``) and given to ``consumer`` directly, but
only while the consumer's app is the only observer of packet-ins and the
switch is in MAIN_DISPATCHER, as Ryu's dispatch would; with another app
loaded that watches packet-ins, everything goes Ryu's way.

Flow-stats replies are the other hot message: with thousands of sessions a
poll's reply parsed by Ryu (every match, instruction and action as objects)
took a quarter of the controller's time in a flood and held packet-ins for
hundreds of milliseconds.  The gateway needs four numbers of each flow, so
a reply part is read with ``struct`` (:class:`FlowCounts`) and offered to
the ``flow_counts`` callback, which takes the parts of its own polls and
declines the rest (another app's requests, a dump whose matches it needs):
those go Ryu's way.
"""
from __future__ import annotations

import logging
import ssl
import struct
from socket import timeout as SocketTimeout
from typing import Any, Callable, NamedTuple

from ryu.base import app_manager  # noqa: F401  (first, as Ryu imports it: a cycle otherwise)
from ryu.controller import controller as ryu_controller
from ryu.controller import ofp_event
from ryu.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER
from ryu.lib import hub
from ryu.ofproto import ofproto_common, ofproto_parser
from ryu.ofproto import ofproto_v1_3 as ofp

LOG = logging.getLogger(__name__)

RECV_SIZE = 65536
# Messages between forced yields to the hub (Ryu's loop: 2048).  Under a flood
# the socket never runs dry, and the app's timers (the packet-in meters that
# answer the flood) would wait a second for their turn.
YIELD_EVERY = 256
_HEADER = struct.Struct("!BBHI")
_PACKET_IN = struct.Struct("!IHBBQ")          # buffer_id, total_len, reason, table_id, cookie
_OXM = struct.Struct("!HBB")                  # class, field << 1 | hasmask, length
_MATCH_AT = ofp.OFP_PACKET_IN_SIZE - ofp.OFP_MATCH_SIZE   # 24: after header and the fixed part
_OXM_BASIC = ofp.OFPXMC_OPENFLOW_BASIC
_IN_PORT, _METADATA = ofp.OXM_OF_IN_PORT >> 9 & 0x7F, ofp.OXM_OF_METADATA >> 9 & 0x7F
_MULTIPART = struct.Struct("!HH4x")           # type, flags
# ofp_flow_stats up to its match: length, table_id, duration (s, ns),
# priority, idle and hard timeouts, flags, cookie, packet and byte counts.
_FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")
_FLOW_STATS_MIN = _FLOW_STATS.size + ofp.OFP_MATCH_SIZE


class PacketIn(NamedTuple):
    """What the gateway needs of an OFPT_PACKET_IN."""

    in_port: int
    metadata: int
    table_id: int
    cookie: int
    reason: int
    data: bytes


def from_ryu(msg: Any) -> PacketIn:
    """The same from Ryu's parsed OFPPacketIn (another app watches packet-ins)."""
    match = msg.match
    return PacketIn(match["in_port"], match.get("metadata", 0), msg.table_id, msg.cookie,
                    msg.reason, bytes(msg.data))


def read_packet_in(buf: bytes | bytearray | memoryview, offset: int,
                   msg_len: int) -> PacketIn | None:
    """An OpenFlow 1.3 packet-in at ``offset`` read with ``struct``; None
    when its match holds anything but in_port and metadata, or does not
    add up (Ryu's parser then reads it)."""
    try:
        _buffer_id, total_len, reason, table_id, cookie = _PACKET_IN.unpack_from(
            buf, offset + ofp.OFP_HEADER_SIZE)
        at = offset + _MATCH_AT
        match_type, match_len = struct.unpack_from("!HH", buf, at)
        if match_type != ofp.OFPMT_OXM or match_len < 4:
            return None
        pos, end = at + 4, at + match_len
        in_port, metadata = None, 0
        while pos < end:
            cls, field, length = _OXM.unpack_from(buf, pos)
            if cls != _OXM_BASIC or field & 1:          # another class, or masked
                return None
            if field >> 1 == _IN_PORT and length == 4:
                in_port = int.from_bytes(buf[pos + 4:pos + 8], "big")
            elif field >> 1 == _METADATA and length == 8:
                metadata = int.from_bytes(buf[pos + 4:pos + 12], "big")
            else:
                return None
            pos += 4 + length
        if pos != end or in_port is None:
            return None
        start = at + (match_len + 7) // 8 * 8 + 2
        stop = offset + msg_len
        if start > stop:
            return None
        data = bytes(buf[start:min(stop, start + total_len)])
    except struct.error:
        return None
    return PacketIn(in_port, metadata, table_id, cookie, reason, data)


class FlowCounts(NamedTuple):
    """What the gateway needs of a part of an OFPMP_FLOW reply."""

    more: bool                                  # OFPMPF_REPLY_MORE: parts follow
    entries: list[tuple[int, int, int, int]]    # cookie, packets, bytes, idle_timeout


def read_flow_counts(buf: bytes | bytearray | memoryview, offset: int,
                     msg_len: int) -> FlowCounts | None:
    """An OpenFlow 1.3 flow-stats reply part at ``offset`` read with
    ``struct`` (matches and instructions skipped by their length); None for
    another multipart type or a part that does not add up."""
    try:
        mp_type, flags = _MULTIPART.unpack_from(buf, offset + ofp.OFP_HEADER_SIZE)
        if mp_type != ofp.OFPMP_FLOW:
            return None
        pos, end = offset + ofp.OFP_MULTIPART_REPLY_SIZE, offset + msg_len
        entries = []
        while pos < end:
            (length, _table, _sec, _nsec, _priority, idle, _hard, _flags, cookie, packets,
             octets) = _FLOW_STATS.unpack_from(buf, pos)
            if length < _FLOW_STATS_MIN or pos + length > end:
                return None
            entries.append((cookie, packets, octets, idle))
            pos += length
    except struct.error:
        return None
    return FlowCounts(bool(flags & ofp.OFPMPF_REPLY_MORE), entries)


Consumer = Callable[[Any, PacketIn, bool], None]
CountsTaker = Callable[[Any, int, FlowCounts], bool]
_consumer: Consumer | None = None
_drain: Callable[[Any], None] | None = None
_consumer_name: str | None = None
_flow_counts: CountsTaker | None = None
_claim: Callable[[Any, int], bool] | None = None
_DPID = struct.Struct("!Q")                   # ofp_switch_features: datapath_id first


def install(consumer: Consumer, drain: Callable[[Any], None], app_name: str,
            flow_counts: CountsTaker | None = None,
            claim: Callable[[Any, int], bool] | None = None) -> None:
    """Use the cheaper receive loop for every switch from now on; hand
    packet-ins to ``consumer(datapath, packet_in, more)`` while the app
    ``app_name`` is their only observer (``more``: further messages of the
    switch wait, already read or still in the socket), and call
    ``drain(datapath)`` after each chunk read, before the loop reads (and
    perhaps waits) again: the consumer's chance to handle what it queued.
    Flow-stats reply parts go to ``flow_counts(datapath, xid, counts)``
    first; it returns False for those it leaves to Ryu's parse.  A
    features reply (the switch naming its dpid) goes to ``claim(datapath,
    dpid)`` before Ryu sees it; False closes the connection there, before
    Ryu (and its DPSet) takes the connection for that switch's."""
    global _consumer, _drain, _consumer_name, _flow_counts, _claim
    _consumer, _drain, _consumer_name = consumer, drain, app_name
    _flow_counts, _claim = flow_counts, claim
    if ryu_controller.Datapath._recv_loop is not _recv_loop:
        ryu_controller.Datapath._recv_loop = _recv_loop


def _sole_observer(brick: Any) -> bool:
    observers = brick.observers.get(ofp_event.EventOFPPacketIn, {})
    return len(observers) == 1 and _consumer_name in observers


def _ryus_way(dp: Any, version: int, msg_type: int, msg_len: int, xid: int,
              raw: bytearray) -> None:
    """What Ryu's loop does with a message: parse, observers, handshake handlers."""
    msg = ofproto_parser.msg(dp, version, msg_type, msg_len, xid, raw)
    if not msg:
        return
    ev = ofp_event.ofp_msg_to_ev(msg)
    dp.ofp_brick.send_event_to_observers(ev, dp.state)
    handlers = [handler for handler in dp.ofp_brick.get_handlers(ev)
                if dp.state in handler.callers[ev.__class__].dispatchers]
    for handler in handlers:
        handler(ev)


def unread(dp: Any) -> bool:
    """Bytes from the switch wait in the socket (one non-blocking peek, no
    switch of greenlets)."""
    try:
        return bool(dp.socket.fd.recv(1, _PEEK))
    except (BlockingIOError, InterruptedError):
        return False
    except (AttributeError, OSError, ValueError):   # not a plain socket (TLS), or closing
        return False


try:
    from socket import MSG_DONTWAIT, MSG_PEEK
    _PEEK: int = MSG_PEEK | MSG_DONTWAIT
except ImportError:      # pragma: no cover - not Linux
    _PEEK = 0


@ryu_controller._deactivate
def _recv_loop(self: Any) -> None:
    """Ryu's Datapath._recv_loop, reading in large chunks (see the module)."""
    buf = bytearray()
    count = 0
    header_size = ofproto_common.OFP_HEADER_SIZE
    while self.state != DEAD_DISPATCHER:
        try:
            ret = self.socket.recv(RECV_SIZE)
        except SocketTimeout:
            continue
        except ssl.SSLError:
            continue     # eventlet's SSL read timeout, as Ryu's loop treats it
        except (EOFError, IOError):
            break
        if not ret:
            break
        buf += ret
        size, offset = len(buf), 0
        while size - offset >= header_size:
            version, msg_type, msg_len, xid = _HEADER.unpack_from(buf, offset)
            if msg_len < header_size:
                LOG.debug("message with invalid length %s from switch at %s",
                          msg_len, self.address)
                msg_len = header_size
            if size - offset < msg_len:
                break
            taken = False
            if (msg_type == ofp.OFPT_FEATURES_REPLY and self.state == CONFIG_DISPATCHER
                    and _claim is not None and msg_len >= header_size + _DPID.size
                    and not _claim(self, _DPID.unpack_from(buf, offset + header_size)[0])):
                return           # refused: Ryu's serve() closes the connection
            if version == ofp.OFP_VERSION and self.state == MAIN_DISPATCHER:
                if (msg_type == ofp.OFPT_PACKET_IN and _consumer is not None
                        and _sole_observer(self.ofp_brick)):
                    pin = read_packet_in(buf, offset, msg_len)
                    if pin is not None:
                        more = size - offset - msg_len >= header_size or unread(self)
                        _consumer(self, pin, more)
                        taken = True
                elif msg_type == ofp.OFPT_MULTIPART_REPLY and _flow_counts is not None:
                    counts = read_flow_counts(buf, offset, msg_len)
                    taken = counts is not None and _flow_counts(self, xid, counts)
            if not taken:
                _ryus_way(self, version, msg_type, msg_len, xid,
                          buf[offset:offset + msg_len])
            offset += msg_len
            count += 1
            if count > YIELD_EVERY:
                count = 0
                hub.sleep(0)
        if offset:
            del buf[:offset]
        if _drain is not None:
            _drain(self)
