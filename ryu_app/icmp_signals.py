"""ICMP the gateway speaks itself, or translates, as a router hop must.

* Time Exceeded from the inside gateway address for packets whose TTL would
  expire here (traceroute's first hop).
* Destination Unreachable 3/13 (administratively prohibited) when a session
  cannot be made, so the application fails fast (RFC 5508 REQ-8).
* ICMP errors from outside about a session, translated back to the inside
  host (RFC 5508 REQ-4/5/10; :mod:`ryu_app.icmp_errors`).

The gateway's own errors share one token bucket: they must never become a
flood themselves.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ryu.lib.packet import ethernet

from conntrack import INBOUND
from ryu_app import flows, replies
from ryu_app.icmp_errors import translate_inbound_error
from ryu_app.ratelimit import TokenBucket

if TYPE_CHECKING:
    from ryu_app.nat_service import NatService

ADMIN_PROHIBITED = 13   # ICMP 3/13: communication administratively prohibited


class IcmpSignals:
    """ICMP errors of one NatService, sent and translated."""

    def __init__(self, nat: "NatService", rate: float = 10, burst: float = 20) -> None:
        self.nat = nat
        self.bucket = TokenBucket(rate=rate, burst=burst)

    def _allowed(self, now: float) -> bool:
        if self.bucket.take(now):
            return True
        self.nat.counters.drop("icmp_error_rate_limited")
        return False

    def ttl_expired(self, in_port: int, eth_src: str, data: bytes, now: float) -> list:
        """ICMP 11/0 from the inside gateway address: we are a router hop."""
        self.nat._drop("ttl_expired")
        if not self._allowed(now):
            return []
        cfg = self.nat.config
        frame = replies.time_exceeded(ethernet.ethernet(src=eth_src), data[14:],
                                      cfg.gateway_mac, str(cfg.internal_gateway_ip))
        return [flows.packet_out(in_port, frame)]

    def prohibited(self, in_port: int, eth_src: str, data: bytes, now: float) -> list:
        """ICMP 3/13 to an inside host whose new session was refused."""
        if not self._allowed(now):
            return []
        cfg = self.nat.config
        frame = replies.dest_unreachable(ethernet.ethernet(src=eth_src), data[14:],
                                         ADMIN_PROHIBITED, cfg.gateway_mac,
                                         str(cfg.internal_gateway_ip))
        return [flows.packet_out(in_port, frame)]

    def inbound_error(self, data: bytes) -> list:
        """An ICMP error about one of our sessions: revert the outer destination
        and the quoted packet, deliver it.  The lookup changes nothing: an
        error never refreshes or ends a session (RFC 5508 REQ-6)."""
        nat = self.nat
        result = translate_inbound_error(
            data, nat_ip=nat._external, gateway_mac=nat.config.gateway_mac,
            lookup=lambda proto, rip, rport, eip, eport:
                nat.ct.lookup_embedded(INBOUND, proto, eip, eport, rip, rport),
            host_of=lambda ip: (h.mac, h.port) if (h := nat.hosts.get(ip)) else None)
        if isinstance(result, str):
            return nat._drop(result)
        frame, port = result
        nat.counters.icmp_errors_translated += 1
        return [flows.packet_out(port, frame)]
