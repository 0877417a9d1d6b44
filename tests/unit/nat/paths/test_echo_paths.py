"""ICMP echo through the NAT, judged by what the pinged server and the
pinging hosts see.

OpenFlow 1.3 can neither match nor rewrite the echo identifier, so no echo
flow can tell two sessions apart: every request and every reply is
translated by the controller (packet-in, packet-out of a rewritten frame),
and no echo flow is ever installed.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from ryu.lib.packet import arp, ethernet, icmp, ipv4, packet, packet_utils
from ryu.ofproto import inet

from helpers.fake_switch import Wire
from helpers.frames import echo_request
from helpers import frames
from helpers.nat_config import make_config
from ryu_app.openflow import flows
from ryu_app.settings.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.openflow.flows import CookieKind
from ryu_app.nat.gateway import Gateway

ICMP = inet.IPPROTO_ICMP
UPLINK, H1_PORT, H2_PORT = 1, 2, 3
NAT_IP = "198.51.100.1"
H1 = SimpleNamespace(mac="00:00:00:00:00:01", ip="10.0.0.11", port=H1_PORT)
H2 = SimpleNamespace(mac="00:00:00:00:00:02", ip="10.0.0.12", port=H2_PORT)
S1 = SimpleNamespace(mac="00:00:00:00:00:10", ip="198.51.100.10")
S2 = SimpleNamespace(mac="00:00:00:00:00:20", ip="198.51.100.20")


def ping(host, server, ident: int, seq: int = 1) -> bytes:
    return echo_request(host.mac, GW_MAC, host.ip, server.ip, ident=ident, seq=seq,
                        payload=f"ping {seq}".encode() * 4)


def pong(server, ident: int, seq: int = 1) -> bytes:
    """The server's echo reply to the NAT address."""
    return echo_request(server.mac, GW_MAC, server.ip, NAT_IP, ident=ident, seq=seq,
                        payload=f"ping {seq}".encode() * 4, type_=icmp.ICMP_ECHO_REPLY)


def arp_reply(peer) -> bytes:
    """``peer`` tells the gateway where it is."""
    return frames.arp_reply(peer.mac, peer.ip, GW_MAC, NAT_IP)


def look(frame: bytes) -> SimpleNamespace:
    """What the receiver sees of an echo; IPv4 and ICMP checksums must verify."""
    pkt = packet.Packet(frame)
    eth, ip, msg = (pkt.get_protocol(p) for p in (ethernet.ethernet, ipv4.ipv4, icmp.icmp))
    assert ip is not None and msg is not None and isinstance(msg.data, icmp.echo)
    start = 14 + ip.header_length * 4
    assert packet_utils.checksum(frame[14:start]) == 0, "IPv4 header checksum"
    assert packet_utils.checksum(frame[start:14 + ip.total_length]) == 0, "ICMP checksum"
    return SimpleNamespace(eth=(eth.src, eth.dst), ips=(ip.src, ip.dst), ttl=ip.ttl,
                           type=msg.type, ident=msg.data.id, seq=msg.data.seq,
                           payload=msg.data.data)


def make_lab() -> Wire:
    lab = Wire(Gateway(make_config()))
    lab.connect({"s1-eth1": UPLINK, "s1-eth2": H1_PORT, "s1-eth3": H2_PORT})
    for server in (S1, S2):      # the gateway asked for the servers earlier
        lab.answer(UPLINK, arp_reply(server), server.ip)
    return lab


@pytest.fixture
def lab() -> Wire:
    return make_lab()


def nat(lab: Wire):
    return lab.gateway.switches[1].nat


def echo_flows(lab: Wire) -> list:
    return [f for f in lab.switch.flows
            if (flows.parse_cookie(f.cookie) or (None,))[0] in (CookieKind.SESSION_OUT,
                                                                CookieKind.SESSION_IN)]


def one(out: list) -> tuple[int, SimpleNamespace]:
    [(port, frame)] = out
    return port, look(frame)


def test_first_ping_waits_for_arp_then_leaves_with_its_identifier():
    lab = Wire(Gateway(make_config()))
    lab.connect({"s1-eth1": UPLINK, "s1-eth2": H1_PORT})
    [(port, frame)] = lab.send(H1_PORT, ping(H1, S1, 0x1234))
    assert port == UPLINK and packet.Packet(frame).get_protocol(arp.arp).dst_ip == S1.ip
    port, seen = one(lab.send(UPLINK, arp_reply(S1)))
    assert port == UPLINK
    assert (seen.eth, seen.ips, seen.ttl) == ((GW_MAC, S1.mac), (NAT_IP, S1.ip), 63)
    assert (seen.type, seen.ident, seen.seq, seen.payload) == (
        icmp.ICMP_ECHO_REQUEST, 0x1234, 1, b"ping 1" * 4)


def test_one_host_pings_through_the_controller_and_gets_its_replies(lab):
    port, seen = one(lab.send(H1_PORT, ping(H1, S1, 0x1234)))
    assert (port, seen.ips, seen.ident) == (UPLINK, (NAT_IP, S1.ip), 0x1234)
    assert echo_flows(lab) == [], "no echo flow: it could not tell identifiers apart"
    ins = lab.packet_ins
    port, seen = one(lab.send(H1_PORT, ping(H1, S1, 0x1234, seq=2)))
    assert (port, seen.ips, seen.ident, seen.seq, seen.ttl) == (
        UPLINK, (NAT_IP, S1.ip), 0x1234, 2, 63)
    port, seen = one(lab.send(UPLINK, pong(S1, 0x1234, seq=2)))
    assert port == H1_PORT
    assert (seen.eth, seen.ips, seen.ttl) == ((GW_MAC, H1.mac), (S1.ip, H1.ip), 63)
    assert (seen.type, seen.ident, seen.seq, seen.payload) == (
        icmp.ICMP_ECHO_REPLY, 0x1234, 2, b"ping 2" * 4)
    assert lab.packet_ins == ins + 2


