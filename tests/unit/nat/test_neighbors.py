"""Who is where: the ARP cache and hold queue of outside next hops, and the
inside hosts learned from their own traffic."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from ryu.lib.packet import arp, ethernet, ipv4, packet, tcp, udp
from ryu.ofproto import ether, inet

from helpers.fake_switch import Wire
from helpers.frames import arp_reply, arp_request
from helpers.nat_config import make_config
from ryu_app.settings.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.openflow import flows
from ryu_app.openflow.flows import CookieKind
from ryu_app.nat.gateway import Gateway
from ryu_app.nat.neighbors import NextHops

NAT_IP = "198.51.100.1"
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


# -- next hops: learned from answers to our own requests, or pinned -------------------------
def test_a_next_hop_is_learned_only_from_a_reply_to_a_request_of_ours():
    hops: NextHops = NextHops()
    assert not hops.solicited(HOP, 0.0), "nobody asked: a reply teaches nothing"
    hops.asked(HOP, 0.0)
    assert hops.solicited(HOP, 4.0) and not hops.solicited(HOP, 6.0), "for a few seconds"
    hops.hold(HOP2, "item", 10.0)
    assert hops.solicited(HOP2, 10.0), "a hop something waits for was asked"


def test_a_pinned_next_hop_is_never_learned_nor_asked():
    hops: NextHops = NextHops(pinned={HOP: MAC})
    assert hops.lookup(HOP, 1e9) == MAC, "never ages out"
    assert hops.learn(HOP, MAC2, 0.0) == [] and hops.lookup(HOP, 0.0) == MAC
    hops.asked(HOP, 0.0)
    assert not hops.solicited(HOP, 0.0)
    assert hops.known(0.0) == {HOP: MAC}


# -- a host that moves, seen through the gateway -----------------------------------------------
H1_IP, H1_MAC, S1 = "10.0.0.11", "00:00:00:00:00:01", SimpleNamespace(ip=HOP, mac=MAC)


def udp_frame(eth_src: str, eth_dst: str, src: str, sport: int, dst: str, dport: int,
              ttl: int = 64) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=eth_dst, src=eth_src, ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=src, dst=dst, proto=inet.IPPROTO_UDP, ttl=ttl))
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


def test_unsolicited_arp_from_outside_moves_no_next_hop():
    """A gratuitous reply, or a request, naming a next hop in use with
    another MAC: counted, never learned; the session's packets keep going
    to the real one."""
    lab, reply = h1_talking_on_port_2()
    attacker = "00:00:00:00:00:66"
    lab.send(1, arp_reply(attacker, S1.ip, GW_MAC, NAT_IP))
    lab.send(1, arp_request(attacker, S1.ip, NAT_IP))
    assert lab.gateway.counters.drops["arp_unsolicited"] == 2
    nat = lab.gateway.switches[1].nat
    assert nat.next_hops.lookup(S1.ip, 0.0) == S1.mac
    out = lab.send(2, udp_frame(H1_MAC, GW_MAC, H1_IP, 5001, S1.ip, 53))   # a new session
    assert [(p, f[:6]) for p, f in out] == [(1, bytes.fromhex(S1.mac.replace(":", "")))]


def test_a_forged_inbound_source_mac_moves_no_next_hop():
    """An outside host sends to a forward with a remote's address and its
    own MAC: the gateway asks that remote by ARP, never takes the MAC."""
    lab = Wire(Gateway(make_config(forwards="udp:5300=10.0.0.11:53")))
    lab.connect({"s1-eth1": 1, "s1-eth2": 2})
    lab.send(2, arp_request(H1_MAC, H1_IP, "10.0.0.1"))
    forged = udp_frame("00:00:00:00:00:66", GW_MAC, S1.ip, 4000, "198.51.100.1", 5300)
    [(port, frame)] = lab.send(1, forged)
    assert port == 1 and packet.Packet(frame).get_protocol(arp.arp).dst_ip == S1.ip
    assert lab.gateway.switches[1].nat.next_hops.lookup(S1.ip, 0.0) is None


def frames_to(out: list, port: int) -> list:
    return [f for p, f in out if p == port]


def arp_asks(out: list, port: int, ip: str, mac: str) -> bool:
    """Did the gateway ask ``ip`` by ARP, unicast to ``mac`` on ``port``?"""
    for frame in frames_to(out, port):
        pkt = packet.Packet(frame)
        req = pkt.get_protocol(arp.arp)
        if req is not None and req.dst_ip == ip and pkt[0].dst == mac:
            return True
    return False


H2_MAC = "00:00:00:00:00:02"


@pytest.mark.parametrize("mac", [H2_MAC, H1_MAC], ids=["own-mac", "h1s-mac"])
def test_a_forged_source_takes_nothing_from_the_host_it_names(mac):
    """h2 (port 3) sends with h1's address, with its own MAC or h1's: the
    switch drops it (h1's address is bound to port 2 and h1's MAC), the
    controller never sees it, and h1's replies stay on port 2."""
    lab, reply = h1_talking_on_port_2()
    ins = lab.packet_ins
    assert lab.send(3, udp_frame(mac, GW_MAC, H1_IP, 5000, S1.ip, 53)) == []
    assert lab.send(3, udp_frame(mac, GW_MAC, H1_IP, 7000, S1.ip, 53)) == [], "nor a new flow"
    assert lab.packet_ins == ins, "dropped in the switch"
    assert [p for p, _ in lab.send(1, reply)] == [2]
    lab.poll_stats()
    assert lab.gateway.switches[1].nat.switch_drops["source_guard"] == 2
    assert len(lab.gateway.switches[1].nat.ct) == 1


