"""IPv4 fragments through the NAT (RFC 4787 REQ-14): what the far side gets."""
from __future__ import annotations

import struct
from types import SimpleNamespace

from ryu.lib.packet import ethernet, ipv4, packet, packet_utils, tcp, udp
from ryu.ofproto import ether, inet

from helpers.fake_switch import Wire
from helpers.frames import arp_reply, arp_request
from helpers.nat_config import make_config
from ryu_app.settings.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.nat.gateway import Gateway

NAT_IP = "198.51.100.1"
H1 = SimpleNamespace(mac="00:00:00:00:00:01", ip="10.0.0.11", port=2)
S1 = SimpleNamespace(mac="00:00:00:00:00:10", ip="198.51.100.10")
UPLINK = 1


def udp_fragments(src_mac, src_ip, sport, dst_ip, dport, payload: bytes, ident: int,
                  size: int = 64) -> list[bytes]:
    """A UDP datagram cut into IP fragments of ``size`` payload bytes (multiple of 8)."""
    pkt = packet.Packet()
    pkt.add_protocol(ipv4.ipv4(src=src_ip, dst=dst_ip, proto=inet.IPPROTO_UDP))
    pkt.add_protocol(udp.udp(src_port=sport, dst_port=dport))
    pkt.add_protocol(payload)
    pkt.serialize()
    body = bytes(pkt.data)[20:]                 # UDP header + payload, checksum set
    frames = []
    for off in range(0, len(body), size):
        chunk = body[off:off + size]
        more = off + size < len(body)
        ip = ipv4.ipv4(src=src_ip, dst=dst_ip, proto=inet.IPPROTO_UDP, identification=ident,
                       flags=0x1 if more else 0, offset=off // 8, ttl=64,
                       total_length=20 + len(chunk))
        eth = ethernet.ethernet(dst=GW_MAC, src=src_mac, ethertype=ether.ETH_TYPE_IP)
        frames.append(bytes(eth.serialize(bytearray(), None))
                      + bytes(ip.serialize(bytearray(chunk), None)) + chunk)
    return frames


def reassemble(frames: list[bytes]) -> tuple[str, str, bytes]:
    """(src, dst, UDP datagram) as the receiver's IP stack rebuilds it; checks checksums."""
    parts = {}
    for f in frames:
        ihl = (f[14] & 0x0F) * 4
        assert packet_utils.checksum(f[14:14 + ihl]) == 0, "IP header checksum"
        off = (struct.unpack_from("!H", f, 20)[0] & 0x1FFF) * 8
        parts[off] = f[14 + ihl:]
    body = b"".join(parts[k] for k in sorted(parts))
    src, dst = (".".join(map(str, frames[0][26 + i:30 + i])) for i in (0, 4))
    return src, dst, body


def udp_checksum_ok(src: str, dst: str, body: bytes) -> bool:
    pseudo = bytes(map(int, src.split("."))) + bytes(map(int, dst.split("."))) + \
        struct.pack("!BBH", 0, 17, len(body))
    return packet_utils.checksum(pseudo + body) == 0


# The flood tests here check the controller's own bounds on held fragments:
# the switch's packet-in meters and the per-host budget would stop the
# flood first (all of it comes at one instant of the fake switch's time).
NO_PUNT_LIMITS = {"packet_in_port_rate": 0, "packet_in_host_rate": 0}


def make_lab(**overrides) -> Wire:
    lab = Wire(Gateway(make_config(**overrides)))
    lab.connect({"s1-eth1": UPLINK, "s1-eth2": H1.port})
    lab.send(H1.port, arp_request(H1.mac, H1.ip, "10.0.0.1"))
    lab.gateway.switches[1].nat.next_hops.learn(S1.ip, S1.mac, 0.0)
    return lab


def send_all(lab, port, frames) -> list[tuple[int, bytes]]:
    return [out for f in frames for out in lab.send(port, f)]


def test_outbound_fragments_in_and_out_of_order():
    for order in (lambda fs: fs, lambda fs: fs[::-1]):
        lab = make_lab()
        frames = udp_fragments(H1.mac, H1.ip, 5000, S1.ip, 53, bytes(range(200)), ident=77)
        out = send_all(lab, H1.port, order(frames))
        assert [p for p, _ in out] == [UPLINK] * len(frames)
        src, dst, body = reassemble([f for _, f in out])
        [s] = lab.gateway.switches[1].nat.ct.sessions()
        assert (src, dst) == (NAT_IP, S1.ip)
        assert struct.unpack_from("!HH", body) == (s.external_port, 53)
        assert body[8:] == bytes(range(200))
        assert udp_checksum_ok(src, dst, body), "the first fragment's checksum covers the change"


