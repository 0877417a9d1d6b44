"""External port pool of one protocol: allocation, quarantine, reservations.

Ports are grouped in classes (low/high range x parity when those options are
on); an inside port is only ever given a port of its own class. Each class
keeps its free ports in a list with a position index, so taking a random or a
specific free port is O(1) (RFC 6056 "simple random" choice, which is what a
randomised start over a shuffled range gives, without the linear probe that
degrades as the pool fills).

A freed port goes into its class's quarantine FIFO for ``quarantine`` seconds
(RFC 6888 REQ-8). Quarantined ports are handed out only (a) back to the inside
endpoint that last held them, or (b) oldest-first when the class has no free
port left, so the quarantine never causes a refusal.
"""

from __future__ import annotations

import random
from array import array
from collections import deque
from typing import Optional

from .config import ConntrackConfig
from .keys import ICMP, MAX_PORT

FREE = 0  # unused (in a class's free list when the port has a class)
USED = 1  # held by a mapping
QUARANTINED = 2
RESERVED = 3
NPORTS = MAX_PORT + 1
# One int object per port number, shared by every pool's free lists: a pool
# address then costs its tables, not 64k new ints per protocol.
_PORT_NUMBERS = list(range(NPORTS))


class PortPool:
    """Availability of the 65536 external ports of one protocol."""

    def __init__(
        self,
        segments: list[tuple[int, range]],
        request_classes: bytearray,
        quarantine: float,
        rng: Optional[random.Random] = None,
        fallback: Optional[dict[int, int]] = None,
    ) -> None:
        """``segments``: (class, ports) pairs, class >= 1, ports disjoint ranges;
        ``request_classes[q]``: class an inside port q must be mapped into;
        ``fallback[c]``: class to use when class ``c`` is exhausted."""
        nclasses = max([c for c, _ in segments] + list(request_classes)) + 1
        self._cls = bytearray(NPORTS)  # 0: never allocated by the pool
        self._req = bytearray(request_classes)
        self._state = bytearray(NPORTS)
        self._pos = array("l", [-1]) * NPORTS  # index in its class's free list
        self._free: list[list[int]] = [[] for _ in range(nclasses)]
        for c, ports in segments:
            if not ports:
                continue
            free = self._free[c]
            self._cls[ports.start : ports.stop : ports.step] = bytes([c]) * len(ports)
            self._pos[ports.start : ports.stop : ports.step] = array("l", range(len(free), len(free) + len(ports)))
            free.extend(_PORT_NUMBERS[ports.start : ports.stop : ports.step])
        self._quarantine = quarantine
        self._qfifo: list[deque[tuple[float, int]]] = [deque() for _ in range(nclasses)]
        self._q_until = array("d", [0.0]) * NPORTS
        self._q_owner: dict[int, int] = {}  # quarantined port -> ikey that held it
        self._q_by_owner: dict[int, int] = {}  # ikey -> its last quarantined port
        self._fallback = dict(fallback or {})
        self._random = (rng or random.Random()).random
        self.in_use = 0
        self.reserved = 0
        self.quarantined = 0
        self.quarantine_fallbacks = 0  # allocations that had to take a quarantined port

    @classmethod
    def for_protocol(cls, config: ConntrackConfig, protocol: int, rng: Optional[random.Random] = None) -> "PortPool":
        """Pool laid out as ``config`` says for TCP/UDP, or for ICMP identifiers."""
        if protocol == ICMP:
            first, last = config.icmp_id_range
            return cls([(1, range(first, last + 1))], bytearray([1]) * NPORTS, config.quarantine, rng)
        parity = config.preserve_parity
        ranges = [(0, config.port_range)]
        request = bytearray([1]) * NPORTS
        if config.preserve_low_ports:
            ranges.append((2, config.low_port_range))
            request[0:1024] = bytes([3]) * 1024
        if parity:
            request[1::2] = bytes(c + 1 for c in request[1::2])
        segments = []
        fallback = {}
        for base, (first, last) in ranges:
            if not parity:
                segments.append((1 + base, range(first, last + 1)))
                continue
            for bit in (0, 1):
                start = first if first & 1 == bit else first + 1
                segments.append((1 + base + bit, range(start, last + 1, 2)))
            # Parity is a SHOULD (RFC 4787 REQ-4); refusing a session is worse.
            fallback[1 + base], fallback[2 + base] = 2 + base, 1 + base
        return cls(segments, request, config.quarantine, rng, fallback)

    # -- queries --------------------------------------------------------
    def state(self, port: int) -> int:
        """FREE, USED, QUARANTINED or RESERVED."""
        return self._state[port]

    def may_give(self, port: int) -> bool:
        """Free (not quarantined either) and in a range this pool hands out:
        a host's suggested port (PCP, NAT-PMP)."""
        return self._cls[port] != 0 and self._state[port] == FREE

    def allocatable(self, port: int) -> bool:
        """True if the port belongs to some class (is in a configured range)."""
        return self._cls[port] != 0

    def free_count(self, inside_port: int) -> int:
        """Free (not quarantined) ports in the class ``inside_port`` maps into."""
        return len(self._free[self._req[inside_port]])

    def available(self, inside_port: int, fallback: bool = True) -> int:
        """Ports :meth:`allocate` could still hand out for ``inside_port``:
        free or quarantined, in its class (and, with ``fallback``, in the
        class it falls back to)."""
        c = self._req[inside_port]
        classes = [c] + ([self._fallback[c]] if fallback and c in self._fallback else [])
        state, cls = self._state, self._cls
        quarantined = sum(1 for p in self._queued_ports() if cls[p] in classes and state[p] == QUARANTINED)
        return sum(len(self._free[k]) for k in classes) + quarantined

    def _queued_ports(self) -> set[int]:
        return {port for fifo in self._qfifo for _, port in fifo}

    # -- allocation -----------------------------------------------------
    def allocate(self, ikey: int, inside_port: int, now: float) -> Optional[int]:
        """Take a port for inside endpoint ``ikey``; None when the class is exhausted.

        Preference: the inside port itself if free; else the port this endpoint
        held last if it is still quarantined; else a random free port; else the
        port that has been in quarantine longest; else the same from the
        fallback class (the other parity), if there is one.
        """
        self.drain(now)
        c = self._req[inside_port]
        state = self._state
        if self._cls[inside_port] == c and state[inside_port] == FREE:
            self._take_free(inside_port)
            return inside_port
        last = self._q_by_owner.get(ikey)
        if last is not None and state[last] == QUARANTINED and self._cls[last] == c:
            self._take_quarantined(last)
            return last
        port = self._any_of(c)
        if port is None and c in self._fallback:
            port = self._any_of(self._fallback[c])
        return port

    def _any_of(self, c: int) -> Optional[int]:
        """A random free port of class ``c``, else its oldest quarantined one."""
        free = self._free[c]
        if free:
            port = free[int(self._random() * len(free))]
            self._take_free(port)
            return port
        fifo, state = self._qfifo[c], self._state
        while fifo:
            until, port = fifo.popleft()
            if state[port] == QUARANTINED and self._q_until[port] == until:
                self._take_quarantined(port)
                self.quarantine_fallbacks += 1
                return port
        return None

    def claim(self, port: int, owner: int = 0, now: float = 0.0) -> bool:
        """Mark a specific port used (restore, static forwards).

        Works for free, quarantined and out-of-range ports; False if the port
        is used or reserved.  ``owner`` (the inside ip) matters only to a
        :class:`~conntrack.blocks.BlockPool`.
        """
        s = self._state[port]
        if s == FREE:
            if self._pos[port] >= 0:
                self._take_free(port)
            else:
                self._state[port] = USED
                self.in_use += 1
            return True
        if s == QUARANTINED:
            self._take_quarantined(port)
            return True
        return False

    def free(self, port: int, ikey: int, now: float) -> None:
        """Return a used port; it is quarantined if it is in a range."""
        if self._state[port] != USED:
            raise ValueError(f"port {port} is not in use")
        self.in_use -= 1
        self._to_pool(port, ikey, now)

    def reserve(self, port: int) -> bool:
        """Keep a port away from the allocator; False if a mapping holds it."""
        s = self._state[port]
        if s == RESERVED:
            return True
        if s == USED:
            return False
        self.claim(port)
        self._state[port] = RESERVED
        self.in_use -= 1
        self.reserved += 1
        return True

    def take_reserved(self, port: int) -> bool:
        """A reserved port becomes a mapping's (NAT-PMP's companion port,
        reserved for the host that now maps it); False if not reserved."""
        if self._state[port] != RESERVED:
            return False
        self._state[port] = USED
        self.reserved -= 1
        self.in_use += 1
        return True

    def release(self, port: int, now: float) -> bool:
        """Undo :meth:`reserve` (the port is quarantined); False if not reserved."""
        if self._state[port] != RESERVED:
            return False
        self.reserved -= 1
        self._to_pool(port, -1, now)
        return True

    def drain(self, now: float) -> None:
        """Move ports whose quarantine ended back to the free lists."""
        state, q_until = self._state, self._q_until
        for fifo in self._qfifo:
            while fifo and fifo[0][0] <= now:
                until, port = fifo.popleft()
                if state[port] == QUARANTINED and q_until[port] == until:
                    self._forget_owner(port)
                    self.quarantined -= 1
                    self._push_free(port)

    # -- internals ------------------------------------------------------
    def _to_pool(self, port: int, ikey: int, now: float) -> None:
        c = self._cls[port]
        if not c:
            self._state[port] = FREE
        elif self._quarantine <= 0:
            self._push_free(port)
        else:
            until = now + self._quarantine
            self._state[port] = QUARANTINED
            self._q_until[port] = until
            self._qfifo[c].append((until, port))
            self.quarantined += 1
            if ikey >= 0:
                self._q_owner[port] = ikey
                self._q_by_owner[ikey] = port

    def _push_free(self, port: int) -> None:
        free = self._free[self._cls[port]]
        self._state[port] = FREE
        self._pos[port] = len(free)
        free.append(port)

    def _take_free(self, port: int) -> None:
        free = self._free[self._cls[port]]
        pos = self._pos
        i = pos[port]
        last = free.pop()
        if last != port:
            free[i] = last
            pos[last] = i
        pos[port] = -1
        self._state[port] = USED
        self.in_use += 1

    def _take_quarantined(self, port: int) -> None:
        # Its FIFO entry goes stale (state no longer QUARANTINED) and is skipped.
        self._forget_owner(port)
        self._state[port] = USED
        self.quarantined -= 1
        self.in_use += 1

    def _forget_owner(self, port: int) -> None:
        owner = self._q_owner.pop(port, None)
        if owner is not None and self._q_by_owner.get(owner) == port:
            del self._q_by_owner[owner]
