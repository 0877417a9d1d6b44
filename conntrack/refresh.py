"""Refreshing sessions: packets seen, TCP flags, flow-stats counters.

A mixin of :class:`~conntrack.table.ConnTrack`, kept apart so each file stays
small; it uses the table's ``_resolve``, ``_clock``, ``_by_id``, ``_wheel``,
``_emit`` and ``_maybe_compact`` (see :class:`RefreshHost`).

Refresh rules (RFC 4787 REQ-6, RFC 5382, RFC 7857 s2.2): outbound packets
always refresh; inbound packets refresh only an established session (TCP
ESTABLISHED or FIN_WAIT; UDP/ICMP "replied", i.e. packets seen both ways):
one that was established before the packet (so an RST or the last FIN
starts the closing timer from now) or is established by it (the SYN-ACK).
Inbound packets can therefore never keep an opening session alive.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

from .events import EventKind
from .keys import TCP, Direction
from .session import Session, SessionRef
from .states import INBOUND_INIT, REPLIED, tcp_transition
from .timers import TimerWheel


class RefreshHost(Protocol):
    """What :class:`Refresh` needs from the table it is mixed into.

    Spelled out here so this module depends on the table's shape, not on
    ``table.py`` (which imports this one).
    """

    _clock: Callable[[], float]
    _by_id: dict[int, Session]
    _wheel: TimerWheel[Session]

    def _resolve(self, session: SessionRef) -> Optional[Session]: ...

    def _maybe_compact(self) -> None: ...

    def _emit(self, kind: EventKind, session: Session, now: float, reason: str) -> None: ...

    def touch(self, session: SessionRef, direction: Direction, now: Optional[float] = None) -> bool: ...


class Refresh:
    """touch / observe / set_counters of ConnTrack."""

    def touch(self: RefreshHost, session: SessionRef, direction: Direction, now: Optional[float] = None) -> bool:
        """Packets were seen in ``direction`` (e.g. flow stats grew); True if refreshed.

        Outbound always refreshes (RFC 4787 REQ-6). Inbound refreshes only an
        established session: TCP ESTABLISHED/FIN_WAIT, UDP/ICMP "replied" =
        packets seen both ways (the first packet against the initiator's
        direction marks it replied and counts). Dead or unknown: False.
        """
        s = self._resolve(session)
        if s is None:
            return False
        if now is None:
            now = self._clock()
        code = s.code
        if direction == Direction.OUTBOUND:
            if code & INBOUND_INIT and not code & REPLIED:
                s.code = code | REPLIED
        else:
            if not code & (INBOUND_INIT | REPLIED):
                s.code = code = code | REPLIED
            if not s.mapping.policy.inbound_refresh[code]:
                return False
        if now > s.last_seen:
            s.last_seen = now
        return True

    def observe(self: RefreshHost, session: SessionRef, direction: Direction, tcp_flags: int, now: Optional[float] = None) -> Optional[float]:
        """A packet with ``tcp_flags`` was seen in ``direction``: run the TCP
        state machine, refresh as :meth:`touch` does, and return the new
        timeout if it changed (so flows' idle timeouts can follow), else None.

        An inbound packet refreshes if the session was established before it
        or is after it: an RST or the last FIN of an established session
        starts the closing timer (RFC 7857 s2.2), the SYN-ACK that
        establishes it counts, and inbound packets (RSTs and ACKs included)
        never prolong an opening session. For UDP/ICMP this is :meth:`touch`
        and returns None.
        """
        s = self._resolve(session)
        if s is None:
            return None
        if s.okey >> 96 != TCP:
            self.touch(s, direction, now)
            return None
        if now is None:
            now = self._clock()
        policy = s.mapping.policy
        old = s.code
        old_timeout = policy.timeouts[old]
        old_deadline = s.last_seen + old_timeout
        outbound = direction == Direction.OUTBOUND
        code = tcp_transition(old, outbound, tcp_flags)
        if (outbound and code & INBOUND_INIT) or (not outbound and not code & INBOUND_INIT):
            code |= REPLIED
        s.code = code
        if policy.states[code] is not policy.states[old]:
            self._emit(EventKind.UPDATED, s, now, policy.states[old].value)
        if (outbound or policy.inbound_refresh[code] or policy.inbound_refresh[old]) and now > s.last_seen:
            s.last_seen = now
        timeout = policy.timeouts[code]
        deadline = s.last_seen + timeout
        if deadline < old_deadline:
            self._wheel.add(s, deadline)  # the later copy becomes stale
            self._wheel.stale += 1
            self._maybe_compact()
        return timeout if timeout != old_timeout else None

    def set_counters(
        self: RefreshHost,
        session_id: int,
        packets_out: int,
        bytes_out: int,
        packets_in: int,
        bytes_in: int,
        now: Optional[float] = None,
    ) -> Optional[Session]:
        """Store flow-stats counters (absolute values) of a session.

        With ``now``, a direction whose packet count grew is :meth:`touch`-ed.
        Returns the session, or None if no live session has this id.
        """
        s = self._by_id.get(session_id)
        if s is None:
            return None
        grew_out = packets_out > s.packets_out
        grew_in = packets_in > s.packets_in
        s.packets_out, s.bytes_out, s.packets_in, s.bytes_in = packets_out, bytes_out, packets_in, bytes_in
        if now is not None:
            if grew_out:
                self.touch(s, Direction.OUTBOUND, now)
            if grew_in:
                self.touch(s, Direction.INBOUND, now)
        return s
