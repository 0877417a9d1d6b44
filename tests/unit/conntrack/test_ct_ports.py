"""PortPool: RFC 4787 REQ-3a/REQ-4 classes, RFC 6056 random choice,
RFC 6888 REQ-8 quarantine with fallback, reservations."""

import random

from conntrack import ConntrackConfig
from conntrack.ports import FREE, QUARANTINED, RESERVED, USED, PortPool

TCP = 6


def pool(seed=1, **overrides):
    config = ConntrackConfig(external_ip="192.0.2.1", **overrides)
    return PortPool.for_protocol(config, TCP, random.Random(seed))


def test_keeps_inside_port_when_free():
    p = pool()
    assert p.allocate(1, 5000, 0.0) == 5000
    assert p.state(5000) == USED and p.in_use == 1


def test_second_endpoint_with_same_port_gets_another_random_port():
    chosen = {pool(seed).allocate(1, 5000, 0.0) for seed in range(3)}
    assert chosen == {5000}
    others = set()
    for seed in range(20):
        p = pool(seed)
        p.allocate(1, 5000, 0.0)
        port = p.allocate(2, 5000, 0.0)
        assert port != 5000 and 1024 <= port <= 65535
        others.add(port)
    assert len(others) > 15  # randomised, not sequential


def test_low_ports_stay_low_and_high_stay_high():
    p = pool(port_range=(2000, 2003), low_port_range=(100, 103))
    assert p.allocate(2, 100, 0.0) == 100
    assert p.allocate(1, 80, 0.0) in range(101, 104)  # 80 itself is outside the low range
    assert p.allocate(3, 5000, 0.0) in range(2000, 2004)
    for ikey in range(4, 10):
        port = p.allocate(ikey, 443, 0.0)
        assert port is None or 100 <= port <= 103


def test_without_low_port_preservation_low_inside_ports_map_high():
    p = pool(preserve_low_ports=False, port_range=(2000, 2001))
    assert p.allocate(1, 80, 0.0) in (2000, 2001)


def test_parity_is_preserved():
    p = pool(preserve_parity=True, port_range=(2000, 2009))
    for ikey, inside in enumerate([3001, 3001, 3002, 3002, 3003, 3004, 3005, 3006], start=1):
        port = p.allocate(ikey, inside, 0.0)
        assert port % 2 == inside % 2


def test_parity_gives_way_only_when_its_own_ports_are_gone():
    """Parity is a SHOULD (RFC 4787 REQ-4): the other parity rather than a refusal."""
    p = pool(preserve_parity=True, port_range=(2000, 2003))
    assert {p.allocate(1, 3001, 0.0), p.allocate(2, 3001, 0.0)} == {2001, 2003}
    assert p.available(3001) == 2
    assert p.allocate(3, 3001, 0.0) in (2000, 2002)
    assert p.allocate(4, 3000, 0.0) in (2000, 2002)
    assert p.available(3000) == 0 and p.allocate(5, 3000, 0.0) is None


def test_low_and_high_classes_never_lend_each_other_ports():
    p = pool(port_range=(2000, 2000), low_port_range=(100, 100), quarantine=0)
    assert p.allocate(1, 80, 0.0) == 100 and p.allocate(2, 81, 0.0) is None
    assert p.allocate(3, 5000, 0.0) == 2000 and p.allocate(4, 5001, 0.0) is None


def test_freed_port_is_quarantined_then_returns():
    p = pool(port_range=(2000, 2001), quarantine=120)
    a = p.allocate(1, 2000, 0.0)
    p.free(a, 1, 10.0)
    assert p.state(a) == QUARANTINED and p.quarantined == 1
    # Another endpoint gets the other free port, not the quarantined one.
    assert p.allocate(2, 2000, 20.0) == 2001
    p.free(2001, 2, 20.0)
    # At 130 the first port's quarantine is over: it is free again.
    assert p.allocate(3, 2000, 130.0) == 2000
    assert p.quarantine_fallbacks == 0


