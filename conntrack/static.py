"""Entries the caller places instead of traffic: restored sessions,
reserved external ports and static port forwards.

A mixin of :class:`~conntrack.table.ConnTrack` (uses its mapping tables,
pools and ``_insert``: see :class:`StaticHost`), kept apart so each file
stays small.

* ``restore`` rebuilds a session after a controller restart from what the
  switch's flows say, with the session id the flows' cookies carry.
* ``reserve``/``release`` keep an external port away from the allocator.
* A forward is a static mapping external port -> internal ip:port that stays
  with no sessions: any remote may open a session through it (filtering is
  endpoint-independent for forwards), and the internal endpoint's own
  outbound traffic uses the same external port (EIM).
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol, Union

from .blocks import BlockPool
from .config import ConntrackConfig
from .events import EventKind, Refused, RefuseReason
from .keys import ICMP, PROTOCOL_NAMES, TCP, UDP, IPLike, check_port, ip_to_int
from .policy import ProtoPolicy
from .ports import RESERVED, PortPool
from .session import Mapping, Session
from .states import State, datagram_code_for, tcp_code_for

MAX_SESSION_ID = 2**32 - 1  # ids fit the low 32 bits of an OpenFlow cookie


class StaticHost(Protocol):
    """What :class:`StaticEntries` needs from the table it is mixed into
    (and from itself: its own ``_forwards`` and ``_check_free_port``)."""

    config: ConntrackConfig
    _addr_index: dict[int, int]
    _host_addr: dict[int, int]
    _paired: bool
    _clock: Callable[[], float]
    _next_id: int
    _policies: dict[int, ProtoPolicy]
    _pools: dict[int, Union[PortPool, BlockPool]]
    _owners: dict[int, list[Optional[Mapping]]]
    _sessions: dict[int, Session]
    _by_id: dict[int, Session]
    _mappings: dict[int, Mapping]
    _forwards: dict[tuple[int, int], Mapping]
    _requested: dict[int, Mapping]

    def _address_for(self, inside_ip: int) -> int: ...

    def _slot(self, protocol: int, external_ip: Optional[IPLike]) -> int: ...

    def _refuse(self, reason: RefuseReason, detail: str = "") -> Refused: ...

    def _check_limits(self, inside_ip: int, inbound: bool = False) -> None: ...

    def _add_mapping(self, policy: ProtoPolicy, ikey: int, port: int, static: bool = False) -> Mapping: ...

    def _drop_mapping(self, mapping: Mapping, now: float) -> None: ...

    def _insert(
        self, okey: int, mapping: Mapping, code: int, created: float, last_seen: float, inside_ip: int, sid: int, kind: EventKind
    ) -> Session: ...

    def _check_free_port(self, slot: int, port: int) -> None: ...

    def _release_if_idle(self, mapping: Mapping, now: float) -> None: ...


class StaticEntries:
    """restore / reserve / release / add_forward / remove_forward of ConnTrack."""

    def __init__(self) -> None:
        self._forwards: dict[tuple[int, int], Mapping] = {}

    def restore(
        self: StaticHost,
        session_id: int,
        protocol: int,
        inside_ip: IPLike,
        inside_port: int,
        external_ip: IPLike,
        external_port: int,
        remote_ip: IPLike,
        remote_port: int,
        *,
        created_at: float,
        last_seen: Optional[float] = None,
        state: Union[State, str, None] = None,
        inbound_initiated: bool = False,
    ) -> Session:
        """Re-insert a session with a given id (after a controller restart).

        ``state`` defaults to ESTABLISHED for TCP and REPLIED otherwise;
        ``last_seen`` defaults to ``created_at``. The external port is marked
        used (taken out of quarantine if needed); new ids are allocated after
        the highest restored id. Fires a RESTORED event. Raises
        :class:`Refused`: WRONG_EXTERNAL_IP, ID_IN_USE, SESSION_EXISTS,
        MAPPING_CONFLICT (the inside endpoint holds another port),
        PORT_IN_USE (another endpoint holds this one), PORT_RESERVED,
        TABLE_FULL, HOST_QUOTA. ValueError on malformed arguments.
        """
        policy = self._policies.get(protocol)
        if policy is None:
            raise ValueError(f"unsupported protocol {protocol!r}")
        if type(session_id) is not int or not 1 <= session_id <= MAX_SESSION_ID:
            raise ValueError(f"session id must be an int in 1..2**32-1, got {session_id!r}")
        in_ip, ext_ip, rem_ip = ip_to_int(inside_ip), ip_to_int(external_ip), ip_to_int(remote_ip)
        check_port(inside_port, "inside_port")
        check_port(external_port, "external_port")
        remote_port = 0 if protocol == ICMP else check_port(remote_port, "remote_port")
        state = State(state) if state is not None else (State.ESTABLISHED if protocol == TCP else State.REPLIED)
        code = (tcp_code_for if protocol == TCP else datagram_code_for)(state, inbound_initiated)
        index = self._addr_index.get(ext_ip)
        if index is None:
            pool = ", ".join(str(a) for a in self.config.external_pool)
            raise self._refuse(RefuseReason.WRONG_EXTERNAL_IP, f"{external_ip} is not in the pool ({pool})")
        slot = policy.slot | (index << 8)
        if session_id in self._by_id:
            raise self._refuse(RefuseReason.ID_IN_USE, f"session id {session_id}")
        ikey = (protocol << 48) | (in_ip << 16) | inside_port
        okey = (ikey << 48) | (rem_ip << 16) | remote_port
        if okey in self._sessions:
            raise self._refuse(RefuseReason.SESSION_EXISTS, f"held by session {self._sessions[okey].id}")
        mapping = self._mappings.get(ikey)
        if mapping is not None and mapping.external_port != external_port:
            raise self._refuse(RefuseReason.MAPPING_CONFLICT, f"inside endpoint holds port {mapping.external_port}")
        if mapping is None:
            paired = self._host_addr.get(in_ip, index) if self._paired else index
            if paired != index:
                raise self._refuse(RefuseReason.MAPPING_CONFLICT, f"{inside_ip} is paired with another pool address")
            self._check_free_port(slot, external_port)
        self._check_limits(in_ip, inbound=inbound_initiated)
        if mapping is None:
            if not self._pools[slot].claim(external_port, in_ip, created_at):
                raise self._refuse(RefuseReason.PORT_IN_USE, f"port {external_port}'s block is another host's")
            mapping = self._add_mapping(self._policies[slot], ikey, external_port)
        if session_id >= self._next_id:
            self._next_id = session_id + 1 if session_id < MAX_SESSION_ID else 1
        seen = created_at if last_seen is None else last_seen
        return self._insert(okey, mapping, code, created_at, seen, in_ip, session_id, EventKind.RESTORED)

    def reserve(self: StaticHost, protocol: int, port: int, external_ip: Optional[IPLike] = None) -> None:
        """Keep an external port of ``external_ip`` (default: the first pool
        address) away from the allocator (idempotent).

        Raises :class:`Refused` PORT_IN_USE if a mapping holds it.
        """
        check_port(port)
        slot = self._slot(_supported(protocol, allow_icmp=True), external_ip)
        if self._owners[slot][port] is not None or not self._pools[slot].reserve(port):
            raise self._refuse(RefuseReason.PORT_IN_USE, f"{PROTOCOL_NAMES[protocol]} port {port}")

    def release(
        self: StaticHost, protocol: int, port: int, now: Optional[float] = None, external_ip: Optional[IPLike] = None
    ) -> bool:
        """Undo :meth:`reserve`; the port is quarantined. False if it was not reserved."""
        check_port(port)
        pool = self._pools[self._slot(_supported(protocol, allow_icmp=True), external_ip)]
        return pool.release(port, self._clock() if now is None else now)

    def is_reserved(self: StaticHost, protocol: int, port: int, external_ip: Optional[IPLike] = None) -> bool:
        """True while :meth:`reserve` keeps ``port`` from the allocator."""
        return self._pools[self._slot(protocol, external_ip)].state(port) == RESERVED

    def add_forward(self: StaticHost, protocol: int, external_port: int, internal_ip: IPLike, internal_port: int) -> Mapping:
        """Static forward external_port -> internal_ip:internal_port (TCP/UDP).

        The port is on the pool address the internal host is paired with
        (its address now, else the one it had last, else the least used):
        a forward is one more mapping of that host. If the internal endpoint
        already maps to this port, that mapping becomes static. Raises
        :class:`Refused` PORT_IN_USE, PORT_RESERVED or MAPPING_CONFLICT (the
        endpoint already maps to another port).
        """
        protocol = _supported(protocol, allow_icmp=False)
        check_port(external_port, "external_port")
        check_port(internal_port, "internal_port")
        in_ip = ip_to_int(internal_ip)
        ikey = (protocol << 48) | (in_ip << 16) | internal_port
        mapping = self._mappings.get(ikey)
        if mapping is not None and mapping.external_port != external_port:
            raise self._refuse(RefuseReason.MAPPING_CONFLICT, f"endpoint holds port {mapping.external_port}")
        if ikey in self._requested:
            raise self._refuse(RefuseReason.MAPPING_CONFLICT, "the host mapped this endpoint itself (PCP)")
        held = self._forwards.get((protocol, external_port))
        if held is not None and held is not mapping:  # one forward per port, pool-wide
            raise self._refuse(RefuseReason.PORT_IN_USE, f"{PROTOCOL_NAMES[protocol]} port {external_port} forwards elsewhere")
        if mapping is None:
            policy = self._policies[protocol | (self._address_for(in_ip) << 8 if self._paired else 0)]
            self._check_free_port(policy.slot, external_port)
            self._pools[policy.slot].claim(external_port)
            mapping = self._add_mapping(policy, ikey, external_port, static=True)
        mapping.static = True
        self._forwards[(protocol, external_port)] = mapping
        return mapping

    def remove_forward(self: StaticHost, protocol: int, external_port: int, now: Optional[float] = None) -> Optional[Mapping]:
        """Remove a forward. Its live sessions stay until they expire or are
        removed; the port is freed with the last of them. None if no forward."""
        mapping = self._forwards.pop((protocol, external_port), None)
        if mapping is None:
            return None
        mapping.static = False
        self._release_if_idle(mapping, self._clock() if now is None else now)
        return mapping

    def forwards(self: StaticHost) -> list[Mapping]:
        """Current forwards (static mappings)."""
        return list(self._forwards.values())

    def _slot(self: StaticHost, protocol: int, external_ip: Optional[IPLike]) -> int:
        """Port-table key of ``protocol`` on ``external_ip`` (None: the first
        pool address); ValueError for an address outside the pool."""
        if external_ip is None:
            return protocol
        index = self._addr_index.get(ip_to_int(external_ip))
        if index is None:
            raise ValueError(f"{external_ip} is not in the external pool")
        return protocol | (index << 8)

    def _check_free_port(self: StaticHost, slot: int, port: int) -> None:
        name = PROTOCOL_NAMES[slot & 0xFF]
        if self._owners[slot][port] is not None:
            raise self._refuse(RefuseReason.PORT_IN_USE, f"{name} port {port}")
        if self._pools[slot].state(port) == RESERVED:
            raise self._refuse(RefuseReason.PORT_RESERVED, f"{name} port {port}")


def _supported(protocol: int, allow_icmp: bool) -> int:
    if protocol in (TCP, UDP) or (allow_icmp and protocol == ICMP):
        return protocol
    raise ValueError(f"unsupported protocol {protocol!r}")