def test_an_arp_claim_is_refused_while_the_bound_host_answers():
    lab, reply = h1_talking_on_port_2()
    out = lab.send(3, arp_request(H2_MAC, H1_IP, "10.0.0.1"))
    assert arp_asks(out, 2, H1_IP, H1_MAC) and arp_asks(out, 3, H1_IP, H2_MAC), "both asked"
    lab.send(2, arp_reply(H1_MAC, H1_IP, GW_MAC, "10.0.0.1"))     # h1 is alive
    lab.send(3, arp_reply(H2_MAC, H1_IP, GW_MAC, "10.0.0.1"))     # h2 insists
    lab.advance(3, poll=None)
    assert lab.gateway.counters.hosts_moved == 0
    assert lab.gateway.counters.drops["source_guard_move_refused"] == 1
    assert [p for p, _ in lab.send(1, reply)] == [2]


def test_replies_follow_a_host_that_really_moved():
    """h1 is re-cabled to port 3.  Its packets from there are dropped until
    the move is checked: it ARPs for its gateway, port 2 stays silent to two
    probes, port 3 answers; then its sessions' flows follow it."""
    lab, reply = h1_talking_on_port_2()
    assert lab.send(3, udp_frame(H1_MAC, GW_MAC, H1_IP, 5000, S1.ip, 53)) == []
    out = lab.send(3, arp_request(H1_MAC, H1_IP, "10.0.0.1"))
    assert frames_to(out, 3), "its ARP is answered all the same"
    for _ in range(2):
        lab.send(3, arp_reply(H1_MAC, H1_IP, GW_MAC, "10.0.0.1"))
        lab.advance(1, poll=None)
    assert lab.gateway.counters.hosts_moved == 1
    assert [p for p, _ in lab.send(1, reply)] == [3], "replies reach h1 where it is now"
    assert [p for p, _ in lab.send(3, udp_frame(H1_MAC, GW_MAC, H1_IP, 5000, S1.ip, 53))] == [1]
    assert lab.send(2, udp_frame(H1_MAC, GW_MAC, H1_IP, 5000, S1.ip, 53)) == [], \
        "and the old port is the stranger now"
    [s] = lab.gateway.switches[1].nat.ct.sessions()
    assert s.alive, "the session lived through the move"


def test_a_port_that_goes_down_frees_its_addresses():
    lab, reply = h1_talking_on_port_2()
    lab.run(lab.gateway.ports_described(1, {"s1-eth1": 1, "s1-eth2": 2, "s1-eth3": 3},
                                        down={2}))
    assert lab.gateway.switches[1].nat.hosts.get(H1_IP) is None
    # h1 comes back on port 3: its first packet binds it there and its
    # session's replies follow.
    assert [p for p, _ in lab.send(3, udp_frame(H1_MAC, GW_MAC, H1_IP, 5000, S1.ip, 53))] == [1]
    assert [p for p, _ in lab.send(1, reply)] == [3]


def test_one_port_and_mac_holds_a_bounded_number_of_addresses():
    lab = Wire(Gateway(make_config(max_addresses_per_mac=2)))
    lab.connect({"s1-eth1": 1, "s1-eth2": 2})
    lab.gateway.switches[1].nat.next_hops.learn(S1.ip, S1.mac, 0.0)
    sent = [lab.send(2, udp_frame(H1_MAC, GW_MAC, f"10.0.0.{n}", 5000, S1.ip, 53))
            for n in (11, 12, 13)]
    assert [bool(o) for o in sent] == [True, True, False]
    assert lab.gateway.counters.drops["source_guard_full"] == 1


