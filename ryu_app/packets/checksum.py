"""Internet checksum edits on raw packet bytes (RFC 1071, RFC 1624).

For packets the controller translates byte by byte: quoted packets inside
ICMP errors and IP fragments, where the L4 checksum covers bytes we never
see whole, so it can only be adjusted, not recomputed.
"""
from __future__ import annotations

import struct

from ryu.lib.packet import packet_utils


def adjust(buf: bytearray, at: int, old: bytes, new: bytes, udp: bool = False) -> None:
    """RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), for the 16-bit words old -> new."""
    total = ~struct.unpack_from("!H", buf, at)[0] & 0xFFFF
    for i in range(0, len(old), 2):
        m, m2 = struct.unpack_from("!HH", old[i:i + 2] + new[i:i + 2])
        total += (~m & 0xFFFF) + m2
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    csum = ~total & 0xFFFF
    struct.pack_into("!H", buf, at, 0xFFFF if udp and csum == 0 else csum)   # UDP: 0 = none


def refresh(buf: bytearray, at: int, start: int, end: int) -> None:
    """Recompute the Internet checksum at ``at`` over ``buf[start:end]``."""
    struct.pack_into("!H", buf, at, 0)
    struct.pack_into("!H", buf, at, packet_utils.checksum(buf[start:end]))