def test_quarantined_port_is_used_when_pool_would_be_exhausted_oldest_first():
    p = pool(port_range=(2000, 2002), quarantine=120)
    ports = [p.allocate(i, 2000, 0.0) for i in (1, 2, 3)]
    p.free(ports[1], 2, 5.0)
    p.free(ports[0], 1, 6.0)
    assert p.allocate(9, 2000, 10.0) == ports[1]  # freed first
    assert p.allocate(8, 2000, 10.0) == ports[0]
    assert p.allocate(7, 2000, 10.0) is None
    assert p.quarantine_fallbacks == 2


def test_same_endpoint_gets_its_quarantined_port_back():
    p = pool(quarantine=120)
    p.allocate(1, 7000, 0.0)
    port = p.allocate(2, 7000, 0.0)  # endpoint 2 got a random port
    p.free(port, 2, 1.0)
    assert p.allocate(2, 7000, 2.0) == port
    assert p.quarantine_fallbacks == 0


def test_zero_quarantine_frees_immediately():
    p = pool(port_range=(2000, 2000), quarantine=0)
    p.allocate(1, 2000, 0.0)
    p.free(2000, 1, 1.0)
    assert p.state(2000) == FREE
    assert p.allocate(2, 2000, 1.0) == 2000


def test_reserve_keeps_port_from_allocator_and_release_quarantines():
    p = pool(port_range=(2000, 2001), quarantine=10)
    assert p.reserve(2000) and p.reserve(2000)  # idempotent
    assert p.state(2000) == RESERVED and p.reserved == 1
    assert p.allocate(1, 2000, 0.0) == 2001
    assert p.allocate(2, 2000, 0.0) is None
    assert p.release(2000, 5.0) and not p.release(2000, 5.0)
    assert p.state(2000) == QUARANTINED
    assert p.allocate(3, 2000, 16.0) == 2000


def test_reserve_refuses_port_in_use_and_claim_refuses_reserved():
    p = pool()
    p.allocate(1, 5000, 0.0)
    assert not p.reserve(5000)
    p.reserve(6000)
    assert not p.claim(6000) and not p.claim(5000)


def test_claim_takes_free_quarantined_and_out_of_range_ports():
    p = pool(port_range=(2000, 2001))
    assert p.claim(2000) and p.state(2000) == USED
    p.free(2000, 1, 0.0)
    assert p.claim(2000) and p.quarantined == 0
    assert p.claim(50000) and p.in_use == 2  # out of every range (a restored or forwarded port)
    p.free(50000, 5, 0.0)
    assert p.state(50000) == FREE and p.in_use == 1
    assert not p.allocatable(50000)


def test_icmp_pool_uses_the_full_identifier_range_without_classes():
    config = ConntrackConfig(external_ip="192.0.2.1", preserve_parity=True)
    p = PortPool.for_protocol(config, 1, random.Random(1))
    assert p.allocate(1, 0, 0.0) == 0
    assert p.allocate(2, 7, 0.0) == 7
    assert p.allocate(3, 7, 0.0) not in (None, 7)


def test_quarantine_holds_until_its_last_moment():
    p = pool(port_range=(2000, 2001), quarantine=120)
    p.allocate(1, 2000, 0.0)
    p.allocate(2, 2001, 0.0)
    p.free(2000, 1, 10.0)
    assert p.allocate(3, 2000, 129.999) == 2000 and p.quarantine_fallbacks == 1, \
        "only as a fallback, with nothing else free"
    p.free(2000, 3, 200.0)
    p.free(2001, 2, 200.0)
    assert p.allocate(4, 5000, 319.9) in (2000, 2001) and p.quarantine_fallbacks == 2
    assert p.allocate(5, 5000, 320.0) in (2000, 2001) and p.quarantine_fallbacks == 2
