"""ICMP errors from outside about NATed packets, judged by what the inside host gets.

A real engine session, the translated packet the switch sent out, and the
error an outside router would send back for it (RFC 5508 REQ-4/5/10): the
inside host must receive an error about its own original packet, byte for
byte, with valid checksums.  No mapping, a bad checksum or a broken frame:
dropped.  An error never refreshes or ends a session (REQ-6).
"""
from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ryu.lib.packet import ethernet, icmp, ipv4, packet, packet_utils, tcp, udp
from ryu.ofproto import ether, inet

from conntrack import INBOUND, TcpFlags
from helpers.nat_config import make_config
from ryu_app.packets import replies
from ryu_app.settings.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.nat.engine import make_engine
from ryu_app.packets.icmp_errors import translate_inbound_error

TCP, UDP, ICMP = inet.IPPROTO_TCP, inet.IPPROTO_UDP, inet.IPPROTO_ICMP
NAT_IP, REMOTE = "198.51.100.1", "198.51.100.10"
ROUTER = SimpleNamespace(mac="00:00:00:00:00:fe", ip="198.51.100.254")
H1 = SimpleNamespace(mac="00:00:00:00:00:01", ip="10.0.0.11", port=2)
H2 = SimpleNamespace(mac="00:00:00:00:00:02", ip="10.0.0.12", port=3)
HOSTS = {h.ip: (h.mac, h.port) for h in (H1, H2)}
ERRORS = [(3, 1), (3, 3), (3, 4), (11, 0), (12, 0)]   # (type, code)
MTU = 1400


def ip_packet(proto: int, src: str, sport: int, dst: str, dport: int, ttl: int = 63,
              payload: bytes = b"hi") -> bytes:
    """An IPv4 packet (no Ethernet) with valid checksums, built by ryu."""
    pkt = packet.Packet()
    pkt.add_protocol(ipv4.ipv4(src=src, dst=dst, proto=proto, ttl=ttl, identification=7))
    if proto == TCP:
        pkt.add_protocol(tcp.tcp(src_port=sport, dst_port=dport, seq=1000, bits=tcp.TCP_SYN,
                                 window_size=1024))
    elif proto == UDP:
        pkt.add_protocol(udp.udp(src_port=sport, dst_port=dport))
    else:
        pkt.add_protocol(icmp.icmp(type_=icmp.ICMP_ECHO_REQUEST, code=0, csum=0,
                                   data=icmp.echo(id_=sport, seq=1, data=payload)))
        payload = b""
    if payload:
        pkt.add_protocol(payload)
    pkt.serialize()
    data = bytearray(pkt.data)
    if proto == UDP and data[26:28] == b"\0\0":
        # A UDP checksum that computes to 0 goes out as 0xFFFF (RFC 768); ryu
        # writes 0, which means "no checksum" (one port in ~65,000 did that).
        data[26:28] = b"\xff\xff"
    return bytes(data)


def icmp_error(quoted: bytes, type_: int, code: int, ttl: int = 60) -> bytes:
    """The error an outside router sends to the NAT address about ``quoted``."""
    if type_ == icmp.ICMP_DEST_UNREACH:
        body = icmp.dest_unreach(data=quoted, mtu=MTU if code == 4 else 0)
    elif type_ == icmp.ICMP_TIME_EXCEEDED:
        body = icmp.TimeExceeded(data=quoted)
    else:                                  # Parameter Problem: pointer 9, 3 bytes unused
        body = bytes([9, 0, 0, 0]) + quoted
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GW_MAC, src=ROUTER.mac, ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=ROUTER.ip, dst=NAT_IP, proto=ICMP, ttl=ttl))
    pkt.add_protocol(icmp.icmp(type_=type_, code=code, csum=0, data=body))
    pkt.serialize()
    return bytes(pkt.data)


class Lab:
    """An engine with sessions, and the translate call as NatService makes it."""

    def __init__(self) -> None:
        self.ct = make_engine(make_config())

    def session(self, proto: int, host, port: int, rport: int):
        flags = TcpFlags.SYN if proto == TCP else 0
        return self.ct.create_outbound(proto, host.ip, port, REMOTE, rport, now=10.0,
                                       tcp_flags=flags)

    def lookup(self, p: int, rip: str, rport: int, eip: str, eport: int):
        return self.ct.lookup_embedded(INBOUND, p, eip, eport, rip, rport)

    def translate(self, frame: bytes, hosts=HOSTS.get):
        return translate_inbound_error(frame, nat_ip=NAT_IP, gateway_mac=GW_MAC,
                                       lookup=self.lookup, host_of=hosts)


