"""Frames Ryu's own parsers must never see: they would hang the controller.

Every test has a short timeout: a regression hangs (and eats memory) rather
than failing, so the timeout is what turns it into a failure.
"""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st
from ryu.lib.packet import ethernet, ipv4, packet, tcp
from ryu.ofproto import ether, inet

from helpers.fake_switch import FakeSwitch
from helpers.nat_config import make_config
from ryu_app import flows, wire
from ryu_app.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.gateway import Gateway
from ryu_app.packet_info import tcp_flags_of

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
    switch.apply(gateway.switch_connected(switch.dpid))
    switch.apply(gateway.ports_described(switch.dpid, {"s1-eth1": UPLINK, "s1-eth2": H1_PORT}))
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


def test_a_fin_copy_with_a_bad_option_is_ignored():
    gateway, switch = connected()
    copy = tcp_frame(ZERO_LENGTH, bits=tcp.TCP_FIN | tcp.TCP_ACK)
    assert tcp_flags_of(copy) is None
    cookie = flows.make_cookie(flows.CookieKind.FLAGS_OUT, 1)
    assert gateway.packet_in(switch.dpid, H1_PORT, copy, cookie=cookie) == []


def test_truncated_copies_still_give_their_flags():
    """FIN/RST watches copy 128 bytes; options cut short there are harmless."""
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
