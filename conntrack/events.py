"""What the engine reports to its caller: refusals, events and statistics."""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

if TYPE_CHECKING:
    from .session import Session


class RefuseReason(str, enum.Enum):
    """Why a session (or a restore/reserve/forward) was refused."""

    TABLE_FULL = "table_full"  # max_connections live sessions
    HOST_QUOTA = "host_quota"  # max_connections_per_host for the inside address
    POOL_EXHAUSTED = "pool_exhausted"  # no external port left in the class
    NO_MAPPING = "no_mapping"  # inbound to an external ip:port nobody holds
    FILTERED = "filtered"  # inbound refused by the protocol's filtering mode
    NOT_SYN = "not_syn"  # inbound TCP may only open a session with a SYN
    ID_IN_USE = "id_in_use"  # restore: a live session has this id
    SESSION_EXISTS = "session_exists"  # restore: this tuple is already tracked
    PORT_IN_USE = "port_in_use"  # external port held by another inside endpoint
    PORT_RESERVED = "port_reserved"  # external port reserved
    MAPPING_CONFLICT = "mapping_conflict"  # inside endpoint already has another external port
    WRONG_EXTERNAL_IP = "wrong_external_ip"  # restore: not our external address
    FORWARDED = "forwarded"  # an operator's forward holds the endpoint a host asked to map
    BLOCK_QUOTA = "block_quota"  # the host's port blocks are full and it holds port_blocks_per_host


class Refused(Exception):
    """A new session or static entry was refused; nothing was changed.

    ``reason`` is a :class:`RefuseReason`; every refusal is counted in
    ``Stats.refused_by_reason``.
    """

    def __init__(self, reason: RefuseReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class EventKind(str, enum.Enum):
    """What happened to a session, as the event hook is told."""

    CREATED = "created"  # new session (outbound, or inbound-initiated)
    RESTORED = "restored"  # re-inserted by restore()
    EXPIRED = "expired"  # idle timeout ran out (expire(), or remove(timed_out=True))
    REMOVED = "removed"  # remove() by the caller; reason says why
    UPDATED = "updated"  # TCP state changed (observe()); reason is the old state


class Event(NamedTuple):
    """Argument of the event hook. The session object stays readable after
    it dies (``alive`` is False)."""

    kind: EventKind
    session: "Session"
    time: float
    reason: str  # "" for created/restored, "timeout" for expired, caller's for removed


EventHook = Callable[[Event], None]


class BlockEvent(NamedTuple):
    """Argument of the port-block hook (``port_block_size`` set): a block of
    external ports given to an inside host, taken back, or rebuilt from a
    restored session."""

    kind: str  # "allocated", "released" or "restored"
    protocol: int
    inside_ip: int
    external_ip: int
    first_port: int
    last_port: int
    time: float


BlockEventHook = Callable[[BlockEvent], None]


@dataclasses.dataclass(frozen=True)
class Stats:
    """Snapshot of the table counters (all counts since the table was built)."""

    active: int  # live sessions
    created: int  # sessions created (outbound or inbound-initiated)
    restored: int
    expired: int
    removed: int
    refused: int  # sum of refused_by_reason
    refused_by_reason: dict[str, int]
    lookups: int  # lookup_* / create_* / accept_inbound probes of the table
    mappings: int  # live mappings (inside endpoints with an external port)
    ports_in_use: dict[str, int]  # by protocol name: ports held by mappings
    ports_reserved: dict[str, int]
    ports_quarantined: dict[str, int]
    quarantine_fallbacks: int  # allocations that took a quarantined port (pool otherwise empty)
    forwards: int
    hook_errors: int  # exceptions raised by the event hook (logged, not re-raised)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy of the counters."""
        return dataclasses.asdict(self)
