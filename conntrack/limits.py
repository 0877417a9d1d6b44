"""Limits on sessions (RFC 6888 REQ-4/5/11): the table bound, each inside
host's quota, and the share of it that inbound-initiated sessions may hold.

A mixin of :class:`~conntrack.table.ConnTrack`, kept apart so each file stays
small.  Limits are checked before anything is allocated; a refusal names its
reason, is counted, and evicts nothing.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from .config import ConntrackConfig
from .events import Refused, RefuseReason


class Limits:
    """Per-host accounting and the checks that use it."""

    _by_id: dict

    def _init_limits(self, config: ConntrackConfig) -> None:
        self._max = config.max_connections
        self._max_host = config.max_connections_per_host
        # Inbound-initiated sessions may take only a share of a host's quota,
        # so outsiders (EIF filtering, a forward) can never leave the host
        # unable to open its own connections.
        self._max_host_in = max(1, (3 * config.max_connections_per_host) // 4)
        self._per_host: dict[int, int] = {}       # inside ip -> live sessions
        self._per_host_in: dict[int, int] = {}    # inside ip -> inbound-initiated ones
        self._refused: dict[str, int] = {}

    def _check_limits(self, inside_ip: int, inbound: bool = False) -> None:
        """Raise :class:`Refused` if one more session for ``inside_ip`` is too many."""
        if len(self._by_id) >= self._max:
            raise self._refuse(RefuseReason.TABLE_FULL, f"{self._max} sessions")
        if self._per_host.get(inside_ip, 0) >= self._max_host:
            raise self._refuse(RefuseReason.HOST_QUOTA, f"{self._max_host} sessions for {IPv4Address(inside_ip)}")
        if inbound and self._per_host_in.get(inside_ip, 0) >= self._max_host_in:
            raise self._refuse(
                RefuseReason.HOST_QUOTA, f"{self._max_host_in} inbound-initiated sessions for {IPv4Address(inside_ip)}"
            )

    def host_sessions(self, inside_ip: int) -> int:
        """Live sessions of one inside address."""
        return self._per_host.get(inside_ip, 0)

    def _refuse(self, reason: RefuseReason, detail: str = "") -> Refused:
        self._refused[reason.value] = self._refused.get(reason.value, 0) + 1
        return Refused(reason, detail)

    def _count_host(self, inside_ip: int, inbound: bool) -> None:
        per_host = self._per_host
        per_host[inside_ip] = per_host.get(inside_ip, 0) + 1
        if inbound:
            self._per_host_in[inside_ip] = self._per_host_in.get(inside_ip, 0) + 1

    def _uncount_host(self, inside_ip: int, inbound: bool) -> None:
        for counts, applies in ((self._per_host, True), (self._per_host_in, inbound)):
            if applies:
                left = counts[inside_ip] - 1
                if left:
                    counts[inside_ip] = left
                else:
                    del counts[inside_ip]
