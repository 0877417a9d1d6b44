"""Source NAT judged by packet fate: frames go into a fake OpenFlow switch on
one side, and we look at what comes out on the other, as the far host would.

The gateway answers the switch's packet-ins; its flow-mods, packet-outs and
the switch's flow-removed messages go round through :class:`Wire`.  Lab:
uplink s1-eth1 = port 1; h1 10.0.0.11 on port 2, h2 10.0.0.12 on port 3;
NAT address 198.51.100.1/24; servers s1 198.51.100.10 and s2 198.51.100.20.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st
from ryu.lib.packet import ethernet, icmp, ipv4, packet, packet_utils, tcp
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from helpers.fake_switch import Wire
from helpers import frames
from helpers.frames import echo_request
from ryu_app.openflow import flows
from ryu_app.openflow.flow_encoding import Encoded
from ryu_app.settings.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.openflow.flows import CookieKind
from ryu_app.ops.views import ConnectionsView

from helpers.nat_lab import (
    TCP, UDP, SYN, ACK, UPLINK, H1_PORT, H2_PORT, NAT_IP, H1, H2, S1, S2, ROUTER, ip_frame,
    out_frame, in_frame, arp_reply, look, is_arp_request_for, make_lab, nat, session_kind,
    session_flows, flows_of, open_flow,
)


@pytest.fixture
def lab() -> Wire:
    return make_lab()


# -- the first packet, the next ones, the replies -------------------------------------
@pytest.mark.parametrize("proto", [UDP, TCP])
def test_first_packet_waits_for_arp_then_leaves_translated(lab, proto):
    out = lab.send(H1_PORT, out_frame(H1, 40000, S1, 53, proto=proto, payload=b"query-1"))
    assert len(out) == 1 and out[0][0] == UPLINK
    assert is_arp_request_for(out[0][1], S1.ip)
    assert session_flows(lab) == [], "no flows before the next hop is known"

    [(port, frame)] = lab.send(UPLINK, arp_reply(S1))
    [s] = nat(lab).ct.sessions()
    seen = look(frame)
    assert port == UPLINK
    assert seen.eth == (GW_MAC, S1.mac)
    assert seen.flow == (NAT_IP, s.external_port, S1.ip, 53)
    assert (seen.ttl, seen.payload) == (63, b"query-1")
    assert (str(s.inside_ip), s.inside_port, s.protocol) == (H1.ip, 40000, proto)
    assert set(flows_of(lab, s.id)) == {CookieKind.SESSION_OUT, CookieKind.SESSION_IN}


@pytest.mark.parametrize("proto", [UDP, TCP])
def test_later_packets_and_replies_take_the_switch_flows(lab, proto):
    s, first = open_flow(lab, H1, 40000, S1, 80, proto)
    ins = lab.packet_ins
    [(port, frame)] = lab.send(H1_PORT, out_frame(H1, 40000, S1, 80, proto=proto, bits=ACK,
                                                   payload=b"second"))
    seen = look(frame)
    assert port == UPLINK and seen.flow == first.flow == (NAT_IP, s.external_port, S1.ip, 80)
    assert (seen.eth, seen.ttl, seen.payload) == ((GW_MAC, S1.mac), 63, b"second")

    reply = in_frame(S1, 80, s.external_port, proto=proto, bits=SYN | ACK, payload=b"answer")
    [(port, frame)] = lab.send(UPLINK, reply)
    seen = look(frame)
    assert port == H1_PORT
    assert seen.eth == (GW_MAC, H1.mac)
    assert seen.flow == (S1.ip, 80, H1.ip, 40000)
    assert (seen.ttl, seen.payload) == (63, b"answer")
    assert lab.packet_ins == ins, "the switch handled both directions alone"


def test_duplicate_packet_ins_make_one_session_and_one_pair_of_flows(lab):
    frame = out_frame(H1, 40000, S1, 53, payload=b"again")
    asked = [lab.send(H1_PORT, frame) for _ in range(3)]     # before the ARP answer
    assert [len(out) for out in asked] == [1, 0, 0], "one ARP request, not one per packet"
    released = lab.send(UPLINK, arp_reply(S1))
    assert len(released) == 3 and len({f for _, f in released}) == 1, "every held copy leaves"
    assert len(nat(lab).ct) == 1
    adds = [m for m in lab.switch.sent if isinstance(m, parser.OFPFlowMod)
            and m.command == ofp.OFPFC_ADD and session_kind(m.cookie)]
    assert len(adds) == 2
    # A packet-in already in flight when the flows went in: forwarded, nothing re-added.
    before = len(lab.switch.sent)
    out = lab.run(lab.gateway.packet_in(1, H1_PORT, frame, lab.now))
    assert [p for p, _ in out] == [UPLINK]
    assert not any(isinstance(m, parser.OFPFlowMod) for m in lab.switch.sent[before:])


def test_two_hosts_with_one_source_port_get_two_external_ports(lab):
    s1, seen1 = open_flow(lab, H1, 5000, S1, 53)
    s2, seen2 = open_flow(lab, H2, 5000, S1, 53)
    assert seen1.flow[1] != seen2.flow[1], "one external port per inside endpoint"
    for s, host in ((s2, H2), (s1, H1)):
        [(port, frame)] = lab.send(UPLINK, in_frame(S1, 53, s.external_port))
        assert (port, look(frame).flow) == (host.port, (S1.ip, 53, host.ip, 5000))


def test_one_socket_to_two_remotes_keeps_its_external_port(lab):
    open_flow(lab, H1, 5000, S1, 53)
    _, to_s1 = open_flow(lab, H2, 5000, S1, 53)      # 5000 taken: h2 gets another port
    _, to_s2 = open_flow(lab, H2, 5000, S2, 9999)
    assert to_s1.flow[1] == to_s2.flow[1] != 5000, "endpoint-independent mapping"
    assert to_s2.eth == (GW_MAC, S2.mac)


def test_remote_off_the_prefix_goes_via_the_external_gateway():
    far = SimpleNamespace(mac=ROUTER.mac, ip="203.0.113.5")
    lab = make_lab(external_gateway_ip=ROUTER.ip)
    out = lab.send(H1_PORT, out_frame(H1, 4000, far, 443))
    assert is_arp_request_for(out[0][1], ROUTER.ip)
    [(_, frame)] = lab.send(UPLINK, arp_reply(ROUTER))
    seen = look(frame)
    assert seen.eth == (GW_MAC, ROUTER.mac) and seen.flow[2:] == (far.ip, 443)
    # Without an external gateway there is no route off the prefix.
    lab2 = make_lab()
    assert lab2.send(H1_PORT, out_frame(H1, 4000, far, 443)) == []
    assert lab2.gateway.counters.drops["no_route"] == 1


def test_unanswered_arp_is_retried_then_the_session_given_up(lab):
    out = lab.send(H1_PORT, out_frame(H1, 4000, S1, 53))
    [s] = nat(lab).ct.sessions()
    asks = [out] + [lab.advance(1, poll=None) for _ in range(4)]
    assert [sum(is_arp_request_for(f, S1.ip) for _, f in a) for a in asks] == [1, 1, 1, 0, 0]
    assert lab.gateway.counters.drops["next_hop_unresolved"] == 1
    assert nat(lab).ct.get(s.id) is None
    assert nat(lab).ct.mapping(UDP, H1.ip, 4000) is None, "its port is freed"
    assert lab.send(UPLINK, arp_reply(S1)) == [], "a late answer releases nothing"


def test_a_packet_refused_by_the_full_arp_queue_leaves_no_session(lab):
    for sport in range(10000, 10065):                # 64 wait per next hop
        lab.send(H1_PORT, out_frame(H1, sport, S1, 53))
    assert lab.gateway.counters.drops["arp_queue_full"] == 1
    lab.advance(5, poll=None)                         # three ARP requests, then give up
    assert lab.gateway.counters.drops["next_hop_unresolved"] == 64
    assert len(nat(lab).ct) == 0, "no session outlives its only packet"


# -- filtering -------------------------------------------------------------------------
def test_unsolicited_and_filtered_inbound_die_in_the_switch(lab):
    assert lab.send(UPLINK, in_frame(S1, 53, 4000)) == []          # no mapping at all
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    ins = lab.packet_ins
    strangers = [in_frame(S1, 54, s.external_port),                 # other remote port
                 in_frame(S2, 53, s.external_port),                 # other remote
                 in_frame(S1, 53, s.external_port + 1),             # unmapped port
                 in_frame(S1, 53, s.external_port, proto=TCP)]      # other protocol
    assert [lab.send(UPLINK, f) for f in strangers] == [[]] * 4
    assert lab.packet_ins == ins, "address-and-port-dependent filtering costs no packet-in"
    lab.poll_stats()
    assert nat(lab).switch_drops["unsolicited_drop"] == 5


def test_endpoint_independent_filtering_lets_a_new_remote_reach_the_mapping():
    lab = make_lab(filtering="endpoint-independent")
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    # S2's MAC is not known: its datagram waits while the gateway asks (the
    # packet's own source MAC teaches nothing: it may be forged).
    [(port, ask)] = lab.send(UPLINK, in_frame(S2, 7777, s.external_port, payload=b"hi"))
    assert port == UPLINK and is_arp_request_for(ask, S2.ip)
    [(port, frame)] = lab.send(UPLINK, arp_reply(S2))
    seen = look(frame)
    assert port == H1_PORT and seen.eth == (GW_MAC, H1.mac)
    assert (seen.flow, seen.payload) == ((S2.ip, 7777, H1.ip, 5000), b"hi")
    # h1 answers through the new session's flow, from the same external port.
    ins = lab.packet_ins
    [(port, frame)] = lab.send(H1_PORT, out_frame(H1, 5000, S2, 7777))
    assert (port, look(frame).flow, look(frame).eth) == (
        UPLINK, (NAT_IP, s.external_port, S2.ip, 7777), (GW_MAC, S2.mac))
    assert lab.packet_ins == ins
    assert lab.send(UPLINK, in_frame(S2, 7777, s.external_port + 1)) == []


def test_mapping_probe_leaves_with_the_last_session_of_its_mapping():
    lab = make_lab(filtering="endpoint-independent")
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    lab.advance(301)                                  # the session idles out
    assert nat(lab).ct.get(s.id) is None
    ins = lab.packet_ins
    assert lab.send(UPLINK, in_frame(S2, 7777, s.external_port)) == []
    assert lab.packet_ins == ins, "no probe flow outlives its mapping"


def test_address_dependent_filtering_admits_only_known_remote_addresses():
    lab = make_lab(filtering="address-dependent")
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    [(port, frame)] = lab.send(UPLINK, in_frame(S1, 54, s.external_port))
    assert (port, look(frame).flow) == (H1_PORT, (S1.ip, 54, H1.ip, 5000))
    assert lab.send(UPLINK, in_frame(S2, 53, s.external_port)) == []
    assert lab.gateway.counters.drops["inbound_filtered"] == 1


# -- idle expiry ---------------------------------------------------------------------------
def test_both_flows_idle_end_an_unreplied_session_and_free_its_port(lab):
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    lab.advance(299)
    assert nat(lab).ct.get(s.id) is s and len(session_flows(lab)) == 2
    lab.advance(1)                                    # udp_timeout 300 s
    assert nat(lab).ct.get(s.id) is None
    assert session_flows(lab) == [] and nat(lab).records == {}
    assert nat(lab).ct.mapping_of_port(UDP, s.external_port) is None


def test_both_flows_idle_end_a_replied_session(lab):
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    lab.send(UPLINK, in_frame(S1, 53, s.external_port))
    lab.advance(10)                                   # a stats poll sees the reply
    assert s.replied
    lab.advance(291)                                  # both flows last used at t=0
    assert session_flows(lab) == [], "idle flows must not come back"
    assert nat(lab).ct.get(s.id) is None


def test_outbound_only_udp_keeps_its_reverse_flow(lab):
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    for _ in range(4):                               # h1 keeps talking, s1 stays silent
        lab.advance(100)
        lab.send(H1_PORT, out_frame(H1, 5000, S1, 53))
    assert nat(lab).ct.get(s.id) is s, "outbound traffic keeps the session (RFC 4787 REQ-6)"
    [(port, frame)] = lab.send(UPLINK, in_frame(S1, 53, s.external_port, payload=b"late"))
    assert (port, look(frame).payload) == (H1_PORT, b"late")


def test_surviving_inbound_flow_of_an_unreplied_session_does_not_keep_it(lab):
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    out_cookie = flows.make_cookie(CookieKind.SESSION_OUT, s.id)
    lab.run(lab.gateway.flow_removed(1, *lab.switch.expire(out_cookie), now=lab.now))
    assert nat(lab).ct.get(s.id) is None
    assert session_flows(lab) == [], "the inbound flow is deleted too"
    assert lab.send(UPLINK, in_frame(S1, 53, s.external_port)) == []


def test_directions_that_fall_quiet_apart_end_one_timeout_after_the_last_packet(lab):
    """Each flow idles out on its own; the re-added one proves nothing, so the
    session ends when the later direction has been quiet for the timeout."""
    s, _ = open_flow(lab, H1, 5000, S1, 53)            # outbound at t=0
    lab.advance(30)
    lab.send(UPLINK, in_frame(S1, 53, s.external_port))  # inbound at t=30
    lab.advance(299)                                    # t=329: the forward flow idled at 300
    assert nat(lab).ct.get(s.id) is s and len(flows_of(lab, s.id)) == 2
    lab.advance(2)                                      # t=331: the reverse idled at 330
    assert nat(lab).ct.get(s.id) is None and flows_of(lab, s.id) == {}
    st = nat(lab).ct.stats()
    assert (st.expired, st.removed) == (1, 0), "idling out is expiry"


def test_the_quiet_direction_is_back_at_once(lab):
    """Outbound-only UDP: the reverse flow idles out and is re-added in the
    same moment, so a late reply right then still gets in."""
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    for _ in range(3):
        lab.advance(100)
        lab.send(H1_PORT, out_frame(H1, 5000, S1, 53))
    assert CookieKind.SESSION_IN in flows_of(lab, s.id), "re-added when it idled at 300"
    [(port, frame)] = lab.send(UPLINK, in_frame(S1, 53, s.external_port, payload=b"late"))
    assert (port, look(frame).payload) == (H1_PORT, b"late")
    lab.advance(400)                                    # then h1 falls silent too
    assert nat(lab).ct.get(s.id) is None and flows_of(lab, s.id) == {}


def test_counters_follow_the_flows_across_a_re_added_flow(lab):
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    frame_out = out_frame(H1, 5000, S1, 53)
    frame_in = in_frame(S1, 53, s.external_port)
    for frame, port in ((frame_out, H1_PORT), (frame_out, H1_PORT), (frame_in, UPLINK)):
        lab.send(port, frame)
    lab.advance(10)
    # The first packet left by packet-out: the gateway counts it itself.
    assert (s.packets_out, s.bytes_out, s.packets_in, s.bytes_in) == (
        3, 3 * len(frame_out), 1, len(frame_in))
    for _ in range(3):                                # only s1 talks: the outbound flow idles
        lab.advance(95)
        lab.send(UPLINK, frame_in)
    assert CookieKind.SESSION_OUT in flows_of(lab, s.id), "re-added: s1's side is alive"
    lab.send(H1_PORT, frame_out)
    lab.advance(10)
    assert nat(lab).ct.get(s.id) is s
    assert (s.packets_out, s.packets_in) == (4, 4)


def test_flow_stats_entries_set_the_counters(lab):
    s, _ = open_flow(lab, H1, 5000, S1, 53)

    def entry(cookie: int, packets: int, octets: int):
        return parser.OFPFlowStats(cookie=cookie, packet_count=packets, byte_count=octets,
                                   idle_timeout=300, match=parser.OFPMatch(), instructions=[])
    entries = [entry(flows.make_cookie(CookieKind.SESSION_OUT, s.id), 7, 700),
               entry(flows.make_cookie(CookieKind.SESSION_IN, s.id), 3, 300),
               entry(0x1234, 99, 9900)]                   # a foreign flow is ignored
    first = len(out_frame(H1, 5000, S1, 53, payload=b"first"))   # sent by packet-out
    assert lab.gateway.flow_stats_reply(1, entries, False, now=5.0) == []
    assert (s.packets_out, s.bytes_out, s.packets_in, s.bytes_in) == (
        7 + 1, 700 + first, 3, 300)
    assert s.replied and s.last_seen == 5.0


def test_tcp_reply_in_the_counters_moves_flows_to_the_established_timeout(lab):
    s, _ = open_flow(lab, H1, 40000, S1, 80, TCP)
    # opening: the transitory timeout, and one second more so that a FIN's
    # lowering (to the transitory timeout itself) shows in the flow stats
    assert {f.idle_timeout for f in flows_of(lab, s.id).values()} == {241}
    lab.send(UPLINK, in_frame(S1, 80, s.external_port, proto=TCP, bits=SYN | ACK))
    lab.advance(10)
    assert s.state.value == "ESTABLISHED"
    lab.advance(10)                                   # its flows follow a poll later
    assert {f.idle_timeout for f in flows_of(lab, s.id).values()} == {7440}
    lab.advance(1000)                                 # a quiet but open connection
    assert nat(lab).ct.get(s.id) is s and len(flows_of(lab, s.id)) == 2
    [(port, _)] = lab.send(H1_PORT, out_frame(H1, 40000, S1, 80, proto=TCP, bits=ACK))
    assert port == UPLINK


def test_unanswered_tcp_syn_ends_after_the_transitory_timeout(lab):
    s, _ = open_flow(lab, H1, 40000, S1, 80, TCP)
    lab.advance(239)
    assert nat(lab).ct.get(s.id) is s, "not before the transitory timeout (RFC 5382 REQ-5)"
    lab.advance(2)                                    # its flows carry 240 + 1 s
    assert nat(lab).ct.get(s.id) is None and session_flows(lab) == []


def test_an_uplink_that_comes_back_as_another_port_takes_the_nat_with_it(lab):
    old, _ = open_flow(lab, H1, 5000, S1, 53)
    lab.run(lab.gateway.ports_described(1, {"s1-eth1": 4, "s1-eth2": H1_PORT, "s1-eth3": 3}))
    assert nat(lab).ct.get(old.id) is None and session_flows(lab) == [], \
        "the old sessions' flows led to the old port"
    assert all(f.match.get("in_port") != UPLINK for f in lab.switch.flows)
    new = lab.send(H1_PORT, out_frame(H1, 5001, S1, 53))
    assert [p for p, _ in new] == [4], "the next hop is known: straight out of the new uplink"
    [s] = nat(lab).ct.sessions()
    assert s.id > old.id, "ids go on, so late flow-removed messages of old flows hit nothing"
    [(port, frame)] = lab.send(4, in_frame(S1, 53, s.external_port, payload=b"back"))
    assert (port, look(frame).payload) == (H1_PORT, b"back")


# -- operator and limits --------------------------------------------------------------------
def test_operator_delete_removes_both_flows_by_cookie(lab):
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    other, _ = open_flow(lab, H2, 5000, S1, 53)
    msgs = lab.gateway.delete_session(1, s.id)
    deletes = [m for m in msgs if isinstance(m, parser.OFPFlowMod)]
    assert [m.command for m in deletes] == [ofp.OFPFC_DELETE]
    lab.run(msgs)
    assert flows_of(lab, s.id) == {} and len(flows_of(lab, other.id)) == 2
    assert nat(lab).ct.get(s.id) is None and s.id not in nat(lab).records
    assert lab.send(UPLINK, in_frame(S1, 53, s.external_port)) == []
    assert lab.gateway.delete_session(1, s.id) is None
    # h1's next packet opens a new session.
    ins = lab.packet_ins
    lab.send(H1_PORT, out_frame(H1, 5000, S1, 53))
    assert lab.packet_ins == ins + 1 and len(nat(lab).ct) == 2


def is_prohibited_about(frame: bytes, host, refused: bytes) -> bool:
    """An ICMP 3/13 from the inside gateway address to ``host`` quoting ``refused``."""
    pkt = packet.Packet(frame)
    eth, ip, err = (pkt.get_protocol(p) for p in (ethernet.ethernet, ipv4.ipv4, icmp.icmp))
    if ip is None or err is None:
        return False
    start = 14 + ip.header_length * 4
    assert packet_utils.checksum(frame[14:start]) == 0, "IPv4 header checksum"
    assert packet_utils.checksum(frame[start:14 + ip.total_length]) == 0, "ICMP checksum"
    quoted = frame[start + 8:14 + ip.total_length]
    return ((eth.src, eth.dst, ip.src, ip.dst, err.type, err.code) ==
            (GW_MAC, host.mac, "10.0.0.1", host.ip, icmp.ICMP_DEST_UNREACH, 13)
            and quoted == refused[14:14 + 28])


def test_host_quota_refuses_a_third_session_and_evicts_nothing():
    lab = make_lab(max_connections_per_host="2", max_connections="3")
    kept = [open_flow(lab, H1, port, S1, 53)[0] for port in (5001, 5002)]
    refused = out_frame(H1, 5003, S1, 53)
    [(port, frame)] = lab.send(H1_PORT, refused)
    assert port == H1_PORT and is_prohibited_about(frame, H1, refused), "h1 is told at once"
    assert lab.gateway.counters.drops["host_quota"] == 1
    assert len(session_flows(lab)) == 2 * 2 and len(nat(lab).ct) == 2
    for s in kept:
        [(port, frame)] = lab.send(H1_PORT, out_frame(H1, s.inside_port, S1, 53))
        assert (port, look(frame).flow[1]) == (UPLINK, s.external_port)
    open_flow(lab, H2, 5003, S1, 53)                  # another host still may


def test_full_table_refuses_every_host():
    lab = make_lab(max_connections_per_host="2", max_connections="2")
    open_flow(lab, H1, 5001, S1, 53)
    open_flow(lab, H1, 5002, S1, 53)
    for host in (H2, H1):
        refused = out_frame(host, 5003, S1, 53)
        [(port, frame)] = lab.send(host.port, refused)
        assert port == host.port and is_prohibited_about(frame, host, refused)
    assert lab.gateway.counters.drops["table_full"] == 2
    assert len(nat(lab).ct) == 2


def test_refusal_notices_are_rate_limited():
    lab = make_lab(max_connections_per_host="1", max_connections="1")
    open_flow(lab, H1, 5000, S1, 53)
    told = [lab.send(H1_PORT, out_frame(H1, 6000 + i, S1, 53)) for i in range(25)]
    assert sum(len(out) for out in told) == 20
    assert lab.gateway.counters.drops["icmp_error_rate_limited"] == 5
    lab.advance(1, poll=None)
    assert len(lab.send(H1_PORT, out_frame(H1, 7000, S1, 53))) == 1, "the bucket refills"


def test_one_hosts_refusals_do_not_use_up_anothers_notices():
    lab = make_lab(max_connections_per_host="1", max_connections="3")
    open_flow(lab, H1, 5000, S1, 53)
    open_flow(lab, H2, 5000, S1, 53)
    for i in range(50):                               # h1 hammers away at its quota
        lab.send(H1_PORT, out_frame(H1, 6000 + i, S1, 53))
    [(port, frame)] = lab.send(H2_PORT, out_frame(H2, 6000, S1, 53))
    assert port == H2_PORT and is_prohibited_about(frame, H2, out_frame(H2, 6000, S1, 53))


# -- hostile input ---------------------------------------------------------------------------
HOSTILE = {
    "spoofed_source": ip_frame(H1.mac, "203.0.113.9", 4000, S1.ip, 53),
    "spoofed_source ": ip_frame(H1.mac, "10.0.0.1", 4000, S1.ip, 53),
    "not_unicast": ip_frame(H1.mac, H1.ip, 4000, "224.0.0.251", 5353),
    "not_unicast ": ip_frame(H1.mac, H1.ip, 4000, "255.255.255.255", 67),
    "tcp_not_syn": out_frame(H1, 4000, S1, 80, proto=TCP, bits=ACK),
    "tcp_not_syn ": out_frame(H1, 4000, S1, 80, proto=TCP, bits=SYN | ACK),
    "inside_destination": ip_frame(H1.mac, H1.ip, 4000, H2.ip, 53),
    "hairpin_no_mapping": ip_frame(H1.mac, H1.ip, 4000, NAT_IP, 53),
    "icmp_unsupported": frames.icmp_message(H1.mac, GW_MAC, H1.ip, S1.ip, 13),  # timestamp
}


def test_directed_broadcast_of_the_external_prefix_is_not_unicast(lab):
    assert lab.send(H1_PORT, ip_frame(H1.mac, H1.ip, 4000, "198.51.100.255", 9)) == []
    assert lab.gateway.counters.drops["not_unicast"] == 1 and len(nat(lab).ct) == 0


@pytest.mark.parametrize("reason", sorted(HOSTILE))
def test_hostile_inside_packets_are_dropped_and_counted(lab, reason):
    before = len(lab.switch.packet_outs())       # the gateway's own announcements
    assert lab.send(H1_PORT, HOSTILE[reason]) == []
    assert lab.packet_ins == 1
    assert lab.gateway.counters.drops[reason.strip()] == 1
    assert session_flows(lab) == [] and len(nat(lab).ct) == 0
    assert lab.switch.packet_outs()[before:] == [], "not even an ARP request"


def test_ttl_one_gets_time_exceeded_from_the_gateway(lab):
    """The gateway is a router hop (traceroute's first hop): ICMP 11/0 from 10.0.0.1."""
    frame = out_frame(H1, 4000, S1, 53, ttl=1)
    [(port, answer)] = lab.send(H1_PORT, frame)
    pkt = packet.Packet(answer)
    ip, err = pkt.get_protocol(ipv4.ipv4), pkt.get_protocol(icmp.icmp)
    assert port == H1_PORT and (ip.src, ip.dst) == ("10.0.0.1", H1.ip)
    assert (err.type, err.code) == (11, 0)
    assert err.data.data[:28] == frame[14:42], "quotes the IP header and 8 bytes"
    assert lab.gateway.counters.drops["ttl_expired"] == 1
    assert session_flows(lab) == [] and len(nat(lab).ct) == 0


def test_forged_inside_packets_from_the_uplink_die_in_the_switch(lab):
    """Forward flows match the inside 5-tuple on any port (hosts may move);
    from outside, a forged RST with that tuple must neither leave nor close."""
    s, _ = open_flow(lab, H1, 40000, S1, 80, TCP)
    lab.send(UPLINK, in_frame(S1, 80, s.external_port, proto=TCP, bits=SYN | ACK))
    lab.advance(10)
    assert s.state.value == "ESTABLISHED"
    ins = lab.packet_ins
    forged = ip_frame(S1.mac, H1.ip, 40000, S1.ip, 80, proto=TCP, bits=tcp.TCP_RST,
                      payload=b"")
    assert lab.send(UPLINK, forged) == []
    assert lab.packet_ins == ins and s.state.value == "ESTABLISHED"
    lab.poll_stats()
    stats = lab.gateway.switches[1].nat.switch_drops
    assert stats["spoofed_inside_drop"] == 1


def test_inside_ipv6_is_dropped_by_the_switch(lab):
    frame = bytes.fromhex("02534e415401" "000000000001" "86dd") + b"\x60" + b"\x00" * 39
    assert lab.send(H1_PORT, frame) == [] and lab.packet_ins == 0
    lab.poll_stats()
    assert nat(lab).switch_drops["inside_ipv6_drop"] == 1


def test_mutated_frames_never_crash_the_gateway():
    lab = make_lab(filtering="endpoint-independent")
    s, _ = open_flow(lab, H1, 5000, S1, 53)
    bases = [out_frame(H1, 5000, S1, 53), out_frame(H2, 6000, S2, 80, proto=TCP),
             in_frame(S1, 53, s.external_port), in_frame(S2, 9, s.external_port),
             echo_request(H1.mac, GW_MAC, H1.ip, S1.ip), arp_reply(S2)]

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.sampled_from(bases), st.sampled_from([UPLINK, H1_PORT]),
           st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=6),
           st.one_of(st.none(), st.integers(14, 100)))
    def run(base, in_port, edits, cut):
        frame = bytearray(base)
        for index, value in edits:
            if index < len(frame):
                frame[index] = value
        msgs = lab.gateway.packet_in(1, in_port, bytes(frame[:cut]), lab.now)
        assert all(isinstance(m, (parser.OFPFlowMod, parser.OFPPacketOut, Encoded)) for m in msgs)
        lab.run(msgs)                      # the fake switch refuses inconsistent actions
    run()


def test_an_ended_session_whose_flows_vanished_leaves_no_record():
    """Flows gone without a flow-removed (lost while the controller was
    away): the expiry backstop ends the session, its flow delete brings no
    notice, and the record still goes after the grace period."""
    lab = make_lab(udp_timeout=10)
    session, _ = open_flow(lab, H1, 5000, S1, 53)
    service = nat(lab)
    assert session.id in service.records
    lab.switch.flows = [f for f in lab.switch.flows if session_kind(f.cookie) is None]
    lab.advance(10 + 2 * 10 + 2 + 1, poll=None)        # timeout + the backstop's grace
    assert service.ct.get(session.id) is None
    lab.advance(2 * 10 + 2 + 1, poll=None)             # the delete's grace
    assert session.id not in service.records
    assert ConnectionsView(lab.gateway).stats()["flow_records"] == 0
