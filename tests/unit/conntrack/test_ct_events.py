"""The event hook sees each TCP state change (conntrack -E's [UPDATE])."""
from __future__ import annotations

from conntrack import TCP, UDP, Direction
from conntrack.keys import TcpFlags

H1, A1 = "10.0.0.11", "203.0.113.10"


def test_state_changes_are_events_with_the_old_state(make_ct):
    ct = make_ct()
    seen = []      # (kind, old state, state then): the session object lives on
    ct.on_event = lambda e: seen.append((e.kind.value, e.reason, e.session.state.value))
    s = ct.create_outbound(TCP, H1, 5000, A1, 443, 1.0, TcpFlags.SYN)
    ct.observe(s, Direction.INBOUND, TcpFlags.SYN | TcpFlags.ACK, 1.1)
    ct.observe(s, Direction.OUTBOUND, TcpFlags.ACK, 1.2)          # no change: no event
    ct.observe(s, Direction.OUTBOUND, TcpFlags.FIN | TcpFlags.ACK, 2.0)
    assert seen == [("created", "", "SYN_SENT"), ("updated", "SYN_SENT", "ESTABLISHED"),
                    ("updated", "ESTABLISHED", "FIN_WAIT")]


def test_udp_traffic_is_no_update(make_ct, recorder):
    ct = make_ct()
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 1.0)
    ct.observe(s, Direction.INBOUND, 0, 1.5)
    assert recorder.kinds() == ["created"]
