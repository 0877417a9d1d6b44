"""TCP state in the switch era: a FIN or RST lowers its own flow's idle
timeout in the switch (fin_timeout), the flow stats tell the controller, an
RST is copied up as well; sessions move to the closing timeout and their
flows follow (RFC 5382, RFC 7857 s2.2)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from ryu.lib.packet import ethernet, ipv4, packet, tcp
from ryu.ofproto import ether, inet
from ryu.ofproto import ofproto_v1_3_parser as parser

from helpers.fake_switch import Wire
from helpers.nat_config import make_config
from ryu_app.openflow import flows
from ryu_app.settings.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.openflow.flows import CookieKind
from ryu_app.nat.gateway import Gateway

UPLINK, H1_PORT = 1, 2
NAT_IP = "198.51.100.1"
H1 = SimpleNamespace(mac="00:00:00:00:00:01", ip="10.0.0.11")
S1 = SimpleNamespace(mac="00:00:00:00:00:10", ip="198.51.100.10")
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


SESSION_KINDS = (CookieKind.SESSION_OUT, CookieKind.SESSION_IN,
                 CookieKind.FLAGS_OUT, CookieKind.FLAGS_IN)


def segment(src_mac, src_ip, sport, dst_ip, dport, bits) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GW_MAC, src=src_mac, ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=src_ip, dst=dst_ip, proto=inet.IPPROTO_TCP, ttl=64))
    pkt.add_protocol(tcp.tcp(src_port=sport, dst_port=dport, bits=bits, seq=1, ack=1))
    pkt.serialize()
    return bytes(pkt.data)


@pytest.fixture
def lab():
    wire = Wire(Gateway(make_config(tcp_transitory_timeout="240")))
    wire.connect({"s1-eth1": UPLINK, "s1-eth2": H1_PORT})
    wire.gateway.switches[1].nat.next_hops.learn(S1.ip, S1.mac, 0.0)
    return wire


def open_connection(lab, poll: bool = True):
    out = lambda bits: lab.send(H1_PORT, segment(H1.mac, H1.ip, 40000, S1.ip, 80, bits))  # noqa
    back = lambda bits: lab.send(UPLINK, segment(S1.mac, S1.ip, 80, NAT_IP, 40000, bits))  # noqa
    assert [p for p, _ in out(SYN)] == [UPLINK]
    assert [p for p, _ in back(SYN | ACK)] == [H1_PORT]
    assert [p for p, _ in out(ACK)] == [UPLINK]
    if poll:
        lab.poll_stats()                   # the reply in the counters: established
        lab.poll_stats()                   # and its flows raised to that timeout
    [session] = lab.gateway.switches[1].nat.ct.sessions()
    return session, out, back


def idle_timeouts(lab, sid) -> set[int]:
    return {f.idle_timeout for f in lab.switch.flows
            if flows.parse_cookie(f.cookie) in ((CookieKind.SESSION_OUT, sid),
                                                (CookieKind.SESSION_IN, sid))}


def flow_mods(lab) -> int:
    return sum(isinstance(m, parser.OFPFlowMod) for m in lab.switch.sent)


def test_established_session_flows_lower_themselves_and_pass_the_rst_watch(lab):
    """Two flows per TCP session: each applies fin_timeout (the transitory
    timeout) and its translation, tags the packet with its session and
    direction and goes on to the watch table, whose one shared rule sends
    RSTs on to the punt table (metered per port) and so to the controller."""
    session, _, _ = open_connection(lab)
    assert session.state.value == "ESTABLISHED"
    assert idle_timeouts(lab, session.id) == {7440}
    mine = {flows.parse_cookie(f.cookie)[0]: f for f in lab.switch.flows
            if f.cookie & flows.ID_MASK == session.id and flows.parse_cookie(f.cookie)[0]
            in (CookieKind.SESSION_OUT, CookieKind.SESSION_IN)}
    assert {k: (f.goto, f.metadata[0]) for k, f in mine.items()} == {
        CookieKind.SESSION_OUT: (flows.TABLE_TCP_WATCH,
                                 flows.make_cookie(CookieKind.FLAGS_OUT, session.id)),
        CookieKind.SESSION_IN: (flows.TABLE_TCP_WATCH,
                                flows.make_cookie(CookieKind.FLAGS_IN, session.id))}
    for flow in mine.values():
        fin = flow.apply[0]
        assert isinstance(fin, parser.NXActionFinTimeout) and fin.fin_idle_timeout == 240
        assert not flow.write, "the packet leaves in TABLE_NAT: a watch can only add a copy"
    watches = [f for f in lab.switch.flows if f.table_id == flows.TABLE_TCP_WATCH]
    assert sorted(str(f.match.get("tcp_flags")) for f in watches) == [str((RST, RST)), "None"]
    [rst] = [f for f in watches if f.match.get("tcp_flags")]
    assert rst.goto == flows.TABLE_PUNT and not rst.apply
    assert all(f.idle_timeout == 0 for f in watches)


def test_fins_both_ways_close_in_the_switch_with_no_packet_in(lab):
    session, out, back = open_connection(lab)
    ins, mods = lab.packet_ins, flow_mods(lab)
    assert [p for p, _ in out(FIN | ACK)] == [UPLINK], "a FIN is forwarded by the switch"
    [fwd] = [f for f in lab.switch.flows if f.cookie == flows.make_cookie(
        CookieKind.SESSION_OUT, session.id)]
    assert fwd.idle_timeout == 240, "its own flow lowered itself"
    lab.poll_stats()
    assert session.state.value == "FIN_WAIT", "half-closed: still the established phase"
    assert session.timeout == 7440
    assert [p for p, _ in back(FIN | ACK)] == [H1_PORT]
    assert idle_timeouts(lab, session.id) == {240}
    lab.poll_stats()
    assert session.state.value == "CLOSING" and session.timeout == 240
    assert lab.packet_ins == ins, "FINs never reach the controller"
    assert flow_mods(lab) == mods, "the switch lowered both flows itself: nothing to re-add"


def test_a_connection_opened_and_closed_between_two_polls_is_seen_closed(lab):
    """Handshake, data and both FINs before the first poll: the counters say
    answered, the flows' lowered timeouts say closed; the session must not
    get the established timeout (its port would be held for two hours)."""
    session, out, back = open_connection(lab, poll=False)
    assert idle_timeouts(lab, session.id) == {241}, "opening: transitory + 1 s"
    out(PSH | ACK)
    back(FIN | ACK)
    out(FIN | ACK)
    back(ACK)
    assert idle_timeouts(lab, session.id) == {240}
    lab.poll_stats()
    assert session.state.value == "CLOSING"
    assert idle_timeouts(lab, session.id) == {240}
    lab.advance(245)
    assert lab.gateway.switches[1].nat.ct.get(session.id) is None
    assert session_flows_of(lab, session.id) == []


def test_a_half_closed_connection_keeps_the_established_timeout(lab):
    """One FIN (RFC 5382: still the established phase): the server goes on
    sending for longer than the transitory timeout; the client's lowered
    flow idles out meanwhile and is re-added at once as a stand-in, so the
    server's data keeps flowing; when both fall quiet the session lasts the
    established timeout, not the transitory one."""
    session, out, back = open_connection(lab)
    out(FIN | ACK)
    for _ in range(30):                     # 300 s of server data, no client packet
        lab.advance(10)
        assert [p for p, _ in back(PSH | ACK)] == [H1_PORT]
    assert session.state.value == "FIN_WAIT" and session.alive
    lab.advance(3000)
    assert session.alive, "a quiet half-closed connection is not cut after 240 s"
    lab.advance(4500)
    assert not session.alive, "the established timeout after the last packet"


def test_rst_closes_and_the_session_goes_after_the_transitory_timeout(lab):
    session, out, back = open_connection(lab)
    ins = lab.packet_ins
    assert [p for p, _ in back(RST)] == [H1_PORT], "a matching RST is translated (7857 s2.2)"
    assert lab.packet_ins == ins + 1, "an RST alone is copied up"
    assert session.state.value == "CLOSING" and idle_timeouts(lab, session.id) == {240}
    lab.advance(239)
    assert lab.gateway.switches[1].nat.ct.get(session.id) is session
    lab.advance(5)
    assert lab.gateway.switches[1].nat.ct.get(session.id) is None
    assert session_flows_of(lab, session.id) == [], "no flow of the session outlives it"


def session_flows_of(lab, sid: int) -> list:
    return [f for f in lab.switch.flows if (flows.parse_cookie(f.cookie) or (0, 0))[1] == sid
            and flows.parse_cookie(f.cookie)[0] in SESSION_KINDS]


def test_watch_packets_count_in_the_session(lab):
    session, out, back = open_connection(lab)
    out(PSH | ACK)
    out(FIN | ACK)
    back(FIN | ACK)
    lab.poll_stats()
    assert (session.packets_out, session.packets_in) == (4, 2)


def test_a_raise_waits_a_poll_so_a_fin_late_in_the_stats_is_not_lost(lab):
    """The switch pushes a FIN's statistics (and so its fin_timeout) to the
    flow up to half a second after it passed: a poll can find a connection
    established that has closed already.  Raising its flows at once would
    replace the ones the FIN is about to lower, leaving a closed connection
    on the established timeout; the raise waits for the next poll, which
    finds them lowered."""
    session, out, back = open_connection(lab, poll=False)
    mods = flow_mods(lab)
    before_the_fins = lab.switch.stats()
    out(FIN | ACK)
    back(FIN | ACK)
    out(ACK)
    lab.run(lab.gateway.flow_stats_reply(lab.switch.dpid, before_the_fins, False, lab.now))
    assert session.state.value == "ESTABLISHED"
    assert flow_mods(lab) == mods, "nothing raised on the poll that found it established"
    assert idle_timeouts(lab, session.id) == {240}
    lab.poll_stats()
    assert session.state.value == "CLOSING" and session.timeout == 240
    assert idle_timeouts(lab, session.id) == {240} and flow_mods(lab) == mods


def test_a_poll_that_finds_one_fin_raises_nothing_while_the_other_is_on_its_way(lab):
    """Established at one poll; the next finds the client's FIN (its flow
    lowered) while the server's FIN has passed but is not in the stats yet.
    Raising the server's flow then would lose that FIN: nothing is raised,
    and the poll after finds both."""
    session, out, back = open_connection(lab, poll=False)
    lab.poll_stats()
    assert session.state.value == "ESTABLISHED"
    mods = flow_mods(lab)
    out(FIN | ACK)
    one_fin = lab.switch.stats()
    back(FIN | ACK)
    out(ACK)
    lab.run(lab.gateway.flow_stats_reply(lab.switch.dpid, one_fin, False, lab.now))
    assert session.state.value == "FIN_WAIT" and flow_mods(lab) == mods
    lab.poll_stats()
    assert session.state.value == "CLOSING" and flow_mods(lab) == mods
    assert idle_timeouts(lab, session.id) == {240}


def test_a_reply_in_parts_is_one_poll(lab):
    """A flow-stats reply comes in parts, and a session's two flows may sit
    in different ones: the second part is the same poll, so it raises
    nothing either; the next poll does."""
    session, out, back = open_connection(lab, poll=False)
    mods = flow_mods(lab)
    stats = lab.switch.stats()
    mine = lambda f, kind: flows.parse_cookie(f.cookie) == (kind, session.id)  # noqa: E731
    first = [f for f in stats if not mine(f, CookieKind.SESSION_OUT)]
    second = [f for f in stats if mine(f, CookieKind.SESSION_OUT)]
    lab.run(lab.gateway.flow_stats_reply(lab.switch.dpid, first, True, lab.now))
    lab.run(lab.gateway.flow_stats_reply(lab.switch.dpid, second, False, lab.now))
    assert session.state.value == "ESTABLISHED"
    assert flow_mods(lab) == mods and idle_timeouts(lab, session.id) == {241}
    lab.poll_stats()
    assert idle_timeouts(lab, session.id) == {7440}


def test_a_reply_to_someone_elses_request_moves_nothing(lab):
    """An operator's ofctl_rest flow query is answered to them: the
    gateway's TCP state moves at its own polls' pace, not at theirs."""
    session, out, back = open_connection(lab, poll=False)
    assert lab.run(lab.gateway.flow_stats_reply(lab.switch.dpid, lab.switch.stats(), False,
                                                lab.now, polled=False)) == []
    assert session.state.value == "SYN_SENT" and session.packets_in == 0


def test_an_established_connection_gets_its_timeout_at_the_next_poll(lab):
    """Established at one poll, its flows at 7440 s from the next (RFC 5382
    REQ-5): well inside the opening flows' 241 s."""
    session, out, back = open_connection(lab, poll=False)
    lab.poll_stats()
    assert session.state.value == "ESTABLISHED" and session.timeout == 7440
    assert idle_timeouts(lab, session.id) == {241}
    out(PSH | ACK)
    lab.poll_stats()
    assert idle_timeouts(lab, session.id) == {7440}


