"""TCP state machine and per-state timeouts (RFC 5382 REQ-5, RFC 7857 s2.2)."""

import pytest

from conntrack import INBOUND, OUTBOUND, TCP, State
from conntrack.keys import TcpFlags
from conntrack.states import (
    FIN_IN,
    FIN_OUT,
    RST_SEEN,
    SYN_IN,
    SYN_OUT,
    tcp_code_for,
    tcp_inbound_refreshes,
    tcp_state,
    tcp_transition,
)

SYN, ACK, FIN, RST = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.FIN, TcpFlags.RST
H1, A1 = "10.0.0.1", "203.0.113.1"


def opened(ct, now=0.0):
    return ct.create_outbound(TCP, H1, 5000, A1, 80, now, tcp_flags=SYN)


def test_pure_transitions():
    c = tcp_transition(0, True, SYN)
    assert c == SYN_OUT and tcp_state(c) is State.SYN_SENT
    c = tcp_transition(c, False, SYN | ACK)
    assert tcp_state(c) is State.ESTABLISHED
    c = tcp_transition(c, True, FIN | ACK)
    assert c & FIN_OUT and tcp_state(c) is State.FIN_WAIT
    c = tcp_transition(c, False, FIN | ACK)
    assert c & FIN_IN and tcp_state(c) is State.CLOSING
    assert tcp_state(tcp_transition(SYN_OUT | SYN_IN, False, RST)) is State.CLOSING
    assert tcp_state(SYN_IN) is State.SYN_RECEIVED
    assert tcp_state(0) is State.SYN_SENT  # mid-stream pick-up counts as opening
    assert not tcp_inbound_refreshes(SYN_OUT) and tcp_inbound_refreshes(SYN_OUT | SYN_IN | FIN_IN)
    assert not tcp_inbound_refreshes(SYN_OUT | SYN_IN | RST_SEEN)


def test_handshake_moves_to_established_and_reports_timeout_changes(make_ct):
    ct = make_ct()
    s = opened(ct)
    assert s.state is State.SYN_SENT and s.timeout == 240
    assert ct.observe(s, INBOUND, SYN | ACK, 1.0) == 7440
    assert s.state is State.ESTABLISHED and s.last_seen == 1.0
    assert ct.observe(s, OUTBOUND, ACK, 2.0) is None  # no change


def test_simultaneous_open(make_ct):
    ct = make_ct()
    s = opened(ct)
    assert ct.observe(s, INBOUND, SYN, 1.0) == 7440
    assert s.state is State.ESTABLISHED


def test_one_fin_keeps_established_timeout_both_fins_close(make_ct):
    ct = make_ct()
    s = opened(ct)
    ct.observe(s, INBOUND, SYN | ACK, 1.0)
    assert ct.observe(s, OUTBOUND, FIN | ACK, 10.0) is None
    assert s.state is State.FIN_WAIT and s.timeout == 7440
    assert ct.observe(s, INBOUND, FIN | ACK, 20.0) == 240
    assert s.state is State.CLOSING and s.expires_at == 260.0
    assert ct.expire(259.9) == [] and ct.expire(260.0) == [s]


def test_rst_moves_to_closing_and_starts_four_minute_timer(make_ct):
    ct = make_ct()
    s = opened(ct)
    ct.observe(s, INBOUND, SYN | ACK, 1.0)
    # Inbound RST on an idle established session: the RST itself starts the timer.
    assert ct.observe(s, INBOUND, RST, 5000.0) == 240
    assert s.state is State.CLOSING and s.expires_at == 5240.0
    assert ct.next_deadline() == 5240.0
    assert ct.expire(5239.0) == [] and ct.expire(5240.0) == [s]


def test_non_rst_packet_revives_a_reset_session(make_ct):
    ct = make_ct()
    s = opened(ct)
    ct.observe(s, INBOUND, SYN | ACK, 1.0)
    ct.observe(s, OUTBOUND, RST, 2.0)
    assert ct.observe(s, OUTBOUND, ACK, 3.0) == 7440
    assert s.state is State.ESTABLISHED


