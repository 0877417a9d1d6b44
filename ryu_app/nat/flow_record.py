"""What the switch holds for one session: its flows and their counters.

A session's packets are counted by its two flows (forward and reverse;
RSTs too, which the shared watch rule copies to the controller on their
way), and flows come and go (idle, re-added, replaced) while the session
lives.  :class:`FlowRecord` keeps the counts of flows that
are gone in ``base`` and the latest stats of live ones in ``current``, so the
session's totals only ever grow.
"""
from __future__ import annotations

from conntrack import INBOUND, OUTBOUND
from ryu_app.openflow.flows import CookieKind, SessionFlowSpec

OTHER_FLOW = {CookieKind.SESSION_OUT: CookieKind.SESSION_IN, CookieKind.SESSION_IN: CookieKind.SESSION_OUT}
FLAG_DIRECTIONS = {CookieKind.FLAGS_OUT: OUTBOUND, CookieKind.FLAGS_IN: INBOUND}
COUNTED_KINDS = tuple(OTHER_FLOW)     # flows whose packets belong to the session
SESSION_OF_TAG = {CookieKind.FLAGS_OUT: CookieKind.SESSION_OUT,
                  CookieKind.FLAGS_IN: CookieKind.SESSION_IN}


_ZERO_COUNTS = {k: (0, 0) for k in COUNTED_KINDS}   # copied per record: cheaper than building
_ZERO_COPIES = {k: 0 for k in COUNTED_KINDS}


class FlowRecord:
    """What the switch holds for one session, and its counters across flows.

    A plain class with slots: one is made for every new session, and a
    dataclass with default factories cost several times as much to build.
    """

    __slots__ = ("spec", "installed", "base", "current", "ending", "rst_copies", "sent_idle",
                 "fin_lowered", "hairpin", "actions", "peer", "revived", "fragments_at",
                 "after_rst", "raise_due", "replacing")

    def __init__(self, spec: SessionFlowSpec, installed: set | None = None) -> None:
        self.spec = spec
        self.installed: set = set() if installed is None else installed
        self.base: dict = _ZERO_COUNTS.copy()
        self.current: dict = _ZERO_COUNTS.copy()
        self.ending = False
        # RST copies seen per direction (SESSION_OUT/IN): the flows count
        # those packets too, and plain_packets() leaves them out.
        self.rst_copies: dict = _ZERO_COPIES.copy()
        # The idle timeout each flow holds in the switch, as far as we know:
        # the one we last sent it with, or the closing timeout once the flow
        # stats showed that its fin_timeout lowered it (kinds in fin_lowered).
        self.sent_idle: dict = {}
        self.fin_lowered: set = set()
        self.hairpin = False      # one flow back inside (ryu_app.nat.paths.hairpin), not the usual pair
        # A hairpinned session's flow actions (they rewrite both ends) and the
        # session of the other inside host, whose flow carries this one's replies.
        self.actions: list | None = None
        self.peer: int | None = None
        # Flows re-added after idling out that have carried nothing since:
        # they stand in for a quiet direction and prove no activity of their own.
        self.revived: set = set()
        # When a fragment of each direction last passed (the controller
        # forwards fragments, so the flows' counters never see them).
        self.fragments_at: dict = {}
        # plain_packets() at the first poll after an RST closed the session
        # (() until then): packets other than RSTs both ways after that mean
        # the endpoints ignored it (forged, or out of window).
        self.after_rst: tuple | None = None
        # The number of the poll that found the session's timeout above what
        # its flows hold: the raise waits for a later one
        # (TcpTracking.follow_timeout); None when nothing waits.
        self.raise_due: int | None = None
        # Flows deleted to be added again with another match (the host
        # moved): kind -> the counts already kept in the base.  Their
        # flow-removed (reason DELETE) ends nothing; stats of the kind wait
        # for it, since until then a reply may still name the old flow.
        self.replacing: dict = {}

    def sent(self, kind: CookieKind) -> None:
        """The flow of ``kind`` was (re-)added with the spec's idle timeout."""
        self.sent_idle[kind] = self.spec.idle_timeout
        self.fin_lowered.discard(kind)

    def update(self, kind: CookieKind, packets: int, octets: int) -> None:
        """Counters of a live flow; a drop means it was replaced from zero."""
        old = self.current[kind]
        if packets < old[0]:
            self.retire(kind, *old)
        self.current[kind] = (packets, octets)
        if packets:
            self.revived.discard(kind)   # a fresh flow that counts has carried traffic

    def retire(self, kind: CookieKind, packets: int, octets: int) -> None:
        """A flow is gone with these final counts: keep them in the base."""
        base = self.base[kind]
        self.base[kind] = (base[0] + packets, base[1] + octets)
        self.current[kind] = (0, 0)

    def replace(self, kind: CookieKind) -> None:
        """The flow of ``kind`` is deleted, to be added again with a new match."""
        kept = self.current[kind]
        self.retire(kind, *kept)
        self.replacing[kind] = kept

    def replaced(self, kind: CookieKind, packets: int, octets: int) -> None:
        """The replaced flow is gone with these final counts: keep what the
        base lacks."""
        kept = self.replacing.pop(kind)
        base = self.base[kind]
        self.base[kind] = (base[0] + max(0, packets - kept[0]), base[1] + max(0, octets - kept[1]))

    def count_sent(self, kind: CookieKind, size: int) -> None:
        """A packet the controller sent itself (packet-out): flow stats miss it."""
        packets, octets = self.base[kind]
        self.base[kind] = (packets + 1, octets + size)

    def active(self, kind: CookieKind, now: float, timeout: float) -> bool:
        """Traffic of this direction within ``timeout``, as far as the flows
        tell: it is installed and not a stand-in, or fragments passed."""
        if now - self.fragments_at.get(kind, float("-inf")) < timeout:
            return True
        return kind in self.installed and kind not in self.revived

    def plain_packets(self) -> tuple[int, int]:
        """Packets out and in that were not RSTs: the flows' counts less the
        RST copies the controller was sent."""
        out, back = (max(0, self.base[k][0] + self.current[k][0] - self.rst_copies[k])
                     for k in (CookieKind.SESSION_OUT, CookieKind.SESSION_IN))
        return out, back

    def totals(self) -> tuple[int, int, int, int]:
        def both(*kinds: CookieKind) -> tuple[int, int]:
            return (sum(self.base[k][0] + self.current[k][0] for k in kinds),
                    sum(self.base[k][1] + self.current[k][1] for k in kinds))
        out, back = both(CookieKind.SESSION_OUT), both(CookieKind.SESSION_IN)
        return out[0], out[1], back[0], back[1]
