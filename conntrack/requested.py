"""Mappings that inside hosts ask for themselves (PCP MAP and PEER, NAT-PMP).

A mixin of :class:`~conntrack.table.ConnTrack` (uses its mapping tables,
pools, limits and ``_add_mapping``/``_drop_mapping``: see
:class:`RequestHost`), kept apart so each file stays small.

* A *requested* mapping (MAP) is a forward the host made for one of its own
  endpoints: kept with no sessions, endpoint-independent filtering, and
  one unit of the host's session quota (an inbound one), so a host cannot
  hold more ports by asking than by sending.
* A *held peer* (PEER) keeps the endpoint's outbound mapping alive with no
  sessions and lets that remote in through the filtering, as if the host
  had sent to it; it too is one unit of the host's quota.

Lifetimes are the caller's: it ends a request when its lease runs out.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol, Union

from .blocks import BlockPool
from .config import ConntrackConfig
from .events import Refused, RefuseReason
from .keys import MAX_IP, PROTOCOL_NAMES, TCP, UDP, IPLike, check_port, ip_to_int
from .policy import ProtoPolicy, slot_of
from .ports import RESERVED, PortPool
from .session import Mapping


class RequestHost(Protocol):
    """What :class:`Requested` needs from the table it is mixed into."""

    config: ConntrackConfig
    _paired: bool
    _clock: Callable[[], float]
    _policies: dict[int, ProtoPolicy]
    _pools: dict[int, Union[PortPool, BlockPool]]
    _owners: dict[int, list[Optional[Mapping]]]
    _mappings: dict[int, Mapping]
    _forwards: dict[tuple[int, int], Mapping]
    _requested: dict[int, Mapping]
    _peers: dict[int, set[int]]

    def _address_for(self, inside_ip: int) -> int: ...

    def _refuse(self, reason: RefuseReason, detail: str = "") -> Refused: ...

    def _check_limits(self, inside_ip: int, inbound: bool = False) -> None: ...

    def _count_host(self, inside_ip: int, inbound: bool) -> None: ...

    def _uncount_host(self, inside_ip: int, inbound: bool) -> None: ...

    def _new_mapping(self, policy: ProtoPolicy, ikey: int, inside_port: int, now: float) -> Mapping: ...

    def _add_mapping(self, policy: ProtoPolicy, ikey: int, port: int, static: bool = False) -> Mapping: ...

    def _drop_mapping(self, mapping: Mapping, now: float) -> None: ...

    def _release_if_idle(self, mapping: Mapping, now: float) -> None: ...

    def _endpoint_mapping(self, ikey: int, in_ip: int, internal_port: int, suggested: int,
                          exact: bool, now: float, reserved_ok: bool = False) -> Mapping: ...


class Requested:
    """request_mapping / end_request / hold_peer / release_peer of ConnTrack."""

    def __init__(self) -> None:
        self._requested: dict[int, Mapping] = {}   # inside key -> its MAP
        self._peers: dict[int, set[int]] = {}      # inside key -> held remotes (ip << 16 | port)

    def request_mapping(
        self: RequestHost,
        protocol: int,
        internal_ip: IPLike,
        internal_port: int,
        suggested: int = 0,
        *,
        exact: bool = False,
        reserved_ok: bool = False,
        now: Optional[float] = None,
    ) -> Mapping:
        """Make (or keep) the inbound mapping of one inside endpoint.

        An endpoint that already has a mapping keeps its port (EIM); else
        ``suggested`` is taken when the allocator could hand it out and it
        is free, else the allocator picks (with port blocks: always from
        the host's own block).  ``exact``: the suggestion or nothing
        (a restart's rebuild, PCP PREFER_FAILURE). ``reserved_ok``: a
        reserved suggestion may be taken (the caller reserved it for this
        host: NAT-PMP's companion port). Idempotent. Raises
        :class:`Refused`: FORWARDED (an operator's forward holds the
        endpoint), PORT_IN_USE (``exact`` and not free), TABLE_FULL,
        HOST_QUOTA, POOL_EXHAUSTED, BLOCK_QUOTA; ValueError for a protocol
        other than TCP and UDP.
        """
        protocol = _tcp_or_udp(protocol)
        check_port(internal_port, "internal_port")
        in_ip = ip_to_int(internal_ip)
        ikey = (protocol << 48) | (in_ip << 16) | internal_port
        held = self._requested.get(ikey)
        if held is not None:
            if exact and suggested and held.external_port != suggested:
                raise self._refuse(RefuseReason.PORT_IN_USE, f"endpoint holds port {held.external_port}")
            return held
        mapping = self._mappings.get(ikey)
        if mapping is not None and mapping.static:
            raise self._refuse(RefuseReason.FORWARDED, f"{PROTOCOL_NAMES[protocol]} port {mapping.external_port}")
        self._check_limits(in_ip, inbound=True)
        if mapping is None:
            mapping = self._endpoint_mapping(ikey, in_ip, internal_port, suggested, exact,
                                             self._clock() if now is None else now, reserved_ok)
        elif exact and suggested and mapping.external_port != suggested:
            raise self._refuse(RefuseReason.PORT_IN_USE, f"endpoint holds port {mapping.external_port}")
        mapping.static = True
        self._requested[ikey] = mapping
        self._count_host(in_ip, True)
        return mapping

    def end_request(
        self: RequestHost, protocol: int, internal_ip: IPLike, internal_port: int, now: Optional[float] = None
    ) -> Optional[Mapping]:
        """End a requested mapping; its live sessions stay until they end.
        None if the endpoint has none."""
        ikey = (protocol << 48) | (ip_to_int(internal_ip) << 16) | internal_port
        mapping = self._requested.pop(ikey, None)
        if mapping is None:
            return None
        mapping.static = False
        self._uncount_host((ikey >> 16) & MAX_IP, True)
        self._release_if_idle(mapping, self._clock() if now is None else now)
        return mapping

    def hold_peer(
        self: RequestHost,
        protocol: int,
        internal_ip: IPLike,
        internal_port: int,
        remote_ip: IPLike,
        remote_port: int,
        suggested: int = 0,
        *,
        exact: bool = False,
        now: Optional[float] = None,
    ) -> Mapping:
        """Keep the endpoint's outbound mapping for a remote (PCP PEER):
        made if needed as its first packet would make it, kept with no
        sessions, and the remote let in by the filtering.  Idempotent.
        Raises :class:`Refused` like :meth:`request_mapping` (but an
        operator's forward is fine: it is the endpoint's mapping)."""
        protocol = _tcp_or_udp(protocol)
        check_port(internal_port, "internal_port")
        check_port(remote_port, "remote_port")
        in_ip = ip_to_int(internal_ip)
        ikey = (protocol << 48) | (in_ip << 16) | internal_port
        peer = (ip_to_int(remote_ip) << 16) | remote_port
        peers = self._peers.get(ikey)
        mapping = self._mappings.get(ikey)
        if peers is not None and peer in peers and mapping is not None:
            return mapping
        self._check_limits(in_ip)
        if mapping is None:
            mapping = self._endpoint_mapping(ikey, in_ip, internal_port, suggested, exact,
                                             self._clock() if now is None else now)
        elif exact and suggested and mapping.external_port != suggested:
            raise self._refuse(RefuseReason.PORT_IN_USE, f"endpoint holds port {mapping.external_port}")
        self._peers.setdefault(ikey, set()).add(peer)
        self._count_host(in_ip, False)
        return mapping

    def release_peer(
        self: RequestHost,
        protocol: int,
        internal_ip: IPLike,
        internal_port: int,
        remote_ip: IPLike,
        remote_port: int,
        now: Optional[float] = None,
    ) -> Optional[Mapping]:
        """Undo :meth:`hold_peer`; None if it was not held."""
        ikey = (protocol << 48) | (ip_to_int(internal_ip) << 16) | internal_port
        peers = self._peers.get(ikey)
        peer = (ip_to_int(remote_ip) << 16) | remote_port
        if peers is None or peer not in peers:
            return None
        peers.discard(peer)
        if not peers:
            del self._peers[ikey]
        self._uncount_host((ikey >> 16) & MAX_IP, False)
        mapping = self._mappings[ikey]
        self._release_if_idle(mapping, self._clock() if now is None else now)
        return mapping

    def held_peers(self: RequestHost, mapping: Mapping) -> set[int]:
        """Remotes (ip << 16 | port) held open on ``mapping`` (PEER)."""
        return self._peers.get(mapping.ikey, set())

    # -- shared ------------------------------------------------------------------
    def _endpoint_mapping(self: RequestHost, ikey: int, in_ip: int, internal_port: int,
                          suggested: int, exact: bool, now: float, reserved_ok: bool = False) -> Mapping:
        protocol = ikey >> 48
        slot = slot_of(protocol, self._address_for(in_ip)) if self._paired else protocol
        policy, pool = self._policies[slot], self._pools[slot]
        if suggested:
            check_port(suggested, "suggested external port")
            if isinstance(pool, BlockPool):
                if exact and pool.claim(suggested, in_ip, now):
                    return self._add_mapping(policy, ikey, suggested)
            elif self._owners[slot][suggested] is None and (
                pool.may_give(suggested) or (reserved_ok and pool.state(suggested) == RESERVED)
            ):
                if not pool.take_reserved(suggested):
                    pool.claim(suggested)
                return self._add_mapping(policy, ikey, suggested)
            if exact:
                raise self._refuse(RefuseReason.PORT_IN_USE, f"{PROTOCOL_NAMES[protocol]} port {suggested}")
        return self._new_mapping(policy, ikey, internal_port, now)

    def _release_if_idle(self: RequestHost, mapping: Mapping, now: float) -> None:
        """Drop a mapping nothing keeps any more: no session, forward, request or peer."""
        if mapping.head is None and not mapping.static and mapping.ikey not in self._peers:
            if self._mappings.get(mapping.ikey) is mapping:
                self._drop_mapping(mapping, now)


def _tcp_or_udp(protocol: int) -> int:
    if protocol in (TCP, UDP):
        return protocol
    raise ValueError(f"unsupported protocol {protocol!r}")

