"""The cheaper receive loop reads what Ryu's reads: every packet-in equal
to Ryu's own parse, every other message through Ryu's path, from a stream
cut anywhere."""
from __future__ import annotations

import socket
import struct
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from ryu.controller import ofp_event
from ryu.controller.handler import MAIN_DISPATCHER
from ryu.ofproto import ofproto_parser
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_app.openflow import channel

DATAPATH = SimpleNamespace(ofproto=ofp, ofproto_parser=parser)


def packet_in_bytes(in_port: int, metadata: int | None, data: bytes, total_len: int | None = None,
                    table_id: int = 0, cookie: int = 0, reason: int = ofp.OFPR_ACTION,
                    xid: int = 1, extra: dict | None = None) -> bytes:
    """A switch's OFPT_PACKET_IN (Ryu only parses these: its match is
    serialised by Ryu, the rest packed as OpenFlow 1.3 s7.4.1 lays it out)."""
    fields = {"in_port": in_port, **({"metadata": metadata} if metadata is not None else {}),
              **(extra or {})}
    match = bytearray()
    parser.OFPMatch(**fields).serialize(match, 0)
    body = (struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER,
                        len(data) if total_len is None else total_len, reason, table_id, cookie)
            + bytes(match) + b"\x00\x00" + data)
    return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, 8 + len(body), xid) + body


def ryus(raw: bytes):
    version, msg_type, msg_len, xid = ofproto_parser.header(raw)
    return ofproto_parser.msg(DATAPATH, version, msg_type, msg_len, xid, bytearray(raw))


@settings(max_examples=300, deadline=None)
@given(in_port=st.integers(1, 0xFFFFFF00), metadata=st.none() | st.integers(0, 2**64 - 1),
       data=st.binary(max_size=300), cut=st.integers(-40, 40), table_id=st.integers(0, 254),
       cookie=st.integers(0, 2**64 - 1), reason=st.integers(0, 5))
def test_a_packet_in_reads_as_ryu_parses_it(in_port, metadata, data, cut, table_id, cookie,
                                             reason):
    """Whole, truncated (total_len above the data sent) or padded (below), with or
    without metadata: the same port, metadata, table, cookie, reason, data."""
    raw = packet_in_bytes(in_port, metadata, data, total_len=max(0, len(data) + cut),
                          table_id=table_id, cookie=cookie, reason=reason)
    mine, theirs = channel.read_packet_in(b"pad" + raw, 3, len(raw)), ryus(raw)
    assert mine == channel.from_ryu(theirs)
    assert mine.data == data[:max(0, len(data) + cut)]


def test_a_match_with_anything_else_is_left_to_ryu():
    raw = packet_in_bytes(2, None, b"x" * 60, extra={"tunnel_id": 5})
    assert channel.read_packet_in(raw, 0, len(raw)) is None
    masked = packet_in_bytes(2, None, b"x" * 60, extra={"reg0": (1, 1)})
    assert channel.read_packet_in(masked, 0, len(masked)) is None


def test_a_packet_in_that_does_not_add_up_is_left_to_ryu():
    raw = bytearray(packet_in_bytes(2, 7, b"x" * 60))
    struct.pack_into("!H", raw, 26, 4000)           # a match longer than the message
    assert channel.read_packet_in(raw, 0, 64) is None


class FakeBrick:
    """The ofp_event service as the loop uses it: observers and handlers."""

    def __init__(self, observers: dict) -> None:
        self.observers = {ofp_event.EventOFPPacketIn: observers}
        self.events: list = []

    def send_event_to_observers(self, ev, state) -> None:
        self.events.append(ev)

    def get_handlers(self, ev) -> list:
        return []


def flow_stats_bytes(flows: list[dict], more: bool = False, xid: int = 1) -> bytes:
    """A switch's OFPMP_FLOW reply part (OpenFlow 1.3 s7.3.5.2; Ryu only
    parses these): each flow's match and instructions serialised by Ryu,
    the rest packed as the spec lays it out."""
    body = b""
    for f in flows:
        match = bytearray()
        parser.OFPMatch(**f["match"]).serialize(match, 0)
        insts = bytearray()
        for inst in f["instructions"]:
            inst.serialize(insts, len(insts))
        length = 48 + len(match) + len(insts)
        body += struct.pack("!HBxIIHHHH4xQQQ", length, f.get("table_id", 0), f["duration"], 5,
                            f.get("priority", 1000), f["idle_timeout"], 0, 1, f["cookie"],
                            f["packets"], f["bytes"]) + bytes(match) + bytes(insts)
    head = struct.pack("!HH4x", ofp.OFPMP_FLOW, ofp.OFPMPF_REPLY_MORE if more else 0)
    return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY,
                       8 + len(head) + len(body), xid) + head + body


