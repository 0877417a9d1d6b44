"""The benches' fake switch (bench/ofswitch.py) speaks OpenFlow 1.3 as Ryu
reads it, and bench/setup_rate.py completes sessions end to end (smoke)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ryu.lib.packet import arp, ethernet, ipv4, packet, packet_utils, tcp, udp
from ryu.ofproto import ofproto_parser
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import ofswitch  # noqa: E402


class _Dp:
    """Enough of a datapath for Ryu's message parsers."""

    ofproto, ofproto_parser, id = ofp, parser, 1


def parse(buf: bytes):
    version, msg_type, length, xid = ofproto_parser.header(buf)
    assert length == len(buf)
    return ofproto_parser.msg(_Dp(), version, msg_type, length, xid, bytearray(buf))


def test_packet_in_parses_with_ryu():
    frame = ofswitch.tcp_syn(ofswitch.mac(ofswitch.GATEWAY_MAC), b"\x02\0\0\0\0\x05",
                             ofswitch.ip4("10.0.0.5"), ofswitch.ip4("198.51.100.10"), 40000, 80)
    msg = parse(ofswitch.packet_in(frame, 2, xid=7, reason=ofp.OFPR_ACTION, cookie=0x5A7E << 48))
    assert isinstance(msg, parser.OFPPacketIn)
    assert (msg.xid, msg.buffer_id, msg.total_len, msg.reason, msg.table_id) == \
        (7, ofp.OFP_NO_BUFFER, len(frame), ofp.OFPR_ACTION, 0)
    assert msg.cookie == 0x5A7E << 48 and msg.match["in_port"] == 2 and msg.data == frame


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_generated_frames_parse_and_checksums_verify(protocol):
    flows = ofswitch.Flows(protocol, dport=53)
    frame = flows.frame(300)
    pkt = packet.Packet(frame)
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4)
    l4 = pkt.get_protocol(tcp.tcp if protocol == "tcp" else udp.udp)
    assert (eth.src, eth.dst) == ("02:00:0a:00:00:34", ofswitch.GATEWAY_MAC)
    assert (ip.src, ip.dst, l4.src_port, l4.dst_port) == ("10.0.0.52", "198.51.100.10", 1025, 53)
    assert packet_utils.checksum(frame[14:34]) == 0
    assert packet_utils.checksum_ip(ip, len(frame) - 34, frame[34:]) == 0
    if protocol == "tcp":
        assert l4.bits == tcp.TCP_SYN


def test_every_flow_has_its_own_key():
    for unique_macs in (False, True):
        flows = ofswitch.Flows("mixed", unique_macs=unique_macs)
        keys = [key for key, _msg in flows.take(2000)]
        assert len(set(keys)) == 2000


def test_handshake_replies_parse_with_ryu():
    features = parse(ofswitch.features_reply(3, 0x1234))
    assert isinstance(features, parser.OFPSwitchFeatures) and features.datapath_id == 0x1234
    desc = parse(ofswitch.port_desc_reply(4, ofswitch.DEFAULT_PORTS, 1))
    assert isinstance(desc, parser.OFPPortDescStatsReply)
    assert [(p.port_no, p.name) for p in desc.body] == [
        (1, b"s1-eth1"), (2, b"s1-eth2"), (3, b"s1-eth3")]


def test_flow_stats_replies_split_at_64k_and_parse():
    cookies = list(range(1, 3001))
    replies = ofswitch.flow_stats_replies(9, cookies)
    assert len(replies) > 1 and all(len(r) <= 0xFFFF for r in replies)
    parsed = [parse(r) for r in replies]
    assert [p.flags for p in parsed] == [ofp.OFPMPF_REPLY_MORE] * (len(parsed) - 1) + [0]
    assert [f.cookie for p in parsed for f in p.body] == cookies
    assert parse(ofswitch.flow_stats_replies(9, [])[0]).body == []


def test_packet_out_data_is_read_back():
    frame = ofswitch.udp_datagram(b"\x02" * 6, b"\x04" * 6, ofswitch.ip4("10.0.0.2"),
                                  ofswitch.ip4("198.51.100.10"), 1024, 53)
    out = parser.OFPPacketOut(_Dp(), buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                              actions=[parser.OFPActionSetField(udp_src=5000),
                                       parser.OFPActionOutput(1, 0)], data=frame)
    out.serialize()
    assert ofswitch.parse_packet_out(bytes(out.buf), 0, len(out.buf)) == (ofp.OFPP_CONTROLLER, frame)


def test_next_hop_arp_is_answered_on_the_uplink():
    switch = ofswitch.FakeSwitch(0, neighbors={"198.51.100.10": "02:00:00:00:00:10"})
    sent: list[bytes] = []
    switch.send = sent.append
    request = ofswitch.arp_frame(1, ofswitch.mac(ofswitch.GATEWAY_MAC), ofswitch.ip4("198.51.100.1"),
                                 b"\0" * 6, ofswitch.ip4("198.51.100.10"), eth_dst=b"\xff" * 6)
    switch._arp_request(request)
    [msg] = [parse(m) for m in sent]
    assert msg.match["in_port"] == ofswitch.UPLINK
    reply = packet.Packet(msg.data).get_protocol(arp.arp)
    assert (reply.opcode, reply.src_ip, reply.src_mac, reply.dst_ip) == \
        (arp.ARP_REPLY, "198.51.100.10", "02:00:00:00:00:10", "198.51.100.1")


@pytest.mark.timeout(60)
def test_setup_rate_smoke_against_the_floor_app(tmp_path):
    """The whole bench path, briefly: a real ryu-manager, the fake switch,
    sessions sent and every one answered."""
    out = tmp_path / "sr.json"
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "setup_rate.py"), "--quick",
                          "--runs", "1", "--systems", "floor", "--count", "400",
                          "--latency-count", "100", "--json", str(out)],
                         capture_output=True, text=True, timeout=50, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["sessions_sent"] == 500 and doc["sessions_lost"] == 0
    rate = next(r for r in doc["rows"] if r["metric"] == "setup rate")
    assert rate["system"] == "packet-out floor" and rate["median"] > 0


def test_first_packet_cost_makes_a_session_of_every_first_packet():
    """bench/first_packet_cost.py's pass (the part callgrind counts) runs
    the gateway's first-packet path and checks a session came of each."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "first_packet_cost.py"),
                           "--run", "300", "--build", "600"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
