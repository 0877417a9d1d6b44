"""Sessions read back from the switch's flows after a controller restart.

The bridge runs fail-secure: while the controller is away the switch keeps
every session's forward and reverse flows, and those two flows hold the
whole mapping (cookie: kind and session id; forward match: protocol, inside
ip:port, remote ip:port; forward actions: external ip and port, next hop;
reverse actions: the inside host's MAC and switch port; idle timeout: the
TCP state class; duration: the age).  This module turns a flow-stats dump
into :class:`AdoptedSession` values and names the cookies of flows that
cannot be accounted for (half a pair, a pair that disagrees with itself,
ICMP, whose echo id lives only in the controller).  A hairpinned session
(``ryu_app.nat.paths.hairpin``) has one flow, which rewrites both ends and goes back
inside; it is adopted with the hairpinned session of the other inside host,
whose flow carries its replies and names its host's MAC and port.  It takes Ryu's parsed
``OFPFlowStats`` and returns decisions; it knows no service or engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_app.openflow.flows import L4_MATCH_FIELDS, TABLE_NAT, CookieKind, SessionFlowSpec, parse_cookie


@dataclass(frozen=True)
class FlowCounts:
    packets: int
    octets: int


@dataclass(frozen=True)
class HairpinFlow:
    """What a hairpinned session's one flow adds to its flow spec."""

    actions: list               # the flow's actions, as the switch holds them
    peer: int                   # the other inside host's hairpinned session
    peer_packets: int           # packets the peer's flow carried: this one's replies


@dataclass(frozen=True)
class AdoptedSession:
    """One session as its two flows tell it (or a hairpinned pair's flows)."""

    spec: SessionFlowSpec           # uplink None for a hairpinned session
    age: float                  # seconds since the older flow went in
    counts: dict                # CookieKind -> FlowCounts of each live flow
    hairpin: HairpinFlow | None = None
    idle: dict | None = None    # CookieKind -> idle timeout of each live flow
    # The forward flow matches the host's port and MAC (flows of versions
    # before the source guard do not, and are replaced).
    bound: bool = True


def _bound(match: Any) -> bool:
    return _get(match, "in_port") is not None and _get(match, "eth_src") is not None


@dataclass(frozen=True)
class _Flow:
    kind: CookieKind
    sid: int
    cookie: int
    match: Any
    fields: dict                # set-field key -> value, in action order
    actions: list               # the actions themselves, in order
    output: int | None
    idle_timeout: int
    age: float
    counts: FlowCounts
    closing_timeout: int        # its fin_timeout's (0: none, an earlier version's flow)


def _actions(instructions: Iterable[Any]) -> tuple[dict, list, int | None]:
    """Set-fields, all actions and the output port of a session flow's instructions."""
    fields: dict = {}
    actions: list = []
    output = None
    for inst in instructions or ():
        for act in getattr(inst, "actions", None) or ():
            actions.append(act)
            if hasattr(act, "key") and hasattr(act, "value"):
                fields[act.key] = act.value
            elif hasattr(act, "port"):
                output = act.port
    return fields, actions, output


def _flow(stat: Any) -> _Flow | None:
    parsed = parse_cookie(stat.cookie)
    if parsed is None or parsed[0] not in (CookieKind.SESSION_OUT, CookieKind.SESSION_IN):
        return None
    fields, actions, output = _actions(stat.instructions)
    closing = next((a.fin_idle_timeout for a in actions
                    if isinstance(a, parser.NXActionFinTimeout)), 0)
    actions = [a for a in actions if not isinstance(a, parser.NXActionFinTimeout)]
    return _Flow(parsed[0], parsed[1], stat.cookie, stat.match, fields, actions, output,
                 stat.idle_timeout, stat.duration_sec + stat.duration_nsec / 1e9,
                 FlowCounts(stat.packet_count, stat.byte_count), closing)


def _get(match: Any, key: str) -> Any:
    try:
        return match[key]
    except KeyError:
        return None


