"""TCP state in the switch era: what the flows' own timeouts, their
counters and RST copies reveal.

Every TCP session flow carries Open vSwitch's ``fin_timeout``: a FIN or RST
through it lowers that flow's idle timeout to the transitory timeout, in the
switch, with no packet-in.  The flow-stats poll reads each flow's idle
timeout back, so a flow found lowered tells the controller that a FIN (or
RST) went that way.  fin_timeout cannot tell an RST from a FIN, so RSTs
alone are still copied up (``flows.tcp_watch_rules``): a reset connection
goes to the transitory timeout both ways (RFC 7857 s2.2) while a
half-closed one keeps the established timeout (RFC 5382: one FIN is still
the established phase).  Everything else the gateway learns of a TCP
session is its flow counters.  From all three, the engine's state machine
moves the session on, and when its timeout changes (established 7440 s,
opening/closing 240 s) the flows that do not hold it yet are re-added.

Opening flows carry the transitory timeout plus one second, so that the
switch's lowering of them (to exactly the transitory timeout) is visible
too: a short connection that opens and closes between two polls is then
seen closed, not merely answered.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple

from conntrack import INBOUND, OUTBOUND, ConnTrack, Direction, Session, State, TcpFlags
from ryu_app.nat.counters import Drop
from ryu_app.nat.flow_book import FlowBook, flow_idle_timeout
from ryu_app.nat.flow_record import FLAG_DIRECTIONS, SESSION_OF_TAG, FlowRecord
from ryu_app.openflow.flows import CookieKind
from ryu_app.packets.packet_info import tcp_flags_of

_DIRECTION = {CookieKind.SESSION_OUT: OUTBOUND, CookieKind.SESSION_IN: INBOUND}


class PollFindings(NamedTuple):
    """What one part of a flow-stats reply showed of a session: the poll's
    number (our polls, counted), whether a FIN lowered one of its flows,
    and which of its flows the part named."""
    number: int
    fin: bool
    named: frozenset


class TcpTracking:
    """Moves TCP sessions of one switch through their states."""

    def __init__(self, ct: ConnTrack, book: FlowBook, drop: Drop) -> None:
        self.ct, self.book, self.drop = ct, book, drop

    def rst_seen(self, kind: CookieKind, sid: int, data: bytes, now: float) -> list:
        """An RST passed (a copy came up, tagged FLAGS_OUT/IN): move the TCP
        state on and, if the timeout changed (closing: transitory), re-add
        the other flow: the RST's own flow has lowered itself already."""
        session, rec = self.ct.get(sid), self.book.records.get(sid)
        flags = tcp_flags_of(data)
        if session is None or rec is None or flags is None or rec.ending:
            return []
        if not flags & TcpFlags.RST:          # only RSTs are copied; anything else is not ours
            return self.drop("tcp_copy_not_rst")
        own = SESSION_OF_TAG[kind]
        rec.rst_copies[own] += 1
        if own in rec.installed and rec.actions is None:
            rec.sent_idle[own] = rec.spec.closing_timeout
            rec.fin_lowered.add(own)
        moved = self._observe_both(session, rec, FLAG_DIRECTIONS[kind], flags, now)
        return [msg for s, r in moved.values() for msg in self.follow_timeout(s, r)]

    def syn_again(self, session: Session, now: float) -> list:
        """A SYN on a session that exists (every inside SYN reaches the
        controller): a retransmission changes nothing; on a closing
        session's ports it opens a new connection (RFC 7857 figure 1), whose
        flows get the opening timeout again."""
        if session.state != State.CLOSING:
            return []
        self.ct.observe(session, OUTBOUND, TcpFlags.SYN, now)
        rec = self.book.records.get(session.id)
        if rec is None or rec.ending:
            return []
        rec.after_rst = None
        rec.fin_lowered.clear()
        return self.follow_timeout(session, rec)

    def flows_seen(self, session: Session, rec: FlowRecord, idle: Mapping[CookieKind, int],
                   now: float, poll_number: int = 0) -> list:
        """A flow-stats reply named the session's flows with these idle
        timeouts (and set the counters): a flow found lowered to the
        closing timeout since it was added saw a FIN or an RST; then the
        counters say what they say.  The flows follow once, at the end."""
        closing = rec.spec.closing_timeout
        touched = {session.id: (session, rec)}
        fin = False
        for kind, timeout in idle.items():
            if timeout != closing or rec.sent_idle.get(kind, closing) == closing:
                continue
            rec.sent_idle[kind] = closing        # the switch holds it lowered now
            rec.fin_lowered.add(kind)
            fin = True
            touched.update(self._observe_both(session, rec, _DIRECTION[kind], TcpFlags.FIN, now))
        self._counters(session, rec, now)
        return [msg for s, r in touched.values()
                for msg in self.follow_timeout(s, r, PollFindings(
                    poll_number, fin, frozenset(idle) if s is session else frozenset()))]

    def _observe_both(self, session: Session, rec: FlowRecord, direction: Direction,
                      flags: int, now: float) -> dict:
        """The engine sees the packet (a hairpinned session's peer too, from
        its side); the sessions it moved, by id."""
        self._observe(session, rec, direction, flags, now)
        moved = {session.id: (session, rec)}
        records = self.book.records
        peer = self.ct.get(rec.peer) if rec.peer is not None else None
        if peer is not None and peer.id in records:   # hairpinned: the other end's
            other = INBOUND if direction == OUTBOUND else OUTBOUND   # view of the same packet
            self._observe(peer, records[peer.id], other, flags, now)
            moved[peer.id] = (peer, records[peer.id])
        return moved

    def _observe(self, session: Session, rec: FlowRecord, direction: Direction,
                 flags: int, now: float) -> None:
        self.ct.observe(session, direction, flags, now)
        if flags & TcpFlags.RST and session.state == State.CLOSING:
            rec.after_rst = ()    # the baseline is taken at the next poll: the
                                  # counters now may be an interval old

    def _counters(self, session: Session, rec: FlowRecord, now: float) -> None:
        """A reply to an opening session means the peer's SYN-ACK passed:
        established (RFC 7857: SYN seen both ways).  Packets other than
        RSTs in both directions after an RST (counted from the first poll
        after it) mean the endpoints ignored it: the session is established
        again (RFC 6146: a later non-RST packet revives it)."""
        ct = self.ct
        if session.state == State.SYN_SENT and session.packets_in > 0:
            ct.observe(session, INBOUND, TcpFlags.SYN | TcpFlags.ACK, now)
        elif session.state == State.SYN_RECEIVED and session.packets_out > 0:
            ct.observe(session, OUTBOUND, TcpFlags.SYN | TcpFlags.ACK, now)
        elif rec.after_rst is not None:
            if session.state != State.CLOSING:
                rec.after_rst = None
            elif rec.after_rst == ():
                rec.after_rst = self.book.plain_packets(rec)
            else:
                (out0, in0), (out1, in1) = rec.after_rst, self.book.plain_packets(rec)
                if out1 > out0 and in1 > in0:
                    rec.after_rst = None
                    ct.observe(session, OUTBOUND, TcpFlags.ACK, now)

    def follow_timeout(self, session: Session, rec: FlowRecord,
                       poll: PollFindings | None = None) -> list:
        """Re-add the session's flows that do not hold its timeout.

        A half-closed session (FIN_WAIT) keeps the established timeout, but
        the flow its FIN lowered is left as the switch made it: if that
        direction then stays quiet for the transitory timeout while the
        other goes on, the flow is re-added as a stand-in when it idles out
        (the service's ``flow_removed``), which keeps the session as long.

        From a poll's findings (``poll``) a raise of the timeout waits for a
        later poll that finds nothing new.  Re-adding a flow replaces it,
        and a FIN whose statistics the switch pushes to the old flow between
        the poll and the re-add (its revalidator does so some time after the
        FIN passed) would lower a flow that is about to go: the new one
        would hold the established timeout for a closed connection.  So a
        raise wanted first at this poll, or at a poll that found a FIN (the
        other end's FIN usually follows), waits; and only flows this part of
        the reply named are raised (a reply comes in parts, and the other
        flow's part may show it lowered).  By the next poll a FIN in flight
        shows as a lowered flow, and nothing is raised.
        """
        want = flow_idle_timeout(session, rec.spec.closing_timeout)
        if want != rec.spec.idle_timeout:
            rec.spec = rec.spec._replace(idle_timeout=want)
        keep_lowered = session.state == State.FIN_WAIT
        stale = [kind for kind in sorted(rec.installed)
                 if rec.sent_idle.get(kind) != want
                 and not (keep_lowered and kind in rec.fin_lowered)]
        raises = {kind for kind in stale if rec.sent_idle.get(kind, want) < want}
        if poll is not None and raises:
            due = rec.raise_due
            if poll.fin or due is None:
                rec.raise_due = due = poll.number
            now_ok = due < poll.number
            held = {kind for kind in raises if not (now_ok and kind in poll.named)}
            stale = [kind for kind in stale if kind not in held]
            if not held:
                rec.raise_due = None
        else:
            rec.raise_due = None
        return [self.book.flow_of(rec, kind) for kind in stale]
