"""Sessions read back from the switch's flows after a controller restart.

The bridge runs fail-secure: while the controller is away the switch keeps
every session's forward and reverse flows, and those two flows hold the
whole mapping (cookie: kind and session id; forward match: protocol, inside
ip:port, remote ip:port; forward actions: external ip and port, next hop;
reverse actions: the inside host's MAC and switch port; idle timeout: the
TCP state class; duration: the age).  This module turns a flow-stats dump
into :class:`AdoptedSession` values and names the cookies of flows that
cannot be accounted for (half a pair, a pair that disagrees with itself,
ICMP, whose echo id lives only in the controller).  It takes Ryu's parsed
``OFPFlowStats`` and returns decisions; it knows no service or engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ryu.lib.packet import in_proto as inet

from ryu_app.flows import TABLE_NAT, CookieKind, SessionPath, parse_cookie

_L4 = {inet.IPPROTO_TCP: ("tcp_src", "tcp_dst"), inet.IPPROTO_UDP: ("udp_src", "udp_dst")}


@dataclass(frozen=True)
class FlowCounts:
    packets: int
    octets: int


@dataclass(frozen=True)
class AdoptedSession:
    """One session as its two flows tell it."""

    path: SessionPath
    age: float                  # seconds since the older flow went in
    counts: dict                # CookieKind -> FlowCounts of each live flow


@dataclass(frozen=True)
class _Flow:
    kind: CookieKind
    sid: int
    cookie: int
    match: Any
    fields: dict                # set-field key -> value, in action order
    output: int | None
    idle_timeout: int
    age: float
    counts: FlowCounts


def _actions(instructions: Iterable[Any]) -> tuple[dict, int | None]:
    """Set-fields and the output port of a session flow's instructions."""
    fields: dict = {}
    output = None
    for inst in instructions or ():
        for act in getattr(inst, "actions", None) or ():
            if hasattr(act, "key") and hasattr(act, "value"):
                fields[act.key] = act.value
            elif hasattr(act, "port"):
                output = act.port
    return fields, output


def _flow(stat: Any) -> _Flow | None:
    parsed = parse_cookie(stat.cookie)
    if parsed is None or parsed[0] not in (CookieKind.SESSION_OUT, CookieKind.SESSION_IN):
        return None
    fields, output = _actions(stat.instructions)
    return _Flow(parsed[0], parsed[1], stat.cookie, stat.match, fields, output,
                 stat.idle_timeout, stat.duration_sec + stat.duration_nsec / 1e9,
                 FlowCounts(stat.packet_count, stat.byte_count))


def _get(match: Any, key: str) -> Any:
    try:
        return match[key]
    except KeyError:
        return None


def _pair(fwd: _Flow, rev: _Flow, gateway_mac: str) -> AdoptedSession | None:
    """The session both flows describe, or None when they disagree."""
    fm, rm = fwd.match, rev.match
    protocol = _get(fm, "ip_proto")
    if protocol not in _L4 or _get(rm, "ip_proto") != protocol:
        return None      # ICMP: the echo id is not in the flows
    src, dst = _L4[protocol]
    inside_ip, remote_ip = _get(fm, "ipv4_src"), _get(fm, "ipv4_dst")
    inside_port, remote_port = _get(fm, src), _get(fm, dst)
    external_ip = fwd.fields.get("ipv4_src")
    external_port = fwd.fields.get(src, inside_port)
    path = SessionPath(
        session_id=fwd.sid, protocol=protocol, inside_ip=inside_ip, inside_port=inside_port,
        external_ip=external_ip, external_port=external_port, remote_ip=remote_ip,
        remote_port=remote_port, inside_mac=rev.fields.get("eth_dst"),
        inside_switch_port=rev.output, next_hop_mac=fwd.fields.get("eth_dst"),
        uplink=fwd.output, gateway_mac=gateway_mac, idle_timeout=fwd.idle_timeout)
    agrees = (
        None not in (inside_ip, remote_ip, inside_port, remote_port, external_ip,
                     path.inside_mac, path.inside_switch_port, path.next_hop_mac, path.uplink)
        and _get(rm, "ipv4_src") == remote_ip and _get(rm, "ipv4_dst") == external_ip
        and _get(rm, src) == remote_port and _get(rm, dst) == external_port
        and _get(rm, "in_port") == path.uplink
        and rev.fields.get("ipv4_dst") == inside_ip
        and rev.fields.get(dst, inside_port) == inside_port
        and fwd.fields.get("eth_src") == gateway_mac == rev.fields.get("eth_src"))
    if not agrees:
        return None
    return AdoptedSession(path, max(fwd.age, rev.age),
                          {CookieKind.SESSION_OUT: fwd.counts, CookieKind.SESSION_IN: rev.counts})


def read_sessions(stats: Iterable[Any], gateway_mac: str) -> tuple[list[AdoptedSession], list[int]]:
    """(sessions to adopt, cookies of session flows to delete) of a dump.

    Only TABLE_NAT flows with our session cookies are looked at; the rest
    (infrastructure, probes, foreign flows) are not this module's business.
    """
    by_sid: dict[int, dict[CookieKind, _Flow]] = {}
    discard: list[int] = []
    for stat in stats:
        if getattr(stat, "table_id", TABLE_NAT) != TABLE_NAT:
            continue
        flow = _flow(stat)
        if flow is None:
            continue
        both = by_sid.setdefault(flow.sid, {})
        if flow.kind in both:            # two flows of one kind: neither can be trusted
            discard.append(flow.cookie)
            continue
        both[flow.kind] = flow
    sessions: list[AdoptedSession] = []
    for both in by_sid.values():
        fwd, rev = both.get(CookieKind.SESSION_OUT), both.get(CookieKind.SESSION_IN)
        adopted = _pair(fwd, rev, gateway_mac) if fwd and rev else None
        if adopted is None:
            discard += [f.cookie for f in both.values()]
        else:
            sessions.append(adopted)
    return sessions, sorted(set(discard))
