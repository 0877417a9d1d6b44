"""Sessions and bindings rebuilt from the switch's flows after a (re)connection.

After a controller restart the switch has kept every session's flows
(:mod:`ryu_app.openflow.adoption` reads them); here they become sessions in
the engine and records in the book again, and flows an earlier version
wrote differently are re-added as this one writes them.

After a lost connection the controller still knows its sessions, and the
dump says what the switch did meanwhile.  A switch that kept its table (our
rules there are older than the time away) idled out or lost the flows it
no longer has: those sessions end.  A switch that lost its table
(ovs-vswitchd restarted: our rules missing, or younger than the time away)
gets every live session's flows back, with the same external port, before
any new mapping is made; counters go on from what the controller knew.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from conntrack import ICMP, ConnTrack, Refused, Session, State, TCP
from ryu_app.nat.addresses import int_text
from ryu_app.nat.counters import GatewayCounters
from ryu_app.nat.flow_book import FlowBook, flow_idle_timeout
from ryu_app.nat.flow_record import OTHER_FLOW, FlowRecord
from ryu_app.nat.source_guard import Bindings
from ryu_app.openflow import flows
from ryu_app.openflow.adoption import AdoptedSession, read_sessions
from ryu_app.openflow.flows import CookieKind

LOG = logging.getLogger(__name__)


def table_kept(dump: list, away: float) -> bool:
    """Did the switch keep its table while away?  Then flows of ours that
    no (re)connection re-adds (session flows, binding rules) are older than
    the time away; a restarted ovs-vswitchd has none of them, or only
    younger ones (restored by ``ovs-ctl restart``).  The gateway's own rules
    tell nothing: they are re-added, ages reset, on every connection."""
    ages = [stat.duration_sec + stat.duration_nsec / 1e9 for stat in dump
            if (parsed := flows.parse_cookie(stat.cookie)) is not None
            and parsed[0] in _KEPT_KINDS]
    return bool(ages) and max(ages) >= away


_KEPT_KINDS = frozenset({CookieKind.SESSION_OUT, CookieKind.SESSION_IN, CookieKind.BINDING,
                         CookieKind.BINDING_DROP})


@dataclass(frozen=True)
class TcpTimeouts:
    """The two TCP idle timeouts a flow's idle_timeout is read against."""
    transitory: int
    established: int


