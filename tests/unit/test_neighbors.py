"""Who is where: the ARP cache and hold queue of outside next hops, and the
inside hosts learned from their own traffic."""
from __future__ import annotations

from types import SimpleNamespace

from ryu.lib.packet import ethernet, ipv4, packet, tcp, udp
from ryu.ofproto import ether, inet

from helpers.fake_switch import Wire
from helpers.frames import arp_request
from helpers.nat_config import make_config
from ryu_app.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.gateway import Gateway
from ryu_app.neighbors import InsideHost, InsideHosts, NextHops

HOP, HOP2, MAC, MAC2 = "198.51.100.10", "198.51.100.20", "00:00:00:00:00:10", "00:00:00:00:00:20"


# -- NextHops: hold until learned ------------------------------------------------------
def test_held_items_wait_for_the_answer_and_are_released_in_order():
    hops = NextHops()
    assert hops.lookup(HOP, 0.0) is None
    assert hops.hold(HOP, "a", 0.0) == (True, True), "first item: ask by ARP"
    assert hops.hold(HOP, "b", 0.1) == (True, False), "already asked: just wait"
    assert hops.hold(HOP2, "c", 0.1) == (True, True)
    assert hops.pending() == 3
    assert hops.learn(HOP, MAC, 0.5) == ["a", "b"]
    assert hops.lookup(HOP, 0.5) == MAC
    assert hops.pending() == 1 and hops.learn(HOP, MAC, 0.6) == [], "released only once"


def test_hold_queue_is_bounded_per_hop():
    hops = NextHops(per_hop=2)
    assert [hops.hold(HOP, i, 0.0)[0] for i in range(4)] == [True, True, False, False]
    assert hops.hold(HOP2, "other", 0.0) == (True, True), "another hop has its own queue"
    assert hops.learn(HOP, MAC, 1.0) == [0, 1]


def test_hold_queue_is_bounded_in_hops():
    hops = NextHops(max_hops=2)
    assert hops.hold("198.51.100.1", 1, 0.0)[0] and hops.hold("198.51.100.2", 2, 0.0)[0]
    assert hops.hold("198.51.100.3", 3, 0.0) == (False, False)
    assert hops.hold("198.51.100.1", 4, 0.0) == (True, False), "waiting hops still queue"
    hops.learn("198.51.100.1", MAC, 0.5)
    assert hops.hold("198.51.100.3", 3, 0.5) == (True, True), "room again once one resolves"


def test_unanswered_hop_is_asked_every_retry_then_given_up():
    hops = NextHops(retry=1.0, max_tries=3)
    hops.hold(HOP, "a", 0.0)
    hops.hold(HOP, "b", 0.2)
    timeline = {t: hops.tick(t) for t in (0.5, 1.0, 1.5, 2.0, 2.5)}
    assert timeline == {0.5: ([], []), 1.0: ([HOP], []), 1.5: ([], []), 2.0: ([HOP], []),
                        2.5: ([], [])}
    assert hops.tick(3.0) == ([], ["a", "b"]), "three asks, then the items come back"
    assert hops.pending() == 0 and hops.tick(10.0) == ([], [])
    assert hops.hold(HOP, "c", 10.0) == (True, True), "a later packet asks afresh"


def test_an_answer_stops_the_retries():
    hops = NextHops(retry=1.0, max_tries=3)
    hops.hold(HOP, "a", 0.0)
    assert hops.tick(1.0) == ([HOP], [])
    assert hops.learn(HOP, MAC, 1.2) == ["a"]
    assert hops.tick(2.0) == ([], []) and hops.tick(5.0) == ([], [])


def test_cached_mac_expires_after_its_ttl_and_is_refreshed_by_learning():
    hops = NextHops(ttl=300.0)
    hops.learn(HOP, MAC, 0.0)
    assert hops.lookup(HOP, 300.0) == MAC
    assert hops.lookup(HOP, 300.5) is None
    assert hops.known(300.5) == {}
    assert hops.hold(HOP, "a", 300.5) == (True, True), "a stale entry is asked again"
    assert hops.learn(HOP, MAC2, 301.0) == ["a"]
    assert hops.lookup(HOP, 600.0) == MAC2 and hops.known(600.0) == {HOP: MAC2}


def test_cache_is_bounded_and_forgets_the_least_recently_learned():
    hops = NextHops(max_entries=2)
    hops.learn("198.51.100.1", MAC, 0.0)
    hops.learn("198.51.100.2", MAC, 0.0)
    hops.learn("198.51.100.1", MAC, 1.0)       # learned again: now the newest
    hops.learn("198.51.100.3", MAC, 2.0)
    assert hops.known(2.0) == {"198.51.100.1": MAC, "198.51.100.3": MAC}


