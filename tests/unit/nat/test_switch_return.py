"""A switch that comes back after a lost connection.

The controller keeps the switch's sessions while it is away.  If the switch
lost its flows meanwhile (ovs-vswitchd restarted), every live session's
flows go back in, with its external port, before any new mapping; if it
kept its table, sessions whose flows went while it was away end.  Judged as
the user would: where packets go, what the table lists, what was logged.
"""
from __future__ import annotations

from ryu_app.openflow.flows import CookieKind

from helpers.fake_switch import Wire
from helpers.nat_lab import (
    ACK, H1, H1_PORT, H2, H2_PORT, PORTS, S1, S2, SYN, TCP, UDP, UPLINK, in_frame, look,
    make_lab, nat, open_flow, out_frame, session_flows,
)


def established(lab: Wire, host, sport: int, server, dport: int):
    s, _ = open_flow(lab, host, sport, server, dport, TCP)
    lab.send(UPLINK, in_frame(server, dport, s.external_port, proto=TCP, bits=SYN | ACK))
    lab.send(host.port, out_frame(host, sport, server, dport, proto=TCP, bits=ACK, payload=b"x"))
    lab.poll_stats()
    return nat(lab).ct.get(s.id)


def shape(flows: list) -> list:
    """What a session flow matches and does (not its counters, age or timeout)."""
    return sorted((f.cookie, f.priority, sorted(f.match.items()), repr(f.actions))
                  for f in flows)


def come_back(lab: Wire, away: float, keep: list | None = None) -> None:
    """The connection drops, ``away`` seconds pass, the switch reconnects
    holding ``keep`` (None: the flows it had: a lost link, not a restart)."""
    lab.gateway.switch_disconnected(lab.switch.dpid, lab.now)
    lab.now += away
    lab.switch.now = lab.now
    if keep is not None:
        for flow in keep:
            flow.created = lab.now        # restored by the restarted switch just now
        lab.switch.flows = keep
    lab.connect(PORTS)


def test_a_switch_that_lost_its_flows_gets_every_session_back_with_its_port():
    lab = make_lab()
    tcp = established(lab, H1, 40000, S1, 80)
    udp, _ = open_flow(lab, H2, 5353, S2, 53, UDP)
    before = shape(session_flows(lab))
    counted = nat(lab).ct.get(tcp.id).packets_out

    come_back(lab, 3.0, keep=[])          # ovs-vswitchd restarted: an empty table

    assert shape(session_flows(lab)) == before, "the same flows, same ports, back in"
    assert {s.id for s in nat(lab).ct.sessions()} == {tcp.id, udp.id}
    assert {f.idle_timeout for f in session_flows(lab) if f.cookie & 0xFFFFFFFF == tcp.id} \
        == {7440}, "with the timeout of the session's state (ESTABLISHED)"
    assert lab.gateway.counters.sessions_put_back == 2
    ins = lab.packet_ins
    [(port, frame)] = lab.send(UPLINK, in_frame(S1, 80, tcp.external_port, proto=TCP,
                                                bits=ACK, payload=b"reply"))
    assert port == H1_PORT and look(frame).flow == (S1.ip, 80, H1.ip, 40000)
    [(port, frame)] = lab.send(H2_PORT, out_frame(H2, 5353, S2, 53, proto=UDP, payload=b"q"))
    assert port == UPLINK and look(frame).flow[1] == udp.external_port
    assert lab.packet_ins == ins, "both ways in the switch again"
    lab.poll_stats()
    assert nat(lab).ct.get(tcp.id).packets_out >= counted, "counters go on from before"


def test_flows_restored_in_part_are_completed():
    lab = make_lab()
    tcp = established(lab, H1, 40000, S1, 80)
    udp, _ = open_flow(lab, H2, 5353, S2, 53, UDP)
    before = shape(session_flows(lab))
    # ovs-ctl restart restores what it saved; here only one of the four
    # session flows and none of the gateway's own rules.
    one = [f for f in session_flows(lab) if f.cookie & 0xFFFFFFFF == udp.id][:1]
    come_back(lab, 2.0, keep=one)
    assert shape(session_flows(lab)) == before
    assert {s.id for s in nat(lab).ct.sessions()} == {tcp.id, udp.id}


def test_a_switch_that_kept_its_table_ends_sessions_whose_flows_went_meanwhile():
    lab = make_lab()
    keep = established(lab, H1, 40000, S1, 80)
    gone, _ = open_flow(lab, H2, 5353, S2, 53, UDP)
    lab.switch.flows = [f for f in lab.switch.flows if f.cookie & 0xFFFFFFFF != gone.id
                        or not (f.cookie >> 40) & 0xFF in (CookieKind.SESSION_OUT,
                                                           CookieKind.SESSION_IN)]
    come_back(lab, 2.0)                   # a lost link: the switch kept the rest
    assert {s.id for s in nat(lab).ct.sessions()} == {keep.id}
    assert lab.gateway.counters.sessions_put_back == 0
    assert all(f.cookie & 0xFFFFFFFF != gone.id or (f.cookie >> 40) & 0xFF not in
               (CookieKind.SESSION_OUT, CookieKind.SESSION_IN) for f in lab.switch.flows)


def test_no_new_mapping_before_the_sessions_are_back():
    lab = make_lab()
    old, _ = open_flow(lab, H1, 40000, S1, 53, UDP)
    lab.gateway.switch_disconnected(lab.switch.dpid, lab.now)
    lab.switch.flows = []
    lab.now += 2
    lab.switch.now = lab.now
    lab.run(lab.gateway.switch_connected(lab.switch.dpid))
    held = lab.switch.stats_requests[:]        # the dump is asked for, not answered yet
    lab.switch.stats_requests.clear()
    lab.run(lab.gateway.ports_described(lab.switch.dpid, PORTS))
    lab.switch.stats_requests = held + lab.switch.stats_requests
    state = lab.gateway.switches[lab.switch.dpid]
    if state.nat.adopting:
        before = lab.gateway.counters.drops["adopting"]
        lab.send(H1_PORT, out_frame(H1, 40001, S1, 53, proto=UDP, payload=b"new"))
        assert lab.gateway.counters.drops["adopting"] == before + 1
        assert len(list(nat(lab).ct.sessions())) == 1
    lab.run([])                                # now the dump is read
    new, _ = open_flow(lab, H1, 40001, S1, 53, UDP)
    assert new.external_port != old.external_port, "the old session's port is still its own"


def test_sessions_expire_by_their_timers_while_the_switch_is_away():
    lab = make_lab(udp_timeout=30)
    udp, _ = open_flow(lab, H2, 5353, S2, 53, UDP)
    lab.gateway.switch_disconnected(lab.switch.dpid, lab.now)
    for _ in range(60):
        lab.now += 1
        lab.gateway.tick(lab.now)
    assert nat_parked(lab).ct.get(udp.id) is None, "expired, not kept forever"
    lab.switch.flows = []
    lab.switch.now = lab.now
    lab.connect(PORTS)
    assert session_flows(lab) == [] and lab.gateway.counters.sessions_put_back == 0


def nat_parked(lab: Wire):
    return lab.gateway.parked[lab.switch.dpid]