class Rebuild:
    """Reads one switch's flow dump back into the engine, the book and the bindings."""

    def __init__(self, ct: ConnTrack, book: FlowBook, hosts: Bindings,
                 counters: GatewayCounters, tcp: TcpTimeouts) -> None:
        self.ct, self.book, self.hosts, self.counters, self.tcp = ct, book, hosts, counters, tcp

    def from_dump(self, dump: list, now: float, away: float | None = None) -> list:
        """The whole flow dump: what to send (deletes of flows no session
        accounts for, re-added flows, probes and binding rules).  ``away``:
        seconds since the switch's connection was lost, when the engine
        kept its sessions meanwhile (None: nothing known, all from the dump)."""
        bound = self._bindings(dump, now)
        up = self.book.uplink
        msgs: list = []
        if away is not None:
            # The engine's own sessions: their flows in the dump are theirs.
            restarted = not table_kept(dump, away)
            mine = self._flows_of_known(dump)
            dump = [stat for stat in dump if stat.cookie not in mine]
            msgs += self._known(now, mine, restarted)
        sessions, discard = read_sessions(dump, up.gateway_mac)
        kept = 0
        for adopted in sessions:
            upgraded = self._adopt(adopted, now)
            if upgraded is not None:
                kept += 1
                msgs += upgraded
            else:
                discard += [flows.make_cookie(kind, adopted.spec.session_id)
                            for kind in OTHER_FLOW]
        if discard:
            LOG.warning("%d session flows on the switch could not be accounted for: deleted",
                        len(discard))
            self.counters.flows_discarded += len(discard)
            msgs += [flows.delete_flow(cookie) for cookie in discard]
        LOG.info("adopted %d sessions from the switch's flows", kept)
        for session in self.ct.sessions():
            msgs += self.book.probes.for_session(session, add=True)
        for ip, host in self.hosts.as_dict().items():   # static ones, those of sessions
            if ip not in bound:
                msgs += flows.binding_rules(ip, host["mac"], host["port"])
        return msgs

    def _flows_of_known(self, dump: list) -> dict[int, tuple[int, CookieKind, int, int]]:
        """Session flows in the dump whose session the engine holds, with a
        record: cookie -> (session id, kind, packets, bytes)."""
        mine = {}
        for stat in dump:
            parsed = flows.parse_cookie(stat.cookie)
            if parsed is None or parsed[0] not in OTHER_FLOW:
                continue
            kind, sid = parsed
            if sid in self.book.records and self.ct.get(sid) is not None:
                mine[stat.cookie] = (sid, kind, stat.packet_count, stat.byte_count)
        return mine

    def _known(self, now: float, mine: dict[int, tuple[int, CookieKind, int, int]],
               restarted: bool) -> list:
        """The sessions the engine kept while the switch was away.  Counters
        go on (a flow restored from zero counts as a new one).  A session
        with flows left keeps them and gets the missing one back; one with
        none ended while away if the switch kept its table, and is put back
        whole if the switch lost it."""
        have: dict[int, dict[CookieKind, tuple[int, int]]] = {}
        for sid, kind, packets, octets in mine.values():
            have.setdefault(sid, {})[kind] = (packets, octets)
        msgs: list = []
        put_back = ended = 0
        for session in list(self.ct.sessions()):
            rec = self.book.records.get(session.id)
            if rec is None or session.protocol == ICMP or rec.ending:
                continue                 # no flows of its own (echo, or still pending)
            present = have.get(session.id, {})
            for kind, (packets, octets) in present.items():
                rec.update(kind, packets, octets)
            if not present and (not restarted or session.expires_at <= now):
                self.ct.set_counters(session.id, *self.book.totals(rec))
                rec.installed = set()
                msgs += self.book.end(session, "flows_gone" if not restarted else "idle", now)
                ended += 1
                continue
            kinds = {CookieKind.SESSION_OUT} if rec.hairpin else set(OTHER_FLOW)
            again = kinds if restarted else kinds - set(present)
            for kind in again:
                rec.retire(kind, *rec.current[kind])   # the switch's counts start again
                rec.fin_lowered.discard(kind)
            rec.installed = set(kinds)
            rec.revived -= again
            self.ct.set_counters(session.id, *self.book.totals(rec))
            msgs += [self.book.flow_of(rec, kind) for kind in sorted(again)]
            put_back += bool(again)
        if restarted:
            LOG.warning("the switch lost its flows while away: %d sessions put back, "
                        "%d ended", put_back, ended)
        elif ended or put_back:
            LOG.info("while the switch was away the flows of %d sessions went (ended) and "
                     "%d lost one flow (re-added)", ended, put_back)
        self.counters.sessions_put_back += put_back
        return msgs

    def _bindings(self, dump: list, now: float) -> set[str]:
        """Bindings back from their rules in the switch (a restart keeps
        every host where it was): the addresses found."""
        found: set[str] = set()
        for stat in dump:
            parsed = flows.parse_cookie(stat.cookie)
            if parsed is None or parsed[0] != CookieKind.BINDING:
                continue
            ip = int_text(parsed[1])
            try:
                mac, port = stat.match["eth_src"], stat.match["in_port"]
            except KeyError:
                continue
            if self.hosts.restore(ip, mac, port, now):
                found.add(ip)
            else:
                LOG.warning("binding of %s on port %d (%s) in the switch disagrees with "
                            "static_bindings: replaced", ip, port, mac)
        return found

    def _adopt(self, adopted: AdoptedSession, now: float) -> list | None:
        """Rebuild one session and its flow record: the flows to re-add (an
        earlier version's TCP flows, without fin_timeout), or None if it
        cannot be adopted."""
        book, up = self.book, self.book.uplink
        p, hairpin = adopted.spec, adopted.hairpin
        if p.external_ip not in up.addresses or (hairpin is None and p.uplink != up.port):
            return None
        if hairpin is not None:
            p = p._replace(uplink=up.port)
        idle = adopted.idle or {}
        # UDP: replied once its reverse flow (a hairpinned one: its peer's) has carried a packet.
        replied = (hairpin.peer_packets if hairpin is not None
                   else adopted.counts[CookieKind.SESSION_IN].packets) > 0
        state = State.REPLIED if replied else State.UNREPLIED
        lowered: set[CookieKind] = set()
        upgrade = p.protocol == TCP and p.closing_timeout != self.tcp.transitory
        if p.protocol == TCP:
            p = p._replace(closing_timeout=self.tcp.transitory)
            state, lowered = self._tcp_state_of(idle)
        try:
            session = self.ct.restore(
                p.session_id, p.protocol, p.inside_ip, p.inside_port, p.external_ip,
                p.external_port, p.remote_ip, p.remote_port,
                created_at=now - adopted.age, last_seen=now, state=state)
        except (Refused, ValueError) as why:
            LOG.warning("session %d on the switch not adopted: %s", p.session_id, why)
            return None
        rematch = not adopted.bound     # an earlier version's forward flow: any port
        if not self.hosts.restore(p.inside_ip, p.inside_mac, p.inside_switch_port, now):
            # Bound elsewhere (a static binding, or its binding rule names
            # another place): the session's flows follow the binding.
            host = self.hosts.get(p.inside_ip)
            assert host is not None
            p = p._replace(inside_mac=host.mac, inside_switch_port=host.port)
            rematch = True
        if p.protocol == TCP:
            p = p._replace(idle_timeout=flow_idle_timeout(session, p.closing_timeout))
        rec = book.records[session.id] = FlowRecord(p, installed=set(adopted.counts))
        rec.sent_idle, rec.fin_lowered = dict(idle), lowered
        if hairpin is not None:
            rec.hairpin, rec.actions, rec.peer = True, list(hairpin.actions), hairpin.peer
        for kind, counts in adopted.counts.items():
            rec.update(kind, counts.packets, counts.octets)
        self.ct.set_counters(session.id, *book.totals(rec))
        self.counters.sessions_adopted += 1
        msgs = []
        if rematch and CookieKind.SESSION_OUT in rec.installed:
            rec.replace(CookieKind.SESSION_OUT)     # a new match: the old flow goes
            msgs.append(flows.delete_forward_flow(p.session_id))
        if upgrade or rematch:
            msgs += [book.flow_of(rec, kind) for kind in sorted(rec.installed)]
        return msgs

    def _tcp_state_of(self, idle: dict) -> tuple[State, set]:
        """A TCP session's state from its flows' idle timeouts (opening flows
        carry the closing timeout plus one; fin_timeout lowers a flow to the
        closing timeout), and the flows a FIN or RST lowered."""
        closing, established = self.tcp.transitory, self.tcp.established
        timeouts = set(idle.values())
        if timeouts == {closing}:
            return State.CLOSING, set()
        if closing + 1 in timeouts:
            return State.SYN_SENT, set()
        lowered = {kind for kind, t in idle.items() if t == closing}
        if lowered and established in timeouts:
            return State.FIN_WAIT, lowered
        return State.ESTABLISHED, set()