def test_a_connection_that_ignores_an_rst_is_established_again(lab):
    """A forged (or out-of-window) RST closes the session in our eyes, but
    when both ends go on talking, their packets say it is alive."""
    session, out, back = open_connection(lab)
    out(PSH | ACK)                  # sent before the RST, counted after it
    back(RST)
    assert session.state.value == "CLOSING" and idle_timeouts(lab, session.id) == {240}
    back(ACK)
    lab.poll_stats()
    assert session.state.value == "CLOSING", "the counters of the RST's poll are its baseline"
    out(PSH | ACK)
    lab.poll_stats()
    assert session.state.value == "CLOSING", "one direction alone proves nothing"
    back(ACK)
    lab.poll_stats()
    assert session.state.value == "ESTABLISHED" and idle_timeouts(lab, session.id) == {240}
    lab.poll_stats()
    assert idle_timeouts(lab, session.id) == {7440}, "raised a poll later"


def test_a_peer_answering_with_rsts_does_not_revive_the_session(lab):
    """Data out, RST back for each segment: a dead connection, not a live one."""
    session, out, back = open_connection(lab)
    for _ in range(3):
        out(PSH | ACK)
        back(RST)
        lab.poll_stats()
    assert session.state.value == "CLOSING" and idle_timeouts(lab, session.id) == {240}


