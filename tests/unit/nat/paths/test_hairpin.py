"""Hairpinning, judged by what the inside target and sender receive."""
from __future__ import annotations

from types import SimpleNamespace

from ryu.lib.packet import ethernet, ipv4, packet, tcp, udp
from ryu.ofproto import ether, inet

from helpers.fake_switch import Wire
from helpers.frames import arp_request
from helpers.nat_config import make_config
from ryu_app.settings.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.nat.gateway import Gateway

NAT_IP = "198.51.100.1"
H1 = SimpleNamespace(mac="00:00:00:00:00:01", ip="10.0.0.11", port=2)
H3 = SimpleNamespace(mac="00:00:00:00:00:03", ip="10.0.0.13", port=4)


def frame(src, sport, dst_ip, dport, proto=inet.IPPROTO_TCP, bits=0x02) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GW_MAC, src=src.mac, ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=src.ip, dst=dst_ip, proto=proto, ttl=64))
    if proto == inet.IPPROTO_TCP:
        pkt.add_protocol(tcp.tcp(src_port=sport, dst_port=dport, bits=bits))
    else:
        pkt.add_protocol(udp.udp(src_port=sport, dst_port=dport))
    pkt.serialize()
    return bytes(pkt.data)


def seen(data: bytes) -> tuple:
    pkt = packet.Packet(data)
    ip, seg = pkt.get_protocol(ipv4.ipv4), pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
    return pkt.get_protocol(ethernet.ethernet).dst, ip.src, seg.src_port, ip.dst, seg.dst_port


def make_lab(**options) -> Wire:
    lab = Wire(Gateway(make_config(**options)))
    lab.connect({"s1-eth1": 1, "s1-eth2": 2, "s1-eth3": 3, "s1-eth4": 4})
    for host in (H1, H3):      # both hosts have spoken (ARP for their gateway)
        lab.send(host.port, arp_request(host.mac, host.ip, "10.0.0.1"))
    return lab


def test_hairpin_to_a_forward_both_ways():
    lab = make_lab(forwards="tcp:8081=10.0.0.13:80")
    [(port, there)] = lab.send(H1.port, frame(H1, 5555, NAT_IP, 8081))
    nat = lab.gateway.switches[1].nat
    [sender] = [s for s in nat.ct.sessions() if str(s.inside_ip) == H1.ip]
    assert port == H3.port
    assert seen(there) == (H3.mac, NAT_IP, sender.external_port, H3.ip, 80)
    [(port, back)] = lab.send(H3.port, frame(H3, 80, NAT_IP, sender.external_port, bits=0x12))
    assert port == H1.port and seen(back) == (H1.mac, NAT_IP, 8081, H1.ip, 5555)
    ins = lab.packet_ins
    lab.send(H1.port, frame(H1, 5555, NAT_IP, 8081, bits=0x10))
    assert lab.packet_ins == ins, "later packets stay in the switch"


def test_hairpin_obeys_filtering_for_dynamic_mappings():
    lab = make_lab()     # address-and-port-dependent
    lab.gateway.switches[1].nat.next_hops.learn("198.51.100.10", "00:00:00:00:00:10", 0.0)
    lab.send(H3.port, frame(H3, 7000, "198.51.100.10", 53, proto=inet.IPPROTO_UDP))
    nat = lab.gateway.switches[1].nat
    [h3] = nat.ct.sessions()
    assert lab.send(H1.port, frame(H1, 5000, NAT_IP, h3.external_port,
                                   proto=inet.IPPROTO_UDP)) == []
    assert lab.gateway.counters.drops["hairpin_filtered"] == 1
    [h1] = [s for s in nat.ct.sessions() if str(s.inside_ip) == H1.ip]
    assert (str(h1.remote_ip), h1.remote_port) == (NAT_IP, h3.external_port), \
        "the sender's session stays: it lets h3's answer in"


