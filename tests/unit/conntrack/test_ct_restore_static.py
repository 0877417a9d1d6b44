"""restore() after a controller restart, reserved ports, static forwards."""

import pytest

from conntrack import ICMP, TCP, UDP, Refused, RefuseReason, State
from conntrack.keys import TcpFlags

EXT = "198.51.100.1"
H1, H2, A1, A2 = "10.0.0.1", "10.0.0.2", "203.0.113.1", "203.0.113.2"


def refused(fn, *args, **kwargs) -> RefuseReason:
    with pytest.raises(Refused) as err:
        fn(*args, **kwargs)
    return err.value.reason


def test_restore_rebuilds_a_session_with_its_id(make_ct, recorder):
    ct = make_ct()
    s = ct.restore(7000, TCP, H1, 5000, EXT, 40000, A1, 443, created_at=10.0, last_seen=20.0)
    assert (s.id, s.external_port, s.state, s.created_at, s.last_seen) == (7000, 40000, State.ESTABLISHED, 10.0, 20.0)
    assert ct.get(7000) is s and ct.lookup_inbound(*s.reply) is s and ct.lookup_outbound(*s.original) is s
    assert recorder.kinds() == ["restored"] and ct.stats().restored == 1 and ct.stats().created == 0
    # EIM: the endpoint's other sessions reuse the restored port; ids continue after it.
    n = ct.create_outbound(TCP, H1, 5000, A2, 443, 30.0)
    assert n.external_port == 40000 and n.id == 7001
    assert s.expires_at == 20.0 + 7440


def test_restore_states_and_defaults(make_ct):
    ct = make_ct()
    u = ct.restore(1, UDP, H1, 1, EXT, 1, A1, 1, created_at=0.0)
    i = ct.restore(2, ICMP, H1, 9, EXT, 9, A1, 77, created_at=0.0, state="UNREPLIED")
    t = ct.restore(3, TCP, H1, 2, EXT, 2, A1, 2, created_at=0.0, state=State.SYN_RECEIVED, inbound_initiated=True)
    assert u.state is State.REPLIED and i.state is State.UNREPLIED and i.remote_port == 0
    assert t.state is State.SYN_RECEIVED and t.inbound_initiated
    with pytest.raises(ValueError):
        ct.restore(4, UDP, H1, 3, EXT, 3, A1, 3, created_at=0.0, state=State.ESTABLISHED)
    with pytest.raises(ValueError):
        ct.restore(0, UDP, H1, 3, EXT, 3, A1, 3, created_at=0.0)


def test_restore_conflicts_are_refused_with_reasons(make_ct):
    ct = make_ct()
    ct.restore(10, UDP, H1, 5000, EXT, 40000, A1, 53, created_at=0.0)
    ct.reserve(UDP, 41000)
    cases = [
        ((10, UDP, H2, 1, EXT, 2, A1, 3), RefuseReason.ID_IN_USE),
        ((11, UDP, H1, 5000, EXT, 40000, A1, 53), RefuseReason.SESSION_EXISTS),
        ((12, UDP, H1, 5000, EXT, 40001, A2, 53), RefuseReason.MAPPING_CONFLICT),
        ((13, UDP, H2, 5000, EXT, 40000, A1, 53), RefuseReason.PORT_IN_USE),
        ((14, UDP, H2, 5000, EXT, 41000, A1, 53), RefuseReason.PORT_RESERVED),
        ((15, UDP, H2, 5000, "198.51.100.2", 40002, A1, 53), RefuseReason.WRONG_EXTERNAL_IP),
    ]
    for args, reason in cases:
        assert refused(ct.restore, *args, created_at=0.0) is reason
    assert len(ct) == 1 and sum(ct.stats().refused_by_reason.values()) == len(cases)


def test_restore_takes_port_out_of_quarantine_and_accepts_out_of_range_ports(make_ct):
    ct = make_ct(port_range=(2000, 2010))
    s = ct.create_outbound(UDP, H1, 2000, A1, 53, 0.0)
    ct.remove(s, now=1.0)
    assert ct.stats().ports_quarantined["udp"] == 1
    r = ct.restore(99, UDP, H2, 7, EXT, 2000, A1, 53, created_at=0.0)
    assert r.external_port == 2000 and ct.stats().ports_quarantined["udp"] == 0
    far = ct.restore(100, UDP, H2, 8, EXT, 60000, A1, 53, created_at=0.0)  # outside port_range
    assert far.external_port == 60000
    ct.expire(1e6)
    assert ct.stats().ports_in_use["udp"] == 0


