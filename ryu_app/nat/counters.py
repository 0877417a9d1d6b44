"""Counters the gateway keeps and exposes at ``GET /nat/stats``."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

#: Count a packet as dropped for a reason; the (empty) messages to send.
#: Every packet path gets this one function instead of the counters.
Drop = Callable[[str], list]


@dataclass
class GatewayCounters:
    """Monotonic event counts; ``drops`` is keyed by a short reason string."""

    packet_ins: int = 0
    arp_replies: int = 0
    icmp_echo_replies: int = 0
    icmp_errors_translated: int = 0
    handler_errors: int = 0      # our bugs, caught in an event handler (logged)
    rest_errors: int = 0         # our bugs, caught in a REST request (JSON 500, logged)
    sessions_adopted: int = 0    # rebuilt from the switch's flows on (re)connection
    flows_discarded: int = 0     # session flows found then that no session accounts for
    openflow_errors: int = 0     # OpenFlow error messages from switches
    hosts_moved: int = 0         # inside addresses re-bound after a move check
    move_checks: int = 0         # claims to a bound address from elsewhere, checked by ARP
    sessions_put_back: int = 0   # their flows re-added to a switch that had lost them
    drops: Counter = field(default_factory=Counter)

    def drop(self, reason: str) -> None:
        self.drops[reason] += 1

    def dropped(self, reason: str) -> list:
        """:data:`Drop`: count, and nothing to send."""
        self.drops[reason] += 1
        return []

    def as_dict(self) -> dict:
        return {"packet_ins": self.packet_ins, "arp_replies": self.arp_replies,
                "icmp_echo_replies": self.icmp_echo_replies,
                "icmp_errors_translated": self.icmp_errors_translated,
                "handler_errors": self.handler_errors, "rest_errors": self.rest_errors,
                "sessions_adopted": self.sessions_adopted,
                "flows_discarded": self.flows_discarded,
                "openflow_errors": self.openflow_errors,
                "hosts_moved": self.hosts_moved, "move_checks": self.move_checks,
                "sessions_put_back": self.sessions_put_back,
                "drops": dict(sorted(self.drops.items()))}