def test_two_hosts_punch_through_each_others_mapping_under_apdf():
    """RFC 4787 REQ-9/9a: h1 and h3 learn their external ports from a server,
    then each sends to the other's NAT ip:port.  The first datagram meets
    the other's filter; from then on each gets the other's datagrams, from
    the other's external ip:port, and later ones stay in the switch."""
    lab = make_lab()     # address-and-port-dependent
    nat = lab.gateway.switches[1].nat
    nat.next_hops.learn("198.51.100.10", "00:00:00:00:00:10", 0.0)
    udp_ = inet.IPPROTO_UDP
    lab.send(H1.port, frame(H1, 5561, "198.51.100.10", 3478, proto=udp_))
    lab.send(H3.port, frame(H3, 5562, "198.51.100.10", 3478, proto=udp_))
    p1, p3 = (nat.ct.lookup_outbound(udp_, h.ip, sport, "198.51.100.10", 3478).external_port
              for h, sport in ((H1, 5561), (H3, 5562)))
    assert lab.send(H1.port, frame(H1, 5561, NAT_IP, p3, proto=udp_)) == [], "h3's filter"
    [(port, got)] = lab.send(H3.port, frame(H3, 5562, NAT_IP, p1, proto=udp_))
    assert port == H1.port and seen(got) == (H1.mac, NAT_IP, p3, H1.ip, 5561)
    [(port, got)] = lab.send(H1.port, frame(H1, 5561, NAT_IP, p3, proto=udp_))
    assert port == H3.port and seen(got) == (H3.mac, NAT_IP, p1, H3.ip, 5562)
    ins = lab.packet_ins
    for _ in range(3):
        assert [p for p, _ in lab.send(H1.port, frame(H1, 5561, NAT_IP, p3, proto=udp_))] == [H3.port]
        assert [p for p, _ in lab.send(H3.port, frame(H3, 5562, NAT_IP, p1, proto=udp_))] == [H1.port]
    assert lab.packet_ins == ins, "in the switch from then on"


def test_hairpin_to_a_dynamic_mapping_under_eif():
    lab = make_lab(filtering="endpoint-independent")
    lab.gateway.switches[1].nat.next_hops.learn("198.51.100.10", "00:00:00:00:00:10", 0.0)
    lab.send(H3.port, frame(H3, 7000, "198.51.100.10", 53, proto=inet.IPPROTO_UDP))
    [h3] = lab.gateway.switches[1].nat.ct.sessions()
    [(port, there)] = lab.send(H1.port, frame(H1, 5000, NAT_IP, h3.external_port,
                                              proto=inet.IPPROTO_UDP))
    assert port == H3.port and seen(there)[1:] == (NAT_IP, 5000, H3.ip, 7000)


def idle_timeouts(lab, *sessions) -> set[int]:
    from ryu_app.openflow import flows
    return {f.idle_timeout for f in lab.switch.flows
            if (flows.parse_cookie(f.cookie) or (0, 0))[1] in {s.id for s in sessions}
            and f.idle_timeout}


def test_a_hairpinned_tcp_connection_lives_by_tcp_state():
    """Established: both sessions get the established timeout (RFC 5382
    REQ-5), not the 4 minutes of an opening one; FINs both ways close both."""
    lab = make_lab(forwards="tcp:8081=10.0.0.13:80")
    lab.send(H1.port, frame(H1, 5555, NAT_IP, 8081))                       # SYN
    nat = lab.gateway.switches[1].nat
    [a] = [s for s in nat.ct.sessions() if str(s.inside_ip) == H1.ip]
    [b] = [s for s in nat.ct.sessions() if str(s.inside_ip) == H3.ip]
    lab.send(H3.port, frame(H3, 80, NAT_IP, a.external_port, bits=0x12))   # SYN-ACK
    lab.send(H1.port, frame(H1, 5555, NAT_IP, 8081, bits=0x10))            # ACK
    lab.poll_stats()
    assert (a.state.value, b.state.value) == ("ESTABLISHED", "ESTABLISHED")
    lab.poll_stats()                                  # flows raised a poll later
    assert idle_timeouts(lab, a, b) == {7440}
    assert (a.packets_out, a.packets_in) == (2, 1), "replies are counted from the other flow"
    lab.advance(600)
    assert a.alive and b.alive, "a quiet hairpinned connection stays open"
    [(port, _)] = lab.send(H1.port, frame(H1, 5555, NAT_IP, 8081, bits=0x11))   # FIN, forwarded
    assert port == H3.port
    lab.send(H3.port, frame(H3, 80, NAT_IP, a.external_port, bits=0x11))
    assert idle_timeouts(lab, a, b) == {240}, "each FIN lowered its own flow, in the switch"
    lab.poll_stats()                             # where the controller reads it
    assert (a.state.value, b.state.value) == ("CLOSING", "CLOSING")
    assert idle_timeouts(lab, a, b) == {240}