def flow(lab: Lab, proto: int, host=H1, port: int = 5000, rport: int = 53, payload=b"hi"):
    """(session, inside packet, translated packet the switch sent out)."""
    s = lab.session(proto, host, port, rport)
    inside = ip_packet(proto, host.ip, port, REMOTE, rport, payload=payload)
    outside = ip_packet(proto, NAT_IP, s.external_port, REMOTE, rport, payload=payload)
    return s, inside, outside


def look(frame: bytes) -> SimpleNamespace:
    """What the inside host sees; the outer checksums must verify."""
    pkt = packet.Packet(frame)
    eth, ip, msg = (pkt.get_protocol(p) for p in (ethernet.ethernet, ipv4.ipv4, icmp.icmp))
    start = 14 + ip.header_length * 4
    assert packet_utils.checksum(frame[14:start]) == 0, "outer IPv4 header checksum"
    assert packet_utils.checksum(frame[start:14 + ip.total_length]) == 0, "ICMP checksum"
    inner = frame[start + 8:14 + ip.total_length]
    assert packet_utils.checksum(inner[:(inner[0] & 0xF) * 4]) == 0, "embedded IP checksum"
    return SimpleNamespace(eth=(eth.src, eth.dst), ips=(ip.src, ip.dst), ttl=ip.ttl,
                           type=msg.type, code=msg.code, rest=frame[start + 4:start + 8],
                           inner=inner)


@pytest.fixture
def lab() -> Lab:
    return Lab()


@pytest.mark.parametrize("type_,code", ERRORS)
@pytest.mark.parametrize("proto", [TCP, UDP, ICMP])
@pytest.mark.parametrize("second_host", [False, True], ids=["port-kept", "port-changed"])
def test_error_reaches_inside_host_about_its_own_packet(lab, proto, type_, code, second_host):
    host = H2 if second_host else H1
    if second_host:
        lab.session(proto, H1, 5000, 53)        # H1 holds port 5000: H2 gets another
    s, inside, outside = flow(lab, proto, host, port=5000)
    assert (s.external_port != 5000) == second_host
    error = icmp_error(outside, type_, code)
    result = lab.translate(error)
    assert not isinstance(result, str), result
    frame, port = result
    seen = look(frame)
    assert port == host.port
    assert seen.eth == (GW_MAC, host.mac)
    assert seen.ips == (ROUTER.ip, host.ip) and seen.ttl == 59
    assert (seen.type, seen.code) == (type_, code)
    assert seen.rest == error[14 + 20 + 4:14 + 20 + 8], "MTU / pointer / unused kept"
    if (type_, code) == (3, 4):
        assert struct.unpack("!H", seen.rest[2:])[0] == MTU
    assert seen.inner == inside, "the host's own packet, L4 checksum included"


@pytest.mark.parametrize("proto", [TCP, UDP, ICMP])
def test_quote_of_only_header_and_8_bytes(lab, proto):
    lab.session(proto, H1, 4000, 53)
    s, inside, outside = flow(lab, proto, H2, port=4000, payload=b"x" * 100)
    assert s.external_port != 4000
    frame, _ = lab.translate(icmp_error(outside[:28], 11, 0))
    seen = look(frame)
    assert seen.inner == inside[:28], "UDP and echo checksums are in the first 8 bytes"


def test_udp_without_checksum_keeps_none(lab):
    lab.session(UDP, H1, 5000, 53)
    s, inside, outside = flow(lab, UDP, H2)
    quoted = outside[:26] + b"\0\0" + outside[28:]
    frame, _ = lab.translate(icmp_error(quoted, 3, 3))
    inner = look(frame).inner
    assert inner[26:28] == b"\0\0" and inner[:26] == inside[:26] and inner[28:] == inside[28:]


@settings(max_examples=100, deadline=None)
@given(sport=st.integers(1, 65535), rport=st.integers(1, 65535),
       payload=st.binary(min_size=0, max_size=40))
def test_incremental_udp_checksum_matches_a_full_one(sport, rport, payload):
    lab = Lab()
    lab.session(UDP, H1, sport, rport)                # takes the port, so H2 gets another
    s, inside, outside = flow(lab, UDP, H2, port=sport, rport=rport, payload=payload)
    frame, _ = lab.translate(icmp_error(outside, 3, 3))
    assert look(frame).inner == inside


def test_error_never_refreshes_nor_ends_the_session(lab):
    s, _, outside = flow(lab, UDP)
    before = (s.last_seen, s.expires_at, s.state, len(lab.ct))
    for type_, code in ERRORS:
        assert not isinstance(lab.translate(icmp_error(outside, type_, code)), str)
    assert (s.last_seen, s.expires_at, s.state, len(lab.ct)) == before and s.alive
    assert lab.ct.get(s.id) is s


