"""Frames Ryu's own parsers must never see: they would hang the controller.

Every test has a short timeout: a regression hangs (and eats memory) rather
than failing, so the timeout is what turns it into a failure.
"""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st
from types import SimpleNamespace

from ryu.lib.packet import ethernet, ipv4, packet, tcp, udp
from ryu.ofproto import ether, inet
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from helpers.fake_switch import FakeSwitch, Wire
from helpers.nat_config import make_config
from ryu_app.openflow import flows
from ryu_app.packets import wire
from ryu_app.settings.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.nat import gateway as gateway_module
from ryu_app.openflow.flow_encoding import Encoded
from ryu_app.nat.gateway import Gateway
from ryu_app.packets.packet_info import classify, quick_classify, tcp_flags_of

pytestmark = pytest.mark.timeout(30)
UPLINK, H1_PORT = 1, 2
H1_MAC, H1_IP, O1_IP = "00:00:00:00:00:01", "10.0.0.11", "198.51.100.10"


def tcp_frame(options: bytes, bits: int = tcp.TCP_SYN, src: str = H1_IP, dst: str = O1_IP,
              flags: int = 0, offset: int = 0) -> bytes:
    """A TCP segment whose option bytes are exactly ``options`` (padded to 4)."""
    options += b"\x00" * (-len(options) % 4)
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GW_MAC, src=H1_MAC, ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=src, dst=dst, proto=inet.IPPROTO_TCP, flags=flags,
                               offset=offset))
    pkt.add_protocol(tcp.tcp(src_port=40000, dst_port=80, seq=1, bits=bits,
                             window_size=1000, option=b"\x01" * len(options)))
    pkt.serialize()
    data = bytearray(pkt.data)
    data[54:54 + len(options)] = options       # the option bytes, as sent
    return bytes(data)


ZERO_LENGTH = b"\x1e\x00"   # an option kind Ryu does not know, length 0: Ryu spins forever
# Ryu skips a known option by its fixed size (MSS: 4), whatever its length
# byte says, so a zero length can hide inside one; or after an EOL.
HIDDEN_IN_MSS = b"\x02\x0a\x05\xb4\x1e\x00\x00\x00\x00\x00"
AFTER_EOL = b"\x00\xc2"


def connected() -> tuple[Gateway, FakeSwitch]:
    gateway, switch = Gateway(make_config()), FakeSwitch()
    Wire(gateway, switch).connect({"s1-eth1": UPLINK, "s1-eth2": H1_PORT})
    return gateway, switch


@pytest.mark.parametrize("options", [ZERO_LENGTH, HIDDEN_IN_MSS, AFTER_EOL, b"\x01\x01\x1e"])
def test_a_syn_with_a_bad_option_length_is_dropped_as_malformed(options):
    gateway, switch = connected()
    assert gateway.packet_in(switch.dpid, H1_PORT, tcp_frame(options)) == []
    assert gateway.counters.drops["malformed"] == 1
    assert not gateway.switches[switch.dpid].nat.ct.stats().created


def test_a_fragment_is_never_parsed_as_tcp():
    """A later fragment's payload only looks like a TCP header."""
    gateway, switch = connected()
    frame = tcp_frame(ZERO_LENGTH, src=O1_IP, dst="198.51.100.1", offset=185)
    pkt = wire.parse_frame(frame)
    assert pkt.get_protocol(tcp.tcp) is None and pkt.get_protocol(ipv4.ipv4).offset == 185
    assert gateway.packet_in(switch.dpid, UPLINK, frame) == []   # held for its first part
    assert gateway.counters.drops.get("malformed", 0) == 0


def test_an_rst_copy_with_a_bad_option_is_ignored():
    gateway, switch = connected()
    copy = tcp_frame(ZERO_LENGTH, bits=tcp.TCP_RST)
    assert tcp_flags_of(copy) is None
    tag = flows.make_cookie(flows.CookieKind.FLAGS_OUT, 1)
    assert gateway.packet_in(switch.dpid, H1_PORT, copy, metadata=tag) == []


def test_truncated_copies_still_give_their_flags():
    """Options cut short in a truncated copy are harmless."""
    full = tcp_frame(b"\x01" * 8 + b"\x08\x0a" + b"\x00" * 8, bits=tcp.TCP_FIN)
    assert tcp_flags_of(full[:64]) == tcp.TCP_FIN


@pytest.mark.parametrize("first_bytes,reason", [
    (b"\x65", "ipv4 version"), (b"\x42", "ipv4 header length"), (b"\x4f", "ipv4 header length"),
])
def test_impossible_ipv4_headers_are_malformed(first_bytes, reason):
    frame = bytearray(tcp_frame(b""))
    frame[14:15] = first_bytes
    with pytest.raises(wire.Malformed, match=reason):
        wire.parse_frame(bytes(frame))


