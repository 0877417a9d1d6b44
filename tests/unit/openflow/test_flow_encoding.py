"""The struct-encoded session messages are Ryu's own, byte for byte.

``ryu_app.openflow.flow_encoding`` exists for speed only: every message it encodes is
compared here with the one :mod:`ryu_app.openflow.flows` builds with Ryu's parser
classes and Ryu serialises, over every kind of session.
"""
from __future__ import annotations

import ipaddress
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_app.openflow import flow_encoding

from ryu_app.openflow import flows
from ryu_app.openflow.flows import CookieKind, SessionFlowSpec
from ryu_app.openflow.sender import Sender

DATAPATH = SimpleNamespace(ofproto=ofp, ofproto_parser=parser)


def ryu_bytes(msg, xid: int = 7) -> bytes:
    msg.datapath = DATAPATH
    msg.xid = xid
    msg.serialize()
    return bytes(msg.buf)


ips = st.integers(1, 2**32 - 2).map(lambda n: str(ipaddress.IPv4Address(n)))
macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
ports = st.integers(0, 65535)
paths = st.builds(
    SessionFlowSpec, session_id=st.integers(0, 2**32 - 1), protocol=st.sampled_from([6, 17]),
    inside_ip=ips, inside_port=ports, external_ip=ips, external_port=ports, remote_ip=ips,
    remote_port=ports, inside_mac=macs, inside_switch_port=st.integers(1, 0xFFFFFF00),
    next_hop_mac=macs, uplink=st.integers(1, 0xFFFFFF00), gateway_mac=macs,
    idle_timeout=st.integers(0, 65535), closing_timeout=st.integers(0, 65535))


@settings(max_examples=300, deadline=None)
@given(paths, st.sampled_from([CookieKind.SESSION_OUT, CookieKind.SESSION_IN]))
def test_session_flow_bytes_equal_ryus(path, kind):
    encoded = flow_encoding.session_flow(path, kind)
    assert encoded.serialize(7) == ryu_bytes(flows.session_flow(path, kind))


@settings(max_examples=200, deadline=None)
@given(paths, st.binary(min_size=14, max_size=300))
def test_first_packet_out_bytes_equal_ryus(path, data):
    encoded = flow_encoding.packet_out_forward(path, data)
    reference = flows.packet_out_actions(flows.forward_actions(path), data)
    assert encoded.serialize(7) == ryu_bytes(reference)


def test_same_port_sessions_rewrite_no_port():
    """A session keeping its inside port rewrites only MACs and the address;
    a TCP session's flow lowers its own idle timeout on FIN or RST first."""
    path = SessionFlowSpec(1, 6, "10.0.0.11", 5000, "198.51.100.1", 5000, "198.51.100.10", 80,
                       "00:00:00:00:00:01", 2, "00:00:00:00:00:10", 1, "02:53:4e:41:54:01", 7440,
                       closing_timeout=240)
    msg = flow_encoding.session_flow(path, CookieKind.SESSION_OUT).decode()
    [applied] = [i for i in msg.instructions if isinstance(i, parser.OFPInstructionActions)]
    keys = [a.key for a in applied.actions if isinstance(a, parser.OFPActionSetField)]
    assert keys == ["eth_src", "eth_dst", "ipv4_src"]
    assert applied.type == ofp.OFPIT_APPLY_ACTIONS
    fin = applied.actions[0]
    assert isinstance(fin, parser.NXActionFinTimeout)
    assert (fin.fin_idle_timeout, fin.fin_hard_timeout) == (240, 0)


def test_decode_gives_back_the_message():
    path = SessionFlowSpec(9, 17, "10.0.0.11", 5000, "198.51.100.1", 1024, "198.51.100.10", 53,
                       "00:00:00:00:00:01", 2, "00:00:00:00:00:10", 1, "02:53:4e:41:54:01", 300)
    msg = flow_encoding.session_flow(path, CookieKind.SESSION_IN).decode()
    assert isinstance(msg, parser.OFPFlowMod)
    assert (msg.cookie, msg.idle_timeout, msg.priority, msg.flags) == (
        flows.make_cookie(CookieKind.SESSION_IN, 9), 300, flows.Priority.SESSION,
        ofp.OFPFF_SEND_FLOW_REM)
    assert dict(msg.match.items()) == {"in_port": 1, "eth_type": 0x0800, "ip_proto": 17,
                                       "ipv4_src": "198.51.100.10", "ipv4_dst": "198.51.100.1",
                                       "udp_src": 53, "udp_dst": 1024}
    out = flow_encoding.packet_out_forward(path, b"frame-bytes").decode()
    assert isinstance(out, parser.OFPPacketOut) and out.data == b"frame-bytes"
    assert [a.port for a in out.actions if isinstance(a, parser.OFPActionOutput)] == [1]


class BufferDatapath:
    """Ryu's Datapath as the sender uses it: xid counter and one queue write."""

    ofproto = ofp
    ofproto_parser = parser

    def __init__(self) -> None:
        self.id, self.xid, self.writes = 1, 0xFFFFFFFE, []

    def send(self, buf: bytes) -> bool:
        self.writes.append(buf)
        return True


def test_one_write_per_event_with_every_message_in_order():
    """The sender concatenates an event's messages (Ryu-built and encoded)
    into one write, each with its own xid, wrapping as Ryu's does."""
    path = SessionFlowSpec(3, 6, "10.0.0.11", 5000, "198.51.100.1", 1024, "198.51.100.10", 80,
                       "00:00:00:00:00:01", 2, "00:00:00:00:00:10", 1, "02:53:4e:41:54:01", 240)
    msgs = [flows.barrier(), *flow_encoding.session_flows(path),
            flow_encoding.packet_out_forward(path, b"x" * 60)]
    dp, sender = BufferDatapath(), Sender()
    sender.send(dp, msgs)
    [buf] = dp.writes
    parts = flow_encoding.split(buf)
    assert [int.from_bytes(p[4:8], "big") for p in parts] == [0xFFFFFFFF, 0, 1, 2]
    assert [p[1] for p in parts] == [ofp.OFPT_BARRIER_REQUEST, ofp.OFPT_FLOW_MOD,
                                     ofp.OFPT_FLOW_MOD, ofp.OFPT_PACKET_OUT]
    assert parts[1] == ryu_bytes(flows.session_flow(path, CookieKind.SESSION_OUT), xid=0)
    assert sender.culprit(1, 2) is msgs[3] and sender.sent == 4
