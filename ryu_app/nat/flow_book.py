"""The book of session flows: what each session has in the switch, and the
one way to put its flows in, re-add one, or end it.

Every packet path that makes or ends a session goes through here, so a
session's flows, its mapping probe and its record never disagree: a path
is handed the book, not the service.
"""
from __future__ import annotations

from conntrack import ICMP, ConnTrack, Session, State, TCP
from conntrack.keys import unpack_okey
from ryu_app.nat.addresses import int_text
from ryu_app.nat.flow_record import OTHER_FLOW, FlowRecord
from ryu_app.nat.probes import MappingProbes
from ryu_app.nat.source_guard import Bindings
from ryu_app.nat.uplink import Uplink
from ryu_app.openflow import flow_encoding, flows
from ryu_app.openflow.flows import CookieKind, SessionFlowSpec


def flow_idle_timeout(session: Session, closing_timeout: int) -> int:
    """The idle timeout a session's flows get: its conntrack timeout, one
    second more for an opening TCP session whose timeout is the closing
    one (so that fin_timeout's lowering shows in the flow stats)."""
    idle = int(session.timeout)
    if (session.protocol == TCP and idle == closing_timeout
            and session.state in (State.SYN_SENT, State.SYN_RECEIVED)):
        return idle + 1
    return idle


class FlowBook:
    """Flow records of one switch's sessions, by session id."""

    def __init__(self, ct: ConnTrack, hosts: Bindings, uplink: Uplink, probes: MappingProbes,
                 tcp_closing_timeout: int) -> None:
        self.ct = ct
        self.hosts = hosts
        self.uplink = uplink
        self.probes = probes
        self.tcp_closing_timeout = tcp_closing_timeout
        self.records: dict[int, FlowRecord] = {}
        # Ended sessions whose flow deletes are out, by when: their records go
        # when the flow-removed notices come, or after a grace period (a
        # delete of flows that had already gone brings no notice at all).
        self.ending: dict[int, float] = {}

    def get(self, sid: int) -> FlowRecord | None:
        return self.records.get(sid)

    # -- flows ------------------------------------------------------------------------
    def spec(self, session: Session, next_hop_mac: str) -> SessionFlowSpec | None:
        """Everything the session's flows say, or None while its inside host
        is not bound."""
        protocol, inside, inside_port, remote, remote_port = unpack_okey(session.okey)
        inside_ip = int_text(inside)
        host = self.hosts.get(inside_ip)
        if host is None:
            return None
        closing = self.tcp_closing_timeout if protocol == TCP else 0
        up = self.uplink
        return SessionFlowSpec(
            session_id=session.id, protocol=protocol,
            inside_ip=inside_ip, inside_port=inside_port,
            external_ip=up.text_of[session.mapping.policy.external_ip],
            external_port=session.external_port,
            remote_ip=int_text(remote), remote_port=remote_port,
            inside_mac=host.mac, inside_switch_port=host.port, next_hop_mac=next_hop_mac,
            uplink=up.port, gateway_mac=up.gateway_mac,
            idle_timeout=flow_idle_timeout(session, closing), closing_timeout=closing)

    def ensure_flows(self, session: Session, next_hop_mac: str) -> list:
        """Both flows of ``session`` unless already sent (duplicate packet-ins)."""
        rec = self.records.get(session.id)
        if rec is not None and rec.installed == set(OTHER_FLOW):
            return []
        spec = self.spec(session, next_hop_mac)
        if spec is None:
            raise LookupError(f"session {session.id}: inside host not bound")
        if rec is None:
            rec = self.records[session.id] = FlowRecord(spec)
        rec.spec = spec
        rec.installed = set(OTHER_FLOW)
        rec.ending = False
        rec.revived.clear()
        for kind in OTHER_FLOW:
            rec.sent(kind)
        msgs = flow_encoding.session_flows(spec)
        msgs += self.probes.for_session(session, add=True)
        return msgs

    def flow_of(self, rec: FlowRecord, kind: CookieKind) -> object:
        """One of a session's flows as it is now (spec, idle timeout), to re-add;
        a hairpinned session's one flow has its own actions."""
        rec.sent(kind)
        if rec.actions is None:
            return flow_encoding.session_flow(rec.spec, kind)
        return flows.session_flow(rec.spec, kind, rec.actions)

    def next_hop_mac(self, session: Session, now: float) -> str | None:
        """The MAC the session's packets go out to: fresh from the ARP cache,
        else the one its flows use (an ARP entry ages out while a session lives)."""
        mac = self.uplink.hops.lookup(self.uplink.route(str(session.remote_ip)) or "", now)
        rec = self.records.get(session.id)
        return mac or (rec.spec.next_hop_mac if rec is not None else None)

    # -- counters ---------------------------------------------------------------------
    def totals(self, rec: FlowRecord) -> tuple[int, int, int, int]:
        """A session's counters: its flows', and for a hairpinned one, its
        replies from the other host's flow."""
        out_p, out_b, in_p, in_b = rec.totals()
        peer = self.records.get(rec.peer) if rec.peer is not None else None
        if peer is not None:
            in_p, in_b = peer.totals()[:2]
        return out_p, out_b, in_p, in_b

    def plain_packets(self, rec: FlowRecord) -> tuple[int, int]:
        """Packets out and in without FIN or RST (a hairpinned session's
        inbound ones are its peer's outbound)."""
        out_p, in_p = rec.plain_packets()
        peer = self.records.get(rec.peer) if rec.peer is not None else None
        return (out_p, peer.plain_packets()[0]) if peer is not None else (out_p, in_p)

    # -- the end ----------------------------------------------------------------------
    def end(self, session: Session, reason: str, now: float) -> list:
        """End a live session now: engine entry, its flows, its mapping probe.
        Idling out in the switch counts as expiry."""
        if session.alive:
            self.ct.remove(session, reason, now, timed_out=reason == "idle")
        return self.after_end(session, now)

    def after_end(self, session: Session, now: float | None = None) -> list:
        """The engine ended ``session``: its probe, its flows, its hairpin peer."""
        msgs = self.probes.for_session(session, add=False)
        rec = self.records.get(session.id)
        if rec is None:
            return msgs
        if rec.peer is not None:     # a hairpinned pair is one conversation: both end
            peer, rec.peer = self.ct.get(rec.peer), None
            if peer is not None:
                msgs += self.end(peer, "hairpin_peer_ended", session.last_seen
                                 if now is None else now)
        if rec.installed:
            rec.ending = True
            self.ending[session.id] = session.last_seen if now is None else now
            return msgs + [flows.delete_session_flows(session.id)]
        return msgs + self.forget(session.id)

    def forget(self, sid: int) -> list:
        """Both session flows are gone: drop the record (the FIN/RST watch
        rules are shared, nothing of the session is left in the switch)."""
        self.records.pop(sid, None)
        self.ending.pop(sid, None)
        return []

    def sweep_ending(self, now: float, grace: float) -> None:
        """Records of ended sessions whose flow-removed never came."""
        for sid in [sid for sid, since in self.ending.items() if now - since > grace]:
            rec = self.records.get(sid)
            if rec is not None and rec.ending:
                self.forget(sid)
            else:
                self.ending.pop(sid, None)    # revived under the same id meanwhile

    def where(self, session: Session) -> str:
        """Where the session's packets are handled: switch, controller or pending."""
        if session.protocol == ICMP:
            return "controller"
        rec = self.records.get(session.id)
        return "switch" if rec is not None and rec.installed else "pending"

