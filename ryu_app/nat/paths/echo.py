"""ICMP echo through the NAT, translated in the controller.

OpenFlow 1.3 can neither match nor rewrite an ICMP echo identifier, so no
echo flow can tell two sessions apart:

* a forward flow per (inside host, remote) would also carry requests of a
  new ping (another identifier) from that host, which then never reach the
  controller, so they never get a session and their replies are dropped;
* a reverse flow per remote cannot tell two inside hosts' replies apart, and
  removing it when a second host starts pinging races with the datapath's flow
  cache (we measured a reply or two reaching the wrong host).

So both directions are translated here: requests through the gateway's "new
inside flow" rule, replies through its ICMP rule for the NAT address.  The
engine keeps the inside identifier whenever no other inside host holds it
(RFC 5508 REQ-1, endpoint-independent); when two hosts use the same one, the
second gets another.  Echo traffic is light; hostile floods are bounded by the
controller's packet-in handling.  Echo sessions end by the engine's timer.
"""
from __future__ import annotations

from conntrack import ICMP, INBOUND, OUTBOUND, ConnTrack, Session
from ryu_app.nat.counters import Drop
from ryu_app.nat.source_guard import Bindings
from ryu_app.nat.uplink import Uplink
from ryu_app.openflow import flows
from ryu_app.packets.packet_info import PacketInfo
from ryu_app.packets.rewrite import rewrite_echo


class EchoPaths:
    """Translates echo requests and replies in the controller."""

    def __init__(self, ct: ConnTrack, hosts: Bindings, uplink: Uplink, drop: Drop) -> None:
        self.ct, self.hosts, self.uplink, self.drop = ct, hosts, uplink, drop

    def outbound(self, session: Session, next_hop_mac: str, data: bytes, now: float) -> list:
        """An echo request of ``session``: rewrite source and identifier, send on."""
        frame = rewrite_echo(data, eth_src=self.uplink.gateway_mac, eth_dst=next_hop_mac,
                             ident=session.external_port, ip_src=str(session.external_ip))
        if frame is None:
            return self.drop("malformed")
        self._count(session, OUTBOUND, len(frame), now)
        return [flows.packet_out(self.uplink.port, frame)]

    def inbound(self, info: PacketInfo, data: bytes, now: float) -> list:
        """An echo reply to the NAT address: deliver it to its inside host."""
        session = self.ct.lookup_inbound(ICMP, info.src, 0, info.dst, info.dport)
        if session is None:
            return self.drop("unsolicited_icmp")
        host = self.hosts.get(str(session.inside_ip))
        if host is None:
            return self.drop("inbound_unresolved")
        frame = rewrite_echo(data, eth_src=self.uplink.gateway_mac, eth_dst=host.mac,
                             ident=session.inside_port, ip_dst=str(session.inside_ip))
        if frame is None:
            return self.drop("malformed")
        self._count(session, INBOUND, len(frame), now)
        return [flows.packet_out(host.port, frame)]

    def _count(self, session: Session, direction: int, size: int, now: float) -> None:
        """Count a packet translated here and refresh the session."""
        out, back = (1, 0) if direction == OUTBOUND else (0, 1)
        self.ct.set_counters(session.id, session.packets_out + out,
                             session.bytes_out + size * out, session.packets_in + back,
                             session.bytes_in + size * back, now=now)
