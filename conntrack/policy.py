"""Per-protocol lookup tables derived once from the config.

Hot paths ask "what is this session's timeout / state / may inbound refresh
it" with one list index by the session's state code instead of branching on
protocol and flags each time.
"""

from __future__ import annotations

from .config import ConntrackConfig, Filtering
from .keys import PROTOCOL_NAMES, TCP
from .states import CODES, REPLIED, State, tcp_inbound_refreshes, tcp_state, tcp_timeout


def slot_of(protocol: int, index: int) -> int:
    """Key of one protocol's port tables on pool address ``index``."""
    return protocol | (index << 8)


class ProtoPolicy:
    """Timeouts, state names and refresh rule of one protocol, by state code,
    for one external address of the pool.

    ``slot`` names the (protocol, address) pair the table keys its port
    tables by: ``protocol | index << 8``, so the first address's slot is
    the protocol number itself.
    """

    __slots__ = ("protocol", "name", "external_ip", "slot", "filtering", "timeouts", "states", "inbound_refresh")

    def __init__(self, config: ConntrackConfig, protocol: int, index: int = 0) -> None:
        self.protocol = protocol
        self.name = PROTOCOL_NAMES[protocol]
        self.external_ip = int(config.external_pool[index])
        self.slot = slot_of(protocol, index)
        self.filtering: Filtering = config.filtering(protocol)
        codes = range(CODES)
        if protocol == TCP:
            c = config
            self.timeouts = [
                tcp_timeout(code, c.tcp_established_timeout, c.tcp_opening_timeout, c.tcp_closing_timeout)
                for code in codes
            ]
            self.states = [tcp_state(code) for code in codes]
            self.inbound_refresh = [tcp_inbound_refreshes(code) for code in codes]
        else:
            timeout = config.udp_timeout if self.name == "udp" else config.icmp_timeout
            self.timeouts = [timeout] * CODES
            self.states = [State.REPLIED if code & REPLIED else State.UNREPLIED for code in codes]
            # "Established" for a datagram session = packets seen both ways.
            self.inbound_refresh = [bool(code & REPLIED) for code in codes]