def test_inbound_fragments_reach_the_inside_host():
    lab = make_lab()
    lab.send(H1.port, udp_fragments(H1.mac, H1.ip, 5000, S1.ip, 53, b"q" * 8, ident=1,
                                    size=64)[0])
    [s] = lab.gateway.switches[1].nat.ct.sessions()
    frames = udp_fragments(S1.mac, S1.ip, 53, NAT_IP, s.external_port, b"r" * 300, ident=9)
    out = send_all(lab, UPLINK, frames[1:] + frames[:1])      # first fragment last
    assert [p for p, _ in out] == [H1.port] * len(frames)
    src, dst, body = reassemble([f for _, f in out])
    assert (src, dst) == (S1.ip, H1.ip) and struct.unpack_from("!HH", body) == (53, 5000)
    assert udp_checksum_ok(src, dst, body) and body[8:] == b"r" * 300


def test_fragment_flood_is_bounded_and_unfragmented_traffic_still_flows():
    lab = make_lab()
    nat = lab.gateway.switches[1].nat
    for ident in range(5000):                    # later fragments that never get a first
        frag = udp_fragments(S1.mac, S1.ip, 53, NAT_IP, 4000, b"x" * 128, ident=ident)[1]
        assert lab.send(UPLINK, frag) == []
    assert nat.fragments.held <= 2048 and len(nat.fragments.table) <= 1024
    drops = lab.gateway.counters.drops
    assert drops["fragment_evicted"] + drops["fragment_queue_full"] > 0, "the flood is counted"
    lab.advance(6, poll=None)
    assert nat.fragments.held == 0 and not nat.fragments.table
    ok = udp_fragments(H1.mac, H1.ip, 6000, S1.ip, 53, b"ok", ident=1, size=64)
    assert [p for p, _ in lab.send(H1.port, ok[0])] == [UPLINK]


S2 = SimpleNamespace(mac="00:00:00:00:00:20", ip="198.51.100.20")


def tcp_first_fragment(src_mac, src_ip, dst_ip, l4: bytes, ident: int = 5,
                       offset: int = 0, more: bool = True) -> bytes:
    """An IP fragment of protocol TCP carrying exactly ``l4`` (possibly a partial header)."""
    ip = ipv4.ipv4(src=src_ip, dst=dst_ip, proto=inet.IPPROTO_TCP, identification=ident,
                   flags=0x1 if more else 0, offset=offset, ttl=64, total_length=20 + len(l4))
    eth = ethernet.ethernet(dst=GW_MAC, src=src_mac, ethertype=ether.ETH_TYPE_IP)
    return bytes(eth.serialize(bytearray(), None)) + bytes(ip.serialize(bytearray(l4), None)) + l4


def test_a_first_fragment_without_its_whole_l4_header_is_dropped():
    """RFC 1858: a tiny first fragment (the TCP flags or ports in a later one)."""
    lab = make_lab()
    for size in (8, 16, 19):
        l4 = struct.pack("!HHII", 5000, 80, 1, 0)[:size] + b"\0" * max(0, size - 12)
        assert lab.send(H1.port, tcp_first_fragment(H1.mac, H1.ip, S1.ip, l4[:size])) == []
    long_options = struct.pack("!HHIIBBHHH", 5000, 80, 1, 0, 0xF0, 0x02, 1000, 0, 0)  # offset 15
    assert lab.send(H1.port, tcp_first_fragment(H1.mac, H1.ip, S1.ip, long_options)) == []
    at_eight = tcp_first_fragment(S1.mac, S1.ip, NAT_IP, b"\x00" * 16, offset=1)
    assert lab.send(UPLINK, at_eight) == []
    assert lab.gateway.counters.drops["fragment_tiny"] == 5
    assert len(lab.gateway.switches[1].nat.ct) == 0


def test_a_padded_short_first_fragment_gets_its_checksum_fixed_in_the_header():
    """Real NICs pad short frames to 60 bytes; the fragment ends where IP says."""
    lab = make_lab()
    frames = udp_fragments(H1.mac, H1.ip, 5000, S1.ip, 53, b"z" * 40, ident=3, size=8)
    padded = [f + b"\0" * max(0, 60 - len(f)) for f in frames]
    out = send_all(lab, H1.port, padded)
    src, dst, body = reassemble([f for _, f in out])
    assert udp_checksum_ok(src, dst, body) and body[8:] == b"z" * 40