def test_a_hairpinned_pair_lives_while_either_end_talks_and_ends_together():
    """h1 sends once to a forward; h3 keeps answering.  h1's session lives on
    its replies (its flow is re-added as a stand-in), and when the pair ends,
    both sessions and both flows go: no flow outlives its mapping."""
    from ryu_app.openflow import flows
    lab = make_lab(forwards="udp:5300=10.0.0.13:53")
    lab.send(H1.port, frame(H1, 5555, NAT_IP, 5300, proto=inet.IPPROTO_UDP))
    nat = lab.gateway.switches[1].nat
    [a] = [s for s in nat.ct.sessions() if str(s.inside_ip) == H1.ip]
    [b] = [s for s in nat.ct.sessions() if str(s.inside_ip) == H3.ip]
    for _ in range(40):                          # h3 talks every 10 s for 400 s
        lab.advance(10)
        lab.send(H3.port, frame(H3, 53, NAT_IP, a.external_port, proto=inet.IPPROTO_UDP))
    assert a.alive and b.alive, "h1's session lives on the replies it gets"
    lab.advance(700)                             # then everyone is quiet
    assert not a.alive and not b.alive
    assert not [f for f in lab.switch.flows if (flows.parse_cookie(f.cookie) or (0, 0))[1]
                in (a.id, b.id) and flows.parse_cookie(f.cookie)[0] in (
                    flows.CookieKind.SESSION_OUT, flows.CookieKind.SESSION_IN)]


def test_a_restarted_controller_adopts_a_hairpinned_pair():
    """The two one-flow sessions come back as a pair: same ports, their
    flows kept, counters and peers known, and the pair still ends together."""
    lab = make_lab()
    nat = lab.gateway.switches[1].nat
    nat.next_hops.learn("198.51.100.10", "00:00:00:00:00:10", 0.0)
    udp_ = inet.IPPROTO_UDP
    for host, sport in ((H1, 5561), (H3, 5562)):
        lab.send(host.port, frame(host, sport, "198.51.100.10", 3478, proto=udp_))
    p1, p3 = (nat.ct.lookup_outbound(udp_, h.ip, sport, "198.51.100.10", 3478).external_port
              for h, sport in ((H1, 5561), (H3, 5562)))
    lab.send(H1.port, frame(H1, 5561, NAT_IP, p3, proto=udp_))
    lab.send(H3.port, frame(H3, 5562, NAT_IP, p1, proto=udp_))
    lab.send(H1.port, frame(H1, 5561, NAT_IP, p3, proto=udp_))
    before = {(s.id, str(s.inside_ip), s.inside_port, s.external_port, str(s.remote_ip),
               s.remote_port) for s in nat.ct.sessions()}
    flows_before = sorted((f.cookie, f.priority) for f in lab.switch.flows)

    again = Wire(Gateway(make_config()), lab.switch, now=lab.now + 5)
    again.switch.now = again.now
    again.connect({"s1-eth1": 1, "s1-eth2": 2, "s1-eth3": 3, "s1-eth4": 4})
    nat2 = again.gateway.switches[1].nat
    assert {(s.id, str(s.inside_ip), s.inside_port, s.external_port, str(s.remote_ip),
             s.remote_port) for s in nat2.ct.sessions()} == before
    assert again.gateway.counters.flows_discarded == 0
    assert sorted((f.cookie, f.priority) for f in again.switch.flows) == flows_before
    a = nat2.ct.lookup_outbound(udp_, H1.ip, 5561, NAT_IP, p3)
    b = nat2.ct.lookup_outbound(udp_, H3.ip, 5562, NAT_IP, p1)
    assert (nat2.records[a.id].peer, nat2.records[b.id].peer) == (b.id, a.id)
    ins = again.packet_ins
    [(port, got)] = again.send(H3.port, frame(H3, 5562, NAT_IP, p1, proto=udp_))
    assert port == H1.port and seen(got) == (H1.mac, NAT_IP, p3, H1.ip, 5561)
    assert again.packet_ins == ins, "still in the switch"
    again.advance(400)                           # everyone quiet: the pair ends together
    assert nat2.ct.get(a.id) is None and nat2.ct.get(b.id) is None