def session_flow(cookie: int, packets: int, octets: int, idle: int, port: int) -> dict:
    """A flow shaped as a session's: 5-tuple match, fin_timeout, rewrites, output."""
    actions = [parser.NXActionFinTimeout(fin_idle_timeout=240, fin_hard_timeout=0),
               parser.OFPActionSetField(ipv4_src="198.51.100.1"),
               parser.OFPActionSetField(tcp_src=port), parser.OFPActionOutput(1)]
    return {"match": {"in_port": 2, "eth_type": 0x800, "ip_proto": 6, "ipv4_src": "10.0.0.11",
                      "ipv4_dst": "198.51.100.10", "tcp_src": port, "tcp_dst": 80},
            "instructions": [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions),
                             parser.OFPInstructionGotoTable(1)],
            "duration": 3, "idle_timeout": idle, "cookie": cookie, "packets": packets,
            "bytes": octets}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                          st.integers(0, 2**64 - 1), st.integers(0, 65535),
                          st.integers(1, 65535)), max_size=20),
       st.booleans())
def test_flow_counters_read_as_ryu_parses_them(flows, more):
    """Any number of flows (none too), their match and instructions
    skipped: the same cookie, counts and idle timeout in the same order."""
    raw = flow_stats_bytes([session_flow(*f) for f in flows], more)
    mine, theirs = channel.read_flow_counts(b"pad" + raw, 3, len(raw)), ryus(raw)
    assert mine.entries == [(f.cookie, f.packet_count, f.byte_count, f.idle_timeout)
                            for f in theirs.body]
    assert mine.more == bool(theirs.flags & ofp.OFPMPF_REPLY_MORE)


def test_a_flow_reply_that_does_not_add_up_or_another_multipart_is_left_to_ryu():
    raw = bytearray(flow_stats_bytes([session_flow(1, 2, 3, 4, 5)] * 2))
    struct.pack_into("!H", raw, 16 + 0, 4000)       # the first flow longer than the message
    assert channel.read_flow_counts(raw, 0, len(raw)) is None
    struct.pack_into("!H", raw, 16 + 0, 20)         # shorter than its fixed part
    assert channel.read_flow_counts(raw, 0, len(raw)) is None
    cut = flow_stats_bytes([session_flow(1, 2, 3, 4, 5)])[:-30]
    assert channel.read_flow_counts(cut, 0, len(cut)) is None
    desc = struct.pack("!BBHIHH4x", 4, ofp.OFPT_MULTIPART_REPLY, 16, 1, ofp.OFPMP_DESC, 0)
    assert channel.read_flow_counts(desc + b"\0" * 1056, 0, 16 + 1056) is None


def run_loop(stream: bytes, chunks: list[int], observers: dict,
             counts_xid: int | None = None) -> tuple[list, list]:
    """The loop reading ``stream`` written in pieces of the given sizes;
    flow counts of ``counts_xid`` are taken, other replies left to Ryu."""
    got: list = []

    def take(dp, xid, counts) -> bool:
        if xid != counts_xid:
            return False
        got.append(counts)
        return True

    channel.install(lambda dp, pin, more: got.append((pin, more)), lambda dp: None, "SnatApp",
                        take)
    mine, theirs = socket.socketpair()
    at = 0
    for size in chunks + [len(stream)]:
        if at >= len(stream):
            break
        theirs.sendall(stream[at:at + size])
        at += size
    theirs.close()
    dp = SimpleNamespace(socket=mine, state=MAIN_DISPATCHER, ofp_brick=FakeBrick(observers),
                         address=("127.0.0.1", 1), ofproto=ofp, ofproto_parser=parser, id=1)
    channel._recv_loop(dp)
    return got, dp.ofp_brick.events


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 200), max_size=30))
def test_the_loop_hands_every_packet_in_over_in_order_from_any_cut(chunks):
    echo = parser.OFPEchoRequest(DATAPATH, data=b"hello")
    echo.xid = 9
    echo.serialize()
    msgs = [packet_in_bytes(2, None, bytes([i]) * 70, xid=i) for i in range(5)]
    stream = b"".join(msgs[:2]) + bytes(echo.buf) + b"".join(msgs[2:])
    got, events = run_loop(stream, chunks, {"SnatApp": {MAIN_DISPATCHER}})
    assert [pin.data[0] for pin, _more in got] == [0, 1, 2, 3, 4]
    assert got[-1][1] is False, "nothing after the last one"
    assert [type(ev).__name__ for ev in events] == ["EventOFPEchoRequest"]


def test_with_another_app_watching_packet_ins_they_go_ryus_way():
    stream = packet_in_bytes(2, None, b"x" * 70)
    got, events = run_loop(stream, [], {"SnatApp": {MAIN_DISPATCHER},
                                        "SimpleSwitch13": {MAIN_DISPATCHER}})
    assert got == [] and [type(ev).__name__ for ev in events] == ["EventOFPPacketIn"]


def test_our_polls_flow_counters_are_taken_and_other_replies_go_ryus_way():
    """The gateway's own poll (its xid) is read off the wire; a reply to
    another request (ofctl_rest's GET /stats/flow) reaches Ryu's observers."""
    ours = flow_stats_bytes([session_flow(7, 10, 600, 240, 40000)], xid=21)
    rest = flow_stats_bytes([session_flow(8, 1, 60, 240, 40001)], xid=22)
    got, events = run_loop(ours + rest, [37], {"SnatApp": {MAIN_DISPATCHER}}, counts_xid=21)
    assert got == [channel.FlowCounts(False, [(7, 10, 600, 240)])]
    assert [type(ev).__name__ for ev in events] == ["EventOFPFlowStatsReply"]
    assert events[0].msg.xid == 22 and events[0].msg.body[0].cookie == 8
