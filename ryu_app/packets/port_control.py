"""The wire codec of the port-control server: PCP (RFC 6887) and NAT-PMP (RFC 6886).

Both protocols share UDP 5351 and the first byte of every message (the
version: 0 for NAT-PMP, 2 for PCP), so one entry point, :func:`parse`, takes
any datagram and returns a plain request, or raises what the server must do
instead of serving it:

* :class:`Silent`: drop it unanswered (too short, or a response looping back);
  ``why`` is a counter name.
* :class:`PcpError` / :class:`PmpError`: answer with an error, built from the
  request bytes by :func:`pcp_error` / :func:`natpmp_error`, since a request
  that did not parse has no fields to copy one by one.

The builders turn the server's decisions back into bytes.  Nothing here
touches sockets, mappings or Ryu: the rules are the RFCs' byte layouts and
their checks, in the order the RFCs give them, so they can be tested alone
(``tests/unit/packets/test_port_control_codec.py``, fuzz included: no
datagram raises anything but the three exceptions above).
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address

SERVER_PORT = 5351
CLIENT_PORT = 5350
PCP_VERSION = 2
NATPMP_VERSION = 0
MAX_PCP_SIZE = 1100

_HEADER = 24                       # PCP common header, request and response alike
_MAP_SIZE = 36
_PEER_SIZE = 56
_R_BIT = 0x80
_UNSPECIFIED = IPv6Address("::")
_MAPPED_PREFIX = b"\0" * 10 + b"\xff\xff"


class PcpResult(IntEnum):
    """PCP result codes (RFC 6887 section 7.4)."""

    SUCCESS = 0
    UNSUPP_VERSION = 1
    NOT_AUTHORIZED = 2
    MALFORMED_REQUEST = 3
    UNSUPP_OPCODE = 4
    UNSUPP_OPTION = 5
    MALFORMED_OPTION = 6
    NETWORK_FAILURE = 7
    NO_RESOURCES = 8
    UNSUPP_PROTOCOL = 9
    USER_EX_QUOTA = 10
    CANNOT_PROVIDE_EXTERNAL = 11
    ADDRESS_MISMATCH = 12
    EXCESSIVE_REMOTE_PEERS = 13


class PcpOpcode(IntEnum):
    ANNOUNCE = 0
    MAP = 1
    PEER = 2


class PcpOption(IntEnum):
    THIRD_PARTY = 1
    PREFER_FAILURE = 2
    FILTER = 3


class PmpResult(IntEnum):
    """NAT-PMP result codes (RFC 6886 section 3.5)."""

    SUCCESS = 0
    UNSUPP_VERSION = 1
    NOT_AUTHORIZED = 2
    NETWORK_FAILURE = 3
    OUT_OF_RESOURCES = 4
    UNSUPP_OPCODE = 5


_PAYLOAD_SIZE = {PcpOpcode.ANNOUNCE: 0, PcpOpcode.MAP: _MAP_SIZE, PcpOpcode.PEER: _PEER_SIZE}
_OPTION_SIZE = {PcpOption.THIRD_PARTY: 16, PcpOption.PREFER_FAILURE: 0, PcpOption.FILTER: 20}
_OPTION_OPCODES = {
    PcpOption.THIRD_PARTY: (PcpOpcode.MAP, PcpOpcode.PEER),
    PcpOption.PREFER_FAILURE: (PcpOpcode.MAP,),
    PcpOption.FILTER: (PcpOpcode.MAP,),
}


@dataclass(frozen=True)
class PcpFilter:
    """One FILTER option as on the wire; prefix length 0 means every remote
    peer (the other two fields then mean nothing)."""

    prefix_length: int
    remote_port: int
    remote_ip: IPv6Address


@dataclass(frozen=True)
class PcpRequest:
    """A PCP request that parsed.  Addresses stay 128-bit as sent (IPv4 ones
    IPv4-mapped, see :func:`ipv4_of`); MAP and PEER fields are zero for the
    opcodes that do not carry them."""

    opcode: int
    lifetime: int
    client_ip: IPv6Address
    nonce: bytes = b""
    protocol: int = 0
    internal_port: int = 0
    external_port: int = 0
    external_ip: IPv6Address = _UNSPECIFIED
    remote_port: int = 0
    remote_ip: IPv6Address = _UNSPECIFIED
    third_party: IPv6Address | None = None
    prefer_failure: bool = False
    filters: tuple[PcpFilter, ...] = ()
    raw: bytes = b""


@dataclass(frozen=True)
class PmpRequest:
    """A NAT-PMP request: opcode 0 (external address) or 1/2 (UDP/TCP map)."""

    opcode: int
    internal_port: int = 0
    external_port: int = 0
    lifetime: int = 0


class PcpError(Exception):
    """A PCP request to answer with :func:`pcp_error` and ``result``; ``opcode``
    is repeated in the answer, ``raw`` is the request, ``why`` names the fault
    for logs and counters."""

    def __init__(self, result: PcpResult, opcode: int, raw: bytes, why: str) -> None:
        super().__init__(why)
        self.result = result
        self.opcode = opcode
        self.raw = raw
        self.why = why


class PmpError(Exception):
    """A NAT-PMP request to answer with :func:`natpmp_error` and ``result``."""

    def __init__(self, result: PmpResult, opcode: int, raw: bytes, why: str) -> None:
        super().__init__(why)
        self.result = result
        self.opcode = opcode
        self.raw = raw
        self.why = why


class Silent(Exception):
    """A datagram the RFCs say to drop unanswered; ``why`` is a counter name."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def ipv4_of(addr: IPv6Address) -> IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped address (``::ffff:a.b.c.d``),
    else None.  ``::ffff:0.0.0.0`` gives 0.0.0.0 and ``::`` gives None: both
    mean "no suggestion" (RFC 6887 section 5), callers test for either."""
    return addr.ipv4_mapped


def mapped(addr: IPv4Address) -> IPv6Address:
    """``addr`` as PCP carries IPv4 addresses: ``::ffff:a.b.c.d``."""
    return IPv6Address(_MAPPED_PREFIX + addr.packed)


def parse(payload: bytes) -> PcpRequest | PmpRequest:
    """The request in a datagram to UDP 5351, by its version byte: 0 is
    NAT-PMP, anything else PCP (whose parser answers versions it does not
    speak with UNSUPP_VERSION, RFC 6887 section 9)."""
    if payload[:1] == bytes([NATPMP_VERSION]):
        return parse_natpmp(payload)
    return parse_pcp(payload)


def parse_pcp(payload: bytes) -> PcpRequest:
    """A PCP request, checked in the order of RFC 6887 section 8.3."""
    if len(payload) < 2:
        raise Silent("pcp_short")
    if payload[1] & _R_BIT:
        raise Silent("pcp_response")
    opcode = payload[1] & 0x7F

    def fail(result: PcpResult, why: str) -> PcpError:
        return PcpError(result, opcode, payload, why)

    if payload[0] != PCP_VERSION:
        raise fail(PcpResult.UNSUPP_VERSION, "pcp_version")
    if len(payload) < _HEADER:
        raise Silent("pcp_short")       # not even a header: nothing to answer with
    if opcode not in _PAYLOAD_SIZE:
        raise fail(PcpResult.UNSUPP_OPCODE, "pcp_opcode")
    if len(payload) > MAX_PCP_SIZE or len(payload) % 4 or len(payload) < _HEADER:
        raise fail(PcpResult.MALFORMED_REQUEST, "pcp_length")
    size = _PAYLOAD_SIZE[PcpOpcode(opcode)]
    if len(payload) < _HEADER + size:
        raise fail(PcpResult.MALFORMED_REQUEST, "pcp_opcode_length")

    lifetime, = struct.unpack_from("!I", payload, 4)
    fields: dict = {}
    if opcode != PcpOpcode.ANNOUNCE:
        body = payload[_HEADER:_HEADER + size]
        protocol, internal_port, external_port = struct.unpack_from("!B3xHH", body, 12)
        fields = dict(nonce=body[:12], protocol=protocol, internal_port=internal_port,
                      external_port=external_port, external_ip=IPv6Address(body[20:36]))
        if opcode == PcpOpcode.PEER:
            fields.update(remote_port=int.from_bytes(body[36:38], "big"),
                          remote_ip=IPv6Address(body[40:56]))
    fields.update(_parse_options(payload, _HEADER + size, opcode, fail))
    return PcpRequest(opcode=opcode, lifetime=lifetime, client_ip=IPv6Address(payload[8:24]),
                      raw=payload, **fields)


def _walk_options(payload: bytes, start: int) -> Iterator[tuple[int, bytes, bytes]]:
    """Each option after ``start`` as (code, data, the option's bytes with
    padding); an option running past the end is yielded with code -1."""
    at = start
    while at < len(payload):
        if at + 4 > len(payload):
            yield -1, b"", payload[at:]
            return
        code, length = payload[at], int.from_bytes(payload[at + 2:at + 4], "big")
        end = at + 4 + length + (-length % 4)
        if end > len(payload):
            yield -1, b"", payload[at:]
            return
        yield code, payload[at + 4:at + 4 + length], payload[at:end]
        at = end


def _parse_options(payload: bytes, start: int, opcode: int,
                   fail: Callable[[PcpResult, str], PcpError]) -> dict:
    """The options of a request as :class:`PcpRequest` fields (RFC 6887
    sections 7.3 and 13), processed in order: the first bad one decides."""
    third_party: IPv6Address | None = None
    prefer_failure = False
    filters: list[PcpFilter] = []
    for code, data, _ in _walk_options(payload, start):
        if code < 0:
            raise fail(PcpResult.MALFORMED_OPTION, "pcp_option_overrun")
        if code not in _OPTION_SIZE:
            if code < 128:
                raise fail(PcpResult.UNSUPP_OPTION, "pcp_option_unsupported")
            continue
        option = PcpOption(code)
        if len(data) != _OPTION_SIZE[option]:
            raise fail(PcpResult.MALFORMED_OPTION, "pcp_option_length")
        if opcode not in _OPTION_OPCODES[option]:
            if option is PcpOption.PREFER_FAILURE and opcode == PcpOpcode.PEER:
                raise fail(PcpResult.MALFORMED_REQUEST, "pcp_option_opcode")  # section 12.1
            raise fail(PcpResult.MALFORMED_OPTION, "pcp_option_opcode")
        if option is PcpOption.THIRD_PARTY:
            if third_party is not None:
                raise fail(PcpResult.MALFORMED_OPTION, "pcp_option_repeated")
            third_party = IPv6Address(data)
        elif option is PcpOption.PREFER_FAILURE:
            if prefer_failure:
                raise fail(PcpResult.MALFORMED_OPTION, "pcp_option_repeated")
            prefer_failure = True
        else:
            prefix, port = data[1], int.from_bytes(data[2:4], "big")
            remote = IPv6Address(data[4:20])
            if prefix > 128 or (prefix and remote.ipv4_mapped is not None and prefix < 96):
                raise fail(PcpResult.MALFORMED_OPTION, "pcp_filter_prefix")
            filters.append(PcpFilter(prefix, port, remote))
    return dict(third_party=third_party, prefer_failure=prefer_failure, filters=tuple(filters))


def parse_natpmp(payload: bytes) -> PmpRequest:
    """A NAT-PMP request (RFC 6886 sections 3.2, 3.3 and 3.5)."""
    if len(payload) < 2:
        raise Silent("natpmp_short")
    opcode = payload[1]
    if opcode & 0x80:
        raise Silent("natpmp_response")
    if payload[0] != NATPMP_VERSION:
        raise PmpError(PmpResult.UNSUPP_VERSION, opcode, payload, "natpmp_version")
    if opcode == 0:
        return PmpRequest(0)
    if opcode not in (1, 2):
        raise PmpError(PmpResult.UNSUPP_OPCODE, opcode, payload, "natpmp_opcode")
    if len(payload) < 12:
        raise Silent("natpmp_short")
    internal, external, lifetime = struct.unpack_from("!HHI", payload, 4)
    return PmpRequest(opcode, internal, external, lifetime)


def _pcp_header(opcode: int, result: int, lifetime: int, epoch: int) -> bytes:
    return struct.pack("!BBBBII12x", PCP_VERSION, _R_BIT | opcode, 0, result,
                       lifetime, epoch & 0xFFFFFFFF)


def pcp_response(req: PcpRequest, result: int, lifetime: int, epoch: int, *,
                 external_port: int | None = None,
                 external_ip: IPv6Address | None = None) -> bytes:
    """The answer to a request that parsed (RFC 6887 sections 7.2, 11.1, 12.1).

    The MAP/PEER payload is the request's, with the assigned external port
    and address put in where given (on errors the suggested ones stay, which
    is how the client matches the answer).  The options the server acted on
    follow, as received; optional ones it does not know are left out.
    """
    out = bytearray(_pcp_header(req.opcode, result, lifetime, epoch))
    if req.opcode == PcpOpcode.ANNOUNCE:
        return bytes(out)
    out += req.nonce[:12].ljust(12, b"\0")
    out += struct.pack("!B3xHH", req.protocol, req.internal_port,
                       req.external_port if external_port is None else external_port)
    out += (req.external_ip if external_ip is None else external_ip).packed
    if req.opcode == PcpOpcode.PEER:
        out += struct.pack("!H2x", req.remote_port) + req.remote_ip.packed
    out += _known_options(req)
    return bytes(out)


def _known_options(req: PcpRequest) -> bytes:
    if req.raw:
        start = _HEADER + _PAYLOAD_SIZE[PcpOpcode(req.opcode)]
        return b"".join(chunk for code, _, chunk in _walk_options(req.raw, start)
                        if code in _OPTION_SIZE)
    out = b""
    if req.third_party is not None:
        out += struct.pack("!BxH", PcpOption.THIRD_PARTY, 16) + req.third_party.packed
    if req.prefer_failure:
        out += struct.pack("!BxH", PcpOption.PREFER_FAILURE, 0)
    for f in req.filters:
        out += struct.pack("!BxHxBH", PcpOption.FILTER, 20, f.prefix_length, f.remote_port)
        out += f.remote_ip.packed
    return out


def pcp_error(raw: bytes, opcode: int, result: int, lifetime: int, epoch: int) -> bytes:
    """The answer to a request that did not parse: the request itself (at
    most 1100 bytes, cut to a multiple of 4, zero-padded to the 24-byte
    header) with a response header written over it (RFC 6887 sections 7.2,
    7.3 and 8.3).  Version 2 whatever the request said (section 9).  Bytes
    12-23 keep the last 96 bits of the request's client address, as section
    7.2 asks for requests that did not parse."""
    size = max(_HEADER, min(len(raw), MAX_PCP_SIZE) // 4 * 4)
    out = bytearray(raw[:size].ljust(size, b"\0"))
    out[0:12] = struct.pack("!BBBBII", PCP_VERSION, _R_BIT | (opcode & 0x7F), 0, result,
                            lifetime, epoch & 0xFFFFFFFF)
    return bytes(out)


def pcp_announce(epoch: int) -> bytes:
    """An unsolicited ANNOUNCE response (RFC 6887 section 14.1), sent after
    a restart to 224.0.0.1 / ff02::1 port 5350 so clients refresh."""
    return _pcp_header(PcpOpcode.ANNOUNCE, PcpResult.SUCCESS, 0, epoch)


def natpmp_address(epoch: int, external_ip: IPv4Address, result: int = 0) -> bytes:
    """The answer to opcode 0 (RFC 6886 section 3.2): 12 bytes.  The address
    is zero on errors, as that section asks."""
    address = external_ip if result == PmpResult.SUCCESS else IPv4Address(0)
    return struct.pack("!BBHI4s", NATPMP_VERSION, 128, result, epoch & 0xFFFFFFFF,
                       address.packed)


def natpmp_map(req: PmpRequest, result: int, epoch: int, external_port: int,
               lifetime: int) -> bytes:
    """The answer to a UDP/TCP map request (RFC 6886 section 3.3): 16 bytes.
    On errors the mapped port and lifetime are written as zero (section 3.5:
    no mapping was made); the internal port is always the request's."""
    if result != PmpResult.SUCCESS:
        external_port = lifetime = 0
    return struct.pack("!BBHIHHI", NATPMP_VERSION, 128 + req.opcode, result,
                       epoch & 0xFFFFFFFF, req.internal_port, external_port, lifetime)


def natpmp_error(opcode: int, result: int, epoch: int, *, raw: bytes = b"") -> bytes:
    """A NAT-PMP error without a body: the 8-byte header (version 0, opcode
    with its top bit set, result, epoch), as RFC 6886 section 3.5 (errata
    3618) gives it for Unsupported Version: pass ``opcode`` 0 there.

    With ``raw`` (Unsupported Opcode: section 3.5 returns "the entire
    request") the rest of the request follows the header.
    """
    header = struct.pack("!BBHI", NATPMP_VERSION, 128 | (opcode & 0x7F), result,
                         epoch & 0xFFFFFFFF)
    return header + raw[len(header):]