def test_the_host_quota_is_charged_to_the_port_and_mac_not_the_address():
    lab = Wire(Gateway(make_config(max_connections_per_host=3)))
    lab.connect({"s1-eth1": 1, "s1-eth2": 2})
    lab.gateway.switches[1].nat.next_hops.learn(S1.ip, S1.mac, 0.0)
    for n, sport in ((11, 1), (12, 2), (13, 3), (14, 4)):
        lab.send(2, udp_frame(H1_MAC, GW_MAC, f"10.0.0.{n}", sport, S1.ip, 53))
    assert len(lab.gateway.switches[1].nat.ct) == 3
    assert lab.gateway.counters.drops["host_quota"] == 1


def test_a_static_binding_is_never_taken():
    lab = Wire(Gateway(make_config(static_bindings=[f"{H1_IP}={H1_MAC}@2"])))
    lab.connect({"s1-eth1": 1, "s1-eth2": 2, "s1-eth3": 3})
    lab.gateway.switches[1].nat.next_hops.learn(S1.ip, S1.mac, 0.0)
    assert lab.send(3, udp_frame(H2_MAC, GW_MAC, H1_IP, 5000, S1.ip, 53)) == []
    assert lab.send(3, arp_request(H2_MAC, H1_IP, "10.0.0.1")) != []   # answered, not learned
    lab.advance(3, poll=None)
    assert lab.gateway.switches[1].nat.hosts.get(H1_IP).port == 2
    assert [p for p, _ in lab.send(2, udp_frame(H1_MAC, GW_MAC, H1_IP, 5000, S1.ip, 53))] == [1]


def test_an_idle_binding_without_sessions_is_freed():
    lab = Wire(Gateway(make_config(binding_idle_timeout=30)))
    lab.connect({"s1-eth1": 1, "s1-eth2": 2, "s1-eth3": 3})
    lab.send(2, arp_request(H1_MAC, H1_IP, "10.0.0.1"))      # bound, no session
    nat = lab.gateway.switches[1].nat
    assert nat.hosts.get(H1_IP) is not None
    lab.advance(40, poll=None)
    assert nat.hosts.get(H1_IP) is None
    assert not [f for f in lab.switch.flows
                if (flows.parse_cookie(f.cookie) or (None,))[0] in (CookieKind.BINDING,
                                                                    CookieKind.BINDING_DROP)]


def test_forged_packets_spend_none_of_the_named_hosts_icmp_budget():
    """h2 sends TTL-1 datagrams in h1's name: no Time Exceeded goes out
    about them and h1's own notice budget is whole."""
    lab, _reply = h1_talking_on_port_2()
    for sport in range(30):
        assert lab.send(3, udp_frame(H2_MAC, GW_MAC, H1_IP, 6000 + sport, S1.ip, 53, ttl=1)) == []
    out = lab.send(2, udp_frame(H1_MAC, GW_MAC, H1_IP, 7000, S1.ip, 53, ttl=1))
    assert [p for p, _ in out] == [2], "h1's own expired datagram is still answered"
    assert lab.gateway.counters.drops.get("icmp_error_rate_limited", 0) == 0


def test_a_full_binding_table_makes_room_with_the_oldest_and_its_rules():
    from ryu_app.nat.source_guard import Bindings, Claim
    bindings = Bindings(max_hosts=2)
    assert [bindings.claim(f"10.0.0.{n}", f"00:00:00:00:00:{n:02x}", 2, 0.0)
            for n in (11, 12, 13)] == [Claim.NEW] * 3
    assert bindings.get("10.0.0.11") is None and bindings.evicted == ["10.0.0.11"]
    lab = Wire(Gateway(make_config()))
    lab.connect({"s1-eth1": 1, "s1-eth2": 2})
    nat = lab.gateway.switches[1].nat
    nat.hosts.max_hosts = 1
    lab.send(2, arp_request(H1_MAC, H1_IP, "10.0.0.1"))
    lab.send(2, arp_request(H2_MAC, "10.0.0.12", "10.0.0.1"))
    bound = {f.cookie & flows.ID_MASK for f in lab.switch.flows
             if (flows.parse_cookie(f.cookie) or (None,))[0] == CookieKind.BINDING}
    assert bound == {int.from_bytes(bytes([10, 0, 0, 12]), "big")}
