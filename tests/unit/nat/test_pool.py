"""Several NAT addresses (external_pool) on the fake switch: each inside host
on one pool address (paired), every pool address answered and routed back,
hairpin and adoption across the pool.  Judged as the far hosts see it."""
from __future__ import annotations

from ryu.lib.packet import arp, ethernet, packet

from helpers import frames
from helpers.fake_switch import Wire
from helpers.nat_config import make_config
from helpers.nat_lab import (
    GW_MAC, H1, H2, PORTS, S1, S2, SYN, TCP, UPLINK, ip_frame, look, make_lab, nat, open_flow,
)
from ryu_app.nat.gateway import Gateway

POOL = "198.51.100.2-198.51.100.3"
A, B = "198.51.100.2", "198.51.100.3"


def to_pool(server, sport: int, address: str, dport: int, **kw) -> bytes:
    return ip_frame(server.mac, server.ip, sport, address, dport, **kw)


def test_each_host_is_seen_on_one_pool_address_and_answers_come_back():
    lab = make_lab(external_pool=POOL)
    s1, seen1 = open_flow(lab, H1, 5000, S1, 53)
    s2, seen2 = open_flow(lab, H2, 5000, S1, 53)
    assert {seen1.flow[0], seen2.flow[0]} == {A, B}, "two hosts spread over the pool"
    again, seen = open_flow(lab, H1, 40000, S2, 80, TCP)
    assert seen.flow[0] == seen1.flow[0], "a host's second mapping is on its address (paired)"
    assert str(again.external_ip) == seen1.flow[0]
    # The server answers each host at its pool address: the switch alone brings it back.
    for host, s, seen_by_server in ((H1, s1, seen1), (H2, s2, seen2)):
        [(port, frame)] = lab.send(UPLINK, to_pool(S1, 53, seen_by_server.flow[0],
                                                   seen_by_server.flow[1], payload=b"reply"))
        assert port == host.port
        assert look(frame).flow == (S1.ip, 53, host.ip, 5000)
    # Unsolicited to a pool address: dropped in the switch, counted once summed.
    assert lab.send(UPLINK, to_pool(S2, 9, B, 7777)) == []
    assert lab.send(UPLINK, to_pool(S2, 9, A, 7777)) == []
    lab.poll_stats()
    assert nat(lab).switch_drops["unsolicited_drop"] == 2


def test_every_pool_address_is_answered_by_arp_and_ping():
    lab = make_lab(external_pool=POOL)
    for target in (A, B, "198.51.100.1"):
        out = lab.send(UPLINK, frames.arp_request(S1.mac, S1.ip, target))
        [(port, frame)] = out
        reply = packet.Packet(frame).get_protocol(arp.arp)
        assert (port, reply.opcode, reply.src_ip, reply.src_mac) == (UPLINK, arp.ARP_REPLY, target,
                                                                     GW_MAC)
        ping = frames.echo_request(S1.mac, GW_MAC, S1.ip, target, ident=7, seq=1)
        [(port, frame)] = lab.send(UPLINK, ping)
        assert port == UPLINK and packet.Packet(frame).get_protocol(ethernet.ethernet).dst == S1.mac
    assert lab.send(UPLINK, frames.arp_request(S1.mac, S1.ip, "198.51.100.4")) == []


def test_hairpin_between_hosts_on_different_pool_addresses():
    lab = make_lab(external_pool=POOL, udp_filtering="endpoint-independent")
    s2, seen2 = open_flow(lab, H2, 6000, S1, 53)
    s1, seen1 = open_flow(lab, H1, 5000, S1, 53)
    assert seen1.flow[0] != seen2.flow[0]
    # H1 sends to H2's public address and port: H2 gets it from H1's public one.
    out = lab.send(H1.port, ip_frame(H1.mac, H1.ip, 5000, seen2.flow[0], seen2.flow[1],
                                     payload=b"hairpin"))
    [(port, frame)] = [o for o in out if o[0] == H2.port]
    assert look(frame).flow == (seen1.flow[0], seen1.flow[1], H2.ip, 6000)


def test_a_forward_lives_on_its_hosts_address():
    lab = make_lab(external_pool=POOL, forwards="tcp:8080=10.0.0.12:80")
    fwd = nat(lab).ct.mapping_of_port(TCP, 8080, A)
    assert fwd is not None and str(fwd.inside_ip) == H2.ip
    _s2, seen2 = open_flow(lab, H2, 5000, S2, 53)      # the gateway learns S2's MAC too
    assert seen2.flow[0] == A, "the host a forward names is paired with the forward's address"
    out = lab.send(UPLINK, to_pool(S2, 1234, A, 8080, proto=TCP, bits=SYN))
    [(port, frame)] = [o for o in out if o[0] != UPLINK]
    assert port == H2.port and look(frame).flow == (S2.ip, 1234, H2.ip, 80)
    assert lab.send(UPLINK, to_pool(S2, 1234, B, 8080, proto=TCP, bits=SYN)) == []


def test_a_restarted_controller_adopts_sessions_on_every_pool_address():
    lab = make_lab(external_pool=POOL)
    s1, seen1 = open_flow(lab, H1, 5000, S1, 53)
    s2, seen2 = open_flow(lab, H2, 5000, S1, 53)
    again = Wire(Gateway(make_config(external_pool=POOL)), lab.switch, now=lab.now + 5)
    again.switch.now = again.now
    again.connect(PORTS)
    ct = nat(again).ct
    assert {(str(s.inside_ip), str(s.external_ip)) for s in ct.sessions()} == {
        (H1.ip, seen1.flow[0]), (H2.ip, seen2.flow[0])}
    assert again.gateway.counters.sessions_adopted == 2
    # New mappings keep each host on the address its adopted sessions use.
    new, seen = open_flow(again, H2, 7000, S2, 80, TCP)
    assert seen.flow[0] == seen2.flow[0]


def test_stats_show_each_pool_address():
    lab = make_lab(external_pool=POOL)
    open_flow(lab, H1, 5000, S1, 53)
    open_flow(lab, H1, 5001, S1, 53)
    usage = {str(a): (hosts, ports["udp"]) for a, hosts, ports in nat(lab).ct.pool_usage()}
    assert usage == {A: (1, 2), B: (0, 0)}


def test_the_pool_must_sit_in_the_external_prefix():
    import pytest
    from ryu_app.settings.errors import ConfigError
    for bad in ("198.51.101.2", "198.51.100.3-198.51.100.2", "198.51.100.2,198.51.100.2",
                "198.51.100.255", "bogus"):
        with pytest.raises(ConfigError) as err:
            make_config(external_pool=bad)
        assert "external_pool" in str(err.value)