def test_two_hosts_with_one_identifier_are_told_apart(lab):
    one(lab.send(H1_PORT, ping(H1, S1, 7)))
    port, seen = one(lab.send(H2_PORT, ping(H2, S1, 7)))
    assert (port, seen.ips, seen.eth) == (UPLINK, (NAT_IP, S1.ip), (GW_MAC, S1.mac))
    other = seen.ident
    assert other != 7, "h2's request may not reuse h1's identifier"
    assert echo_flows(lab) == []
    assert one(lab.send(H2_PORT, ping(H2, S1, 7, seq=2)))[1].ident == other
    assert one(lab.send(H1_PORT, ping(H1, S1, 7, seq=2)))[1].ident == 7
    for ident, host in ((other, H2), (7, H1)):
        port, seen = one(lab.send(UPLINK, pong(S1, ident, seq=3)))
        assert (port, seen.eth[1], seen.ips[1], seen.ident, seen.seq) == (
            host.port, host.mac, host.ip, 7, 3)


def test_same_identifier_to_two_servers_needs_no_translation(lab):
    one(lab.send(H1_PORT, ping(H1, S1, 9)))
    port, seen = one(lab.send(H1_PORT, ping(H1, S2, 9)))
    assert (port, seen.ips, seen.ident) == (UPLINK, (NAT_IP, S2.ip), 9)
    for server in (S1, S2):
        port, seen = one(lab.send(UPLINK, pong(server, 9)))
        assert (port, seen.ips, seen.ident) == (H1_PORT, (server.ip, H1.ip), 9)


def test_unsolicited_echo_reply_is_dropped_and_counted(lab):
    assert lab.send(UPLINK, pong(S1, 4242)) == []
    one(lab.send(H1_PORT, ping(H1, S1, 5)))
    assert lab.send(UPLINK, pong(S2, 5)) == [], "right identifier, wrong server"
    assert lab.gateway.counters.drops["unsolicited_icmp"] == 2


def test_echo_counters_include_what_the_controller_translated(lab):
    for seq in (1, 2, 3):
        one(lab.send(H1_PORT, ping(H1, S1, 5, seq)))
    for seq in (1, 2):
        one(lab.send(UPLINK, pong(S1, 5, seq)))
    lab.poll_stats()
    [s] = nat(lab).ct.sessions()
    assert (s.packets_out, s.packets_in, s.state.value) == (3, 2, "REPLIED")


def test_quiet_echo_session_ends_and_a_new_ping_starts_over(lab):
    one(lab.send(H1_PORT, ping(H1, S1, 5)))
    [s] = nat(lab).ct.sessions()
    lab.advance(100)                                  # icmp_timeout 60 s, then the sweep
    assert nat(lab).ct.get(s.id) is None
    assert echo_flows(lab) == [] and nat(lab).records == {}
    assert lab.send(UPLINK, pong(S1, 5)) == []
    port, seen = one(lab.send(H1_PORT, ping(H1, S1, 5, seq=2)))
    assert (port, seen.ident) == (UPLINK, 5) and echo_flows(lab) == []


def test_pinging_while_talking_keeps_the_session(lab):
    one(lab.send(H1_PORT, ping(H1, S1, 5)))
    [s] = nat(lab).ct.sessions()
    for seq in range(2, 12):                          # one ping every 20 s for 200 s
        lab.advance(20)
        assert one(lab.send(H1_PORT, ping(H1, S1, 5, seq)))[1].ident == 5
        assert one(lab.send(UPLINK, pong(S1, 5, seq)))[0] == H1_PORT
    assert nat(lab).ct.get(s.id) is s


def test_second_ping_of_a_host_to_the_same_server_gets_its_replies(lab):
    one(lab.send(H1_PORT, ping(H1, S1, 100)))
    one(lab.send(H1_PORT, ping(H1, S1, 200)))
    assert lab.gateway.counters.drops["unsolicited_icmp"] == 0
    port, seen = one(lab.send(UPLINK, pong(S1, 200)))
    assert (port, seen.ident) == (H1_PORT, 200)


def test_a_translated_identifier_never_leaves_untranslated(lab):
    one(lab.send(H2_PORT, ping(H2, S2, 9)))           # h2 holds identifier 9
    translated = one(lab.send(H1_PORT, ping(H1, S1, 9)))[1].ident
    assert translated != 9
    one(lab.send(H1_PORT, ping(H1, S1, 5)))           # kept identifier: forward flow
    port, seen = one(lab.send(H1_PORT, ping(H1, S1, 9, seq=2)))
    assert (port, seen.ident) == (UPLINK, translated)


def test_operator_delete_of_an_echo_session_ends_it(lab):
    one(lab.send(H1_PORT, ping(H1, S1, 5)))
    [s] = nat(lab).ct.sessions()
    lab.run(lab.gateway.delete_session(1, s.id))
    assert echo_flows(lab) == [] and nat(lab).ct.get(s.id) is None
    assert lab.send(UPLINK, pong(S1, 5)) == []
