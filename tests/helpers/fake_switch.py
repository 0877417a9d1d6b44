"""A small fake OpenFlow 1.3 switch for unit tests that check packet fate.

It applies the flow-mods our code builds (add, delete with cookie masks),
keeps priorities, and answers "what happens to this frame arriving on this
port": which flow matches and where its output goes.  Matching covers the
fields ryu-snat uses; frames are parsed with ``ryu.lib.packet``.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ryu.lib.packet import arp, ethernet, icmp, ipv4, packet, tcp, udp
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser


def frame_fields(in_port: int, data: bytes) -> dict[str, Any]:
    """The OXM fields of a frame, as OFPMatch names them."""
    pkt = packet.Packet(data)
    eth = pkt.get_protocol(ethernet.ethernet)
    fields: dict[str, Any] = {"in_port": in_port, "eth_src": eth.src, "eth_dst": eth.dst,
                              "eth_type": eth.ethertype}
    if (a := pkt.get_protocol(arp.arp)) is not None:
        fields.update(arp_op=a.opcode, arp_spa=a.src_ip, arp_tpa=a.dst_ip,
                      arp_sha=a.src_mac, arp_tha=a.dst_mac)
    if (ip := pkt.get_protocol(ipv4.ipv4)) is not None:
        fields.update(ipv4_src=ip.src, ipv4_dst=ip.dst, ip_proto=ip.proto)
        if (t := pkt.get_protocol(tcp.tcp)) is not None:
            fields.update(tcp_src=t.src_port, tcp_dst=t.dst_port, tcp_flags=t.bits)
        if (u := pkt.get_protocol(udp.udp)) is not None:
            fields.update(udp_src=u.src_port, udp_dst=u.dst_port)
        if (i := pkt.get_protocol(icmp.icmp)) is not None:
            fields.update(icmpv4_type=i.type, icmpv4_code=i.code)
    return fields


def _field_matches(name: str, want: Any, have: Any) -> bool:
    if isinstance(want, tuple):          # masked field (value, mask)
        value, mask = want
        if name.startswith(("ipv4_", "arp_spa", "arp_tpa")):
            v, m, h = (int(ipaddress.IPv4Address(x)) for x in (value, mask, have))
            return v & m == h & m
        return int(value) & int(mask) == int(have) & int(mask)
    return want == have


@dataclass
class Flow:
    cookie: int
    priority: int
    match: dict[str, Any]
    actions: list
    idle_timeout: int = 0
    flags: int = 0
    packets: int = 0

    def matches(self, fields: dict[str, Any]) -> bool:
        return all(name in fields and _field_matches(name, want, fields[name])
                   for name, want in self.match.items())


@dataclass
class FakeSwitch:
    """One table; records every message it is sent."""

    dpid: int = 1
    flows: list[Flow] = field(default_factory=list)
    sent: list = field(default_factory=list)

    def apply(self, msgs: list) -> None:
        for msg in msgs:
            self.sent.append(msg)
            if isinstance(msg, parser.OFPFlowMod):
                self._flow_mod(msg)

    def _flow_mod(self, msg: parser.OFPFlowMod) -> None:
        match = dict(msg.match.items())
        if msg.command == ofp.OFPFC_ADD:
            actions = [a for inst in msg.instructions for a in getattr(inst, "actions", [])]
            self.flows = [f for f in self.flows
                          if not (f.priority == msg.priority and f.match == match)]
            self.flows.append(Flow(msg.cookie, msg.priority, match, actions,
                                   msg.idle_timeout, msg.flags))
        elif msg.command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            def doomed(f: Flow) -> bool:
                if f.cookie & msg.cookie_mask != msg.cookie & msg.cookie_mask:
                    return False
                if msg.command == ofp.OFPFC_DELETE_STRICT:
                    return f.priority == msg.priority and f.match == match
                return all(f.match.get(k) == v for k, v in match.items())
            self.flows = [f for f in self.flows if not doomed(f)]
        else:
            raise NotImplementedError(f"flow-mod command {msg.command}")

    def lookup(self, in_port: int, data: bytes) -> Flow | None:
        """The highest-priority flow a frame hits (OpenFlow's table lookup)."""
        fields = frame_fields(in_port, data)
        hits = [f for f in self.flows if f.matches(fields)]
        if not hits:
            return None
        best = max(hits, key=lambda f: f.priority)
        best.packets += 1
        return best

    def outputs(self, in_port: int, data: bytes) -> list[int]:
        """Ports (or reserved ports such as OFPP_CONTROLLER) a frame goes to."""
        flow = self.lookup(in_port, data)
        if flow is None:
            return []
        return [a.port for a in flow.actions if isinstance(a, parser.OFPActionOutput)]

    def packet_outs(self) -> list[tuple[int, bytes]]:
        """(out_port, frame) of every packet-out sent so far."""
        return [(a.port, bytes(m.data)) for m in self.sent
                if isinstance(m, parser.OFPPacketOut)
                for a in m.actions if isinstance(a, parser.OFPActionOutput)]
