"""Refresh rules, timers, expiry, removal, counters and events."""

from conntrack import ICMP, INBOUND, OUTBOUND, TCP, UDP, State
from conntrack.keys import Direction

EXT = "198.51.100.1"
H1, H2, A1, A2 = "10.0.0.1", "10.0.0.2", "203.0.113.1", "203.0.113.2"


def test_udp_replied_means_packets_both_ways(make_ct):
    ct = make_ct()
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    assert s.state is State.UNREPLIED and s.timeout == 300
    assert ct.touch(s, INBOUND, 10.0)  # the reply itself marks replied and refreshes
    assert s.state is State.REPLIED and s.replied and s.last_seen == 10.0
    assert ct.touch(s, INBOUND, 20.0) and s.last_seen == 20.0


def test_inbound_initiated_udp_needs_an_outbound_answer_before_inbound_refreshes(make_ct):
    ct = make_ct(udp_filtering="endpoint-independent")
    ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    s = ct.accept_inbound(UDP, A2, 9999, EXT, 5000, 1.0)
    assert s.inbound_initiated and s.state is State.UNREPLIED
    assert not ct.touch(s, INBOUND, 5.0) and s.last_seen == 1.0
    assert ct.touch(s, OUTBOUND, 6.0) and s.state is State.REPLIED
    assert ct.touch(s, INBOUND, 7.0) and s.last_seen == 7.0


def test_expiry_exact_at_timeout_per_protocol(make_ct, recorder):
    ct = make_ct()
    u = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    i = ct.create_outbound(ICMP, H1, 9, A1, 0, 0.0)
    t = ct.create_outbound(TCP, H1, 5000, A1, 80, 0.0, tcp_flags=0x02)
    assert ct.expire(59.999) == []
    assert ct.expire(60.0) == [i]
    assert ct.expire(239.5) == []
    assert ct.expire(240.0) == [t]
    assert ct.expire(299.0) == [] and ct.expire(300.0) == [u]
    assert [e.kind.value for e in recorder.events] == ["created"] * 3 + ["expired"] * 3
    assert all(e.reason == "timeout" for e in recorder.events[3:])
    st = ct.stats()
    assert st.active == 0 and st.expired == 3 and st.mappings == 0
    assert st.ports_quarantined == {"tcp": 1, "udp": 1, "icmp": 1}


def test_refresh_postpones_expiry_lazily(make_ct):
    ct = make_ct()
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    for t in range(10, 1000, 10):
        ct.touch(s, OUTBOUND, float(t))
        assert ct.expire(float(t)) == []
    assert ct.next_deadline() == 990.0 + 300
    assert ct.expire(1289.0) == [] and ct.expire(1290.0) == [s]
    assert ct.next_deadline() is None


def test_touch_never_moves_last_seen_backwards(make_ct):
    ct = make_ct()
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 100.0)
    assert ct.touch(s, OUTBOUND, 50.0) and s.last_seen == 100.0


def test_expire_reports_everything_due_in_one_sweep(make_ct):
    ct = make_ct(port_range=(2000, 2999), quarantine=0)
    sessions = [ct.create_outbound(UDP, H1, 2000 + n, A1, 53, n * 0.25) for n in range(400)]
    gone = ct.expire(300.0 + 50.0)
    assert sorted(s.id for s in gone) == sorted(s.id for s in sessions if s.expires_at <= 350.0)
    assert all(s.expires_at > 350.0 for s in ct.sessions())


def test_icmp_error_lookup_neither_refreshes_nor_ends(make_ct):
    ct = make_ct()
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    # Inbound ICMP error embedding our translated packet external -> remote.
    found = ct.lookup_embedded(Direction.INBOUND, UDP, EXT, s.external_port, A1, 53)
    assert found is s and s.last_seen == 0.0 and s.alive
    # Outbound error from the inside host about an inbound packet remote -> inside.
    assert ct.lookup_embedded(Direction.OUTBOUND, UDP, A1, 53, H1, 5000) is s
    # An error about an echo request: identifier on our side, 0 remote.
    e = ct.create_outbound(ICMP, H1, 42, A1, 0, 0.0)
    assert ct.lookup_embedded(Direction.INBOUND, ICMP, EXT, 42, A1, 0) is e
    assert ct.expire(300.0) == [e, s]  # 60 s ICMP first, then 300 s UDP


