"""Inside hosts' ICMP errors about packets that reached them through the NAT
(RFC 5508 REQ-5), and hairpinned ones (REQ-7), judged by what the far end
gets: an error from the NAT address about the packet it sent itself."""
from __future__ import annotations

from ipaddress import ip_address
from types import SimpleNamespace

from ryu.lib.packet import ethernet, icmp, ipv4, packet, packet_utils

from helpers import frames
from helpers.fake_switch import Wire
from helpers.nat_config import make_config
from helpers.nat_lab import (GW_MAC, H1, H2, NAT_IP, PORTS, S1, S2, UDP, UPLINK, arp_reply,
                             in_frame, ip_frame, nat, open_flow, out_frame)
from ryu_app.openflow import flows
from ryu_app.openflow.flows import CookieKind
from ryu_app.nat.gateway import Gateway

PORT_UNREACHABLE = (3, 3)


def error_about(host, received: bytes, dst: str, type_code=PORT_UNREACHABLE) -> bytes:
    """What ``host``'s stack sends back about the IP packet it ``received``."""
    quoted = received[14:14 + 28]
    return frames.icmp_message(host.mac, GW_MAC, host.ip, dst, *type_code,
                               body=b"\0\0\0\0" + quoted)


def seen_error(frame: bytes) -> tuple[str, str, int, int, bytes]:
    """(outer src, outer dst, type, code, quoted bytes), checksums verified."""
    pkt = packet.Packet(frame)
    ip, msg = pkt.get_protocol(ipv4.ipv4), pkt.get_protocol(icmp.icmp)
    start = 14 + ip.header_length * 4
    assert packet_utils.checksum(frame[14:start]) == 0, "outer IPv4 checksum"
    assert packet_utils.checksum(frame[start:14 + ip.total_length]) == 0, "ICMP checksum"
    quoted = frame[start + 8:14 + ip.total_length]
    assert packet_utils.checksum(quoted[:20]) == 0, "quoted IPv4 checksum"
    return ip.src, ip.dst, msg.type, msg.code, quoted


def test_an_inside_servers_port_unreachable_reaches_the_remote_as_the_nat():
    lab = Wire(Gateway(make_config(forwards="udp:5300=10.0.0.11:53")))
    lab.connect(PORTS)
    lab.answer(UPLINK, arp_reply(S1), S1.ip)
    lab.send(H1.port, frames.arp_request(H1.mac, H1.ip, "10.0.0.1"))
    sent = in_frame(S1, 40000, 5300, payload=b"query")      # 8 + 5 bytes of UDP
    [(port, received)] = lab.send(UPLINK, sent)
    assert port == H1.port
    [(port, frame)] = lab.send(H1.port, error_about(H1, received, S1.ip))
    src, dst, type_, code, quoted = seen_error(frame)
    assert port == UPLINK and (src, dst, type_, code) == (NAT_IP, S1.ip, 3, 3)
    ours = sent[14:14 + 28]
    assert (quoted[:8], quoted[9], quoted[12:20]) == (ours[:8], ours[9], ours[12:20]), \
        "the remote's own datagram: its addresses, as it sent them"
    assert quoted[8] == ours[8] - 1, "but for the TTL the gateway took off"
    assert quoted[20:28] == ours[20:28], "its UDP header, checksum included, byte for byte"
    assert lab.gateway.counters.icmp_errors_translated == 1


def test_an_error_about_no_session_or_from_an_impostor_is_dropped():
    lab = Wire(Gateway(make_config()))
    lab.connect(PORTS)
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    [(_, received)] = lab.send(UPLINK, in_frame(S1, 53, s.external_port))
    impostor = error_about(H1, received, S1.ip)
    impostor = impostor[:6] + bytes.fromhex("000000000002") + impostor[12:]   # H2's MAC
    assert lab.send(H2.port, impostor) == []
    # H1's address is bound to H1's port and MAC: the switch drops the
    # impostor's error (source guard) before the controller sees it.
    [guard] = [f for f in lab.switch.flows
               if f.cookie == flows.make_cookie(CookieKind.BINDING_DROP, int(ip_address(H1.ip)))]
    assert guard.packets == 1
    stray = ip_frame(S1.mac, S1.ip, 7, H1.ip, 9, proto=UDP)
    assert lab.send(H1.port, error_about(H1, stray, S1.ip)) == []
    assert lab.gateway.counters.drops["icmp_error_no_session"] == 1
    assert s.alive and s.last_seen == 0.0, "an error refreshes nothing (RFC 5508 REQ-6)"


def test_a_hairpinned_error_goes_back_inside_about_the_senders_own_packet():
    """h1 -> NAT:P2 (h2's mapping) is hairpinned to h2, which answers with
    port unreachable to NAT:P1: h1 gets it from the NAT address, quoting what
    h1 sent (RFC 5508 REQ-7)."""
    lab = Wire(Gateway(make_config(udp_filtering="endpoint-independent")))
    lab.connect(PORTS)
    lab.answer(UPLINK, arp_reply(S1), S1.ip)
    lab.send(H1.port, frames.arp_request(H1.mac, H1.ip, "10.0.0.1"))
    h2_session, _ = open_flow(lab, H2, 6000, S1, 53)
    sent = out_frame(H1, 5000, SimpleNamespace(ip=NAT_IP), h2_session.external_port)
    [(port, received)] = lab.send(H1.port, sent)
    assert port == H2.port
    h1_session = nat(lab).ct.lookup_outbound(UDP, H1.ip, 5000, NAT_IP, h2_session.external_port)
    [(port, frame)] = lab.send(H2.port, error_about(H2, received, NAT_IP))
    src, dst, type_, code, quoted = seen_error(frame)
    assert port == H1.port and (src, dst, type_, code) == (NAT_IP, H1.ip, 3, 3)
    assert ethernet.ethernet.parser(frame)[0].dst == H1.mac
    assert quoted[12:16] == bytes(map(int, H1.ip.split(".")))      # h1's own address...
    assert int.from_bytes(quoted[20:22], "big") == 5000            # ...and port
    assert int.from_bytes(quoted[22:24], "big") == h2_session.external_port
    assert h1_session.alive


def test_an_error_may_only_go_back_to_whoever_sent_the_packet():
    """The quote names the remote; an error about it sent anywhere else
    (another host, a broadcast) would leave with the NAT address as source."""
    lab = Wire(Gateway(make_config(forwards="udp:5300=10.0.0.11:53")))
    lab.connect(PORTS)
    lab.answer(UPLINK, arp_reply(S1), S1.ip)
    lab.send(H1.port, frames.arp_request(H1.mac, H1.ip, "10.0.0.1"))
    [(_, received)] = lab.send(UPLINK, in_frame(S1, 40000, 5300, payload=b"query"))
    for dst in ("203.0.113.99", "198.51.100.255", S2.ip):
        assert lab.send(H1.port, error_about(H1, received, dst)) == []
    assert lab.gateway.counters.drops["icmp_error_not_ours"] == 3