def test_a_transfer_cut_by_an_rst_before_the_first_poll_stays_closed(lab):
    """All of it (handshake, data, RST) between two polls: the counters grow
    both ways, but from before the RST."""
    session, out, back = open_connection(lab, poll=False)
    for _ in range(5):
        out(PSH | ACK)
        back(ACK)
    mods = flow_mods(lab)
    out(RST)
    for _ in range(3):
        lab.poll_stats()
    assert session.state.value == "CLOSING" and idle_timeouts(lab, session.id) == {240}
    assert flow_mods(lab) == mods + 1, "the RST lowered its own flow: the other is re-added"


def rule_hit(lab, in_port: int, frame: bytes) -> flows.InfraRule | None:
    flow = lab.switch.lookup(in_port, frame)
    parsed = flows.parse_cookie(flow.cookie) if flow else None
    return flows.InfraRule(parsed[1]) if parsed and parsed[0] == CookieKind.INFRA else None


def test_an_inside_syn_reaches_the_controller_by_its_own_rule_above_the_sessions(lab):
    """An inside host's SYN (no ACK) goes up through NEW_TCP, above the
    session flows, so OVS caches one datapath flow per port for SYNs (the
    port's meter then drops a flood of them in the datapath); anything else
    without a session goes up through NEW_FLOW.  A SYN of a session that
    exists is sent on along it; one on a closing session's ports opens a
    new connection there."""
    syn = segment(H1.mac, H1.ip, 40001, S1.ip, 80, SYN)
    assert rule_hit(lab, H1_PORT, syn) == flows.InfraRule.NEW_TCP
    for bits in (ACK, SYN | ACK, PSH | ACK, FIN | ACK):
        assert rule_hit(lab, H1_PORT, segment(H1.mac, H1.ip, 40001, S1.ip, 80, bits)) \
            == flows.InfraRule.NEW_FLOW
    [new_tcp] = [f for f in lab.switch.flows if f.cookie == flows.make_cookie(
        CookieKind.INFRA, flows.InfraRule.NEW_TCP)]
    [new_flow] = [f for f in lab.switch.flows if f.cookie == flows.make_cookie(
        CookieKind.INFRA, flows.InfraRule.NEW_FLOW)]
    assert new_tcp.goto == new_flow.goto == flows.TABLE_PUNT       # the whole frame up, metered
    assert new_tcp.priority > flows.Priority.SESSION > new_flow.priority
    assert rule_hit(lab, UPLINK, segment(S1.mac, S1.ip, 80, NAT_IP, 40001, SYN)) \
        != flows.InfraRule.NEW_TCP, "an outside SYN is no inside host's"
    session, out, back = open_connection(lab)
    ins = lab.packet_ins
    assert [p for p, _ in out(SYN)] == [UPLINK], "a retransmitted SYN is sent on"
    assert lab.packet_ins == ins + 1 and session.state.value == "ESTABLISHED"
    out(FIN | ACK)
    back(FIN | ACK)
    lab.poll_stats()
    assert session.state.value == "CLOSING"
    assert [p for p, _ in out(SYN)] == [UPLINK]
    assert session.state.value == "SYN_SENT", "a new connection on the closing one's ports"
    assert idle_timeouts(lab, session.id) == {241}
