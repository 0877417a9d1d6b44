"""Port blocks per inside host (RFC 7422 s2, RFC 6888 REQ-4): a host's
mappings take ports from its own blocks only, a new block when they are
full up to a limit, a block released with its last mapping and kept from
other hosts by the quarantine; one block event each way."""

from __future__ import annotations

import pytest

from conntrack import ICMP, TCP, UDP, ConntrackConfig, Refused, RefuseReason
from conntrack.blocks import BlockPool

RANGE = (40000, 40063)   # 8 blocks of 8


@pytest.fixture
def blocks():
    got = []
    return got


def block_ct(make_ct, got, **kw):
    ct = make_ct(port_range=RANGE, port_block_size=8, port_blocks_per_host=2, **kw)
    ct.on_block = got.append
    return ct


def test_a_hosts_mappings_share_its_block(make_ct, blocks):
    ct = block_ct(make_ct, blocks)
    ports = [ct.create_outbound(UDP, "10.0.0.1", 5000 + i, "203.0.113.9", 53, now=0.0).external_port
             for i in range(8)]
    [(proto, address, first, last)] = ct.blocks_of("10.0.0.1")
    assert (proto, last - first + 1) == ("udp", 8) and (first - RANGE[0]) % 8 == 0
    assert sorted(ports) == list(range(first, last + 1)), "all eight from the one block"
    [event] = blocks
    assert (event.kind, event.protocol, event.first_port, event.last_port) == ("allocated", UDP, first, last)
    # A ninth mapping gets a second block; a third block is over the limit.
    ct.create_outbound(UDP, "10.0.0.1", 6000, "203.0.113.9", 53, now=0.0)
    assert len(ct.blocks_of("10.0.0.1")) == 2
    for i in range(7):
        ct.create_outbound(UDP, "10.0.0.1", 6001 + i, "203.0.113.9", 53, now=0.0)
    with pytest.raises(Refused) as refused:
        ct.create_outbound(UDP, "10.0.0.1", 7000, "203.0.113.9", 53, now=0.0)
    assert refused.value.reason is RefuseReason.BLOCK_QUOTA
    # Another host's ports come from its own blocks, never these.
    other = ct.create_outbound(UDP, "10.0.0.2", 5000, "203.0.113.9", 53, now=0.0)
    mine = {p for _, _, a, b in ct.blocks_of("10.0.0.1") for p in range(a, b + 1)}
    assert other.external_port not in mine


def test_eim_and_parity_hold_inside_a_block(make_ct, blocks):
    ct = block_ct(make_ct, blocks, preserve_parity=True, udp_filtering="endpoint-independent")
    a = ct.create_outbound(UDP, "10.0.0.1", 5001, "203.0.113.9", 53, now=0.0)
    b = ct.create_outbound(UDP, "10.0.0.1", 5001, "203.0.113.10", 53, now=0.0)
    assert a.external_port == b.external_port, "endpoint-independent mapping"
    assert a.external_port % 2 == 1
    even = ct.create_outbound(UDP, "10.0.0.1", 5002, "203.0.113.9", 53, now=0.0)
    assert even.external_port % 2 == 0
    s = ct.accept_inbound(UDP, "192.0.2.1", 9, str(a.external_ip), a.external_port, now=1.0)
    assert s.inside_port == 5001


def test_a_block_is_released_with_its_last_mapping_and_rests(make_ct, blocks):
    ct = block_ct(make_ct, blocks, quarantine=120)
    s = ct.create_outbound(TCP, "10.0.0.1", 5000, "203.0.113.9", 80, now=0.0)
    [(_, _, first, last)] = ct.blocks_of("10.0.0.1")
    ct.remove(s, now=10.0)
    assert ct.blocks_of("10.0.0.1") == []
    assert [(e.kind, e.first_port, e.time) for e in blocks] == [("allocated", first, 0.0), ("released", first, 10.0)]
    # Other hosts take every other block before this one is lent again.
    for n in range(2, 9):
        ct.create_outbound(TCP, f"10.0.0.{n}", 5000, "203.0.113.9", 80, now=20.0)
    taken = {ct.blocks_of(f"10.0.0.{n}")[0][2] for n in range(2, 9)}
    assert first not in taken and len(taken) == 7
    # The old owner gets its resting block back.
    again = ct.create_outbound(TCP, "10.0.0.1", 5001, "203.0.113.9", 80, now=30.0)
    assert first <= again.external_port <= last
    assert ct.stats().ports_quarantined["tcp"] == 0


