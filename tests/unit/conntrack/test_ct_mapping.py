"""Mappings: EIM, no port overloading, port preservation, ICMP identifiers,
exhaustion without eviction, O(1) lookups both ways."""

from ipaddress import IPv4Address

import pytest

from conntrack import ICMP, MAX_SESSION_ID, TCP, UDP, Refused, RefuseReason, State

EXT = "198.51.100.1"
H1, H2 = "10.0.0.1", "10.0.0.2"
A1, A2 = "203.0.113.1", "203.0.113.2"


def test_endpoint_independent_mapping_same_external_port_for_every_remote(make_ct):
    ct = make_ct()
    sessions = [
        ct.create_outbound(UDP, H1, 40000, A1, 3478, 0.0),
        ct.create_outbound(UDP, H1, 40000, A2, 3478, 0.0),
        ct.create_outbound(UDP, H1, 40000, A2, 3479, 0.0),
    ]
    assert len({s.id for s in sessions}) == 3
    assert {s.external_port for s in sessions} == {40000}
    assert {s.external_ip for s in sessions} == {IPv4Address(EXT)}
    assert all(s.port_preserved for s in sessions)
    assert ct.mapping(UDP, H1, 40000).count == 3


def test_mapping_kept_while_any_session_lives(make_ct):
    ct = make_ct(quarantine=0)
    s1 = ct.create_outbound(UDP, H1, 40000, A1, 53, 0.0)
    ct.create_outbound(UDP, H2, 40000, A1, 53, 0.0)  # takes another port
    ct.create_outbound(UDP, H1, 40000, A2, 53, 100.0)
    ct.expire(301.0)  # the first session dies, the second of H1 lives
    assert not s1.alive
    s3 = ct.create_outbound(UDP, H1, 40000, A1, 53, 302.0)
    assert s3.external_port == 40000


def test_no_port_overloading_two_hosts_same_source_port(make_ct):
    ct = make_ct()
    a = ct.create_outbound(TCP, H1, 5555, A1, 80, 0.0)
    b = ct.create_outbound(TCP, H2, 5555, A1, 80, 0.0)
    assert a.external_port == 5555 and b.external_port != 5555
    assert not b.port_preserved
    # Under EIM an external port belongs to one inside endpoint only.
    assert ct.mapping_of_port(TCP, a.external_port).inside_ip == IPv4Address(H1)
    assert ct.mapping_of_port(TCP, b.external_port).inside_ip == IPv4Address(H2)


def test_protocols_have_separate_port_spaces(make_ct):
    ct = make_ct()
    t = ct.create_outbound(TCP, H1, 6000, A1, 80, 0.0)
    u = ct.create_outbound(UDP, H2, 6000, A1, 80, 0.0)
    assert t.external_port == u.external_port == 6000


def test_lookups_invert_each_other_and_ignore_other_tuples(make_ct):
    ct = make_ct()
    s = ct.create_outbound(TCP, H1, 5000, A1, 443, 0.0)
    assert ct.lookup_outbound(TCP, H1, 5000, A1, 443) is s
    assert ct.lookup_outbound(*s.original) is s
    assert ct.lookup_inbound(*s.reply) is s
    assert ct.lookup_inbound(TCP, A1, 443, EXT, s.external_port) is s
    assert ct.lookup_inbound(TCP, A1, 444, EXT, s.external_port) is None
    assert ct.lookup_inbound(TCP, A1, 443, "198.51.100.2", s.external_port) is None
    assert ct.lookup_inbound(UDP, A1, 443, EXT, s.external_port) is None
    assert ct.lookup_inbound(99, A1, 443, EXT, s.external_port) is None
    assert ct.lookup_outbound(UDP, H1, 5000, A1, 443) is None
    assert s.translated.src_port == s.external_port
    assert ct.get(s.id) is s and ct.get(s.id + 1) is None
    assert ct.stats().lookups >= 8


def test_existing_session_is_returned_by_create(make_ct, recorder):
    ct = make_ct()
    s = ct.create_outbound(TCP, H1, 5000, A1, 443, 0.0)
    assert ct.create_outbound(TCP, H1, 5000, A1, 443, 5.0) is s
    assert recorder.kinds() == ["created"] and ct.stats().created == 1