def test_odd_but_harmless_options_still_parse():
    """A zero MSS length is wrong, but Ryu steps over MSS by its size: no hazard."""
    pkt = wire.parse_frame(tcp_frame(b"\x02\x00\x05\xb4"))
    assert pkt.get_protocol(tcp.tcp).bits == tcp.TCP_SYN


def ryu_option_walk_ends(options: bytes) -> bool:
    """Ryu's own option loop (``tcp.tcp.parser``), but with a step limit:
    True if it would end.  Each step that ends must consume a byte or more."""
    buf = options
    for _ in range(len(options) + 1):
        if not buf:
            return True
        try:
            _, buf = tcp.TCPOption.parser(buf)
        except struct.error:
            return True       # Ryu stops there and keeps the raw options
    return False


# Options as a stack would write them, often wrong: known and unknown kinds,
# any length byte, a little body; plus plain random bytes.
OPTION = st.tuples(st.sampled_from([0, 1, 2, 3, 4, 5, 8, 28, 29, 30, 194, 255]),
                   st.sampled_from([0, 1, 2, 3, 4, 8, 10, 40]),
                   st.binary(max_size=8)).map(lambda t: bytes(t[:2]) + t[2])
OPTIONS = st.one_of(st.lists(OPTION, max_size=6).map(lambda parts: b"".join(parts)[:40]),
                    st.binary(max_size=40))


@settings(max_examples=1000, deadline=None)
@given(options=OPTIONS, offset=st.integers(0, 15), cut=st.integers(14, 120))
def test_any_option_bytes_parse_or_are_refused_at_once(options, offset, cut):
    """Whatever the bytes: wire either refuses them, or Ryu's loop over them
    ends.  Checked with a bounded copy of that loop first, so that a hole in
    wire fails this test instead of hanging it."""
    frame = bytearray(tcp_frame(options))
    frame[14 + 20 + 12] = (offset << 4) | (frame[14 + 20 + 12] & 0x0F)
    frame = bytes(frame[:cut])
    seg = frame[14 + 20:]
    if not wire.tcp_options_problem(seg) and len(seg) >= 20 and offset >= 5:
        assert ryu_option_walk_ends(seg[20:offset * 4]), "wire let a looping header through"
    try:
        pkt = wire.parse_frame(frame)
    except wire.Malformed:
        return
    parsed = pkt.get_protocol(tcp.tcp)
    assert parsed is None or len(parsed.option or []) <= 40


def flags_by_full_parse(frame: bytes) -> int | None:
    """What a FIN/RST copy's flags were before wire.tcp_flags: the whole
    frame through parse_frame, then Ryu's tcp header."""
    try:
        pkt = wire.parse_frame(frame)
    except wire.Malformed:
        return None
    seg = pkt.get_protocol(tcp.tcp)
    return None if seg is None else seg.bits


@settings(max_examples=1500, deadline=None)
@given(options=OPTIONS, bits=st.integers(0, 0x1FF), offset=st.integers(0, 15),
       cut=st.integers(0, 120), pokes=st.lists(st.tuples(st.integers(0, 53), st.integers(0, 255)),
                                                max_size=3),
       frag=st.sampled_from([(0, 0), (0x1, 0), (0, 185), (0x2, 0)]))
def test_flags_read_in_place_equal_the_full_parse(options, bits, offset, cut, pokes, frag):
    """wire.tcp_flags reads the flags at their offsets; whatever the frame
    (options, truncation, a fragment, any header byte changed: ethertype,
    version, IHL, total length, protocol), it answers what the full parse does."""
    frame = bytearray(tcp_frame(options, bits=bits & 0x3F, flags=frag[0], offset=frag[1]))
    frame[14 + 20 + 12] = (offset << 4) | (bits >> 8)
    frame[14 + 20 + 13] = bits & 0xFF
    for where, value in pokes:
        frame[where] = value
    frame = bytes(frame[:cut])
    assert wire.tcp_flags(frame) == flags_by_full_parse(frame)


@pytest.mark.parametrize("bits", [tcp.TCP_FIN | tcp.TCP_ACK, tcp.TCP_RST, tcp.TCP_SYN])
def test_flags_of_a_whole_segment_and_its_copy(bits):
    full = tcp_frame(b"\x01\x01\x08\x0a" + b"\x00" * 8, bits=bits)
    assert wire.tcp_flags(full) == wire.tcp_flags(full[:66]) == bits
    assert wire.tcp_flags(full[:14 + 20 + 19]) is None      # no whole TCP header


def classify_by_full_parse(frame: bytes):
    """(source MAC, PacketInfo) the way Gateway reached it before the quick
    path: parse_frame, then classify, for TCP/UDP frames that are not
    fragments; None for every other frame (they never take the quick path)."""
    try:
        pkt = wire.parse_frame(frame)
    except wire.Malformed:
        return None
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4)
    if eth.ethertype != ether.ETH_TYPE_IP or ip is None or ip.flags & 0x1 or ip.offset \
            or ip.proto not in (inet.IPPROTO_TCP, inet.IPPROTO_UDP):
        return None
    return eth.src, classify(pkt, ip)


