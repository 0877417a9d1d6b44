"""External ports in blocks per inside host (RFC 6888 REQ-4, RFC 7422 s2).

With ``port_block_size`` set, one protocol's ports on one pool address are
cut into blocks of that many consecutive ports.  An inside host's mappings
take ports only from the blocks it holds; it gets a block with its first
mapping and another when its blocks are full, up to ``blocks_per_host``.
A block whose owner's last mapping ended is released: it rests in quarantine
(RFC 6888 REQ-8) before another host may have it, and its last owner gets it
back first.  So the mapping log needs one line per block, not per session.

Inside a host's blocks the choice is as without blocks: the inside port
itself if it is the host's and free, else a random free port of its parity
(RFC 4787 REQ-4, when ``preserve_parity``), else one of the other parity.
A port freed inside a block goes straight back to it: the quarantine is
there to keep a port from *another* subscriber, and the block stays its
owner's.  Port forwards and reservations take single ports, owner or not;
the block's owner simply never gets them.

Same interface as :class:`~conntrack.ports.PortPool`, so the table's
allocation, restore, forward and reservation paths use either; beyond it,
``host_full`` (why the last allocation failed), ``blocks_of``,
``blocks_in_use`` and the ``on_block`` callback.
"""

from __future__ import annotations

import random
from array import array
from collections import deque
from typing import Callable, Optional

from .keys import MAX_IP
from .ports import FREE, NPORTS, RESERVED, USED

B_FREE, B_OWNED, B_QUARANTINED = 0, 1, 2

#: on_block(kind, owner ip, first port, last port, now): "allocated",
#: "released" or "restored" (a block rebuilt by a restored session).
BlockHook = Callable[[str, int, int, int, float], None]


