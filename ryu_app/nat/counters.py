"""Counters the gateway keeps and exposes at ``GET /nat/stats``."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from conntrack import RefuseReason
from ryu_app.openflow.switch_claims import Claim as SwitchClaim

#: Count a packet as dropped for a reason; the (empty) messages to send.
#: Every packet path gets this one function instead of the counters.
Drop = Callable[[str], list]
#: A refused new session, for IPFIX: (reason, inside ip, protocol, now).
Report = Callable[[RefuseReason, int, int, float], None]


#: Every reason a packet can be counted as dropped for, known up front so
#: ``/metrics`` shows each series at 0 before its first drop.  A unit test
#: (tests/unit/nat/test_drop_reasons.py) scans the code: every reason given
#: to a drop function must be here, and every name here must be given.
NAMED_DROPS = frozenset({
    "adopting", "arp_mac_mismatch", "arp_not_for_gateway", "arp_queue_full", "arp_unsolicited",
    "controller_stopping",
    "forward_refused", "fragment", "fragment_evicted", "fragment_no_session",
    "fragment_queue_full", "fragment_timeout", "fragment_tiny", "hairpin_fragment",
    "hairpin_no_mapping", "hairpin_unresolved", "hairpin_unsupported",
    "icmp_error_bad_checksum", "icmp_error_no_session", "icmp_error_not_ours",
    "icmp_error_rate_limited", "icmp_to_gateway_not_echo", "icmp_unsupported",
    "inbound_unresolved", "inside_destination", "inside_host_unresolved", "ipv6", "malformed",
    "next_hop_unresolved", "no_route", "not_master", "not_unicast", "outside_not_for_us",
    "packet_in_budget", "packet_in_queue_full", "packet_in_stale", "source_guard",
    "source_guard_arp", "source_guard_full", "source_guard_move_refused", "spoofed_source",
    "tcp_copy_not_rst", "tcp_not_syn", "ttl_exceeded", "ttl_expired", "unknown_switch",
    "unsolicited_icmp", "unsupported_ethertype", "unsupported_protocol", "uplink_unknown",
})
#: Reasons made from an enum's values, by prefix: refusals (bare for an
#: outbound session, ``inbound_``, ``hairpin_``) and switches refused at connect.
ENUM_DROPS: dict[str, list[str]] = {
    prefix: [r.value for r in RefuseReason] for prefix in ("", "inbound_", "hairpin_")}
ENUM_DROPS["switch_"] = [c.value for c in SwitchClaim if c is not SwitchClaim.ACCEPT]
DROP_REASONS = NAMED_DROPS | frozenset(
    prefix + value for prefix, values in ENUM_DROPS.items() for value in values)


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
