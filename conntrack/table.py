"""The connection-tracking engine: lookups, creation, refresh, expiry.

:class:`ConnTrack` decides; it never sends anything. The caller passes the
time (``now``) or lets the injected clock supply it, and gets decisions back
as return values, :class:`~conntrack.events.Refused` exceptions and events.

Data layout (chosen for O(1) both ways and small memory per session):

* ``_sessions``: original key (packed int) -> Session. The outbound lookup is
  one dict probe.
* ``_owners[slot][external_port]`` -> Mapping, where ``slot`` is the
  protocol for the first pool address (``protocol | index << 8`` for the
  others: each address has its own ports), and ``_ikeys`` (the
  owner's inside key in a flat 64-bit array, 0 = no owner: 512 KiB that stay
  in cache, where reading the key off 60,000 scattered Mapping objects would
  not). With endpoint-independent mapping an external port belongs to
  exactly one inside endpoint, so the inbound lookup is an array index plus
  the same dict probe: no second key and no reverse dict per session.
* ``_by_id``: session id -> Session, for cookies and flow stats.
* ``_mappings``: inside key -> Mapping; ``_per_host``: inside ip -> live count.
* ``_wheel``: expiry buckets (see timers.py).

Not thread-safe (Ryu runs handlers in one thread).
"""

from __future__ import annotations

import logging
import random
import time
from array import array
from ipaddress import IPv4Address
from typing import Callable, Iterator, Optional

from .config import ConntrackConfig
from .blocks import BlockPool
from .events import BlockEvent, BlockEventHook, Event, EventHook, EventKind, RefuseReason, Stats
from .keys import ICMP, MAX_IP, MAX_PORT, PROTOCOL_NAMES, PROTOCOLS, TCP, Direction, IPLike, ip_to_int
from .inbound import Inbound
from .limits import Limits
from .pairing import Pairing
from .policy import ProtoPolicy, slot_of
from .ports import PortPool
from .refresh import Refresh
from .requested import Requested
from .session import Mapping, Session, SessionRef
from .static import MAX_SESSION_ID, StaticEntries
from .states import DEAD, INBOUND_INIT, TCP_FIRST_OUTBOUND
from .timers import TimerWheel

log = logging.getLogger(__name__)


