"""Python's cyclic garbage collector, set for a long-lived session table.

Measured on the first-packet path (``bench/first_packet_cost.py``'s loop:
40,000 SYNs of new 5-tuples through ``Gateway.packet_in``): at CPython's
default thresholds (700, 10, 10) the collector ran 878 times and took 14 of
every 63 µs.  Each session adds about 14 tracked objects that live as long
as it does, and every collection of an older generation walks all of them
again.  The path itself makes no cyclic garbage (a full collection after
those 40,000 packets finds nothing to free), so the collections can be
much rarer: at the thresholds below the same loop ran 11 young-generation
collections, 63 ms in all, and took 48 µs a packet.

The objects that exist once the controller has started (Ryu, oslo.config,
the apps, the modules) are never garbage: ``gc.freeze`` moves them out of
every later collection's walk.  Cycles that do become garbage (a closed
switch connection's greenlets) are still found, by the young collections
while they are young and by a full one every few million allocations.
"""
from __future__ import annotations

import gc

# A young collection every 50,000 net allocations (about 3,500 sessions),
# the middle one every 20 of those, a full one every 10 middle ones.
THRESHOLDS = (50_000, 20, 10)


def tune() -> None:
    """Set the collector for the running controller (once, after start-up)."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
