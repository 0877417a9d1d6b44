"""Packet-in metering: each switch port's packets for the controller pass an
OpenFlow meter of their own, so one flooding host cannot use up the others'
share (the fake switch runs the meters as token buckets in its own time)."""
from __future__ import annotations

import pytest
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from helpers.fake_switch import FakeSwitch, Wire
from helpers.nat_config import make_config
from helpers.frames import arp_request, echo_request
from helpers.nat_lab import (GW_MAC, H1, H2, NAT_IP, PORTS, S1, TCP, UPLINK, arp_reply,
                             in_frame, make_lab, nat, out_frame)
from ryu_app.settings import config
from ryu_app.openflow import flows
from ryu_app.nat.gateway import Gateway
from ryu_app.ops.views import ConnectionsView


def syn_flood(lab: Wire, host, count: int, first_sport: int = 20000) -> int:
    """``count`` SYNs to new 5-tuples from ``host``; how many reached the controller."""
    before = lab.packet_ins
    for i in range(count):
        lab.send(host.port, out_frame(host, first_sport + i, S1, 80, proto=TCP, payload=b""))
    return lab.packet_ins - before


def lab_with_next_hop(**overrides) -> Wire:
    lab = make_lab(**overrides)
    lab.answer(UPLINK, arp_reply(S1), S1.ip)
    return lab


def test_a_flooding_host_gets_its_burst_and_the_others_still_get_through():
    lab = lab_with_next_hop(packet_in_port_rate=100, packet_in_port_burst=50)
    assert syn_flood(lab, H2, 500) == 50, "h2's port: its burst, then the meter drops"
    assert syn_flood(lab, H1, 1, first_sport=40000) == 1
    assert nat(lab).ct.lookup_outbound(TCP, H1.ip, 40000, S1.ip, 80) is not None, \
        "h1's new connection got its mapping during h2's flood"
    meter = lab.switch.meters[H2.port]
    assert meter.dropped == 450
    lab.advance(1, poll=None)                    # a second later: h2 has its rate again
    assert syn_flood(lab, H2, 500, first_sport=30000) == 50


def test_without_meters_the_flood_reaches_the_controller():
    lab = lab_with_next_hop(packet_in_port_rate=0)
    assert syn_flood(lab, H2, 500) == 500
    assert lab.switch.meters == {}


def test_every_packet_in_path_is_metered_by_its_in_port():
    """Table-miss, ARP, ping, fragments and new flows all go through TABLE_PUNT."""
    lab = make_lab(packet_in_port_rate=100)
    punts = [f for f in lab.switch.flows if f.table_id == flows.TABLE_NAT
             and any(isinstance(a, parser.OFPActionOutput) and a.port == ofp.OFPP_CONTROLLER
                     for a in f.apply)]
    assert punts == [], "no TABLE_NAT rule sends to the controller itself"
    metered = {f.match["in_port"]: f.meter for f in lab.switch.flows
               if f.table_id == flows.TABLE_PUNT and f.meter is not None and "in_port" in f.match}
    assert metered == {p: p for p in PORTS.values()}, "one meter per port, the uplink's too"
    classes = {f.match["metadata"][0] & flows.ID_MASK: f.meter for f in lab.switch.flows
               if f.table_id == flows.TABLE_PUNT and "metadata" in f.match}
    assert classes == {c: flows.CLASS_METER_BASE + c for c in flows.UplinkClass}, \
        "and one per class of what the uplink sends up"


def test_a_flood_of_one_uplink_class_leaves_the_others_alone():
    """Pings of the NAT address far over their class's rate (25/s here):
    the next hop's ARP answer, in the same second, still reaches the
    controller, and so does a new inbound session to a forward."""
    lab = make_lab(packet_in_port_rate=100, forwards="udp:5300=10.0.0.11:53")
    lab.send(H1.port, arp_request(H1.mac, H1.ip, "10.0.0.1"))
    ins = lab.packet_ins
    for seq in range(200):
        lab.send(UPLINK, echo_request(S1.mac, GW_MAC, S1.ip, NAT_IP, seq=seq))
    assert lab.packet_ins - ins == 25, "the ICMP class's rate"
    [(port, _)] = lab.send(UPLINK, in_frame(S1, 4000, 5300))     # asks S1's MAC by ARP
    assert port == UPLINK
    [(port, _)] = lab.send(UPLINK, arp_reply(S1))                 # the answer gets through
    assert port == H1.port, "the held datagram went on to h1"


def test_default_burst_is_the_rate_and_bad_values_are_refused():
    assert make_config(packet_in_port_rate=300).admission.port_burst == 300
    cfg = make_config()
    assert (cfg.admission.port_rate, cfg.admission.host_rate) == (3000, 0), \
        "port meters near the controller's capacity; no hard limit per host"
    with pytest.raises(config.ConfigError, match="packet_in_port_rate"):
        make_config(packet_in_port_rate=-1)


def test_ports_that_come_and_go_get_and_lose_their_meter():
    lab = make_lab(packet_in_port_rate=100)
    lab.run(lab.gateway.ports_described(1, {**PORTS, "s1-eth4": 4}))
    assert 4 in lab.switch.meters
    lab.run(lab.gateway.ports_described(1, {"s1-eth1": UPLINK, "s1-eth2": H1.port}))
    assert set(lab.switch.meters) - {flows.CLASS_METER_BASE + c for c in flows.UplinkClass} \
        == {UPLINK, H1.port}
    assert not [f for f in lab.switch.flows if f.table_id == flows.TABLE_PUNT
                and f.match.get("in_port") in (H2.port, 4)]
    # h2's port has no meter now; the fallback still sends its packets up.
    assert syn_flood(lab, H2, 3) == 3


def test_a_reconnect_replaces_the_meters_left_on_the_switch():
    """OpenFlow refuses to add an existing meter (the fake switch asserts it)."""
    gateway, switch = Gateway(make_config(packet_in_port_rate=100)), FakeSwitch()
    for _ in range(2):
        gateway.switch_disconnected(switch.dpid)
        switch.apply(gateway.switch_connected(switch.dpid))
        switch.apply(gateway.ports_described(switch.dpid, PORTS))
    classes = {flows.CLASS_METER_BASE + c for c in flows.UplinkClass}
    assert set(switch.meters) == set(PORTS.values()) | classes
    assert len([f for f in switch.flows if f.table_id == flows.TABLE_PUNT]) == \
        len(PORTS) + 1 + len(classes)


def test_meter_drops_are_reported_by_port_name():
    lab = make_lab(packet_in_port_rate=100)
    lab.gateway.meter_stats(1, {H2.port: 450, UPLINK: 0, 99: 7})
    stats = ConnectionsView(lab.gateway).stats()
    assert stats["packet_ins_metered"] == {"s1-eth1": 0, "s1-eth2": 0, "s1-eth3": 450}




def test_a_ports_meter_takes_a_new_rate_never_above_the_option():
    lab = make_lab(packet_in_port_rate=100)
    lab.run(lab.gateway.punt_rates(1, {H2.port: 10, H1.port: 5000, 99: 7}))
    assert (lab.switch.meters[H2.port].rate, lab.switch.meters[H1.port].rate) == (10, 100)
    stats = ConnectionsView(lab.gateway).stats()
    assert stats["packet_in_meter_rates"] == {"s1-eth1": 100, "s1-eth2": 100, "s1-eth3": 10}
    assert syn_flood(lab, H2, 30) <= 11, "h2's port is held to its new rate"