def test_icmp_keeps_identifier_and_translates_on_collision(make_ct):
    ct = make_ct()
    a = ct.create_outbound(ICMP, H1, 77, A1, 0, 0.0)
    b = ct.create_outbound(ICMP, H2, 77, A1, 0, 0.0)
    c = ct.create_outbound(ICMP, H1, 77, A2, 12345, 0.0)  # remote "port" is ignored
    assert a.external_port == 77 and a.port_preserved
    assert b.external_port != 77 and not b.port_preserved
    assert c.external_port == 77 and c.remote_port == 0
    assert ct.lookup_inbound(ICMP, A1, 0, EXT, 77) is a
    assert ct.lookup_inbound(ICMP, A1, 999, EXT, b.external_port) is b
    assert a.state is State.UNREPLIED and a.timeout == 60


def test_low_inside_port_maps_low(make_ct):
    ct = make_ct()
    ct.create_outbound(TCP, H1, 22, A1, 22, 0.0)
    s = ct.create_outbound(TCP, H2, 22, A1, 22, 0.0)
    assert s.external_port < 1024
    h = ct.create_outbound(TCP, H2, 30000, A1, 22, 0.0)
    assert h.external_port >= 1024


def test_pool_exhaustion_refuses_counts_and_evicts_nothing(make_ct):
    ct = make_ct(port_range=(2000, 2001))
    live = [ct.create_outbound(UDP, f"10.0.0.{i}", 3000, A1, 53, 0.0) for i in (1, 2)]
    with pytest.raises(Refused) as err:
        ct.create_outbound(UDP, "10.0.0.3", 3000, A1, 53, 0.0)
    assert err.value.reason is RefuseReason.POOL_EXHAUSTED
    assert all(s.alive for s in live) and len(ct) == 2
    # Existing mappings still get new sessions.
    assert ct.create_outbound(UDP, "10.0.0.1", 3000, A2, 53, 0.0).external_port == live[0].external_port
    st = ct.stats()
    assert st.refused_by_reason == {"pool_exhausted": 1} and st.refused == 1
    assert st.ports_in_use["udp"] == 2 and st.mappings == 2


def test_hairpin_tuple_remote_is_external_address(make_ct):
    ct = make_ct(udp_filtering="endpoint-independent")
    b = ct.create_outbound(UDP, H2, 4000, A1, 9, 0.0)
    a = ct.create_outbound(UDP, H1, 5000, EXT, b.external_port, 0.0)
    # The hairpinned packet arrives at B's mapping from A's external ip:port.
    ab = ct.accept_inbound(UDP, EXT, a.external_port, EXT, b.external_port, 0.0)
    assert ab.inside_ip == IPv4Address(H2) and ab.remote_ip == IPv4Address(EXT)
    assert ab.remote_port == a.external_port and ab.inbound_initiated


def test_bad_input_raises_value_error(make_ct):
    ct = make_ct()
    for args in [(47, H1, 1, A1, 1), (TCP, "x", 1, A1, 1), (TCP, H1, 70000, A1, 1), (TCP, H1, 1, A1, -1)]:
        with pytest.raises(ValueError):
            ct.create_outbound(*args, 0.0)


def test_session_ids_are_unique_32_bit_and_skip_live_ids(make_ct):
    ct = make_ct()
    ct._next_id = MAX_SESSION_ID
    a = ct.create_outbound(UDP, H1, 1, A1, 1, 0.0)
    b = ct.create_outbound(UDP, H1, 2, A1, 1, 0.0)
    assert (a.id, b.id) == (MAX_SESSION_ID, 1)
    ct._next_id = MAX_SESSION_ID  # wraps onto live ids: they are skipped
    c = ct.create_outbound(UDP, H1, 3, A1, 1, 0.0)
    assert c.id == 2


def test_uses_injected_clock_when_now_omitted(make_ct):
    t = [1000.0]
    ct = make_ct(clock=lambda: t[0])
    s = ct.create_outbound(UDP, H1, 1, A1, 1)
    assert s.created_at == s.last_seen == 1000.0
    t[0] = 1300.0
    assert ct.expire() == [s]


def test_session_views(make_ct):
    ct = make_ct()
    s = ct.create_outbound(TCP, H1, 5000, A1, 443, 0.0, tcp_flags=0x02)
    d = s.as_dict()
    assert d["inside"] == "10.0.0.1:5000" and d["remote"] == "203.0.113.1:443"
    assert d["state"] == "SYN_SENT" and d["protocol"] == "tcp" and d["alive"]
    assert "SYN_SENT" in repr(s) and "10.0.0.1" in repr(ct.mapping(TCP, H1, 5000))
    assert list(ct.mapping(TCP, H1, 5000).sessions()) == [s]
    assert list(ct.sessions()) == [s]
