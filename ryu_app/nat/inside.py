"""The inside side of one switch: its ports, and asking for a host by ARP.

A packet for an inside host that has never spoken (a port forward's target,
a hairpin's other end) waits here while every inside port is asked.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ryu_app.nat.neighbors import NextHops
from ryu_app.nat.uplink import Held
from ryu_app.openflow import flows
from ryu_app.packets import replies


@dataclass
class InsideSide:
    gateway_mac: str
    gateway_ip: str                  # the inside gateway address, as text
    ports: set[int] = field(default_factory=set)       # every port but the uplink
    waiting: NextHops[Held] = field(default_factory=NextHops)

    def arp_request(self, ip: str) -> object:
        """Ask every inside port (never the uplink) who has ``ip``."""
        frame = replies.arp_request(self.gateway_mac, self.gateway_ip, ip)
        return flows.packet_out_ports(sorted(self.ports), frame)
