"""Protocol numbers, directions, address conversion and packed tuple keys.

The IP protocol numbers (``TCP``, ``UDP``, ``ICMP``) and the TCP flag bits
(:class:`TcpFlags`) have their one home here: ``ryu_app`` imports
them from this module (conntrack itself imports nothing of Ryu or ryu_app).

Keys are packed into Python ints rather than tuples: an int key is one object
(32-48 bytes) that hashes quickly, where a 5-tuple costs ~3x the memory at a
million entries. Layout, most significant bits first::

    inside key (ikey)   = protocol(8) | inside ip(32) | inside port(16)   56 bits
    original key (okey) = ikey(56)    | remote ip(32) | remote port(16)  104 bits

The reply direction needs no key of its own: endpoint-independent mapping makes
the external port a 1:1 alias of the inside endpoint, so a reply tuple is
turned into an original key through the port's owner (see ``table.py``).

ICMP echo uses the echo identifier as the inside/external "port"; the remote
"port" of an ICMP session is always 0 (the API normalises it).
"""

from __future__ import annotations

import enum
from ipaddress import IPv4Address
from typing import NamedTuple, Union

ICMP = 1
TCP = 6
UDP = 17
PROTOCOLS: tuple[int, ...] = (TCP, UDP, ICMP)
PROTOCOL_NAMES: dict[int, str] = {TCP: "tcp", UDP: "udp", ICMP: "icmp"}

MAX_IP = 0xFFFFFFFF
MAX_PORT = 0xFFFF

IPLike = Union[IPv4Address, int, str]


class Direction(enum.IntEnum):
    """Direction of a packet relative to the NAT: inside->outside is OUTBOUND."""

    OUTBOUND = 0
    INBOUND = 1


OUTBOUND = Direction.OUTBOUND
INBOUND = Direction.INBOUND


class TcpFlags(enum.IntFlag):
    """TCP header flag bits, as in the header (and OpenFlow ``tcp_flags``)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10


class FiveTuple(NamedTuple):
    """A packet's addresses as seen on the wire, in the packet's own direction."""

    protocol: int
    src_ip: IPv4Address
    src_port: int
    dst_ip: IPv4Address
    dst_port: int


def ip_to_int(ip: IPLike) -> int:
    """Return an IPv4 address as an int; accepts int, str or IPv4Address.

    Raises ValueError for anything that is not an IPv4 address.
    """
    if type(ip) is int:
        if 0 <= ip <= MAX_IP:
            return ip
        raise ValueError(f"IPv4 address out of range: {ip}")
    if isinstance(ip, IPv4Address):
        return int(ip)
    if isinstance(ip, str):
        return int(IPv4Address(ip))
    raise ValueError(f"not an IPv4 address: {ip!r}")


def check_port(port: int, what: str = "port") -> int:
    """Return ``port`` if it is an int in 0..65535, else raise ValueError."""
    if type(port) is not int or not 0 <= port <= MAX_PORT:
        raise ValueError(f"{what} must be an int in 0..65535, got {port!r}")
    return port


def pack_ikey(protocol: int, ip: int, port: int) -> int:
    """Pack an inside endpoint (protocol, ip, port) into one int."""
    return (protocol << 48) | (ip << 16) | port


def pack_okey(ikey: int, remote_ip: int, remote_port: int) -> int:
    """Pack an original (inside->remote) tuple from its inside key."""
    return (ikey << 48) | (remote_ip << 16) | remote_port


def unpack_ikey(ikey: int) -> tuple[int, int, int]:
    """Inverse of :func:`pack_ikey`: (protocol, ip, port)."""
    return ikey >> 48, (ikey >> 16) & MAX_IP, ikey & MAX_PORT


def unpack_okey(okey: int) -> tuple[int, int, int, int, int]:
    """Inverse of :func:`pack_okey`: (protocol, ip, port, remote ip, remote port)."""
    return (
        okey >> 96,
        (okey >> 64) & MAX_IP,
        (okey >> 48) & MAX_PORT,
        (okey >> 16) & MAX_IP,
        okey & MAX_PORT,
    )