def _pair(fwd: _Flow, rev: _Flow, gateway_mac: str) -> AdoptedSession | None:
    """The session both flows describe, or None when they disagree."""
    fm, rm = fwd.match, rev.match
    protocol = _get(fm, "ip_proto")
    if protocol not in L4_MATCH_FIELDS or _get(rm, "ip_proto") != protocol:
        return None      # ICMP: the echo id is not in the flows
    src, dst = L4_MATCH_FIELDS[protocol]
    inside_ip, remote_ip = _get(fm, "ipv4_src"), _get(fm, "ipv4_dst")
    inside_port, remote_port = _get(fm, src), _get(fm, dst)
    external_ip = fwd.fields.get("ipv4_src")
    external_port = fwd.fields.get(src, inside_port)
    inside_mac, next_hop_mac = rev.fields.get("eth_dst"), fwd.fields.get("eth_dst")
    inside_switch_port, uplink = rev.output, fwd.output
    if (None in (inside_ip, remote_ip, inside_port, remote_port) or external_ip is None
            or inside_mac is None or inside_switch_port is None or next_hop_mac is None
            or uplink is None):
        return None
    agrees = (
        _get(rm, "ipv4_src") == remote_ip and _get(rm, "ipv4_dst") == external_ip
        and _get(rm, src) == remote_port and _get(rm, dst) == external_port
        and _get(rm, "in_port") == uplink
        and rev.fields.get("ipv4_dst") == inside_ip
        and rev.fields.get(dst, inside_port) == inside_port
        and fwd.fields.get("eth_src") == gateway_mac == rev.fields.get("eth_src"))
    if not agrees:
        return None
    spec = SessionFlowSpec(
        session_id=fwd.sid, protocol=protocol, inside_ip=inside_ip, inside_port=inside_port,
        external_ip=external_ip, external_port=external_port, remote_ip=remote_ip,
        remote_port=remote_port, inside_mac=inside_mac,
        inside_switch_port=inside_switch_port, next_hop_mac=next_hop_mac,
        uplink=uplink, gateway_mac=gateway_mac,
        idle_timeout=max(fwd.idle_timeout, rev.idle_timeout), closing_timeout=fwd.closing_timeout)
    return AdoptedSession(spec, max(fwd.age, rev.age),
                          {CookieKind.SESSION_OUT: fwd.counts, CookieKind.SESSION_IN: rev.counts},
                          idle={CookieKind.SESSION_OUT: fwd.idle_timeout,
                                CookieKind.SESSION_IN: rev.idle_timeout},
                          bound=_bound(fm))


def _ends(flow: _Flow) -> tuple | None:
    """(protocol, source endpoint, destination endpoint it is rewritten to)
    of a hairpinned session's flow: both addresses the NAT address on the
    way in, an inside endpoint on the way out; None for any other flow."""
    protocol = _get(flow.match, "ip_proto")
    if protocol not in L4_MATCH_FIELDS:
        return None
    src, dst = L4_MATCH_FIELDS[protocol]
    nat_ip = flow.fields.get("ipv4_src")
    if nat_ip is None or _get(flow.match, "ipv4_dst") != nat_ip or "ipv4_dst" not in flow.fields:
        return None
    return (protocol, (_get(flow.match, "ipv4_src"), _get(flow.match, src)),
            (flow.fields["ipv4_dst"], flow.fields.get(dst)), _get(flow.match, dst),
            flow.fields.get(src))


def _hairpins(singles: list[_Flow], gateway_mac: str) -> dict[int, AdoptedSession]:
    """Hairpinned sessions among lone forward flows, each adopted only with
    the flow of its peer: A's flow goes to B's inside endpoint, from the
    port B's flow is sent to, and B's comes back the same way."""
    by_source = {}
    for flow in singles:
        ends = _ends(flow)
        if ends is not None and flow.fields.get("eth_src") == gateway_mac and flow.output:
            by_source[(ends[0], ends[1])] = (flow, ends)
    adopted: dict[int, AdoptedSession] = {}
    for (protocol, source), (flow, ends) in by_source.items():
        _proto, _src, target, sent_to, external_port = ends
        peer = by_source.get((protocol, target))
        if peer is None:
            continue
        back, back_ends = peer
        if back_ends[2] != source or back_ends[3] != external_port or back_ends[4] != sent_to:
            continue
        inside_mac = back.fields.get("eth_dst")
        # back.output is set: only flows with an output are in by_source.
        if None in (source[1], external_port) or inside_mac is None or back.output is None:
            continue
        spec = SessionFlowSpec(
            session_id=flow.sid, protocol=protocol, inside_ip=source[0], inside_port=source[1],
            external_ip=flow.fields["ipv4_src"], external_port=external_port,
            remote_ip=flow.fields["ipv4_src"], remote_port=sent_to,
            inside_mac=inside_mac, inside_switch_port=back.output,
            next_hop_mac=inside_mac, uplink=None, gateway_mac=gateway_mac,
            idle_timeout=flow.idle_timeout, closing_timeout=flow.closing_timeout)
        adopted[flow.sid] = AdoptedSession(
            spec, flow.age, {CookieKind.SESSION_OUT: flow.counts},
            HairpinFlow(flow.actions, back.sid, back.counts.packets),
            idle={CookieKind.SESSION_OUT: flow.idle_timeout}, bound=_bound(flow.match))
    return adopted


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
    hairpins = _hairpins([both[CookieKind.SESSION_OUT] for both in by_sid.values()
                          if list(both) == [CookieKind.SESSION_OUT]], gateway_mac)
    for sid, both in by_sid.items():
        fwd, rev = both.get(CookieKind.SESSION_OUT), both.get(CookieKind.SESSION_IN)
        adopted = _pair(fwd, rev, gateway_mac) if fwd and rev else hairpins.get(sid)
        if adopted is None:
            discard += [f.cookie for f in both.values()]
        else:
            sessions.append(adopted)
    return sessions, sorted(set(discard))
