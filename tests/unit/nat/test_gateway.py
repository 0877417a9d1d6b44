"""The gateway skeleton, judged by packet fate on a fake OpenFlow switch."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from ryu.lib.packet import packet_utils
from ryu.lib.packet import arp, ethernet, icmp, ipv4, packet
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from helpers.fake_switch import FakeSwitch, Wire
from helpers.frames import H1_IP, H1_MAC, O1_IP, O1_MAC, arp_request, echo_request
from helpers.nat_config import make_config
from ryu_app.openflow import flows
from ryu_app.settings.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.nat.gateway import Gateway

UPLINK, H1_PORT = 1, 2


def connect(gateway: Gateway, switch: FakeSwitch) -> None:
    Wire(gateway, switch).connect({"s1-eth1": UPLINK, "s1-eth2": H1_PORT})


@pytest.fixture
def lab():
    gateway, switch = Gateway(make_config()), FakeSwitch()
    connect(gateway, switch)
    return gateway, switch


def ask(gateway: Gateway, switch: FakeSwitch, in_port: int, frame: bytes) -> list[tuple[int, bytes]]:
    """Send a frame into the fake switch; return what the gateway sends back out."""
    if ofp.OFPP_CONTROLLER not in switch.outputs(in_port, frame):
        return []
    before = len(switch.packet_outs())
    switch.apply(gateway.packet_in(switch.dpid, in_port, frame))
    return switch.packet_outs()[before:]


def test_inside_host_resolves_inside_gateway(lab):
    gateway, switch = lab
    out = ask(gateway, switch, H1_PORT, arp_request(H1_MAC, H1_IP, "10.0.0.1"))
    assert len(out) == 1
    port, frame = out[0]
    assert port == H1_PORT
    pkt = packet.Packet(frame)
    eth, reply = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(arp.arp)
    assert (eth.src, eth.dst) == (GW_MAC, H1_MAC)
    assert reply.opcode == arp.ARP_REPLY
    assert (reply.src_mac, reply.src_ip) == (GW_MAC, "10.0.0.1")
    assert (reply.dst_mac, reply.dst_ip) == (H1_MAC, H1_IP)
    assert gateway.counters.arp_replies == 1


def test_outside_host_resolves_nat_address_on_uplink_only(lab):
    gateway, switch = lab
    out = ask(gateway, switch, UPLINK, arp_request(O1_MAC, O1_IP, "198.51.100.1"))
    assert [p for p, _ in out] == [UPLINK]
    assert packet.Packet(out[0][1]).get_protocol(arp.arp).src_ip == "198.51.100.1"
    # The NAT address is not answered towards the inside.
    assert ask(gateway, switch, H1_PORT, arp_request(H1_MAC, H1_IP, "198.51.100.1")) == []
    assert gateway.counters.drops["arp_not_for_gateway"] == 1


def test_no_answer_for_other_hosts_or_spoofed_senders(lab):
    gateway, switch = lab
    arp_frame = arp_request(H1_MAC, H1_IP, "10.0.0.12")
    assert switch.outputs(H1_PORT, arp_frame) == [ofp.OFPP_CONTROLLER]  # via table-miss
    before = len(switch.packet_outs())
    switch.apply(gateway.packet_in(switch.dpid, H1_PORT, arp_frame))
    assert switch.packet_outs()[before:] == []
    spoofed = arp_request(H1_MAC, "203.0.113.9", "10.0.0.1")
    assert ask(gateway, switch, H1_PORT, spoofed) == []
    assert gateway.counters.drops["spoofed_source"] == 1
    assert gateway.counters.arp_replies == 0


@pytest.mark.parametrize("in_port,src_mac,src_ip,gw_ip", [
    (H1_PORT, H1_MAC, H1_IP, "10.0.0.1"),
    (UPLINK, O1_MAC, O1_IP, "198.51.100.1"),
])
def test_gateway_answers_ping_on_each_side(lab, in_port, src_mac, src_ip, gw_ip):
    gateway, switch = lab
    req = echo_request(src_mac, GW_MAC, src_ip, gw_ip, ident=77, seq=5, payload=b"abc" * 20)
    out = ask(gateway, switch, in_port, req)
    assert [p for p, _ in out] == [in_port]
    pkt = packet.Packet(out[0][1])
    eth, ip, echo = (pkt.get_protocol(x) for x in (ethernet.ethernet, ipv4.ipv4, icmp.icmp))
    assert (eth.src, eth.dst) == (GW_MAC, src_mac)
    assert (ip.src, ip.dst) == (gw_ip, src_ip)
    assert echo.type == icmp.ICMP_ECHO_REPLY
    assert (echo.data.id, echo.data.seq, echo.data.data) == (77, 5, b"abc" * 20)
    icmp_bytes = out[0][1][14 + ip.header_length * 4:]
    assert packet_utils.checksum(icmp_bytes) == 0, "ICMP checksum must verify"
    assert gateway.counters.icmp_echo_replies == 1


def test_echo_reply_to_gateway_is_not_answered(lab):
    gateway, switch = lab
    frame = echo_request(H1_MAC, GW_MAC, H1_IP, "10.0.0.1", type_=icmp.ICMP_ECHO_REPLY)
    assert ask(gateway, switch, H1_PORT, frame) == []
    assert gateway.counters.drops["icmp_to_gateway_not_echo"] == 1


def test_reconnect_replaces_our_flows_and_keeps_foreign_ones(lab):
    gateway, switch = lab
    foreign = parser.OFPFlowMod(None, cookie=0x1234, priority=7, match=parser.OFPMatch(in_port=9),
                                instructions=[])
    switch.apply([foreign])
    ours_before = sorted((f.cookie, f.priority) for f in switch.flows if f.cookie != 0x1234)
    connect(gateway, switch)
    ours_after = sorted((f.cookie, f.priority) for f in switch.flows if f.cookie != 0x1234)
    assert ours_after == ours_before, "reconnect must not duplicate or lose our rules"
    assert any(f.cookie == 0x1234 for f in switch.flows), "foreign flows are never touched"
    assert all(flows.parse_cookie(f.cookie) for f in switch.flows if f.cookie != 0x1234)


def nat_rules(msgs: list) -> list:
    """The TABLE_NAT flow-mods among ``msgs`` (not the ports' packet-in meters)."""
    return [m for m in msgs if isinstance(m, parser.OFPFlowMod) and m.table_id == flows.TABLE_NAT]


def test_numeric_uplink_installs_rules_without_port_names():
    gateway, switch = Gateway(make_config(external_port="1")), FakeSwitch()
    switch.apply(gateway.switch_connected(switch.dpid))
    assert switch.outputs(UPLINK, arp_request(O1_MAC, O1_IP, "198.51.100.1")) == [ofp.OFPP_CONTROLLER]
    assert nat_rules(gateway.ports_described(switch.dpid, {"eth0": 1})) == []


def test_missing_uplink_installs_no_gateway_rules():
    gateway, switch = Gateway(make_config(external_port="wan0")), FakeSwitch()
    switch.apply(gateway.switch_connected(switch.dpid))
    assert nat_rules(gateway.ports_described(switch.dpid, {"s1-eth1": 1})) == []
    assert gateway.switches[switch.dpid].uplink is None
    # ...and picks it up once the port appears.
    assert gateway.ports_described(switch.dpid, {"wan0": 5})
    assert gateway.switches[switch.dpid].uplink == 5


def test_dpid_option_selects_the_switch():
    gateway = Gateway(make_config(dpid="0x2"))
    assert gateway.serves(2) and not gateway.serves(1)
    assert Gateway(make_config()).serves(12345)


@pytest.mark.parametrize("frame,reason", [
    (b"", "malformed"),
    (b"\x00" * 13, "malformed"),
    (bytes.fromhex("ffffffffffff000000000001" "86dd") + b"\x60" + b"\x00" * 39, "ipv6"),
    (bytes.fromhex("ffffffffffff000000000001" "88cc") + b"\x00" * 20, "unsupported_ethertype"),
    (bytes.fromhex("ffffffffffff000000000001" "0806") + b"\x00\x01", "malformed"),
    (bytes.fromhex("ffffffffffff000000000001" "0800") + b"\x45\x00", "malformed"),
])
def test_bad_frames_are_counted_not_fatal(lab, frame, reason):
    gateway, switch = lab
    assert gateway.packet_in(switch.dpid, H1_PORT, frame) == []
    assert gateway.counters.drops[reason] == 1


def test_packet_in_from_unknown_switch_is_counted(lab):
    gateway, _ = lab
    assert gateway.packet_in(99, 1, arp_request(H1_MAC, H1_IP, "10.0.0.1")) == []
    assert gateway.counters.drops["unknown_switch"] == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([UPLINK, H1_PORT]))
def test_random_bytes_never_crash_the_gateway(data, in_port):
    gateway, switch = Gateway(make_config()), FakeSwitch()
    connect(gateway, switch)
    msgs = gateway.packet_in(switch.dpid, in_port, data)
    assert all(isinstance(m, parser.OFPPacketOut) for m in msgs)
    assert gateway.counters.packet_ins == 1
