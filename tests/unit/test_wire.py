"""Frames Ryu's own parsers must never see: they would hang the controller.

Every test has a short timeout: a regression hangs (and eats memory) rather
than failing, so the timeout is what turns it into a failure.
"""
from __future__ import annotations

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
MSS_LENGTH_0 = b"\x02\x00\x05\xb4"             # MSS, length 0


def connected() -> tuple[Gateway, FakeSwitch]:
    gateway, switch = Gateway(make_config()), FakeSwitch()
    switch.apply(gateway.switch_connected(switch.dpid))
    switch.apply(gateway.ports_described(switch.dpid, {"s1-eth1": UPLINK, "s1-eth2": H1_PORT}))
    return gateway, switch


@pytest.mark.parametrize("options", [ZERO_LENGTH, MSS_LENGTH_0, b"\x01\x01\x1e"])
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


@settings(max_examples=400, deadline=None)
@given(options=st.binary(max_size=40), offset=st.integers(0, 15), cut=st.integers(14, 120))
def test_any_option_bytes_parse_or_are_refused_at_once(options, offset, cut):
    frame = bytearray(tcp_frame(options))
    frame[14 + 20 + 12] = (offset << 4) | (frame[14 + 20 + 12] & 0x0F)
    try:
        pkt = wire.parse_frame(bytes(frame[:cut]))
    except wire.Malformed:
        return
    seg = pkt.get_protocol(tcp.tcp)
    assert seg is None or len(seg.option or []) <= 40
