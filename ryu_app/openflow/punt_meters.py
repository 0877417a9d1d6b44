"""Per-port packet-in meters that follow the controller's load.

Each switch port's packet-ins pass an OpenFlow meter (``flows.punt_meter``):
what a meter drops costs neither the switch's upcall-to-packet-in work nor
the controller anything.  A fixed rate there either throttles a quiet network
(one host alone opening connections faster than the rate) or, set high,
lets one flooding port fill the controller, whose every handled packet-in
(a new session: flows, a packet-out, the switch's work for them) takes CPU
from everyone else's connections on the same machine.

So the rates move. Every port starts at the ceiling
(``packet_in_port_rate``). While the controller keeps up (every packet-in
handled as it came), nothing is cut and nobody is throttled: a port alone
gets whatever the controller can do. When the controller is behind
(packet-ins had to queue in the last interval) and one port sends far more
than the busiest other inside port (half again as much) for two intervals
running (one is the tail of a burst that the others finished first), it is
cut to that port's rate: ports that want the controller get equal shares,
judged by what they send. On this 2-core machine that is also what keeps the
other hosts' connections fast: every packet-in a flooding port gets handled
costs the switch and the controller CPU the others' packets need (max-min
shares measured worse: the flooding port then takes all the controller can
spare, and the machine with it). Ports sending alike (hosts opening
connections together) are never cut. The uplink's packet-ins follow from the
inside hosts' sessions (RST copies, inbound to their mappings), so it can be
cut but never counts as the other port an inside host is held to. A port
alone is cut only when packet-ins are dropped and it sends more than the
controller handled, to what the controller handled. A port held to another's
rate gets the ceiling back as soon as no other inside port is busy and the
controller keeps up (the cut serves nobody then); otherwise a cut port
climbs back, a quarter each interval up to the ceiling, once it sends well
below its rate or no other inside port is busy, but never while packet-ins
are dropped. Nothing here knows OpenFlow: it returns the rates to set; time
is passed in.
"""
from __future__ import annotations

from collections import Counter
from typing import Collection, Hashable

GROWTH = 1.25      # a released port's rate after each interval
DOMINANT = 1.5     # a port sending this many times the busiest other one's rate is cut
HEADROOM = 0.9     # a port alone, when packet-ins are dropped: of what was handled
SATURATED = 0.5    # a cut port sending this much of its rate still wants more


class PuntMeters:
    """Rates of the ports' packet-in meters; ``ceiling`` 0 means no meters."""

    def __init__(self, ceiling: int, floor: int = 25) -> None:
        self.ceiling, self.floor = ceiling, min(floor, ceiling)
        self.rates: dict[Hashable, int] = {}      # ports below the ceiling only
        self._counts: Counter = Counter()         # packet-ins per port since the last tick
        # Ports cut for overloading the controller alone (they climb back
        # slowly) and ports that sent far more than the others last interval.
        self._overload: set[Hashable] = set()
        self._dominant: set[Hashable] = set()

    def seen(self, port: Hashable) -> None:
        """A packet-in of ``port`` (switch, port number) reached the controller."""
        self._counts[port] += 1

    def rate(self, port: Hashable) -> int:
        return self.rates.get(port, self.ceiling)

    def tick(self, handled: int, queued: int, dropped: int, seconds: float,
             uplinks: Collection[Hashable] = ()) -> dict[Hashable, int]:
        """The interval's end: ``handled`` packet-ins in it, ``queued`` of
        them waited first, ``dropped`` never got handled; ``uplinks`` are
        the ports to the outside.  Returns the ports whose rate changes,
        with their new rate."""
        counts, self._counts = self._counts, Counter()
        if not self.ceiling or seconds <= 0:
            return {}
        rates = {port: n / seconds for port, n in counts.items() if n}
        inside = {port: r for port, r in rates.items() if port not in uplinks}
        changes: dict[Hashable, int] = {}

        def busiest_other(port: Hashable) -> float:
            """The busiest inside port, not ``port`` and not cut itself."""
            return max((r for p, r in inside.items() if p != port and p not in self.rates),
                       default=0.0)

        def set_rate(port: Hashable, new: int) -> None:
            changes[port] = new
            if new >= self.ceiling:
                del self.rates[port]
                self._overload.discard(port)
            else:
                self.rates[port] = new

        behind = bool(queued or dropped)
        for port, rate in list(self.rates.items()):
            if dropped:
                break                    # the controller still cannot keep up: nobody climbs
            alone = busiest_other(port) < self.floor
            if alone and not behind and port not in self._overload:
                set_rate(port, self.ceiling)     # held to others' rate, and no other is left
            elif alone or rates.get(port, 0.0) < SATURATED * rate:
                set_rate(port, min(self.ceiling, max(rate + 1, int(rate * GROWTH))))
        dominant, self._dominant = self._dominant, set()
        if not behind:
            return changes
        for port, seen in rates.items():
            others = busiest_other(port)
            share = None
            if others >= self.floor:
                if seen > DOMINANT * others:
                    # Two intervals running: not the tail of a burst that
                    # the others finished first.
                    self._dominant.add(port)
                    share = int(others) if port in dominant else None
            elif dropped and port not in uplinks and len(inside) == 1 \
                    and counts[port] > handled:
                # Alone and the cause: it sends more than the controller
                # handled.  (Drops of a stopped flooder's backlog are not
                # the port's that sends less.)
                share = max(self.floor, int(HEADROOM * handled / seconds))
                self._overload.add(port)
            if share is not None and share < self.rate(port):
                changes[port] = self.rates[port] = share
        return changes

    def forget(self, port: Hashable) -> None:
        """A port (or its switch) is gone."""
        self.rates.pop(port, None)
        self._counts.pop(port, None)
        self._overload.discard(port)
        self._dominant.discard(port)
