"""Mappings hosts ask for (PCP MAP/PEER, NAT-PMP): the suggested port when
it is free, EIM with the endpoint's traffic, the host's quota, filtering
opened to a held peer, and the port freed when nothing keeps it."""

from __future__ import annotations

import pytest

from conntrack import TCP, UDP, Filtering, Refused, RefuseReason

H1, H2, REMOTE, OTHER = "10.0.0.11", "10.0.0.12", "203.0.113.9", "203.0.113.77"


def test_a_free_suggested_port_is_given_and_the_mapping_lets_anyone_in(make_ct):
    ct = make_ct()
    m = ct.request_mapping(TCP, H1, 80, 8080, now=0.0)
    assert (m.external_port, m.static) == (8080, True)
    assert ct.mapping_of_port(TCP, 8080) is m
    s = ct.accept_inbound(TCP, REMOTE, 5555, "198.51.100.1", 8080, now=1.0, tcp_flags=0x02)
    assert s.inside_port == 80 and s.inbound_initiated
    assert ct.request_mapping(TCP, H1, 80, 9999, now=2.0) is m          # a renewal keeps it


def test_a_taken_suggestion_gets_another_port_unless_exact(make_ct):
    ct = make_ct()
    ct.request_mapping(TCP, H1, 80, 8080, now=0.0)
    other = ct.request_mapping(TCP, H2, 80, 8080, now=0.0)
    assert other.external_port != 8080
    with pytest.raises(Refused) as refused:
        ct.request_mapping(TCP, H2, 81, 8080, exact=True, now=0.0)
    assert refused.value.reason is RefuseReason.PORT_IN_USE


def test_a_suggestion_outside_the_port_range_is_not_given(make_ct):
    ct = make_ct(port_range=(20000, 30000))
    assert 20000 <= ct.request_mapping(UDP, H1, 5000, 10000, now=0.0).external_port <= 30000
    assert ct.request_mapping(UDP, H1, 5001, 20001, now=0.0).external_port == 20001   # parity aside


def test_the_endpoints_outbound_mapping_is_kept_eim(make_ct):
    ct = make_ct()
    s = ct.create_outbound(UDP, H1, 4000, REMOTE, 53, now=0.0)
    m = ct.request_mapping(UDP, H1, 4000, 12345, now=1.0)
    assert m is s.mapping and m.external_port == s.external_port


def test_an_operators_forward_is_not_the_hosts_to_map(make_ct):
    ct = make_ct()
    ct.add_forward(TCP, 8080, H1, 80)
    with pytest.raises(Refused) as refused:
        ct.request_mapping(TCP, H1, 80, 8080, now=0.0)
    assert refused.value.reason is RefuseReason.FORWARDED
    ct.request_mapping(TCP, H2, 80, now=0.0)
    with pytest.raises(Refused):
        ct.add_forward(TCP, 9000, H2, 80)


def test_requests_count_against_the_hosts_quota(make_ct):
    ct = make_ct(max_connections_per_host=4)           # inbound share: 3
    for port in (1, 2, 3):
        ct.request_mapping(TCP, H1, port, now=0.0)
    with pytest.raises(Refused) as refused:
        ct.request_mapping(TCP, H1, 4, now=0.0)
    assert refused.value.reason is RefuseReason.HOST_QUOTA
    ct.create_outbound(TCP, H1, 5, REMOTE, 80, now=0.0)  # its own fourth
    with pytest.raises(Refused):
        ct.create_outbound(TCP, H1, 6, REMOTE, 80, now=0.0)
    ct.end_request(TCP, H1, 1, now=1.0)
    ct.create_outbound(TCP, H1, 6, REMOTE, 80, now=1.0)


def test_ending_a_request_frees_the_port_once_its_sessions_end(make_ct):
    ct = make_ct()
    m = ct.request_mapping(TCP, H1, 80, 8080, now=0.0)
    s = ct.accept_inbound(TCP, REMOTE, 5555, "198.51.100.1", 8080, now=1.0, tcp_flags=0x02)
    assert ct.end_request(TCP, H1, 80, now=2.0) is m
    assert ct.mapping_of_port(TCP, 8080) is m                      # its session still uses it
    ct.remove(s.id, now=3.0)
    assert ct.mapping_of_port(TCP, 8080) is None
    assert ct.end_request(TCP, H1, 80, now=4.0) is None
    assert ct.host_sessions(int.from_bytes(bytes([10, 0, 0, 11]), "big")) == 0


@pytest.mark.parametrize("filtering", [Filtering.ADDRESS_DEPENDENT, Filtering.ADDRESS_AND_PORT_DEPENDENT])
def test_a_held_peer_keeps_the_mapping_and_passes_the_filter(make_ct, filtering):
    ct = make_ct(udp_filtering=filtering)
    m = ct.hold_peer(UDP, H1, 4000, REMOTE, 3478, now=0.0)
    assert not m.static and ct.held_peers(m)
    with pytest.raises(Refused):
        ct.accept_inbound(UDP, OTHER, 3478, "198.51.100.1", m.external_port, now=1.0)
    s = ct.accept_inbound(UDP, REMOTE, 3478, "198.51.100.1", m.external_port, now=1.0)
    assert s.mapping is m
    out = ct.create_outbound(UDP, H1, 4000, OTHER, 9, now=1.0)
    assert out.external_port == m.external_port                    # EIM
    for sid in (s.id, out.id):
        ct.remove(sid, now=2.0)
    assert ct.mapping_of_port(UDP, m.external_port) is m           # still held
    assert ct.release_peer(UDP, H1, 4000, REMOTE, 3478, now=3.0) is m
    assert ct.mapping_of_port(UDP, m.external_port) is None


def test_blocks_keep_a_request_in_the_hosts_block(make_ct):
    ct = make_ct(port_block_size=64, port_range=(1024, 65535))
    first = ct.create_outbound(UDP, H1, 4000, REMOTE, 53, now=0.0).external_port
    m = ct.request_mapping(UDP, H1, 5000, 40000, now=0.0)
    start = first - (first - 1024) % 64
    assert start <= m.external_port < start + 64
