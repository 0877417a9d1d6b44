"""Deterministic NAT (RFC 7422): each inside address's external address and
ports follow from the configuration alone, and back, with no log."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from conntrack import ICMP, TCP, UDP, ConntrackConfig, Refused, RefuseReason
from conntrack.deterministic import DeterministicMap

POOL = ("198.51.100.2", "198.51.100.3")
INSIDE = IPv4Network("10.0.0.0/28")      # 16 addresses
RANGE = (40000, 40079)                   # 10 blocks of 8 per address: room for 20


def det_ct(make_ct, **kw):
    return make_ct(external_pool=POOL, port_range=RANGE, port_block_size=8,
                   deterministic_inside=INSIDE, **kw)


def test_the_formula_both_ways():
    m = DeterministicMap(INSIDE, tuple(IPv4Address(a) for a in POOL), *RANGE, 8)
    seen = set()
    for k in range(16):
        inside = IPv4Address(int(INSIDE.network_address) + k)
        address, first, last = m.block_of(inside)
        assert address == IPv4Address(POOL[k % 2]) and first == 40000 + (k // 2) * 8 and last == first + 7
        for port in (first, last):
            assert m.owner_of(address, port) == inside
            seen.add((address, port))
    assert len(seen) == 32
    assert m.owner_of(POOL[0], 40079) is None       # a block nobody of the /28 has
    assert m.owner_of("198.51.100.9", 40000) is None
    assert m.owner_of(POOL[0], 39999) is None
    assert m.block_of("10.0.1.1") is None


def test_sessions_take_their_hosts_fixed_block(make_ct, recorder):
    ct = det_ct(make_ct)
    m = ct.config.deterministic_map()
    for host in ("10.0.0.5", "10.0.0.6", "10.0.0.11"):
        address, first, last = m.block_of(host)
        for proto, port in ((TCP, 5000), (UDP, 5000), (UDP, 5001), (ICMP, 9)):
            s = ct.create_outbound(proto, host, port, "203.0.113.9", 80, now=0.0)
            assert s.external_ip == address and first <= s.external_port <= last, (host, proto)
            assert m.owner_of(s.external_ip, s.external_port) == IPv4Address(host)
    # The block is the host's only one; over it, refused.
    for i in range(6):
        ct.create_outbound(UDP, "10.0.0.5", 6000 + i, "203.0.113.9", 80, now=0.0)
    with pytest.raises(Refused) as refused:
        ct.create_outbound(UDP, "10.0.0.5", 7000, "203.0.113.9", 80, now=0.0)
    assert refused.value.reason is RefuseReason.BLOCK_QUOTA
    with pytest.raises(Refused):          # outside the inside prefix: no block at all
        ct.create_outbound(UDP, "10.0.1.5", 7000, "203.0.113.9", 80, now=0.0)


def test_a_released_block_is_its_hosts_again_at_once(make_ct):
    ct = det_ct(make_ct)
    s = ct.create_outbound(UDP, "10.0.0.5", 5000, "203.0.113.9", 80, now=0.0)
    ct.remove(s, now=1.0)
    again = ct.create_outbound(UDP, "10.0.0.5", 5001, "203.0.113.9", 80, now=2.0)
    assert again.external_ip == s.external_ip and again.external_port // 8 == s.external_port // 8


def test_restore_only_into_the_hosts_own_block(make_ct):
    ct = det_ct(make_ct)
    address, first, _ = ct.config.deterministic_map().block_of("10.0.0.5")
    ct.restore(70, UDP, "10.0.0.5", 5000, address, first + 3, "203.0.113.9", 53, created_at=0.0)
    with pytest.raises(Refused):
        ct.restore(71, UDP, "10.0.0.6", 5000, POOL[1], first + 3, "203.0.113.9", 53, created_at=0.0)


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="port_block_size"):
        ConntrackConfig(external_ip="198.51.100.1", deterministic_inside=INSIDE)
    with pytest.raises(ValueError, match="16 addresses"):
        ConntrackConfig(external_ip="198.51.100.1", port_range=(40000, 40079), port_block_size=8,
                        deterministic_inside=INSIDE)
