"""Port forwards (DNAT) by packet fate: a remote reaches an inside server
through the NAT address, and an inside host that never answers leaves no
session behind."""
from __future__ import annotations

from types import SimpleNamespace

from ryu.lib.packet import arp, ethernet, packet

from helpers import frames
from helpers.fake_switch import Wire
from helpers.nat_config import make_config
from helpers.nat_lab import (GW_MAC, NAT_IP, PORTS, S1, SYN, ACK, TCP, UPLINK, arp_reply,
                             ip_frame, in_frame, look, nat)
from ryu_app.nat.gateway import Gateway

H3 = SimpleNamespace(mac="00:00:00:00:00:03", ip="10.0.0.13", port=4)


def forward_lab() -> Wire:
    lab = Wire(Gateway(make_config(forwards="tcp:8080=10.0.0.13:80")))
    lab.connect({**PORTS, "s1-eth4": H3.port})
    lab.answer(UPLINK, arp_reply(S1), S1.ip)   # the gateway knows S1 already
    return lab


def arp_asks_for(out: list, ip: str) -> list[int]:
    """The ports an ARP request of the gateway for ``ip`` went out of."""
    ports = []
    for port, frame in out:
        pkt = packet.Packet(frame)
        req = pkt.get_protocol(arp.arp)
        if req is not None and req.opcode == arp.ARP_REQUEST and req.dst_ip == ip:
            assert pkt.get_protocol(ethernet.ethernet).src == GW_MAC
            ports.append(port)
    return ports


def test_a_forward_reaches_a_host_that_never_spoke_and_its_reply_leaves_natted():
    lab = forward_lab()
    out = lab.send(UPLINK, in_frame(S1, 40000, 8080, proto=TCP, bits=SYN, payload=b""))
    assert sorted(arp_asks_for(out, H3.ip)) == [2, 3, 4], "every inside port, not the uplink"
    [(port, frame)] = lab.send(H3.port, frames.arp_reply(H3.mac, H3.ip, GW_MAC, "10.0.0.1"))
    seen = look(frame)
    assert port == H3.port and seen.flow == (S1.ip, 40000, H3.ip, 80)
    [(port, frame)] = lab.send(H3.port, ip_frame(H3.mac, H3.ip, 80, S1.ip, 40000, proto=TCP,
                                                 bits=SYN | ACK, payload=b""))
    assert port == UPLINK and look(frame).flow == (NAT_IP, 8080, S1.ip, 40000)
    [s] = nat(lab).ct.sessions()
    assert s.inbound_initiated and s.external_port == 8080


def test_an_inside_host_that_never_answers_leaves_no_session():
    lab = forward_lab()
    lab.send(UPLINK, in_frame(S1, 40000, 8080, proto=TCP, bits=SYN, payload=b""))
    assert len(nat(lab).ct) == 1
    lab.advance(5)                                   # three ARP tries, one second apart
    assert len(nat(lab).ct) == 0
    assert lab.gateway.counters.drops["inside_host_unresolved"] == 1
    assert nat(lab).ct.mapping_of_port(TCP, 8080) is not None, "the forward itself stays"
    late = lab.send(UPLINK, in_frame(S1, 40000, 8080, proto=TCP, bits=ACK, payload=b""))
    assert late == [] and len(nat(lab).ct) == 0, "no session from a non-SYN"
