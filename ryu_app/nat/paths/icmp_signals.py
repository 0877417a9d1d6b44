"""ICMP the gateway speaks itself, or translates, as a router hop must.

* Time Exceeded from the inside gateway address for packets whose TTL would
  expire here (traceroute's first hop).
* Destination Unreachable 3/13 (administratively prohibited) when a session
  cannot be made, so the application fails fast (RFC 5508 REQ-8).
* ICMP errors from outside about a session, translated back to the inside
  host, and inside hosts' errors about what reached them through the NAT,
  translated for the remote, or for another inside host when the packet was
  hairpinned (RFC 5508 REQ-4/5/7/10; :mod:`ryu_app.packets.icmp_errors`).

The gateway's own errors are rate-limited per inside host (10/s, bursts of
20) and in all (100/s): they must never become a flood themselves, and one
busy host cannot use up the others' notices.
"""
from __future__ import annotations

from ryu.lib import addrconv
from ryu.lib.packet import ethernet

from conntrack import INBOUND, OUTBOUND, ConnTrack
from ryu_app.limits.ratelimit import PerKeyBuckets
from ryu_app.nat.counters import GatewayCounters
from ryu_app.nat.flow_book import FlowBook
from ryu_app.nat.inside import InsideSide
from ryu_app.nat.source_guard import Bindings
from ryu_app.nat.uplink import Uplink
from ryu_app.openflow import flows
from ryu_app.packets import replies
from ryu_app.packets.icmp_errors import translate_inbound_error, translate_outbound_error
from ryu_app.packets.packet_info import PacketInfo

ADMIN_PROHIBITED = 13   # ICMP 3/13: communication administratively prohibited


class IcmpSignals:
    """ICMP errors of one switch, sent and translated."""

    def __init__(self, ct: ConnTrack, book: FlowBook, hosts: Bindings, inside: InsideSide,
                 uplink: Uplink, counters: GatewayCounters, rate: float = 10,
                 burst: float = 20, total_rate: float = 100, total_burst: float = 200) -> None:
        self.ct, self.book, self.hosts = ct, book, hosts
        self.inside, self.uplink, self.counters = inside, uplink, counters
        self.drop = counters.dropped
        self.buckets = PerKeyBuckets(rate, burst, total_rate, total_burst)

    def _allowed(self, in_port: int, eth_src: str, now: float) -> bool:
        """May the gateway answer the inside host that sent a packet now?
        The budget is the sender's port and MAC, not the address it claims:
        a packet forged in another's name cannot spend that host's share."""
        if self.buckets.take((in_port, eth_src), now):
            return True
        self.counters.drop("icmp_error_rate_limited")
        return False

    def ttl_expired(self, in_port: int, eth_src: str, data: bytes, now: float) -> list:
        """ICMP 11/0 from the inside gateway address: we are a router hop."""
        self.drop("ttl_expired")
        if not self._allowed(in_port, eth_src, now):
            return []
        frame = replies.time_exceeded(ethernet.ethernet(src=eth_src), data[14:],
                                      self.inside.gateway_mac, self.inside.gateway_ip)
        return [flows.packet_out(in_port, frame)]

    def prohibited(self, in_port: int, eth_src: str, data: bytes, now: float) -> list:
        """ICMP 3/13 to an inside host whose new session was refused."""
        if not self._allowed(in_port, eth_src, now):
            return []
        frame = replies.dest_unreachable(ethernet.ethernet(src=eth_src), data[14:],
                                         ADMIN_PROHIBITED, self.inside.gateway_mac,
                                         self.inside.gateway_ip)
        return [flows.packet_out(in_port, frame)]

    def inbound_error(self, data: bytes, nat_ip: str) -> list:
        """An ICMP error to ``nat_ip`` (a pool address) about one of our
        sessions: revert the outer destination and the quoted packet, deliver
        it.  The lookup changes nothing: an error never refreshes or ends a
        session (RFC 5508 REQ-6)."""
        ct, hosts = self.ct, self.hosts
        result = translate_inbound_error(
            data, nat_ip=nat_ip, gateway_mac=self.uplink.gateway_mac,
            lookup=lambda proto, rip, rport, eip, eport:
                ct.lookup_embedded(INBOUND, proto, eip, eport, rip, rport),
            host_of=lambda ip: (h.mac, h.port) if (h := hosts.get(ip)) else None)
        if isinstance(result, str):
            return self.drop(result)
        frame, port = result
        self.counters.icmp_errors_translated += 1
        return [flows.packet_out(port, frame)]

    def outbound_error(self, in_port: int, eth_src: str, info: PacketInfo, data: bytes,
                       now: float) -> list:
        """An inside host's ICMP error about a packet that came in through the
        NAT (a forward, an inbound session, a hairpin): revert the quote and
        the outer source, send it to the remote, or (hairpinned) on to the
        inside host behind the other mapping.  Nothing is refreshed."""
        ct, up = self.ct, self.uplink
        host = self.hosts.get(info.src)
        if host is None or (host.mac, host.port) != (eth_src, in_port):
            return self.drop("spoofed_source")    # errors could abort others' sessions
        result = translate_outbound_error(
            data,
            lookup=lambda proto, iip, iport, rip, rport:
                ct.lookup_embedded(OUTBOUND, proto, rip, rport, iip, iport))
        if isinstance(result, str):
            return self.drop(result)
        frame, session = result
        if info.dst in up.addresses:              # hairpinned: in again, to the other host
            return self.inbound_error(bytes(frame), info.dst)
        mac = self.book.next_hop_mac(session, now)
        if mac is None:
            return self.drop("next_hop_unresolved")
        frame[0:6] = addrconv.mac.text_to_bin(mac)
        frame[6:12] = addrconv.mac.text_to_bin(up.gateway_mac)
        self.counters.icmp_errors_translated += 1
        return [flows.packet_out(up.port, bytes(frame))]