def test_restore_respects_limits(make_ct):
    ct = make_ct(max_connections=1)
    ct.restore(1, UDP, H1, 1, EXT, 1, A1, 1, created_at=0.0)
    assert refused(ct.restore, 2, UDP, H1, 2, EXT, 2, A1, 1, created_at=0.0) is RefuseReason.TABLE_FULL
    assert ct.mapping(UDP, H1, 2) is None


def test_reserved_port_is_never_allocated(make_ct):
    ct = make_ct(port_range=(2000, 2001))
    ct.reserve(UDP, 2000)
    assert ct.is_reserved(UDP, 2000)
    a = ct.create_outbound(UDP, H1, 2000, A1, 53, 0.0)
    assert a.external_port == 2001
    assert refused(ct.create_outbound, UDP, H2, 2000, A1, 53, 0.0) is RefuseReason.POOL_EXHAUSTED
    assert refused(ct.reserve, UDP, 2001) is RefuseReason.PORT_IN_USE
    assert ct.stats().ports_reserved["udp"] == 1
    assert ct.release(UDP, 2000, now=0.0) and not ct.release(UDP, 2000, now=0.0)
    # Released ports are quarantined like freed ones; the fallback still serves.
    assert ct.create_outbound(UDP, H2, 2000, A1, 53, 1.0).external_port == 2000


def test_forward_accepts_any_remote_and_shares_port_with_outbound(make_ct, recorder):
    ct = make_ct()  # default filtering is address-and-port dependent: forwards bypass it
    m = ct.add_forward(TCP, 8080, "10.0.0.5", 80)
    assert ct.add_forward(TCP, 8080, "10.0.0.5", 80) is m  # idempotent
    assert refused(ct.accept_inbound, TCP, A1, 1234, EXT, 8080, 0.0, tcp_flags=TcpFlags.ACK) is RefuseReason.NOT_SYN
    s = ct.accept_inbound(TCP, A1, 1234, EXT, 8080, 0.0, tcp_flags=TcpFlags.SYN)
    assert str(s.inside_ip) == "10.0.0.5" and s.inside_port == 80 and s.external_port == 8080
    assert s.inbound_initiated and s.state is State.SYN_RECEIVED
    out = ct.create_outbound(TCP, "10.0.0.5", 80, A2, 5555, 1.0)
    assert out.external_port == 8080
    ct.expire(1e6)
    assert ct.mapping_of_port(TCP, 8080) is m and ct.stats().forwards == 1  # static: kept
    assert ct.stats().ports_in_use["tcp"] == 1


def test_forward_conflicts(make_ct):
    ct = make_ct()
    ct.create_outbound(UDP, H1, 5000, A1, 53, 0.0)
    ct.reserve(UDP, 6000)
    assert refused(ct.add_forward, UDP, 5000, H2, 53) is RefuseReason.PORT_IN_USE
    assert refused(ct.add_forward, UDP, 6000, H2, 53) is RefuseReason.PORT_RESERVED
    assert refused(ct.add_forward, UDP, 7000, H1, 5000) is RefuseReason.MAPPING_CONFLICT
    assert ct.add_forward(UDP, 5000, H1, 5000).static  # its own dynamic mapping becomes static
    with pytest.raises(ValueError):
        ct.add_forward(ICMP, 1, H1, 1)


def test_remove_forward_keeps_live_sessions_until_they_end(make_ct):
    ct = make_ct(quarantine=0)
    ct.add_forward(UDP, 5353, H1, 53)
    s = ct.accept_inbound(UDP, A1, 1, EXT, 5353, 0.0)
    assert ct.remove_forward(UDP, 5353, now=1.0) is not None
    assert ct.remove_forward(UDP, 5353) is None
    assert s.alive and ct.forwards() == []
    ct.expire(400.0)
    assert ct.mapping_of_port(UDP, 5353) is None and ct.stats().ports_in_use["udp"] == 0
    ct.add_forward(UDP, 5354, H1, 54)
    ct.remove_forward(UDP, 5354, now=2.0)  # no sessions: port freed at once
    assert ct.mapping_of_port(UDP, 5354) is None


def test_new_ids_after_wrapping_skip_every_live_id(make_ct):
    """Ids wrap at MAX_SESSION_ID; a new session never takes a live id, on the
    fast path (next id) as on the slow one."""
    from conntrack import MAX_SESSION_ID

    ct = make_ct()
    for sid, port in ((2, 6002), (3, 6003), (5, 6005)):
        ct.restore(sid, UDP, H1, port, EXT, port, A1, 53, created_at=0.0)
    ct.restore(MAX_SESSION_ID, UDP, H1, 6009, EXT, 6009, A1, 53, created_at=0.0)
    ids = [ct.create_outbound(UDP, H1, 7000 + n, A1, 53, 1.0).id for n in range(4)]
    assert ids == [1, 4, 6, 7]
    assert len({s.id for s in ct.sessions()}) == len(ct) == 8
