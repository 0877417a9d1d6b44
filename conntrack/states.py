"""Session states, the TCP state machine and the timeout/refresh policy.

A session's state is one small int (``code``) of bits, so it costs no memory
per session (CPython caches ints up to 256) and tables indexed by it answer
"which timeout" and "may an inbound packet refresh" with one list index.

TCP follows RFC 7857 figure 1 (adapted from RFC 6146): a session is
ESTABLISHED once a SYN was seen in each direction; one FIN leaves it
established (half-closed connections may idle for hours); FINs in both
directions or an RST move it to CLOSING, which uses the closing (transitory)
timeout; a later non-RST packet revives an RST-closed session, and a SYN
without ACK on a closing session starts a new connection on the same tuple.
"""

from __future__ import annotations

import enum

from .keys import TcpFlags

# Bits of Session.code.
SYN_OUT = 0x01  # SYN seen outbound (inside -> remote)
SYN_IN = 0x02  # SYN seen inbound
FIN_OUT = 0x04
FIN_IN = 0x08
RST_SEEN = 0x10
INBOUND_INIT = 0x20  # session was created by an inbound packet
REPLIED = 0x40  # a packet was seen in the direction opposite to the initiator's
DEAD = 0x80  # session was expired or removed
TCP_BITS = SYN_OUT | SYN_IN | FIN_OUT | FIN_IN | RST_SEEN
CODES = 256  # codes are 0..255

_SYN = int(TcpFlags.SYN)
_ACK = int(TcpFlags.ACK)
_FIN = int(TcpFlags.FIN)
_RST = int(TcpFlags.RST)


class State(str, enum.Enum):
    """Named state of a session (what the app logs and shows over REST)."""

    SYN_SENT = "SYN_SENT"  # TCP opening: outbound SYN (or mid-stream pick-up)
    SYN_RECEIVED = "SYN_RECEIVED"  # TCP opening: inbound SYN not yet answered
    ESTABLISHED = "ESTABLISHED"  # TCP: SYN seen both ways
    FIN_WAIT = "FIN_WAIT"  # TCP: established, one FIN seen (half-closed)
    CLOSING = "CLOSING"  # TCP: FIN both ways, or RST
    UNREPLIED = "UNREPLIED"  # UDP/ICMP: packets one way only so far
    REPLIED = "REPLIED"  # UDP/ICMP: packets seen both ways


def tcp_closing(code: int) -> bool:
    """True when an RST or FINs in both directions were seen."""
    return bool(code & RST_SEEN) or (code & (FIN_OUT | FIN_IN)) == FIN_OUT | FIN_IN


def tcp_state(code: int) -> State:
    """Named TCP state of a code."""
    if tcp_closing(code):
        return State.CLOSING
    if code & SYN_OUT and code & SYN_IN:
        return State.FIN_WAIT if code & (FIN_OUT | FIN_IN) else State.ESTABLISHED
    if code & SYN_IN:
        return State.SYN_RECEIVED
    return State.SYN_SENT


def tcp_transition(code: int, outbound: bool, flags: int) -> int:
    """New code after a TCP packet with ``flags`` in the given direction."""
    if flags & _RST:
        return code | RST_SEEN
    if flags & _SYN and not flags & _ACK and tcp_closing(code):
        # A fresh connection reusing the tuple of a closing one.
        return (code & ~TCP_BITS) | (SYN_OUT if outbound else SYN_IN)
    code &= ~RST_SEEN
    if flags & _SYN:
        code |= SYN_OUT if outbound else SYN_IN
    if flags & _FIN:
        code |= FIN_OUT if outbound else FIN_IN
    return code


def tcp_code_for(state: State, inbound_initiated: bool = False) -> int:
    """A representative code for a named TCP state (used by restore)."""
    base = INBOUND_INIT if inbound_initiated else 0
    codes = {
        State.SYN_SENT: SYN_OUT,
        State.SYN_RECEIVED: SYN_IN,
        State.ESTABLISHED: SYN_OUT | SYN_IN | REPLIED,
        State.FIN_WAIT: SYN_OUT | SYN_IN | REPLIED | FIN_OUT,
        State.CLOSING: SYN_OUT | SYN_IN | REPLIED | FIN_OUT | FIN_IN,
    }
    if state not in codes:
        raise ValueError(f"{state} is not a TCP state")
    return base | codes[state]


def datagram_code_for(state: State, inbound_initiated: bool = False) -> int:
    """A code for a named UDP/ICMP state (used by restore)."""
    if state not in (State.UNREPLIED, State.REPLIED):
        raise ValueError(f"{state} is not a UDP/ICMP state")
    return (INBOUND_INIT if inbound_initiated else 0) | (REPLIED if state is State.REPLIED else 0)


def tcp_timeout(code: int, established: float, opening: float, closing: float) -> float:
    """Idle timeout that applies to a TCP session in this code."""
    if tcp_closing(code):
        return closing
    if code & SYN_OUT and code & SYN_IN:
        return established
    return opening


def tcp_inbound_refreshes(code: int) -> bool:
    """Inbound packets refresh a TCP session only while it is established."""
    return bool(code & SYN_OUT and code & SYN_IN) and not tcp_closing(code)


# Code of a TCP session created by an outbound packet, by its flags & 0x1F.
TCP_FIRST_OUTBOUND: list[int] = [tcp_transition(0, True, flags) for flags in range(32)]
