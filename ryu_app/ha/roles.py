"""OpenFlow 1.3 controller roles: from leadership to role requests, per switch.

A switch talks to both controllers of an HA pair.  The leader (see
:mod:`ryu_app.ha.election`) must be MASTER at every switch, the other SLAVE
(the switch then sends it no packet-ins and refuses its flow-mods).  A
MASTER or SLAVE claim carries a generation id the switch compares with the
newest it has seen: a claim older than that is refused as stale.  The id is
learnt from the switch itself (a NOCHANGE request's reply carries it) and a
new MASTER claims the next one, so a deposed master that comes back late
can never win.  This module only decides; the Ryu shell sends.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

GENERATION_MASK = 2 ** 64 - 1
# What a controller that is not MASTER may still send: reads, and role claims.
READ_ONLY = (parser.OFPFlowStatsRequest, parser.OFPPortDescStatsRequest,
             parser.OFPMeterStatsRequest, parser.OFPRoleRequest, parser.OFPBarrierRequest)


class Role(enum.Enum):
    MASTER = ofp.OFPCR_ROLE_MASTER
    SLAVE = ofp.OFPCR_ROLE_SLAVE
    EQUAL = ofp.OFPCR_ROLE_EQUAL


def role_request(role: int, generation_id: int = 0) -> parser.OFPRoleRequest:
    return parser.OFPRoleRequest(None, role, generation_id & GENERATION_MASK)


def query() -> parser.OFPRoleRequest:
    """Ask the switch our role and its newest generation id, changing nothing."""
    return role_request(ofp.OFPCR_ROLE_NOCHANGE)


@dataclass
class SwitchRole:
    role: Role | None = None          # as the switch last confirmed it
    generation_id: int | None = None
    asked_at: float = float("-inf")   # when our last request went out


@dataclass
class Change:
    """What a role reply means: requests to send, and whether this controller
    just became MASTER (take the switch over) or SLAVE (stand by)."""

    msgs: list = field(default_factory=list)
    became: Role | None = None


class SwitchRoles:
    """The role this controller holds at each switch and the one it wants."""

    def __init__(self, retry: float = 1.0) -> None:
        self.leader = False
        self.switches: dict[int, SwitchRole] = {}
        self._retry = retry           # seconds before an unanswered request is sent again

    @property
    def wanted(self) -> Role:
        return Role.MASTER if self.leader else Role.SLAVE

    def is_master(self, dpid: int) -> bool:
        state = self.switches.get(dpid)
        return state is not None and state.role is Role.MASTER

    def connected(self, dpid: int, now: float) -> list:
        """A new connection starts EQUAL: ask where the switch stands."""
        self.switches[dpid] = SwitchRole(asked_at=now)
        return [query()]

    def disconnected(self, dpid: int) -> None:
        self.switches.pop(dpid, None)

    def reply(self, dpid: int, role: int, generation_id: int, now: float) -> Change:
        """A role reply: claim the wanted role with the right generation id,
        or report that the wanted one is now held."""
        state = self.switches.get(dpid)
        if state is None:
            return Change()
        before = state.role
        state.role = Role(role) if role in Role._value2member_map_ else None
        state.generation_id = generation_id
        wanted = self.wanted
        if state.role is wanted:
            return Change(became=wanted if before is not wanted else None)
        state.asked_at = now
        # MASTER takes the next generation; a SLAVE claim needs one no older.
        gen = generation_id + 1 if wanted is Role.MASTER else generation_id
        return Change([role_request(wanted.value, gen)])

    def refused(self, dpid: int, now: float) -> list:
        """A role request refused (stale generation id, ...): ask again."""
        if dpid not in self.switches:
            return []
        self.switches[dpid].asked_at = now
        return [query()]

    def demoted(self, dpid: int, now: float) -> list:
        """The switch refused a write as from a slave: another controller is
        MASTER there now.  Forget our role and ask."""
        state = self.switches.get(dpid)
        if state is None or state.role is not Role.MASTER:
            return []
        state.role, state.asked_at = Role.SLAVE, now
        return [query()]

    def lead(self, leader: bool, now: float) -> dict[int, list]:
        """Leadership now (called on every election step): every switch whose
        role is not the wanted one is asked at once when leadership changed,
        else when its last request is older than the retry time."""
        changed, self.leader = leader != self.leader, leader
        out = {}
        for dpid, state in self.switches.items():
            if state.role is not self.wanted and (changed or now - state.asked_at >= self._retry):
                state.asked_at = now
                out[dpid] = [query()]
        return out


class NotMaster(Exception):
    """A change asked of the standby controller (REST answers 503)."""


def writable(msgs: list, master: bool) -> list:
    """What may go to a switch: everything as MASTER, only reads otherwise."""
    return msgs if master else [m for m in msgs if isinstance(m, READ_ONLY)]
