"""Connection tracking and port allocation for the ryu-snat gateway.

Pure logic: no Ryu, no I/O; time is an argument (or an injected clock). The
Ryu app turns the decisions into OpenFlow. Typical use::

    ct = ConnTrack(ConntrackConfig(external_ip="198.51.100.1"), on_event=hook)
    s = ct.lookup_outbound(TCP, src, sport, dst, dport)
    if s is None:
        s = ct.create_outbound(TCP, src, sport, dst, dport, now, tcp_flags)  # may raise Refused
        install flows with cookie s.id, idle_timeout s.timeout, rewrite to s.external_port
    new_timeout = ct.observe(s, OUTBOUND, tcp_flags, now)  # TCP flags seen by the app
    ct.set_counters(s.id, pkts_out, bytes_out, pkts_in, bytes_in, now)  # from flow stats
    for dead in ct.expire(now): delete flows with cookie dead.id

See docs/conntrack.md for the full API and the RFC rules each part implements.
"""

from .config import ConntrackConfig, Filtering
from .events import BlockEvent, BlockEventHook, Event, EventHook, EventKind, Refused, RefuseReason, Stats
from .keys import ICMP, INBOUND, OUTBOUND, PROTOCOLS, TCP, UDP, Direction, FiveTuple, TcpFlags, ip_to_int
from .session import Mapping, Session
from .states import State
from .table import MAX_SESSION_ID, ConnTrack

__all__ = [
    "BlockEvent",
    "BlockEventHook",
    "ConnTrack",
    "ConntrackConfig",
    "Direction",
    "Event",
    "EventHook",
    "EventKind",
    "Filtering",
    "FiveTuple",
    "ICMP",
    "INBOUND",
    "MAX_SESSION_ID",
    "Mapping",
    "OUTBOUND",
    "PROTOCOLS",
    "Refused",
    "RefuseReason",
    "Session",
    "State",
    "Stats",
    "TCP",
    "TcpFlags",
    "UDP",
    "ip_to_int",
]
