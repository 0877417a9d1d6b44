"""Several external addresses with paired pooling (RFC 4787 REQ-2): every
mapping of one inside host on one pool address, hosts spread over the pool,
a full address refused rather than left, and each address's own ports."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from conntrack import ICMP, TCP, UDP, ConntrackConfig, Refused, RefuseReason

POOL = ("198.51.100.2", "198.51.100.3", "198.51.100.4")


def hosts(n: int) -> list[str]:
    return [f"10.0.0.{i}" for i in range(1, n + 1)]


def test_unset_pool_is_the_external_address_alone():
    config = ConntrackConfig(external_ip="198.51.100.1")
    assert config.external_pool == (IPv4Address("198.51.100.1"),)


@pytest.mark.parametrize("bad", ["198.51.100.2", ["198.51.100.2", "198.51.100.2"], ["not-an-ip"], [1 << 33]])
def test_bad_pools_are_refused(bad):
    with pytest.raises(ValueError):
        ConntrackConfig(external_ip="198.51.100.1", external_pool=bad)


def test_every_mapping_of_a_host_uses_one_address_and_hosts_spread(make_ct):
    ct = make_ct(external_pool=POOL)
    seen: dict[str, set[IPv4Address]] = {}
    for h in hosts(6):
        for proto, port in ((TCP, 40000), (TCP, 40001), (UDP, 5353), (ICMP, 77)):
            s = ct.create_outbound(proto, h, port, "203.0.113.9", 80, now=0.0)
            seen.setdefault(h, set()).add(s.external_ip)
    assert all(len(addrs) == 1 for addrs in seen.values())
    per_address = [sum(1 for a in seen.values() if a == {IPv4Address(p)}) for p in POOL]
    assert per_address == [2, 2, 2]
    assert ct.paired_hosts() == [2, 2, 2]
    assert ct.host_address("10.0.0.1") == IPv4Address(POOL[0])
    assert ct.host_address("10.0.0.2") == IPv4Address(POOL[1])


def test_inbound_lookup_and_accept_per_address(make_ct):
    ct = make_ct(external_pool=POOL, udp_filtering="endpoint-independent")
    a = ct.create_outbound(UDP, "10.0.0.1", 5000, "203.0.113.9", 53, now=0.0)
    b = ct.create_outbound(UDP, "10.0.0.2", 5000, "203.0.113.9", 53, now=0.0)
    assert a.external_port == b.external_port == 5000   # each address has its own ports
    assert a.external_ip != b.external_ip
    assert ct.lookup_inbound(*a.reply) is a
    assert ct.lookup_inbound(*b.reply) is b
    assert ct.lookup_inbound(UDP, "203.0.113.9", 53, "198.51.100.9", 5000) is None
    new = ct.accept_inbound(UDP, "192.0.2.7", 9, str(b.external_ip), 5000, now=1.0)
    assert new.inside_ip == IPv4Address("10.0.0.2") and new.external_ip == b.external_ip
    with pytest.raises(Refused) as refused:
        ct.accept_inbound(UDP, "192.0.2.7", 9, POOL[2], 5000, now=1.0)
    assert refused.value.reason is RefuseReason.NO_MAPPING
    assert ct.mapping_of_port(UDP, 5000, b.external_ip) is b.mapping
    assert ct.mapping_of_port(UDP, 5000, POOL[2]) is None


def test_a_full_address_is_refused_not_left(make_ct):
    ct = make_ct(external_pool=POOL[:2], port_range=(40000, 40003), quarantine=0)
    first = [ct.create_outbound(TCP, "10.0.0.1", 50000 + i, "203.0.113.9", 80, now=0.0) for i in range(4)]
    assert {s.external_ip for s in first} == {IPv4Address(POOL[0])}
    with pytest.raises(Refused) as refused:
        ct.create_outbound(TCP, "10.0.0.1", 50010, "203.0.113.9", 80, now=0.0)
    assert refused.value.reason is RefuseReason.POOL_EXHAUSTED
    assert POOL[0] in refused.value.detail
    # The other address still serves other hosts.
    other = ct.create_outbound(TCP, "10.0.0.2", 50000, "203.0.113.9", 80, now=0.0)
    assert other.external_ip == IPv4Address(POOL[1])
    assert ct.stats().ports_in_use["tcp"] == 5


def test_a_host_keeps_its_address_across_a_quiet_period(make_ct):
    ct = make_ct(external_pool=POOL[:2], quarantine=0)
    s1 = ct.create_outbound(UDP, "10.0.0.1", 5000, "203.0.113.9", 53, now=0.0)
    s2 = ct.create_outbound(UDP, "10.0.0.2", 5000, "203.0.113.9", 53, now=0.0)
    ct.remove(s1, now=1.0)
    ct.remove(s2, now=1.0)
    assert ct.host_address("10.0.0.1") is None and ct.paired_hosts() == [0, 0]
    # 10.0.0.2 comes back first: it still gets its own address, not the emptiest.
    again = ct.create_outbound(TCP, "10.0.0.2", 6000, "203.0.113.9", 80, now=2.0)
    assert again.external_ip == s2.external_ip


def test_forward_goes_on_the_hosts_address_and_pins_it(make_ct):
    ct = make_ct(external_pool=POOL)
    ct.create_outbound(TCP, "10.0.0.1", 5000, "203.0.113.9", 80, now=0.0)
    ct.create_outbound(TCP, "10.0.0.2", 5000, "203.0.113.9", 80, now=0.0)
    fwd = ct.add_forward(TCP, 8080, "10.0.0.2", 80)
    assert fwd.external_ip == IPv4Address(POOL[1])
    s = ct.accept_inbound(TCP, "192.0.2.7", 1234, POOL[1], 8080, now=1.0, tcp_flags=0x02)
    assert s.inside_ip == IPv4Address("10.0.0.2")
    with pytest.raises(Refused):
        ct.accept_inbound(TCP, "192.0.2.7", 1234, POOL[0], 8080, now=1.0, tcp_flags=0x02)
    with pytest.raises(Refused) as refused:   # one forward per port across the pool
        ct.add_forward(TCP, 8080, "10.0.0.1", 80)
    assert refused.value.reason is RefuseReason.PORT_IN_USE
    # A host with only a forward stays paired with its address.
    lone = ct.add_forward(UDP, 9000, "10.0.0.5", 9000)
    out = ct.create_outbound(TCP, "10.0.0.5", 7000, "203.0.113.9", 80, now=2.0)
    assert out.external_ip == lone.external_ip


def test_restore_across_the_pool(make_ct):
    ct = make_ct(external_pool=POOL)
    s = ct.restore(7, TCP, "10.0.0.9", 5000, POOL[2], 41000, "203.0.113.9", 80, created_at=0.0)
    assert s.external_ip == IPv4Address(POOL[2]) and ct.lookup_inbound(*s.reply) is s
    assert ct.host_address("10.0.0.9") == IPv4Address(POOL[2])
    new = ct.create_outbound(UDP, "10.0.0.9", 5353, "203.0.113.9", 53, now=1.0)
    assert new.external_ip == IPv4Address(POOL[2])
    with pytest.raises(Refused) as refused:
        ct.restore(80, TCP, "10.0.0.9", 5001, POOL[0], 41001, "203.0.113.9", 80, created_at=0.0)
    assert refused.value.reason is RefuseReason.MAPPING_CONFLICT
    with pytest.raises(Refused) as refused:
        ct.restore(90, TCP, "10.0.0.8", 5001, "198.51.100.1", 41001, "203.0.113.9", 80, created_at=0.0)
    assert refused.value.reason is RefuseReason.WRONG_EXTERNAL_IP


def test_reserve_per_address(make_ct):
    ct = make_ct(external_pool=POOL[:2], port_range=(40000, 40001), preserve_low_ports=True)
    ct.reserve(TCP, 40000, POOL[1])
    assert ct.is_reserved(TCP, 40000, POOL[1]) and not ct.is_reserved(TCP, 40000)
    with pytest.raises(ValueError):
        ct.reserve(TCP, 40000, "198.51.100.200")
    assert ct.release(TCP, 40000, now=0.0, external_ip=POOL[1])