# -- InsideHosts ---------------------------------------------------------------------------
def test_inside_hosts_are_learned_and_moves_counted():
    hosts = InsideHosts()
    assert hosts.get("10.0.0.11") is None
    assert hosts.learn("10.0.0.11", "00:00:00:00:00:01", 2) is True
    assert hosts.learn("10.0.0.11", "00:00:00:00:00:01", 2) is False, "nothing new"
    assert hosts.get("10.0.0.11") == InsideHost("00:00:00:00:00:01", 2) and hosts.moves == 0
    assert hosts.learn("10.0.0.11", "00:00:00:00:00:01", 3) is True, "moved port"
    assert hosts.learn("10.0.0.11", "00:00:00:00:00:aa", 3) is True, "new MAC"
    assert hosts.moves == 2
    assert hosts.as_dict() == {"10.0.0.11": {"mac": "00:00:00:00:00:aa", "port": 3}}


def test_inside_hosts_are_bounded_least_recently_seen_first():
    hosts = InsideHosts(max_hosts=2)
    hosts.learn("10.0.0.11", "00:00:00:00:00:01", 2)
    hosts.learn("10.0.0.12", "00:00:00:00:00:02", 3)
    hosts.learn("10.0.0.11", "00:00:00:00:00:01", 2)   # seen again
    hosts.learn("10.0.0.13", "00:00:00:00:00:03", 4)
    assert hosts.get("10.0.0.12") is None
    assert set(hosts.as_dict()) == {"10.0.0.11", "10.0.0.13"}


# -- a host that moves, seen through the gateway -----------------------------------------------
H1_IP, H1_MAC, S1 = "10.0.0.11", "00:00:00:00:00:01", SimpleNamespace(ip=HOP, mac=MAC)


def udp_frame(eth_src: str, eth_dst: str, src: str, sport: int, dst: str, dport: int) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=eth_dst, src=eth_src, ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=src, dst=dst, proto=inet.IPPROTO_UDP, ttl=64))
    pkt.add_protocol(udp.udp(src_port=sport, dst_port=dport))
    pkt.add_protocol(b"data")
    pkt.serialize()
    return bytes(pkt.data)


def h1_talking_on_port_2() -> tuple[Wire, bytes]:
    """A lab where h1 (port 2) has a UDP session to S1; and S1's reply to it."""
    lab = Wire(Gateway(make_config()))
    lab.connect({"s1-eth1": 1, "s1-eth2": 2, "s1-eth3": 3})
    lab.gateway.switches[1].nat.next_hops.learn(S1.ip, S1.mac, 0.0)
    lab.send(2, udp_frame(H1_MAC, GW_MAC, H1_IP, 5000, S1.ip, 53))
    [s] = lab.gateway.switches[1].nat.ct.sessions()
    return lab, udp_frame(S1.mac, GW_MAC, S1.ip, 53, "198.51.100.1", s.external_port)


def test_replies_follow_an_inside_host_that_moved_port():
    lab, reply = h1_talking_on_port_2()
    assert [p for p, _ in lab.send(1, reply)] == [2]
    # h1 is re-cabled to port 3 and keeps talking on the same socket: its
    # packets still match the session's forward flow (any inside port)...
    assert [p for p, _ in lab.send(3, udp_frame(H1_MAC, GW_MAC, H1_IP, 5000, S1.ip, 53))] == [1]
    # ...and once it ARPs for its gateway (as Linux does to re-check a stale
    # entry), the gateway learns the move and the replies follow it.
    assert [p for p, _ in lab.send(3, arp_request(H1_MAC, H1_IP, "10.0.0.1"))] == [3]
    assert [p for p, _ in lab.send(1, reply)] == [3], "replies must reach h1 where it is now"


def test_a_dropped_packet_still_tells_the_gateway_where_its_host_went():
    """h1 moves, and the first thing it sends from there is refused (a TCP
    segment of no session): the move is learned all the same, and so the
    replies of its live sessions follow it."""
    lab, reply = h1_talking_on_port_2()
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GW_MAC, src=H1_MAC, ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=H1_IP, dst=S1.ip, proto=inet.IPPROTO_TCP, ttl=64))
    pkt.add_protocol(tcp.tcp(src_port=6000, dst_port=80, bits=tcp.TCP_ACK))
    pkt.serialize()
    assert lab.send(3, bytes(pkt.data)) == []
    assert lab.gateway.counters.drops["tcp_not_syn"] == 1
    assert [p for p, _ in lab.send(1, reply)] == [3]