def test_new_syn_on_closing_session_restarts_the_machine(make_ct):
    ct = make_ct()
    s = opened(ct)
    ct.observe(s, INBOUND, SYN | ACK, 1.0)
    ct.observe(s, OUTBOUND, FIN, 2.0)
    ct.observe(s, INBOUND, FIN, 3.0)
    assert s.state is State.CLOSING
    assert ct.observe(s, OUTBOUND, SYN, 4.0) is None  # closing and opening share 240 s
    assert s.state is State.SYN_SENT


def test_separate_opening_and_closing_timeouts(make_ct):
    ct = make_ct(tcp_opening_timeout=75, tcp_closing_timeout=30)
    s = opened(ct)
    assert s.timeout == 75
    assert ct.observe(s, INBOUND, SYN | ACK, 1.0) == 7440
    assert ct.observe(s, OUTBOUND, RST, 2.0) == 30


def test_inbound_packets_do_not_refresh_an_opening_session(make_ct):
    ct = make_ct()
    s = opened(ct)
    assert not ct.touch(s, INBOUND, 100.0)
    assert s.last_seen == 0.0
    assert ct.touch(s, OUTBOUND, 100.0) and s.last_seen == 100.0


def test_inbound_refreshes_established_and_half_closed(make_ct):
    ct = make_ct()
    s = opened(ct)
    ct.observe(s, INBOUND, SYN | ACK, 1.0)
    assert ct.touch(s, INBOUND, 50.0) and s.last_seen == 50.0
    ct.observe(s, OUTBOUND, FIN, 60.0)
    assert ct.touch(s, INBOUND, 70.0) and s.last_seen == 70.0
    ct.observe(s, INBOUND, FIN, 80.0)
    assert not ct.touch(s, INBOUND, 90.0) and s.last_seen == 80.0
    assert ct.touch(s, OUTBOUND, 95.0)  # outbound always refreshes


def test_shortened_deadline_is_honoured_by_expire(make_ct):
    ct = make_ct()
    s = opened(ct)
    ct.observe(s, INBOUND, SYN | ACK, 1.0)  # deadline 7441
    ct.observe(s, OUTBOUND, RST, 10.0)  # deadline 250
    assert ct.expire(249.0) == []
    assert ct.expire(250.0) == [s]
    assert ct.expire(8000.0) == []  # its stale copy is skipped


def test_observe_on_udp_is_touch(make_ct):
    ct = make_ct()
    s = ct.create_outbound(17, H1, 5000, A1, 53, 0.0)
    assert ct.observe(s, OUTBOUND, 0, 10.0) is None and s.last_seen == 10.0


@pytest.mark.parametrize("state", [State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED, State.FIN_WAIT, State.CLOSING])
def test_restore_codes_round_trip(state):
    assert tcp_state(tcp_code_for(state)) is state


def test_restore_code_rejects_datagram_states():
    with pytest.raises(ValueError):
        tcp_code_for(State.REPLIED)


def test_inbound_rst_and_ack_never_keep_an_opening_session_alive(make_ct):
    """Only outbound packets, or an established session, refresh: alternating
    inbound RST and ACK on an unanswered SYN leave its timer alone."""
    ct = make_ct(tcp_opening_timeout=240, tcp_closing_timeout=240)
    s = opened(ct)
    for t in range(10, 400, 10):
        ct.observe(s, INBOUND, RST if t % 20 else ACK, float(t))
        if not s.alive:
            break
        assert s.last_seen == 0.0, (t, s.state)
        ct.expire(float(t))
    assert not s.alive and s.expires_at == 240.0


def test_rst_on_an_established_session_starts_the_closing_timer_from_now(make_ct):
    ct = make_ct()
    s = opened(ct)
    ct.observe(s, INBOUND, SYN | ACK, 1.0)
    ct.observe(s, INBOUND, ACK, 1000.0)
    ct.observe(s, INBOUND, RST, 5000.0)
    assert s.state is State.CLOSING and s.expires_at == 5000.0 + 240
