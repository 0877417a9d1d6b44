"""Inbound packets that have no session yet: filtering (RFC 4787 REQ-8,
RFC 7857 sections 5-6) and inbound-initiated sessions.

A mixin of :class:`~conntrack.table.ConnTrack`, kept apart so each file stays
small; it uses the table's lookups, ``_refuse``, ``_check_limits``,
``_new_id`` and ``_insert`` (see :class:`InboundHost`).

An inbound packet without a session may only use an existing mapping (or a
forward); the new session keeps the mapping's external port, so EIM holds for
inbound-initiated sessions too. Filtering is checked against the mapping's
live sessions (no per-session record of contacted remotes is kept).
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

from .config import Filtering
from .events import EventKind, Refused, RefuseReason
from .keys import ICMP, MAX_IP, PROTOCOL_NAMES, TCP, IPLike, TcpFlags, check_port, ip_to_int
from .session import Mapping, Session
from .states import INBOUND_INIT, SYN_IN

_SYN = int(TcpFlags.SYN)
_ACK = int(TcpFlags.ACK)


class InboundHost(Protocol):
    """What :class:`Inbound` needs from the table it is mixed into."""

    _addr_index: dict[int, int]
    _clock: Callable[[], float]
    _peers: dict[int, set[int]]

    def lookup_inbound(self, protocol: int, src_ip: IPLike, src_port: int, dst_ip: IPLike, dst_port: int) -> Optional[Session]: ...

    def mapping_of_port(self, protocol: int, external_port: int, external_ip: Optional[IPLike] = None) -> Optional[Mapping]: ...

    def _refuse(self, reason: RefuseReason, detail: str = "") -> Refused: ...

    def _check_limits(self, inside_ip: int, inbound: bool = False) -> None: ...

    def _new_id(self) -> int: ...

    def _insert(
        self, okey: int, mapping: Mapping, code: int, created: float, last_seen: float, inside_ip: int, sid: int, kind: EventKind
    ) -> Session: ...


class Inbound:
    """accept_inbound of ConnTrack."""

    def accept_inbound(
        self: InboundHost,
        protocol: int,
        src_ip: IPLike,
        src_port: int,
        dst_ip: IPLike,
        dst_port: int,
        now: Optional[float] = None,
        tcp_flags: int = 0,
    ) -> Session:
        """Session for an inbound packet remote -> external, applying filtering.

        Returns the existing session if there is one. Otherwise, if a mapping
        holds ``dst_port``, the protocol's filtering mode decides (forwards are
        always endpoint-independent): endpoint-independent accepts anyone,
        address-dependent accepts a remote address some session of the mapping
        already talks to, address-and-port-dependent accepts nobody new. An
        accepted packet creates an inbound-initiated session on the existing
        mapping (same external port). A TCP packet must be a SYN without ACK
        to open a session. Inbound-initiated sessions may hold at most three
        quarters of an inside host's ``max_connections_per_host``, so the host
        can always open connections of its own. Raises :class:`Refused`
        (NO_MAPPING, FILTERED, NOT_SYN, TABLE_FULL, HOST_QUOTA); a refused
        packet refreshes nothing.
        """
        check_port(src_port, "src_port")
        check_port(dst_port, "dst_port")
        existing = self.lookup_inbound(protocol, src_ip, src_port, dst_ip, dst_port)
        if existing is not None:
            return existing
        src_ip, dst_ip = ip_to_int(src_ip), ip_to_int(dst_ip)
        mapping = self.mapping_of_port(protocol, dst_port, dst_ip) if dst_ip in self._addr_index else None
        if mapping is None:
            raise self._refuse(RefuseReason.NO_MAPPING, f"{PROTOCOL_NAMES.get(protocol, protocol)} port {dst_port}")
        if protocol == ICMP:
            src_port = 0
        mode = Filtering.ENDPOINT_INDEPENDENT if mapping.static else mapping.policy.filtering
        peers = self._peers.get(mapping.ikey, ()) if mode is not Filtering.ENDPOINT_INDEPENDENT else ()
        if mode is Filtering.ADDRESS_AND_PORT_DEPENDENT and (src_ip << 16 | src_port) not in peers:
            raise self._refuse(RefuseReason.FILTERED, "address-and-port-dependent filtering")
        if mode is Filtering.ADDRESS_DEPENDENT:
            remote_ip_bits = src_ip << 16
            if not any((s.okey & (MAX_IP << 16)) == remote_ip_bits for s in mapping.sessions()) and not any(
                p >> 16 == src_ip for p in peers
            ):
                raise self._refuse(RefuseReason.FILTERED, "address-dependent filtering")
        if protocol == TCP and (tcp_flags & (_SYN | _ACK)) != _SYN:
            raise self._refuse(RefuseReason.NOT_SYN, f"tcp flags {tcp_flags:#x}")
        if now is None:
            now = self._clock()
        inside_ip = (mapping.ikey >> 16) & MAX_IP
        self._check_limits(inside_ip, inbound=True)
        code = INBOUND_INIT | (SYN_IN if protocol == TCP else 0)
        okey = (mapping.ikey << 48) | (src_ip << 16) | src_port
        return self._insert(okey, mapping, code, now, now, inside_ip, self._new_id(), EventKind.CREATED)