def test_remove_frees_port_fires_event_and_is_idempotent(make_ct, recorder):
    ct = make_ct(quarantine=120)
    s = ct.create_outbound(TCP, H1, 5000, A1, 80, 0.0)
    assert ct.remove(s.id, "flow_removed", 5.0) is s
    assert ct.remove(s.id) is None and ct.remove(s) is None
    assert not s.alive and ct.lookup_outbound(*s.original) is None
    ev = recorder.events[-1]
    assert (ev.kind.value, ev.reason, ev.time) == ("removed", "flow_removed", 5.0)
    st = ct.stats()
    assert st.removed == 1 and st.active == 0 and st.ports_quarantined["tcp"] == 1
    # Another host does not get the quarantined port ...
    assert ct.create_outbound(TCP, H2, 5000, A1, 80, 10.0).external_port != 5000
    # ... but the same inside endpoint gets it back.
    assert ct.create_outbound(TCP, H1, 5000, A1, 81, 11.0).external_port == 5000
    assert ct.expire(1e6) and ct.next_deadline() is None


def test_refresh_on_dead_or_unknown_session_is_ignored(make_ct):
    ct = make_ct()
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    ct.remove(s)
    assert not ct.touch(s, OUTBOUND, 1.0) and ct.observe(s, OUTBOUND, 2, 1.0) is None
    assert ct.set_counters(s.id, 1, 1, 1, 1) is None
    assert not ct.touch(12345, OUTBOUND, 1.0)


def test_set_counters_stores_values_and_refreshes_directions_that_grew(make_ct):
    ct = make_ct()
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    assert ct.set_counters(s.id, 3, 300, 0, 0, now=10.0) is s
    assert (s.packets_out, s.bytes_out, s.packets_in, s.bytes_in) == (3, 300, 0, 0)
    assert s.last_seen == 10.0
    ct.set_counters(s.id, 3, 300, 2, 200, now=20.0)  # only inbound grew: marks replied
    assert s.last_seen == 20.0 and s.replied
    ct.set_counters(s.id, 3, 300, 2, 200, now=30.0)  # nothing grew
    assert s.last_seen == 20.0
    ct.set_counters(s.id, 4, 400, 2, 200)  # no time given: counters only
    assert s.last_seen == 20.0 and s.packets_out == 4


def test_hook_errors_are_counted_and_do_not_break_the_table(make_ct, caplog):
    ct = make_ct()

    def broken(event):
        raise RuntimeError("boom")

    ct.on_event = broken
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    assert ct.expire(400.0) == [s]
    assert ct.stats().hook_errors == 2 and len(ct) == 0
    assert "event hook failed" in caplog.text


def test_compaction_drops_copies_of_removed_sessions(make_ct):
    ct = make_ct(max_connections=100_000, max_connections_per_host=100_000)
    ids = [ct.create_outbound(UDP, H1, 1024 + n % 60000, A1, 1 + n // 60000, 0.0).id for n in range(9000)]
    for sid in ids[:8000]:
        ct.remove(sid, now=1.0)
    assert len(ct._wheel) < 9000  # a rebuild dropped the copies of removed sessions
    assert len(ct.expire(300.0)) == 1000


def test_expire_with_grace_keeps_sessions_longer_but_quarantines_from_now(make_ct, recorder):
    """A caller that learns of traffic late sweeps with a grace; the freed
    port's quarantine (and the event) still start at the real time."""
    ct = make_ct(udp_timeout=300, quarantine=120, port_range=(5000, 5001))
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    assert ct.expire(310.0, grace=22.0) == []
    assert ct.expire(322.0, grace=22.0) == [s]
    assert recorder.events[-1].time == 322.0
    taker = ct.create_outbound(UDP, H2, 5000, A1, 53, 441.0)
    assert taker.external_port == 5001, "port 5000 is quarantined until 442"
    ct.remove(taker, now=441.0)
    assert ct.stats(441.5).ports_quarantined["udp"] == 2
    assert ct.stats(442.0).ports_quarantined["udp"] == 1


def test_next_deadline_is_exact_to_the_fraction(make_ct):
    ct = make_ct(udp_timeout=2.75)
    ct.create_outbound(UDP, H1, 5000, A1, 53, 10.1)
    ct.create_outbound(UDP, H1, 5001, A1, 53, 10.6)
    assert ct.next_deadline() == 10.1 + 2.75
    assert [s.inside_port for s in ct.expire(10.1 + 2.75)] == [5000]
    assert ct.next_deadline() == 10.6 + 2.75


def test_expire_at_infinity_ends_everything(make_ct):
    ct = make_ct()
    for port in range(5000, 5005):
        ct.create_outbound(UDP, H1, port, A1, 53, float(port))
    assert len(ct.expire(float("inf"))) == 5 and len(ct) == 0


def test_switch_idle_timeouts_count_as_expired(make_ct, recorder):
    ct = make_ct()
    s = ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    ct.remove(s, "idle_timeout", 300.0, timed_out=True)
    st = ct.stats()
    assert (st.expired, st.removed) == (1, 0)
    assert recorder.events[-1].kind.value == "expired" and recorder.events[-1].reason == "idle_timeout"