def test_restore_rebuilds_blocks_and_refuses_another_hosts_block(make_ct, blocks):
    ct = block_ct(make_ct, blocks)
    s = ct.restore(5, UDP, "10.0.0.1", 5000, "198.51.100.1", 40010, "203.0.113.9", 53, created_at=3.0)
    assert ct.blocks_of("10.0.0.1") == [("udp", s.external_ip, 40008, 40015)]
    assert (blocks[0].kind, blocks[0].time) == ("restored", 3.0)
    new = ct.create_outbound(UDP, "10.0.0.1", 5001, "203.0.113.9", 53, now=4.0)
    assert 40008 <= new.external_port <= 40015
    with pytest.raises(Refused) as refused:
        spare = next(p for p in range(40008, 40016) if p not in (40010, new.external_port))
        ct.restore(60, UDP, "10.0.0.2", 5000, "198.51.100.1", spare, "203.0.113.9", 53, created_at=3.0)
    assert refused.value.reason is RefuseReason.PORT_IN_USE


def test_forwards_and_reservations_take_single_ports(make_ct, blocks):
    ct = block_ct(make_ct, blocks)
    fwd = ct.add_forward(TCP, 40000, "10.0.0.9", 80)
    ct.reserve(TCP, 40001)
    assert ct.blocks_of("10.0.0.9") == [] and fwd.external_port == 40000
    ports = set()
    for n in range(1, 9):
        for i in range(8):
            try:
                ports.add(ct.create_outbound(TCP, f"10.0.0.{n}", 5000 + i, "203.0.113.9", 80, now=0.0).external_port)
            except Refused:
                pass
    assert 40000 not in ports and 40001 not in ports
    # The host given block 0 has six ports there and needs a second block:
    # seven hosts get their eight, the eighth finds no block left.
    assert len(ports) == 7 * 8
    assert sorted(len(ct.blocks_of(f"10.0.0.{n}")) for n in range(1, 9)) == [0] + [1] * 6 + [2]


def test_blocks_for_icmp_ids_and_every_pool_address(make_ct, blocks):
    ct = block_ct(make_ct, blocks, external_pool=("198.51.100.2", "198.51.100.3"), icmp_id_range=(0, 63))
    a = ct.create_outbound(ICMP, "10.0.0.1", 7, "203.0.113.9", 0, now=0.0)
    b = ct.create_outbound(ICMP, "10.0.0.2", 7, "203.0.113.9", 0, now=0.0)
    assert a.external_ip != b.external_ip
    assert [e.external_ip for e in blocks] == [int(a.external_ip), int(b.external_ip)]
    assert {ev.protocol for ev in blocks} == {ICMP}


@pytest.mark.parametrize("bad", [{"port_block_size": -1}, {"port_block_size": 70000},
                                 {"port_block_size": 8, "port_blocks_per_host": 0}])
def test_bad_block_settings(bad):
    with pytest.raises(ValueError):
        ConntrackConfig(external_ip="198.51.100.1", **bad)


def test_a_block_with_no_usable_port_is_handed_back():
    pool = BlockPool(100, 103, 2, per_host=2, quarantine=0, parity=False)
    assert pool.claim(100) and pool.claim(101)      # forwards fill block 0
    ports = {pool.allocate((6 << 48) | (1 << 16) | 5000, 5000, 0.0) for _ in range(2)}
    assert ports == {102, 103}