def test_fragmented_traffic_alone_keeps_its_session():
    """RFC 4787 REQ-6: fragments go through the controller, not the flows,
    yet they refresh the session and keep its flows from ending it."""
    lab = make_lab()
    first = udp_fragments(H1.mac, H1.ip, 5000, S1.ip, 53, b"a" * 200, ident=1)
    send_all(lab, H1.port, first)
    [s] = lab.gateway.switches[1].nat.ct.sessions()
    for n in range(2, 12):                        # a datagram a minute for ten minutes
        lab.advance(60)
        frames = udp_fragments(H1.mac, H1.ip, 5000, S1.ip, 53, b"a" * 200, ident=n)
        assert [p for p, _ in send_all(lab, H1.port, frames)] == [UPLINK] * len(frames)
        reply = udp_fragments(S1.mac, S1.ip, 53, NAT_IP, s.external_port, b"b" * 200,
                              ident=100 + n)
        assert [p for p, _ in send_all(lab, UPLINK, reply)] == [H1.port] * len(reply)
    assert lab.gateway.switches[1].nat.ct.sessions() and s.alive, "one session all along"
    lab.advance(400)
    assert not s.alive, "and it ends once the fragments stop"


def test_fragments_may_open_a_forward_like_whole_packets():
    lab = Wire(Gateway(make_config(forwards="udp:5300=10.0.0.11:53")))
    lab.connect({"s1-eth1": UPLINK, "s1-eth2": H1.port})
    lab.send(H1.port, arp_request(H1.mac, H1.ip, "10.0.0.1"))
    frames = udp_fragments(S1.mac, S1.ip, 40000, NAT_IP, 5300, b"q" * 300, ident=4)
    # The remote's next hop is learned from ARP alone, never from the
    # fragments' source MAC: the first datagram only gets it asked.
    asked = send_all(lab, UPLINK, frames[:1])
    assert [p for p, _ in asked] == [UPLINK]
    lab.send(UPLINK, arp_reply(S1.mac, S1.ip, GW_MAC, NAT_IP))
    out = send_all(lab, UPLINK, frames)
    assert [p for p, _ in out] == [H1.port] * len(frames)
    src, dst, body = reassemble([f for _, f in out])
    assert (src, dst) == (S1.ip, H1.ip) and struct.unpack_from("!HH", body) == (40000, 53)
    assert udp_checksum_ok(src, dst, body)


def test_one_flooding_source_cannot_crowd_out_another():
    lab = make_lab(**NO_PUNT_LIMITS)
    nat = lab.gateway.switches[1].nat
    lab.send(H1.port, udp_fragments(H1.mac, H1.ip, 5000, S2.ip, 53, b"q", ident=1)[0])
    nat.next_hops.learn(S2.ip, S2.mac, 0.0)
    [s] = nat.ct.sessions()
    for ident in range(3000):                    # S1 floods: later fragments only
        lab.send(UPLINK, udp_fragments(S1.mac, S1.ip, 53, NAT_IP, 4000, b"x" * 128,
                                       ident=ident)[1])
    assert len(nat.fragments.table) <= 64, "one source holds at most 64 datagrams"
    frames = udp_fragments(S2.mac, S2.ip, 53, NAT_IP, s.external_port, b"r" * 300, ident=9)
    out = send_all(lab, UPLINK, frames[::-1])    # S2's datagram, out of order, gets through
    assert [p for p, _ in out] == [H1.port] * len(frames)


def test_fragments_forged_in_a_sources_name_do_not_lock_it_out():
    lab = make_lab(**NO_PUNT_LIMITS)
    nat = lab.gateway.switches[1].nat
    lab.send(H1.port, udp_fragments(H1.mac, H1.ip, 5000, S1.ip, 53, b"q", ident=1)[0])
    [s] = nat.ct.sessions()
    for ident in range(200):                     # "S1" floods: later fragments only
        lab.send(UPLINK, udp_fragments(S1.mac, S1.ip, 53, NAT_IP, 4000, b"x" * 128,
                                       ident=ident)[1])
    frames = udp_fragments(S1.mac, S1.ip, 53, NAT_IP, s.external_port, b"r" * 300, ident=999)
    out = send_all(lab, UPLINK, frames)          # the real S1, first fragment first
    assert [p for p, _ in out] == [H1.port] * len(frames)
    assert len(nat.fragments.per_source[(True, S1.ip)]) == 64, "the forgeries still hold only 64"


def test_forgeries_in_a_sources_name_do_not_lock_out_its_reordered_datagrams():
    """After 200 forged later fragments in S1's name (its share of 64
    waiting datagrams full), S1's real datagram arriving last fragment
    first still gets through: a new waiting datagram pushes out the source's
    oldest, it is not refused (a CI run lost a reply that way)."""
    lab = make_lab(**NO_PUNT_LIMITS)
    nat = lab.gateway.switches[1].nat
    lab.send(H1.port, udp_fragments(H1.mac, H1.ip, 5000, S1.ip, 53, b"q", ident=1)[0])
    [s] = nat.ct.sessions()
    for ident in range(200):
        lab.send(UPLINK, udp_fragments(S1.mac, S1.ip, 53, NAT_IP, 4000, b"x" * 128,
                                       ident=ident)[1])
    frames = udp_fragments(S1.mac, S1.ip, 53, NAT_IP, s.external_port, b"r" * 300, ident=999)
    out = send_all(lab, UPLINK, frames[::-1])
    assert [p for p, _ in out] == [H1.port] * len(frames)
    assert lab.gateway.counters.drops.get("fragment_queue_full", 0) == 0
    assert len(nat.fragments.per_source[(True, S1.ip)]) <= 64


