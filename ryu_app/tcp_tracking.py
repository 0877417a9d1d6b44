"""TCP state in the switch era: what FIN/RST copies and counters reveal.

Only FIN and RST packets reach the controller (as header copies from the
shared watch rules of ``flows.TABLE_TCP_WATCH``; the switch forwards them
too, through the session's flow); everything else the
gateway learns of a TCP session is its flow counters.  From both, the
engine's state machine moves the session on, and when its timeout changes
(established 7440 s, opening/closing 240 s) the session's flows are re-added
with the new idle timeout.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from conntrack import INBOUND, OUTBOUND, Session, State, TcpFlags
from ryu_app.flow_record import FLAG_DIRECTIONS, SESSION_OF_TAG, FlowRecord
from ryu_app.flows import CookieKind
from ryu_app.packet_info import tcp_flags_of

if TYPE_CHECKING:
    from ryu_app.nat_service import NatService


class TcpTracking:
    """Moves TCP sessions of one NatService through their states."""

    def __init__(self, nat: "NatService") -> None:
        self.nat = nat

    def flags_seen(self, kind: CookieKind, sid: int, data: bytes, now: float) -> list:
        """A FIN or RST passed (its headers were copied up): move the TCP state
        on and, if the timeout changed (closing: transitory), re-add the flows."""
        session, rec = self.nat.ct.get(sid), self.nat.records.get(sid)
        flags = tcp_flags_of(data)
        if session is None or rec is None or flags is None or rec.ending:
            return []
        direction = FLAG_DIRECTIONS[kind]
        rec.flag_copies[SESSION_OF_TAG[kind]] += 1
        msgs = self._observe(session, rec, direction, flags, now)
        peer = self.nat.ct.get(rec.peer) if rec.peer is not None else None
        if peer is not None and rec.peer in self.nat.records:   # hairpinned: the other end's
            other = INBOUND if direction == OUTBOUND else OUTBOUND   # view of the same packet
            msgs += self._observe(peer, self.nat.records[rec.peer], other, flags, now)
        return msgs

    def _observe(self, session: Session, rec: FlowRecord, direction, flags: int,
                 now: float) -> list:
        changed = self.nat.ct.observe(session, direction, flags, now)
        if flags & TcpFlags.RST and session.state == State.CLOSING:
            rec.after_rst = ()    # the baseline is taken at the next poll: the
                                  # counters now may be an interval old
        return self.follow_timeout(rec, changed)

    def counters_seen(self, session: Session, rec: FlowRecord, now: float) -> list:
        """TCP state the counters reveal.

        A reply to an opening session means the peer's SYN-ACK passed:
        established (RFC 7857: SYN seen both ways).  Packets without FIN or
        RST in both directions after an RST (counted from the first poll
        after it) mean the endpoints ignored it:
        the session is established again (RFC 6146: a later non-RST packet
        revives it).  Either way the flows get the established timeout.
        """
        ct, changed = self.nat.ct, None
        if session.state == State.SYN_SENT and session.packets_in > 0:
            changed = ct.observe(session, INBOUND, TcpFlags.SYN | TcpFlags.ACK, now)
        elif session.state == State.SYN_RECEIVED and session.packets_out > 0:
            changed = ct.observe(session, OUTBOUND, TcpFlags.SYN | TcpFlags.ACK, now)
        elif rec.after_rst is not None:
            if session.state != State.CLOSING:
                rec.after_rst = None
            elif rec.after_rst == ():
                rec.after_rst = self.nat.plain_packets(rec)
            else:
                (out0, in0), (out1, in1) = rec.after_rst, self.nat.plain_packets(rec)
                if out1 > out0 and in1 > in0:
                    rec.after_rst = None
                    changed = ct.observe(session, OUTBOUND, TcpFlags.ACK, now)
        return self.follow_timeout(rec, changed)

    def follow_timeout(self, rec: FlowRecord, changed: float | None) -> list:
        """Re-add the session's flows when its timeout changed."""
        if changed is None or int(changed) == rec.path.idle_timeout:
            return []
        rec.path = dataclasses.replace(rec.path, idle_timeout=int(changed))
        return [self.nat.flow_of(rec, k) for k in sorted(rec.installed)]