class ConnTrack(Inbound, Refresh, StaticEntries, Requested, Limits, Pairing):
    """Source-NAT connection table for one external address or a pool of
    them (paired: see pairing.py).

    ``config``: a :class:`ConntrackConfig`. ``on_event(Event)`` is called after
    every create/restore/expire/remove, once the table is consistent; an
    exception from it is logged and counted, never re-raised. ``clock`` gives
    ``now`` when a method is called without it. ``rng`` seeds port choice.

    Addresses may be given as int, str or IPv4Address everywhere; ints are
    fastest. ICMP echo: pass the identifier as the inside/external port and 0
    as the remote port. Lookups never refresh anything: refreshing is only
    done by :meth:`touch`, :meth:`observe` and :meth:`set_counters`, so an
    ICMP error that is matched with :meth:`lookup_embedded` neither refreshes
    nor ends a session (RFC 5508 REQ-6).
    """

    def __init__(
        self,
        config: ConntrackConfig,
        *,
        on_event: Optional[EventHook] = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Optional[random.Random] = None,
        on_block: Optional[BlockEventHook] = None,
    ) -> None:
        self.config = config
        self.on_event = on_event
        self.on_block = on_block
        self._clock = clock
        self._init_pairing(config)
        slots = [(p, i) for i in range(len(self._addresses)) for p in PROTOCOLS]
        self._policies = {slot_of(p, i): ProtoPolicy(config, p, i) for p, i in slots}
        self._pools: dict[int, PortPool | BlockPool] = {
            slot_of(p, i): self._port_pool(config, p, i, rng) for p, i in slots
        }
        self._owners: dict[int, list[Optional[Mapping]]] = {slot_of(p, i): [None] * (MAX_PORT + 1) for p, i in slots}
        # Same, as the owner's inside key (0 = no owner): see the module docstring.
        self._ikeys: dict[int, array] = {slot_of(p, i): array("Q", bytes(8 * (MAX_PORT + 1))) for p, i in slots}
        self._sessions: dict[int, Session] = {}
        self._by_id: dict[int, Session] = {}
        self._mappings: dict[int, Mapping] = {}
        self._wheel: TimerWheel[Session] = TimerWheel()
        self._next_id = 1
        self._init_limits(config)
        self._lookups = 0
        self._created = 0
        self._restored = 0
        self._expired = 0
        self._removed = 0
        self._hook_errors = 0
        StaticEntries.__init__(self)
        Requested.__init__(self)

    # -- lookups (hot path: no validation, never refresh) ------------------
    def lookup_outbound(self, protocol: int, src_ip: IPLike, src_port: int, dst_ip: IPLike, dst_port: int) -> Optional[Session]:
        """Session of an outbound packet inside -> remote, or None.

        Hot path: one dict probe; int arguments are trusted, not range-checked.
        """
        self._lookups += 1
        if protocol == ICMP:
            dst_port = 0
        try:
            key = (protocol << 96) | (src_ip << 64) | (src_port << 48) | (dst_ip << 16) | dst_port  # type: ignore[operator]
        except TypeError:  # str or IPv4Address addresses
            key = (protocol << 96) | (ip_to_int(src_ip) << 64) | (src_port << 48) | (ip_to_int(dst_ip) << 16) | dst_port
        return self._sessions.get(key)

    def lookup_inbound(self, protocol: int, src_ip: IPLike, src_port: int, dst_ip: IPLike, dst_port: int) -> Optional[Session]:
        """Session of an inbound packet remote -> external, or None.

        Inverts :meth:`lookup_outbound`: ``lookup_inbound(*s.reply) is s``.
        Hot path: the external port's owner key (array index), then one dict
        probe; int arguments are trusted, not range-checked.
        """
        self._lookups += 1
        index = self._addr_index.get(dst_ip if type(dst_ip) is int else ip_to_int(dst_ip))
        if index is None:
            return None
        ikeys = self._ikeys.get(protocol | (index << 8))
        if ikeys is None:
            return None
        ikey = ikeys[dst_port]
        if not ikey:
            return None
        if protocol == ICMP:
            src_port = 0
        try:
            key = (ikey << 48) | (src_ip << 16) | src_port  # type: ignore[operator]
        except TypeError:  # str or IPv4Address address
            key = (ikey << 48) | (ip_to_int(src_ip) << 16) | src_port
        return self._sessions.get(key)

    def lookup_embedded(
        self, direction: Direction, protocol: int, src_ip: IPLike, src_port: int, dst_ip: IPLike, dst_port: int
    ) -> Optional[Session]:
        """Session an ICMP error is about, from the packet embedded in it.

        ``direction`` is the direction of the ICMP error itself. An inbound
        error embeds our translated outbound packet (external -> remote); an
        outbound error embeds a translated inbound one (remote -> inside).
        For an embedded ICMP echo give its identifier as the port on our side
        and 0 on the remote side. Nothing is refreshed or ended.
        """
        if direction == Direction.INBOUND:
            return self.lookup_inbound(protocol, dst_ip, dst_port, src_ip, src_port)
        return self.lookup_outbound(protocol, dst_ip, dst_port, src_ip, src_port)

    def get(self, session_id: int) -> Optional[Session]:
        """Live session with this id (e.g. from a flow cookie), or None."""
        return self._by_id.get(session_id)

    def mapping(self, protocol: int, inside_ip: IPLike, inside_port: int) -> Optional[Mapping]:
        """The external port mapping of an inside endpoint, or None."""
        return self._mappings.get((protocol << 48) | (ip_to_int(inside_ip) << 16) | inside_port)

    def mapping_of_port(self, protocol: int, external_port: int, external_ip: Optional[IPLike] = None) -> Optional[Mapping]:
        """The mapping holding an external port of ``external_ip`` (default:
        the first pool address), or None."""
        index = 0 if external_ip is None else self._addr_index.get(ip_to_int(external_ip))
        owners = None if index is None else self._owners.get(slot_of(protocol, index))
        return None if owners is None else owners[external_port]

    def sessions(self) -> Iterator[Session]:
        """All live sessions (a snapshot list is iterated; safe to modify the table)."""
        return iter(list(self._by_id.values()))

    def session_ids(self) -> list[int]:
        """Ids of all live sessions, ascending, for paging through the table
        without touching a session: a C-speed copy and sort of the id index
        (ids are handed out ascending, so it is nearly sorted and the sort
        is close to linear; about 1 ms at 100,000 sessions)."""
        return sorted(self._by_id)

    def __len__(self) -> int:
        """Number of live sessions."""
        return len(self._by_id)

    # -- creation -----------------------------------------------------------
    def create_outbound(
        self,
        protocol: int,
        src_ip: IPLike,
        src_port: int,
        dst_ip: IPLike,
        dst_port: int,
        now: Optional[float] = None,
        tcp_flags: int = 0,
    ) -> Session:
        """Session for an outbound packet inside -> remote, created if needed.

        An existing session is returned unchanged (call :meth:`observe` for its
        flags). A new one reuses the endpoint's mapping if it has one (EIM),
        else gets a port: the inside port if free, else random in its class.
        TCP starts in SYN_SENT (any first packet; ``tcp_flags`` of the first
        packet are applied). Raises :class:`Refused` (TABLE_FULL, HOST_QUOTA,
        POOL_EXHAUSTED) without changing anything; ValueError on bad input.
        """
        self._lookups += 1
        policy = self._policies.get(protocol)
        if policy is None:
            raise ValueError(f"unsupported protocol {protocol!r}")
        if type(src_ip) is not int or not 0 <= src_ip <= MAX_IP:
            src_ip = ip_to_int(src_ip)
        if type(dst_ip) is not int or not 0 <= dst_ip <= MAX_IP:
            dst_ip = ip_to_int(dst_ip)
        if protocol == ICMP:
            dst_port = 0
        if type(src_port) is not int or type(dst_port) is not int or not (0 <= src_port <= MAX_PORT and 0 <= dst_port <= MAX_PORT):
            raise ValueError(f"ports must be ints in 0..65535: {src_port!r}, {dst_port!r}")
        ikey = (protocol << 48) | (src_ip << 16) | src_port
        okey = (ikey << 48) | (dst_ip << 16) | dst_port
        session = self._sessions.get(okey)
        if session is not None:
            return session
        if now is None:
            now = self._clock()
        by_id = self._by_id
        if len(by_id) >= self._max or self._per_host.get(src_ip, 0) >= self._max_host:
            self._check_limits(src_ip)  # raises
        mapping = self._mappings.get(ikey)
        if mapping is None:
            if self._paired:
                policy = self._policies[slot_of(protocol, self._address_for(src_ip))]
            mapping = self._new_mapping(policy, ikey, src_port, now)
        code = TCP_FIRST_OUTBOUND[tcp_flags & 0x1F] if protocol == TCP else 0
        sid = self._next_id
        if sid in by_id or sid >= MAX_SESSION_ID:
            sid = self._new_id()
        else:
            self._next_id = sid + 1
        return self._insert(okey, mapping, code, now, now, src_ip, sid, EventKind.CREATED)

    # -- expiry and removal ---------------------------------------------------
    def expire(self, now: Optional[float] = None, grace: float = 0.0) -> list[Session]:
        """Remove and return every session with ``expires_at <= now - grace``.

        ``grace`` is for a caller that learns of activity late (from periodic
        flow stats): sessions get that much longer, but their ports' quarantine
        and the EXPIRED events still count from ``now``. Cost grows with the
        number of due sessions (plus sessions refreshed since they were
        filed), not with the table size. Ports of mappings left without
        sessions go to quarantine. One EXPIRED event each.
        """
        if now is None:
            now = self._clock()
        if now != now or grace != grace or grace < 0:
            raise ValueError(f"expire needs a time and a grace >= 0, got {now!r}, {grace!r}")
        due: list[Session] = []

        def on_due(s: Session) -> None:
            self._unlink(s, now)
            due.append(s)

        self._wheel.collect(now - grace, _deadline_of, on_due)
        self._expired += len(due)
        if self.on_event is not None:
            for s in due:
                self._emit(EventKind.EXPIRED, s, now, "timeout")
        return due

    def remove(
        self, session: SessionRef, reason: str = "removed", now: Optional[float] = None, timed_out: bool = False
    ) -> Optional[Session]:
        """Remove a live session now (flow removed, REST DELETE...).

        Frees its port like expiry does and fires a REMOVED event with
        ``reason``. With ``timed_out`` the caller says the session idled out
        (e.g. the switch's idle timeout, which it knows before this table
        does): it is counted and reported as EXPIRED instead. Returns the
        session, or None if it was not live.
        """
        s = self._resolve(session)
        if s is None:
            return None
        if now is None:
            now = self._clock()
        self._unlink(s, now)
        if timed_out:
            self._expired += 1
        else:
            self._removed += 1
        self._wheel.stale += 1
        self._maybe_compact()
        self._emit(EventKind.EXPIRED if timed_out else EventKind.REMOVED, s, now, reason)
        return s

    def next_deadline(self) -> Optional[float]:
        """Earliest ``expires_at`` of a live session, or None if the table is empty.

        Exact (not a lower bound), so a timer set to it never wakes for nothing.
        """
        return self._wheel.next_deadline(_deadline_of)

    # -- stats ------------------------------------------------------------------
    def stats(self, now: Optional[float] = None) -> Stats:
        """A snapshot of the counters; with ``now``, ports whose quarantine has
        ended by then are returned to the pool first (and not counted)."""
        pools = self._pools
        if now is not None:
            for pool in pools.values():
                pool.drain(now)
        names = PROTOCOL_NAMES
        by_protocol = lambda what: {  # noqa: E731  (summed over the pool)
            names[p]: sum(getattr(pool, what) for slot, pool in pools.items() if slot & 0xFF == p) for p in PROTOCOLS
        }
        return Stats(
            active=len(self._by_id),
            created=self._created,
            restored=self._restored,
            expired=self._expired,
            removed=self._removed,
            refused=sum(self._refused.values()),
            refused_by_reason=dict(self._refused),
            lookups=self._lookups,
            mappings=len(self._mappings),
            ports_in_use=by_protocol("in_use"),
            ports_reserved=by_protocol("reserved"),
            ports_quarantined=by_protocol("quarantined"),
            quarantine_fallbacks=sum(pool.quarantine_fallbacks for pool in pools.values()),
            forwards=len(self._forwards),
            hook_errors=self._hook_errors,
        )

    def pool_usage(self) -> list[tuple[IPv4Address, int, dict[str, int]]]:
        """Each pool address with its paired hosts and the ports its mappings
        hold per protocol, in pool order."""
        hosts = self.paired_hosts()
        return [
            (address, hosts[i], {PROTOCOL_NAMES[p]: self._pools[slot_of(p, i)].in_use for p in PROTOCOLS})
            for i, address in enumerate(self._addresses)
        ]

    # -- internals ------------------------------------------------------------
    def _resolve(self, session: SessionRef) -> Optional[Session]:
        if isinstance(session, Session):
            return None if session.code & DEAD else session
        return self._by_id.get(session)

    def _new_id(self) -> int:
        sid, by_id = self._next_id, self._by_id
        while sid in by_id:
            sid = sid + 1 if sid < MAX_SESSION_ID else 1
        self._next_id = sid + 1 if sid < MAX_SESSION_ID else 1
        return sid

    def _port_pool(self, config: ConntrackConfig, protocol: int, index: int, rng: Optional[random.Random]) -> PortPool | BlockPool:
        """The ports of one protocol on pool address ``index``: one at a time,
        or in blocks per host (``port_block_size``)."""
        if not config.port_block_size:
            return PortPool.for_protocol(config, protocol, rng)
        det = config.deterministic_map()
        # Deterministic: one formula for every protocol, so ICMP ids use port_range too.
        first, last = config.icmp_id_range if protocol == ICMP and det is None else config.port_range
        address = int(config.external_pool[index])
        def own_block(owner: int) -> Optional[int]:
            """Deterministic: the block ``owner`` has on this address, if any."""
            where = det.slot(owner) if det is not None else None
            return where[1] if where is not None and where[0] == index else None

        def report(kind: str, owner: int, start: int, end: int, now: float) -> None:
            hook = self.on_block
            if hook is not None:
                try:
                    hook(BlockEvent(kind, protocol, owner, address, start, end, now))
                except Exception:  # the table is consistent; report loudly, keep going
                    self._hook_errors += 1
                    log.exception("conntrack block hook failed on %s of %s ports %d-%d", kind, owner, start, end)

        return BlockPool(first, last, config.port_block_size, 1 if det else config.port_blocks_per_host,
                         config.quarantine, config.preserve_parity, rng, None if det else report, own_block if det else None)

    def blocks_in_use(self) -> dict[str, int]:
        """Port blocks hosts hold now, per protocol (all 0 without blocks)."""
        return {
            PROTOCOL_NAMES[p]: sum(
                pool.blocks_in_use for slot, pool in self._pools.items() if slot & 0xFF == p and isinstance(pool, BlockPool)
            )
            for p in PROTOCOLS
        }

    def blocks_of(self, inside_ip: IPLike) -> list[tuple[str, IPv4Address, int, int]]:
        """(protocol, address, first, last) of each port block ``inside_ip`` holds."""
        ip = ip_to_int(inside_ip)
        return [
            (PROTOCOL_NAMES[slot & 0xFF], self._addresses[slot >> 8], first, last)
            for slot, pool in sorted(self._pools.items())
            if isinstance(pool, BlockPool)
            for first, last in pool.blocks_of(ip)
        ]

    def _new_mapping(self, policy: ProtoPolicy, ikey: int, inside_port: int, now: float) -> Mapping:
        pool = self._pools[policy.slot]
        port = pool.allocate(ikey, inside_port, now)
        if port is None:
            if isinstance(pool, BlockPool) and pool.host_full:
                raise self._refuse(RefuseReason.BLOCK_QUOTA, f"{pool.per_host} {policy.name} port blocks")
            on = f" of {IPv4Address(policy.external_ip)}" if self._paired else ""
            raise self._refuse(RefuseReason.POOL_EXHAUSTED, f"{policy.name} ports{on} for inside port {inside_port}")
        return self._add_mapping(policy, ikey, port)

    def _add_mapping(self, policy: ProtoPolicy, ikey: int, port: int, static: bool = False) -> Mapping:
        mapping = Mapping(ikey, port, policy, static)
        self._mappings[ikey] = mapping
        slot = policy.slot
        self._owners[slot][port] = mapping
        self._ikeys[slot][port] = ikey
        if self._paired:
            self._pair((ikey >> 16) & MAX_IP, slot >> 8)
        return mapping

    def _drop_mapping(self, mapping: Mapping, now: float) -> None:
        slot = mapping.policy.slot
        del self._mappings[mapping.ikey]
        self._owners[slot][mapping.external_port] = None
        self._ikeys[slot][mapping.external_port] = 0
        self._pools[slot].free(mapping.external_port, mapping.ikey, now)
        if self._paired:
            self._unpair((mapping.ikey >> 16) & MAX_IP)

    def _insert(
        self, okey: int, mapping: Mapping, code: int, created: float, last_seen: float, inside_ip: int, sid: int, kind: EventKind
    ) -> Session:
        s = Session(sid, okey, mapping, code, created, last_seen)
        self._sessions[okey] = s
        self._by_id[sid] = s
        head = mapping.head
        if head is not None:
            head._prev = s
            s._next = head
        mapping.head = s
        mapping.count += 1
        self._count_host(inside_ip, bool(code & INBOUND_INIT))
        self._wheel.add(s, last_seen + mapping.policy.timeouts[code])
        if kind is EventKind.CREATED:
            self._created += 1
        else:
            self._restored += 1
        if self.on_event is not None:
            self._emit(kind, s, created, "")
        return s

    def _unlink(self, s: Session, now: float) -> None:
        """Forget a live session; frees its mapping's port if it was the last."""
        del self._sessions[s.okey]
        del self._by_id[s.id]
        s.code |= DEAD
        mapping = s.mapping
        prev, nxt = s._prev, s._next
        if prev is None:
            mapping.head = nxt
        else:
            prev._next = nxt
        if nxt is not None:
            nxt._prev = prev
        s._prev = s._next = None
        mapping.count -= 1
        self._uncount_host((s.okey >> 64) & MAX_IP, bool(s.code & INBOUND_INIT))
        if mapping.head is None and not mapping.static and mapping.ikey not in self._peers:
            self._drop_mapping(mapping, now)

    def _maybe_compact(self) -> None:
        """Rebuild the timer buckets when stale copies outnumber live sessions
        (amortised O(1) per removal; bounds memory held by dead sessions)."""
        wheel = self._wheel
        if wheel.stale > 4096 and wheel.stale > len(self._by_id):
            wheel.rebuild((s, s.expires_at) for s in self._by_id.values())

    def _emit(self, kind: EventKind, session: Session, now: float, reason: str) -> None:
        hook = self.on_event
        if hook is None:
            return
        try:
            hook(Event(kind, session, now, reason))
        except Exception:  # the table is consistent; report loudly, keep going
            self._hook_errors += 1
            log.exception("conntrack event hook failed on %s of %r", kind.value, session)


def _deadline_of(s: Session) -> Optional[float]:
    code = s.code
    if code & DEAD:
        return None
    return s.last_seen + s.mapping.policy.timeouts[code]
