"""Which connection may speak for a datapath id.

A switch says who it is in its features reply, and nothing proves it: any
process that reaches the OpenFlow listener can claim dpid 1.  Ryu's own
bookkeeping (DPSet) takes a second connection with a served dpid as the
switch having reconnected and drops the first, so a rogue claimant would
replace the real switch and its flow dump would be adopted as sessions.

Here a claim is judged when the features reply is read, before Ryu moves
the connection on: a dpid no bridge profile names is refused, and so is a
second connection for a served dpid while the first is alive.  "Alive" is
asked, not assumed: the first connection gets an echo request, and if it
has not answered within ``grace`` seconds it is closed, so a switch that
really reconnected (its old TCP connection half-dead) gets in at its next
try (Open vSwitch retries within seconds).

Pure bookkeeping with the time passed in.
"""
from __future__ import annotations

import enum
from typing import Callable


class Claim(enum.Enum):
    ACCEPT = "accept"
    UNNAMED = "unnamed"        # no bridge profile names this dpid
    DUPLICATE = "duplicate"    # another connection serves it and may be alive


class SwitchClaims:
    """Claims of connections to datapath ids; liveness checks of the served ones."""

    def __init__(self, named: Callable[[int], bool], grace: float = 3.0) -> None:
        self.named, self.grace = named, grace
        self._asked: dict[int, float] = {}     # dpid -> when its served connection was asked

    def claim(self, dpid: int, served_elsewhere: bool, now: float) -> tuple[Claim, bool]:
        """(verdict, whether to ask the served connection now)."""
        if not self.named(dpid):
            return Claim.UNNAMED, False
        if not served_elsewhere:
            self._asked.pop(dpid, None)
            return Claim.ACCEPT, False
        if dpid in self._asked:
            return Claim.DUPLICATE, False
        self._asked[dpid] = now
        return Claim.DUPLICATE, True

    def answered(self, dpid: int) -> None:
        """The served connection answered an echo: it is alive."""
        self._asked.pop(dpid, None)

    def overdue(self, now: float) -> list[int]:
        """Datapath ids whose served connection did not answer in time."""
        late = [dpid for dpid, at in self._asked.items() if now - at > self.grace]
        for dpid in late:
            del self._asked[dpid]
        return late
