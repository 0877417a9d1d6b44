"""Each host's share of the controller's time: packet-ins a second per source.

The switch's per-port meters (``flows.punt_meter``) bound what a port can
send up, but hosts behind one port (a LAN switch on an inside port) share
it.  Here each (port, source) pair gets its own token bucket, checked
before anything is parsed, so a flooding host's excess costs a dictionary
lookup and its neighbours keep their new sessions.  The source is the IPv4
source address, or the Ethernet source for anything else; keying on the
port too means a host cannot spend the budget of one on another port by
forging its address.
"""
from __future__ import annotations

from ryu_app.ratelimit import PerKeyBuckets

_IPV4 = b"\x08\x00"


class PuntBudget:
    """``rate`` packet-ins a second per source, ``burst`` at once; 0 = no budget."""

    def __init__(self, rate: int, burst: int, max_sources: int = 4096) -> None:
        self._buckets = PerKeyBuckets(rate, burst, max_keys=max_sources) if rate else None

    def admit(self, dpid: int, in_port: int, data: bytes, now: float) -> bool:
        """May this packet-in (a whole frame) be handled?"""
        if self._buckets is None:
            return True
        source = data[26:30] if data[12:14] == _IPV4 else data[6:12]
        return self._buckets.take((dpid, in_port, source), now)