def with_icmp_byte(frame: bytes, at: int, value: int) -> bytes:
    return frame[:14 + 20 + at] + bytes([value]) + frame[14 + 20 + at + 1:]


def test_drops(lab):
    s, _, outside = flow(lab, UDP)
    good = icmp_error(outside, 3, 3)
    assert not isinstance(lab.translate(good), str)
    other = ip_packet(UDP, NAT_IP, s.external_port + 1, REMOTE, 53)
    assert lab.translate(icmp_error(other, 3, 3)) == "icmp_error_no_session"
    elsewhere = ip_packet(UDP, NAT_IP, s.external_port, "198.51.100.11", 53)
    assert lab.translate(icmp_error(elsewhere, 3, 3)) == "icmp_error_no_session"
    bad = with_icmp_byte(good, 2, good[14 + 20 + 2] ^ 0xFF)
    assert lab.translate(bad) == "icmp_error_bad_checksum"
    bad = with_icmp_byte(good, 30, good[14 + 20 + 30] ^ 0x01)      # a quoted byte changed
    assert lab.translate(bad) == "icmp_error_bad_checksum"
    assert lab.translate(icmp_error(outside[:12], 3, 3)) == "malformed"   # IP header cut
    assert lab.translate(icmp_error(outside[:24], 3, 3)) == "malformed"   # 4 bytes of L4
    assert lab.translate(good[:-5]) == "malformed"                        # frame cut
    assert lab.translate(b"") == "malformed"
    spoof = ip_packet(UDP, "198.51.100.2", s.external_port, REMOTE, 53)
    assert lab.translate(icmp_error(spoof, 3, 3)) == "icmp_error_not_ours"
    assert lab.translate(good, hosts=lambda ip: None) == "inbound_unresolved"
    assert lab.translate(icmp_error(outside, 3, 3, ttl=1)) == "ttl_exceeded"
    lab.ct.remove(s)
    assert lab.translate(good) == "icmp_error_no_session"


def test_not_an_error_type_is_unsupported(lab):
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GW_MAC, src=ROUTER.mac, ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=ROUTER.ip, dst=NAT_IP, proto=ICMP, ttl=60))
    pkt.add_protocol(icmp.icmp(type_=icmp.ICMP_ECHO_REPLY, code=0, csum=0,
                               data=icmp.echo(id_=1, seq=1, data=b"x" * 40)))
    pkt.serialize()
    assert lab.translate(bytes(pkt.data)) == "icmp_unsupported"


def test_ethernet_padding_is_not_delivered(lab):
    _, inside, outside = flow(lab, UDP)
    frame, _ = lab.translate(icmp_error(outside, 11, 0) + b"\0" * 10)
    assert look(frame).inner == inside and len(frame) == 14 + 20 + 8 + len(outside)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data):
    result = Lab().translate(data)
    assert isinstance(result, str) or isinstance(result[0], bytes)


VALID = {}


def valid_error(proto: int) -> bytes:
    if proto not in VALID:
        lab = Lab()
        VALID[proto] = (lab, icmp_error(flow(lab, proto)[2], 3, 4))
    return VALID[proto]


@settings(max_examples=200, deadline=None)
@given(proto=st.sampled_from([TCP, UDP, ICMP]), data=st.data())
def test_mutated_errors_never_raise_and_deliver_only_valid_frames(proto, data):
    lab, frame = valid_error(proto)
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(frame) - 1), st.integers(0, 255)),
                               max_size=4))
    cut = data.draw(st.integers(0, len(frame)))
    mutated = bytearray(frame)
    for at, value in edits:
        mutated[at] = value
    result = lab.translate(bytes(mutated[:cut]))
    if not isinstance(result, str):
        look(result[0])


def test_time_exceeded_reply_quotes_header_and_8_bytes():
    data = ip_packet(UDP, H1.ip, 33434, REMOTE, 33434, ttl=1, payload=b"probe" * 4)
    eth = ethernet.ethernet(dst=GW_MAC, src=H1.mac, ethertype=ether.ETH_TYPE_IP)
    frame = replies.time_exceeded(eth, data + b"\0" * 6, GW_MAC, "10.0.0.1")
    pkt = packet.Packet(frame)
    ip, msg = pkt.get_protocol(ipv4.ipv4), pkt.get_protocol(icmp.icmp)
    assert (pkt.get_protocol(ethernet.ethernet).dst, ip.src, ip.dst) == (H1.mac, "10.0.0.1", H1.ip)
    assert (msg.type, msg.code) == (icmp.ICMP_TIME_EXCEEDED, 0)
    assert msg.data.data == data[:28]
    assert packet_utils.checksum(frame[14:34]) == 0 and packet_utils.checksum(frame[34:]) == 0