class BlockPool:
    """Ports of one protocol on one address, handed out in per-host blocks."""

    def __init__(
        self,
        first: int,
        last: int,
        size: int,
        per_host: int,
        quarantine: float,
        parity: bool,
        rng: Optional[random.Random] = None,
        on_block: Optional[BlockHook] = None,
        fixed: Optional[Callable[[int], Optional[int]]] = None,
    ) -> None:
        """``fixed(owner)``: deterministic mode, the one block an inside
        address may have here (None: none here); blocks then never rest, as
        nobody else may take them."""
        self.first, self.size = first, size
        self.nblocks = (last - first + 1) // size
        self.per_host = per_host
        self._quarantine = quarantine
        self._parity = parity
        self._random = (rng or random.Random()).random
        self.on_block = on_block
        self._fixed = fixed
        self._state = bytearray(NPORTS)
        self._mine = bytearray(NPORTS)  # 1: used by its block's owner (counts for release)
        self._pos = array("l", [-1]) * NPORTS  # index in its block's free list
        n = self.nblocks
        self._bstate = bytearray(n)
        self._owner = [0] * n
        self._used = [0] * n  # ports the owner holds
        self._free_ports: dict[int, list[list[int]]] = {}  # owned block -> free ports by parity
        self._free_blocks = list(range(n))
        self._bpos = array("l", range(n))
        self._qfifo: deque[tuple[float, int]] = deque()
        self._q_until = array("d", [0.0]) * max(n, 1)
        self._q_last: dict[int, int] = {}  # owner ip -> its last quarantined block
        self._q_owner = [0] * n  # resting block -> the owner it left
        self._host_blocks: dict[int, list[int]] = {}
        self.in_use = 0
        self.reserved = 0
        self.quarantine_fallbacks = 0
        self.host_full = False  # the last allocate() failed on the host's block limit

    # -- queries ------------------------------------------------------------
    @property
    def quarantined(self) -> int:
        """Ports in blocks resting in quarantine."""
        return sum(1 for b in range(self.nblocks) if self._bstate[b] == B_QUARANTINED) * self.size

    def state(self, port: int) -> int:
        """FREE, USED or RESERVED (blocks rest in quarantine, ports do not)."""
        return self._state[port]

    def block_of(self, port: int) -> Optional[int]:
        """Index of the block holding ``port``, or None outside every block."""
        b = (port - self.first) // self.size
        return b if port >= self.first and b < self.nblocks else None

    def bounds(self, block: int) -> tuple[int, int]:
        """First and last port of a block."""
        start = self.first + block * self.size
        return start, start + self.size - 1

    @property
    def blocks_in_use(self) -> int:
        """Blocks held by a host now."""
        return len(self._free_ports)

    def blocks_of(self, owner: int) -> list[tuple[int, int]]:
        """(first, last) port of each block ``owner`` (an inside ip) holds."""
        return [self.bounds(b) for b in self._host_blocks.get(owner, ())]

    # -- allocation -----------------------------------------------------------
    def allocate(self, ikey: int, inside_port: int, now: float) -> Optional[int]:
        """A port for inside endpoint ``ikey`` from its host's blocks, a new
        block if they are full; None when the host holds ``per_host`` full
        blocks (``host_full`` set) or no block is left."""
        self.host_full = False
        owner = (ikey >> 16) & MAX_IP
        blocks = self._host_blocks.get(owner, [])
        b = self.block_of(inside_port)
        if b is not None and self._owner[b] == owner and self._state[inside_port] == FREE and blocks:
            self._take(inside_port, b)
            return inside_port
        want = inside_port & 1 if self._parity else 0
        for parity in (want, 1 - want) if self._parity else (0,):
            for b in blocks:
                free = self._free_ports[b][parity]
                if free:
                    port = free[int(self._random() * len(free))]
                    self._take(port, b)
                    return port
        if len(blocks) >= self.per_host:
            self.host_full = True
            return None
        b = self._new_block(owner, now)
        while b is not None:
            lists = self._free_ports[b]
            for parity in (want, 1 - want) if self._parity else (0,):
                if lists[parity]:
                    port = lists[parity][int(self._random() * len(lists[parity]))]
                    self._take(port, b)
                    return port
            # Every port of it is a forward's or reserved: give it back, try another.
            self._drop_block(b, now)
            b = self._new_block(owner, now) if len(self._host_blocks.get(owner, ())) < self.per_host else None
        return None

    def claim(self, port: int, owner: int = 0, now: float = 0.0) -> bool:
        """Mark a specific port used.  With ``owner`` (a restored session's
        inside ip) the port's block becomes that host's (False if another
        host holds it); without, the port is taken alone (a forward).
        False if the port is used or reserved."""
        if self._state[port] != FREE:
            return False
        b = self.block_of(port)
        if owner and b is not None:
            if self._bstate[b] == B_OWNED and self._owner[b] != owner:
                return False
            if self._fixed is not None and self._fixed(owner) != b:
                return False      # deterministic: not that host's block
            if self._bstate[b] != B_OWNED:
                self._own(b, owner, now, "restored")
            self._take(port, b)
            return True
        self._state[port] = USED
        self.in_use += 1
        if b is not None and self._bstate[b] == B_OWNED:
            self._unlist(port, b)
        return True

    def free(self, port: int, ikey: int, now: float) -> None:
        """Return a used port; the block is released with its owner's last."""
        if self._state[port] != USED:
            raise ValueError(f"port {port} is not in use")
        self._state[port] = FREE
        self.in_use -= 1
        b = self.block_of(port)
        if b is None or self._bstate[b] != B_OWNED:
            return
        self._list(port, b)
        if self._mine[port]:
            self._mine[port] = 0
            self._used[b] -= 1
            if not self._used[b]:
                self._drop_block(b, now)

    def reserve(self, port: int) -> bool:
        """Keep a port away from the allocator; False if a mapping holds it."""
        s = self._state[port]
        if s == RESERVED:
            return True
        if s == USED:
            return False
        self._state[port] = RESERVED
        self.reserved += 1
        b = self.block_of(port)
        if b is not None and self._bstate[b] == B_OWNED:
            self._unlist(port, b)
        return True

    def release(self, port: int, now: float) -> bool:
        """Undo :meth:`reserve`; False if the port was not reserved."""
        if self._state[port] != RESERVED:
            return False
        self._state[port] = FREE
        self.reserved -= 1
        b = self.block_of(port)
        if b is not None and self._bstate[b] == B_OWNED:
            self._list(port, b)
        return True

    def drain(self, now: float) -> None:
        """Blocks whose quarantine ended become free for any host."""
        fifo = self._qfifo
        while fifo and fifo[0][0] <= now:
            until, b = fifo.popleft()
            if self._bstate[b] == B_QUARANTINED and self._q_until[b] == until:
                self._forget_last(b)
                self._push_free_block(b)

    # -- internals ------------------------------------------------------------
    def _new_block(self, owner: int, now: float) -> Optional[int]:
        """A block for ``owner``: its last one if still resting, else a random
        free one, else the one resting longest (the pool is otherwise full)."""
        self.drain(now)
        if self._fixed is not None:
            b = self._fixed(owner)
            if b is None or b >= self.nblocks or self._bstate[b] == B_OWNED:
                return None
            self._own(b, owner, now, "allocated")
            return b
        b = self._q_last.get(owner)
        if b is not None and self._bstate[b] == B_QUARANTINED:
            self._forget_last(b)
        elif self._free_blocks:
            b = self._free_blocks[int(self._random() * len(self._free_blocks))]
        else:
            b = None
            while self._qfifo:
                until, q = self._qfifo.popleft()
                if self._bstate[q] == B_QUARANTINED and self._q_until[q] == until:
                    self._forget_last(q)
                    self.quarantine_fallbacks += 1
                    b = q
                    break
            if b is None:
                return None
        self._own(b, owner, now, "allocated")
        return b

    def _own(self, b: int, owner: int, now: float, kind: str) -> None:
        if self._bstate[b] == B_FREE:
            self._take_free_block(b)
        elif self._bstate[b] == B_QUARANTINED:
            self._forget_last(b)
        self._bstate[b] = B_OWNED
        self._owner[b] = owner
        self._used[b] = 0
        start, end = self.bounds(b)
        lists: list[list[int]] = [[], []]
        state, pos = self._state, self._pos
        for port in range(start, end + 1):
            if state[port] == FREE:
                free = lists[port & 1 if self._parity else 0]
                pos[port] = len(free)
                free.append(port)
        self._free_ports[b] = lists
        self._host_blocks.setdefault(owner, []).append(b)
        if self.on_block is not None:
            self.on_block(kind, owner, start, end, now)

    def _drop_block(self, b: int, now: float) -> None:
        """``b`` leaves its owner: to quarantine (or free, without one)."""
        owner = self._owner[b]
        held = self._host_blocks[owner]
        held.remove(b)
        if not held:
            del self._host_blocks[owner]
        for free in self._free_ports.pop(b):
            for port in free:
                self._pos[port] = -1
        self._owner[b] = 0
        if self._quarantine > 0 and self._fixed is None:
            until = now + self._quarantine
            self._bstate[b] = B_QUARANTINED
            self._q_until[b] = until
            self._qfifo.append((until, b))
            self._q_last[owner] = b
            self._q_owner[b] = owner
        else:
            self._push_free_block(b)
        if self.on_block is not None:
            start, end = self.bounds(b)
            self.on_block("released", owner, start, end, now)

    def _forget_last(self, b: int) -> None:
        """``b`` stops resting: it is no longer its last owner's to take back."""
        owner = self._q_owner[b]
        if self._q_last.get(owner) == b:
            del self._q_last[owner]

    def _take(self, port: int, b: int) -> None:
        self._unlist(port, b)
        self._state[port] = USED
        self._mine[port] = 1
        self._used[b] += 1
        self.in_use += 1

    def _unlist(self, port: int, b: int) -> None:
        i = self._pos[port]
        if i < 0:
            return
        free = self._free_ports[b][port & 1 if self._parity else 0]
        last = free.pop()
        if last != port:
            free[i] = last
            self._pos[last] = i
        self._pos[port] = -1

    def _list(self, port: int, b: int) -> None:
        free = self._free_ports[b][port & 1 if self._parity else 0]
        self._pos[port] = len(free)
        free.append(port)

    def _push_free_block(self, b: int) -> None:
        self._bstate[b] = B_FREE
        self._bpos[b] = len(self._free_blocks)
        self._free_blocks.append(b)

    def _take_free_block(self, b: int) -> None:
        free, bpos = self._free_blocks, self._bpos
        i = bpos[b]
        last = free.pop()
        if last != b:
            free[i] = last
            bpos[last] = i
        bpos[b] = -1