def test_a_busy_source_of_real_fragmented_datagrams_is_not_capped():
    """The share per source limits datagrams *waiting* for their first
    fragment; in-order datagrams of a session pass however many there are
    (the packet-in budget, which counts every fragment, is the only cap)."""
    lab = make_lab(**NO_PUNT_LIMITS)
    for ident in range(200):                     # 200 datagrams within a second
        frames = udp_fragments(H1.mac, H1.ip, 5000, S1.ip, 53, b"d" * 200, ident=ident)
        assert [p for p, _ in send_all(lab, H1.port, frames)] == [UPLINK] * len(frames)
    assert lab.gateway.counters.drops.get("fragment_queue_full", 0) == 0


def test_tcp_fragments_are_translated_with_their_checksum():
    """A TCP SYN with data, fragmented (a stack without PMTU discovery)."""
    lab = make_lab()
    seg = packet.Packet()
    seg.add_protocol(ipv4.ipv4(src=H1.ip, dst=S1.ip, proto=inet.IPPROTO_TCP))
    seg.add_protocol(tcp.tcp(src_port=5000, dst_port=80, seq=1, bits=tcp.TCP_SYN,
                             window_size=1000))
    seg.add_protocol(bytes(range(160)))
    seg.serialize()
    body = bytes(seg.data)[20:]                   # TCP header + data, checksum set
    frames = [tcp_first_fragment(H1.mac, H1.ip, S1.ip, body[off:off + 64], ident=8,
                                 offset=off // 8, more=off + 64 < len(body))
              for off in range(0, len(body), 64)]
    out = send_all(lab, H1.port, frames[::-1])
    assert [p for p, _ in out] == [UPLINK] * len(frames)
    src, dst, got = reassemble([f for _, f in out])
    [s] = lab.gateway.switches[1].nat.ct.sessions()
    assert (src, dst) == (NAT_IP, S1.ip) and struct.unpack_from("!HH", got) == (s.external_port, 80)
    pseudo = bytes(map(int, src.split("."))) + bytes(map(int, dst.split("."))) + \
        struct.pack("!BBH", 0, 6, len(got))
    assert packet_utils.checksum(pseudo + got) == 0, "TCP checksum over the whole segment"


def test_forged_fragments_cannot_push_out_a_waiting_datagram():
    lab = make_lab(**NO_PUNT_LIMITS)   # the controller's own bound
    nat = lab.gateway.switches[1].nat
    lab.send(H1.port, udp_fragments(H1.mac, H1.ip, 5000, S1.ip, 53, b"q", ident=1)[0])
    [s] = nat.ct.sessions()
    frames = udp_fragments(S1.mac, S1.ip, 53, NAT_IP, s.external_port, b"r" * 300, ident=9)
    assert send_all(lab, UPLINK, frames[1:]) == []           # S1's later fragments wait
    for n in range(20):                                     # 20 forged sources x 64
        src = f"198.51.100.{100 + n}"
        for ident in range(64):
            lab.send(UPLINK, udp_fragments(S1.mac, src, 53, NAT_IP, 4000, b"x" * 64,
                                           ident=ident)[1])
    assert len(nat.fragments.table) <= 1024
    out = lab.send(UPLINK, frames[0])                         # S1's first fragment, last
    assert [p for p, _ in out] == [H1.port] * len(frames), "the waiting datagram survived"


def test_a_fragmented_datagram_for_an_unknown_inside_host_leaves_no_session():
    lab = Wire(Gateway(make_config(forwards="udp:5300=10.0.0.12:53")))
    lab.connect({"s1-eth1": UPLINK, "s1-eth2": H1.port})
    frames = udp_fragments(S1.mac, S1.ip, 40000, NAT_IP, 5300, b"q" * 300, ident=4)
    out = send_all(lab, UPLINK, frames)
    assert out and all(port == H1.port for port, _ in out), "only an ARP request, inside"
    nat = lab.gateway.switches[1].nat
    assert len(nat.ct) == 0 and lab.gateway.counters.drops["inbound_unresolved"] == 1
    assert nat.ct.mapping_of_port(17, 5300) is not None, "the forward stays"
