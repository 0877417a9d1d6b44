"""Limits (RFC 6888 REQ-4/5/11): refuse with a reason, count, never evict."""

import pytest

from conntrack import UDP, Refused, RefuseReason

EXT = "198.51.100.1"
A1 = "203.0.113.1"


def test_table_bound(make_ct):
    ct = make_ct(max_connections=3)
    live = [ct.create_outbound(UDP, "10.0.0.1", 1000 + n, A1, 53, 0.0) for n in range(3)]
    with pytest.raises(Refused) as err:
        ct.create_outbound(UDP, "10.0.0.2", 1000, A1, 53, 0.0)
    assert err.value.reason is RefuseReason.TABLE_FULL
    assert all(s.alive for s in live) and len(ct) == 3
    ct.remove(live[0])
    assert ct.create_outbound(UDP, "10.0.0.2", 1000, A1, 53, 0.0).alive


def test_per_host_quota_counts_inbound_initiated_sessions(make_ct):
    ct = make_ct(max_connections_per_host=2, udp_filtering="endpoint-independent")
    ct.create_outbound(UDP, "10.0.0.1", 5000, A1, 53, 0.0)
    ct.accept_inbound(UDP, "203.0.113.9", 1, EXT, 5000, 0.0)
    with pytest.raises(Refused) as err:
        ct.create_outbound(UDP, "10.0.0.1", 5001, A1, 53, 0.0)
    assert err.value.reason is RefuseReason.HOST_QUOTA
    with pytest.raises(Refused):
        ct.accept_inbound(UDP, "203.0.113.10", 1, EXT, 5000, 0.0)
    assert ct.create_outbound(UDP, "10.0.0.2", 5001, A1, 53, 0.0)  # other hosts unaffected
    st = ct.stats()
    assert st.refused_by_reason == {"host_quota": 2} and st.active == 3


def test_refusal_allocates_nothing(make_ct):
    ct = make_ct(max_connections=1)
    ct.create_outbound(UDP, "10.0.0.1", 5000, A1, 53, 0.0)
    with pytest.raises(Refused):
        ct.create_outbound(UDP, "10.0.0.2", 6000, A1, 53, 0.0)
    st = ct.stats()
    assert st.mappings == 1 and st.ports_in_use["udp"] == 1


def test_outsiders_cannot_use_up_a_hosts_whole_quota(make_ct):
    """Under EIF anyone may open sessions on a mapping; they get three quarters
    of the host's quota at most, so the host can still connect out."""
    ct = make_ct(max_connections_per_host=8, udp_filtering="endpoint-independent")
    ct.create_outbound(UDP, "10.0.0.1", 5000, A1, 53, 0.0)
    for port in range(1, 7):
        ct.accept_inbound(UDP, "203.0.113.9", port, EXT, 5000, 0.0)
    with pytest.raises(Refused) as err:
        ct.accept_inbound(UDP, "203.0.113.9", 7, EXT, 5000, 0.0)
    assert err.value.reason is RefuseReason.HOST_QUOTA and "inbound-initiated" in str(err.value)
    assert ct.create_outbound(UDP, "10.0.0.1", 5001, A1, 53, 0.0).alive   # 8th: its own
    inbound = [s for s in ct.sessions() if s.inbound_initiated]
    ct.remove(inbound[0])
    assert ct.accept_inbound(UDP, "203.0.113.9", 8, EXT, 5000, 0.0).inbound_initiated


def test_a_removed_session_gives_its_place_in_the_quota_back(make_ct):
    ct = make_ct(max_connections_per_host=2)
    a = ct.create_outbound(UDP, "10.0.0.1", 5000, A1, 53, 0.0)
    ct.create_outbound(UDP, "10.0.0.1", 5001, A1, 53, 0.0)
    ct.remove(a)
    assert ct.create_outbound(UDP, "10.0.0.1", 5002, A1, 53, 0.0).alive
    ct.expire(10_000.0)
    for port in (6000, 6001):
        assert ct.create_outbound(UDP, "10.0.0.1", port, A1, 53, 10_000.0).alive