def udp_frame(payload: bytes, src: str = H1_IP, dst: str = O1_IP) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GW_MAC, src="0a:1b:2c:3d:4e:5f",
                                       ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=src, dst=dst, proto=inet.IPPROTO_UDP, ttl=17))
    pkt.add_protocol(udp.udp(src_port=5353, dst_port=53))
    pkt.add_protocol(payload)
    pkt.serialize()
    return bytes(pkt.data)


# Bytes that decide the path: ethertype, version/IHL, total length, flags and
# offset, protocol; and values that mean something there.
HEADER_BYTES = [12, 13, 14, 16, 17, 20, 21, 23, 34 + 12]
TELLING = [0, 1, 2, 5, 6, 8, 17, 0x20, 0x40, 0x45, 0x46, 0x4F, 0x50, 0x86, 0xDD]


@settings(max_examples=2000, deadline=None)
@given(kind=st.sampled_from(["tcp", "udp"]), options=OPTIONS, bits=st.integers(0, 0xFF),
       cut=st.integers(0, 120),
       pokes=st.lists(st.tuples(st.one_of(st.integers(0, 60), st.sampled_from(HEADER_BYTES)),
                                st.one_of(st.integers(0, 255), st.sampled_from(TELLING))),
                      max_size=3),
       frag=st.sampled_from([(0, 0), (0x1, 0), (0, 185), (0x2, 0)]))
def test_quick_classify_equals_the_full_parse(kind, options, bits, cut, pokes, frag):
    """Whatever the frame (any header byte changed: ethertype, version, IHL,
    lengths, protocol, ports, TTL, flags; options; truncation; fragments),
    quick_classify either leaves it to the full parse (None) or gives
    exactly the MAC and PacketInfo the full parse gives."""
    if kind == "tcp":
        frame = bytearray(tcp_frame(options, bits=bits & 0x3F, flags=frag[0], offset=frag[1]))
        frame[14 + 20 + 13] = bits
    else:
        frame = bytearray(udp_frame(options))
    for where, value in pokes:
        if where < len(frame):
            frame[where] = value
    frame = bytes(frame[:cut])
    quick = quick_classify(bytearray(frame))       # as Ryu hands packet-in data over
    if quick is not None:
        assert quick == classify_by_full_parse(frame)


def test_ordinary_first_packets_take_the_quick_path():
    syn = tcp_frame(b"\x02\x04\x05\xb4\x01\x03\x03\x07", bits=tcp.TCP_SYN)
    dgram = udp_frame(b"query")
    for frame in (syn, dgram):
        assert quick_classify(frame) is not None
        assert quick_classify(frame) == classify_by_full_parse(frame)
    assert quick_classify(tcp_frame(ZERO_LENGTH)) is None           # unsafe: the full parse refuses it
    assert quick_classify(tcp_frame(b"", flags=0x1)) is None        # a first fragment


def ryu_bytes(msg, xid: int) -> bytes:
    msg.datapath = SimpleNamespace(ofproto=ofp, ofproto_parser=parser)
    msg.xid = xid
    msg.serialize()
    return bytes(msg.buf)


def test_the_gateway_answers_the_same_with_and_without_the_quick_path(monkeypatch):
    """The same frames through two gateways, one with the quick path turned
    off: the same messages to the switch, byte for byte, and the same counters."""
    frames = [(H1_PORT, tcp_frame(b"\x02\x04\x05\xb4", bits=tcp.TCP_SYN)),
              (H1_PORT, udp_frame(b"q")),
              (H1_PORT, tcp_frame(b"", bits=tcp.TCP_ACK, src=H1_IP, dst="198.51.100.20")),
              (H1_PORT, tcp_frame(b"", bits=tcp.TCP_SYN, src="192.0.2.9")),        # spoofed
              (H1_PORT, tcp_frame(b"", bits=tcp.TCP_SYN, dst="198.51.100.1")),     # hairpin
              (UPLINK, tcp_frame(b"", bits=tcp.TCP_SYN | tcp.TCP_ACK, src=O1_IP,
                                 dst="198.51.100.1")),                             # unsolicited
              (H1_PORT, tcp_frame(ZERO_LENGTH, bits=tcp.TCP_SYN))]

    def run() -> tuple[list[bytes], dict]:
        gateway, switch = connected()
        gateway.switches[switch.dpid].nat.next_hops.learn(O1_IP, "00:00:00:00:00:10", 0.0)
        out = []
        for port, frame in frames:
            for i, msg in enumerate(gateway.packet_in(switch.dpid, port, frame, now=1.0)):
                out.append(msg.serialize(i) if isinstance(msg, Encoded) else ryu_bytes(msg, i))
        return out, gateway.counters.as_dict()

    quick = run()
    monkeypatch.setattr(gateway_module, "quick_classify", lambda data: None)
    full = run()
    assert quick == full and quick[0]
