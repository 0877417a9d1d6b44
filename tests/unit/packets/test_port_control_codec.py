"""The PCP / NAT-PMP codec against bytes laid out here by hand, field by field.

Requests are packed with ``struct`` from the RFC figures (RFC 6887 sections
7.1, 7.3, 11.1, 12.1, 13; RFC 6886 sections 3.2, 3.3), never with the
module's builders, so a wrong offset in the module cannot hide behind the
same wrong offset in the test.  Answers are unpacked the same way.  A fuzz
run holds the promise the server relies on: whatever arrives, parse()
returns a request or raises PcpError, PmpError or Silent.
"""
from __future__ import annotations

import random
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from ryu_app.packets import port_control as pc
from ryu_app.packets.port_control import (PcpError, PcpFilter, PcpRequest, PcpResult, PmpError,
                                          PmpRequest, PmpResult, Silent)

CLIENT = IPv6Address("::ffff:10.0.0.11")
NONCE = bytes(range(1, 13))
NO_IP = IPv6Address("::ffff:0.0.0.0")
NAT_IP = IPv6Address("::ffff:198.51.100.1")
REMOTE = IPv6Address("::ffff:203.0.113.7")
OTHER_HOST = IPv6Address("::ffff:10.0.0.12")
UDP, TCP = 17, 6


def header(opcode: int, lifetime: int = 7200, client: IPv6Address = CLIENT,
           version: int = 2) -> bytes:
    """RFC 6887 figure 2: version, R|opcode, 16 reserved, lifetime, client IP."""
    return struct.pack("!BBHI", version, opcode, 0, lifetime) + client.packed


def map_body(protocol: int = UDP, internal: int = 5000, external: int = 0,
             ext_ip: IPv6Address = NO_IP, nonce: bytes = NONCE) -> bytes:
    """RFC 6887 figure 9: nonce, protocol, 24 reserved, ports, external IP."""
    return nonce + struct.pack("!BBBBHH", protocol, 0, 0, 0, internal, external) + ext_ip.packed


def peer_body(remote_port: int = 443, remote_ip: IPv6Address = REMOTE, **kw) -> bytes:
    """RFC 6887 figure 11: the MAP fields, remote port, 16 reserved, remote IP."""
    return map_body(**kw) + struct.pack("!HH", remote_port, 0) + remote_ip.packed


def option(code: int, data: bytes, length: int | None = None) -> bytes:
    """RFC 6887 figure 4: code, reserved, length, data padded to 4."""
    length = len(data) if length is None else length
    return struct.pack("!BBH", code, 0, length) + data + b"\0" * (-len(data) % 4)


def third_party(addr: IPv6Address = OTHER_HOST) -> bytes:
    return option(1, addr.packed)


def prefer_failure() -> bytes:
    return option(2, b"")


def filter_option(prefix: int, port: int, ip: IPv6Address) -> bytes:
    """RFC 6887 figure 15: reserved, prefix length, remote port, remote IP."""
    return option(3, struct.pack("!BBH", 0, prefix, port) + ip.packed)


def map_request(*options: bytes, **kw) -> bytes:
    return header(1) + map_body(**kw) + b"".join(options)


def peer_request(*options: bytes, **kw) -> bytes:
    return header(2) + peer_body(**kw) + b"".join(options)


def pcp_fails(payload: bytes) -> PcpError:
    with pytest.raises(PcpError) as caught:
        pc.parse(payload)
    assert caught.value.raw == payload
    return caught.value


# ---------------------------------------------------------------- PCP requests

def test_map_request_fields():
    req = pc.parse(header(1, lifetime=3600) + map_body(protocol=TCP, internal=8080,
                                                       external=18080, ext_ip=NAT_IP))
    assert isinstance(req, PcpRequest)
    assert req.opcode == pc.PcpOpcode.MAP == 1
    assert req.lifetime == 3600
    assert req.client_ip == CLIENT
    assert req.nonce == NONCE
    assert req.protocol == TCP
    assert req.internal_port == 8080
    assert req.external_port == 18080
    assert req.external_ip == NAT_IP
    assert (req.remote_port, req.remote_ip) == (0, IPv6Address("::"))
    assert (req.third_party, req.prefer_failure, req.filters) == (None, False, ())
    assert len(req.raw) == 60


def test_peer_request_fields():
    raw = header(2, lifetime=120) + peer_body(remote_port=8443, remote_ip=REMOTE, protocol=UDP,
                                              internal=4000, external=14000, ext_ip=NAT_IP)
    req = pc.parse(raw + third_party())
    assert isinstance(req, PcpRequest)
    assert (req.opcode, req.lifetime, req.nonce) == (2, 120, NONCE)
    assert (req.protocol, req.internal_port, req.external_port) == (UDP, 4000, 14000)
    assert req.external_ip == NAT_IP
    assert (req.remote_port, req.remote_ip) == (8443, REMOTE)
    assert req.third_party == OTHER_HOST
    assert len(req.raw) == 24 + 56 + 20


def test_announce_request_fields():
    req = pc.parse(header(0, lifetime=0))
    assert isinstance(req, PcpRequest)
    assert (req.opcode, req.lifetime, req.client_ip, req.nonce) == (0, 0, CLIENT, b"")


def test_map_options_are_read():
    v6 = IPv6Address("2001:db8::1")
    req = pc.parse(map_request(filter_option(128, 443, REMOTE), third_party(), prefer_failure(),
                               option(200, b"\x01\x02\x03"), filter_option(48, 0, v6)))
    assert isinstance(req, PcpRequest)
    assert req.third_party == OTHER_HOST
    assert req.prefer_failure is True
    assert req.filters == (PcpFilter(128, 443, REMOTE), PcpFilter(48, 0, v6))


@pytest.mark.parametrize("prefix, ip", [
    (0, REMOTE),                        # "no filter": the rest is not looked at
    (0, IPv6Address("::ffff:1.2.3.4")),
    (96, REMOTE), (120, REMOTE), (128, REMOTE),
    (1, IPv6Address("2001:db8::")), (64, IPv6Address("2001:db8::")),
])
def test_filter_prefix_lengths_accepted(prefix, ip):
    req = pc.parse(map_request(filter_option(prefix, 80, ip)))
    assert isinstance(req, PcpRequest)
    assert req.filters == (PcpFilter(prefix, 80, ip),)


@pytest.mark.parametrize("prefix, ip", [
    (1, REMOTE), (95, REMOTE), (129, REMOTE), (255, IPv6Address("2001:db8::")),
])
def test_filter_prefix_lengths_refused(prefix, ip):
    err = pcp_fails(map_request(filter_option(prefix, 80, ip)))
    assert err.result == PcpResult.MALFORMED_OPTION
    assert err.opcode == 1


def test_unknown_optional_option_is_ignored():
    req = pc.parse(map_request(option(128, b""), option(255, b"x" * 9)))
    assert isinstance(req, PcpRequest)
    assert (req.third_party, req.prefer_failure, req.filters) == (None, False, ())


# ---------------------------------------------------------- PCP request errors

@pytest.mark.parametrize("payload, why", [
    (b"", "pcp_short"),
    (b"\x02", "pcp_short"),
    (b"\x03", "pcp_short"),
    (b"\x00", "natpmp_short"),
    (header(1)[:20], "pcp_short"),                  # version 2 but not even a header
    (b"\x02\x01\x00", "pcp_short"),
    (b"\x02\x09" + b"\0" * 10, "pcp_short"),      # before the opcode is looked at
    (header(0x81) + map_body(), "pcp_response"),
    (header(0x80), "pcp_response"),
    (header(0x81, version=1), "pcp_response"),   # R is checked before the version
])
def test_dropped_silently(payload, why):
    with pytest.raises(Silent) as caught:
        pc.parse(payload)
    assert caught.value.why == why


@pytest.mark.parametrize("version", [1, 3, 255])
def test_unsupported_version(version):
    payload = header(1, version=version) + map_body()
    err = pcp_fails(payload)
    assert (err.result, err.opcode) == (PcpResult.UNSUPP_VERSION, 1)
    assert pcp_fails(bytes([version, 2, 0])).result == PcpResult.UNSUPP_VERSION


@pytest.mark.parametrize("opcode", [3, 64, 127])
def test_unsupported_opcode(opcode):
    err = pcp_fails(header(opcode) + map_body())
    assert (err.result, err.opcode) == (PcpResult.UNSUPP_OPCODE, opcode)


@pytest.mark.parametrize("payload, opcode", [
    (map_request() + b"\0\0", 1),                                       # not a multiple of 4
    (header(0) + b"\0", 0),
    (map_request(option(200, b"\0" * (1104 - 64))), 1),                 # 1104 > 1100
    (header(1) + map_body()[:32], 1),                                   # MAP cut short
    (header(2) + map_body(), 2),                                        # PEER cut short
    (header(2) + peer_body()[:52], 2),
])
def test_malformed_request(payload, opcode):
    err = pcp_fails(payload)
    assert (err.result, err.opcode) == (PcpResult.MALFORMED_REQUEST, opcode)


def test_largest_request_accepted():
    payload = map_request(option(200, b"\0" * (1100 - 64)))
    assert len(payload) == 1100
    assert isinstance(pc.parse(payload), PcpRequest)


@pytest.mark.parametrize("options", [
    [struct.pack("!BBH", 1, 0, 16) + b"\0" * 8],                 # runs past the end
    [struct.pack("!BBH", 200, 0, 4)],                            # optional, still past the end
    [prefer_failure(), struct.pack("!BBH", 3, 0, 0xFFFF)],
    [option(1, b"\0" * 12)],                                     # THIRD_PARTY, 12 not 16
    [option(1, b"\0" * 20)],
    [option(2, b"\0" * 4)],                                      # PREFER_FAILURE, 4 not 0
    [option(3, b"\0" * 16)],                                     # FILTER, 16 not 20
    [option(1, b"\0" * 16, length=15)],                          # length says 15, padded to 16
    [third_party(), third_party()],
    [third_party(), third_party(OTHER_HOST)],
    [prefer_failure(), prefer_failure()],
])
def test_malformed_option(options):
    err = pcp_fails(map_request(*options))
    assert (err.result, err.opcode) == (PcpResult.MALFORMED_OPTION, 1)


@pytest.mark.parametrize("payload", [
    peer_request(filter_option(96, 80, REMOTE)),
    header(0) + third_party(),
    header(0) + prefer_failure(),
    header(0) + filter_option(0, 0, REMOTE),
])
def test_option_not_valid_for_the_opcode(payload):
    assert pcp_fails(payload).result == PcpResult.MALFORMED_OPTION


def test_prefer_failure_on_peer_is_a_malformed_request():
    """RFC 6887 section 12.1: PREFER_FAILURE in a PEER request gets MALFORMED_REQUEST."""
    err = pcp_fails(peer_request(prefer_failure()))
    assert (err.result, err.opcode) == (PcpResult.MALFORMED_REQUEST, 2)


@pytest.mark.parametrize("code", [0, 4, 5, 99, 127])
def test_unknown_mandatory_option(code):
    assert pcp_fails(map_request(option(code, b"abcd"))).result == PcpResult.UNSUPP_OPTION
    assert pcp_fails(header(0) + option(code, b"")).result == PcpResult.UNSUPP_OPTION


def test_first_bad_option_decides():
    assert pcp_fails(map_request(option(99, b""), option(1, b""))).result \
        == PcpResult.UNSUPP_OPTION
    assert pcp_fails(map_request(option(1, b""), option(99, b""))).result \
        == PcpResult.MALFORMED_OPTION


# ------------------------------------------------------------ NAT-PMP requests

def test_natpmp_address_request():
    assert pc.parse(b"\x00\x00") == PmpRequest(0)
    assert pc.parse(b"\x00\x00" + b"junk") == PmpRequest(0)


@pytest.mark.parametrize("opcode", [1, 2])
def test_natpmp_map_request(opcode):
    payload = struct.pack("!BBHHHI", 0, opcode, 0, 5000, 15000, 7200)
    req = pc.parse(payload)
    assert req == PmpRequest(opcode=opcode, internal_port=5000, external_port=15000,
                             lifetime=7200)
    assert pc.parse(payload + b"\0" * 4) == req


@pytest.mark.parametrize("payload, why", [
    (b"\x00\x01" + b"\0" * 9, "natpmp_short"),
    (b"\x00\x02", "natpmp_short"),
    (b"\x00\x80", "natpmp_response"),
    (b"\x00\x81" + b"\0" * 14, "natpmp_response"),
    (b"\x00\xff", "natpmp_response"),
])
def test_natpmp_dropped_silently(payload, why):
    with pytest.raises(Silent) as caught:
        pc.parse(payload)
    assert caught.value.why == why


@pytest.mark.parametrize("opcode", [3, 50, 127])
def test_natpmp_unsupported_opcode(opcode):
    payload = bytes([0, opcode]) + b"\1" * 10
    with pytest.raises(PmpError) as caught:
        pc.parse(payload)
    err = caught.value
    assert (err.result, err.opcode, err.raw) == (PmpResult.UNSUPP_OPCODE, opcode, payload)


def test_natpmp_parser_refuses_other_versions():
    with pytest.raises(PmpError) as caught:
        pc.parse_natpmp(b"\x01\x00")
    assert caught.value.result == PmpResult.UNSUPP_VERSION


# ------------------------------------------------------------------- addresses

def test_ipv4_of_and_mapped():
    assert pc.ipv4_of(IPv6Address("::ffff:192.0.2.5")) == IPv4Address("192.0.2.5")
    assert pc.ipv4_of(NO_IP) == IPv4Address("0.0.0.0")
    assert pc.ipv4_of(IPv6Address("::")) is None
    assert pc.ipv4_of(IPv6Address("2001:db8::1")) is None
    assert pc.ipv4_of(IPv6Address("::192.0.2.5")) is None        # IPv4-compatible, not mapped
    assert pc.mapped(IPv4Address("192.0.2.5")).packed == b"\0" * 10 + b"\xff\xff\xc0\x00\x02\x05"
    assert pc.ipv4_of(pc.mapped(IPv4Address("10.1.2.3"))) == IPv4Address("10.1.2.3")


# -------------------------------------------------------------------- builders

def response_header(data: bytes) -> tuple:
    """RFC 6887 figure 3: version, R|opcode, reserved, result, lifetime, epoch, 96 reserved."""
    return struct.unpack_from("!BBBBII12s", data)


def test_map_success_response():
    req = pc.parse(map_request(third_party(), option(200, b"zz"), filter_option(96, 0, REMOTE),
                               protocol=TCP, internal=8080, external=0, ext_ip=NO_IP))
    assert isinstance(req, PcpRequest)
    out = pc.pcp_response(req, PcpResult.SUCCESS, 3000, 77, external_port=40001,
                          external_ip=NAT_IP)
    assert len(out) == 24 + 36 + 20 + 24
    assert response_header(out) == (2, 0x81, 0, 0, 3000, 77, b"\0" * 12)
    assert out[24:36] == NONCE
    assert struct.unpack_from("!B3sHH", out, 36) == (TCP, b"\0\0\0", 8080, 40001)
    assert out[44:60] == NAT_IP.packed
    assert out[60:80] == third_party()
    assert out[80:104] == filter_option(96, 0, REMOTE)      # the optional 200 is not copied


def test_map_error_response_keeps_the_suggestion():
    req = pc.parse(map_request(prefer_failure(), external=443, ext_ip=NAT_IP))
    assert isinstance(req, PcpRequest)
    out = pc.pcp_response(req, PcpResult.CANNOT_PROVIDE_EXTERNAL, 30, 9)
    assert response_header(out) == (2, 0x81, 0, 11, 30, 9, b"\0" * 12)
    assert out[24:60] == map_body(external=443, ext_ip=NAT_IP)
    assert out[60:] == prefer_failure()


def test_peer_response():
    req = pc.parse(peer_request(remote_port=8443, internal=4000, external=14000))
    assert isinstance(req, PcpRequest)
    out = pc.pcp_response(req, PcpResult.SUCCESS, 600, 5, external_port=50000,
                          external_ip=NAT_IP)
    assert len(out) == 24 + 56
    assert response_header(out) == (2, 0x82, 0, 0, 600, 5, b"\0" * 12)
    assert out[24:36] == NONCE
    assert struct.unpack_from("!B3xHH", out, 36) == (UDP, 4000, 50000)
    assert out[44:60] == NAT_IP.packed
    assert struct.unpack_from("!HH", out, 60) == (8443, 0)
    assert out[64:80] == REMOTE.packed


def test_announce_response():
    req = pc.parse(header(0, lifetime=0))
    assert isinstance(req, PcpRequest)
    out = pc.pcp_response(req, PcpResult.SUCCESS, 0, 12345)
    assert out == struct.pack("!BBBBII", 2, 0x80, 0, 0, 0, 12345) + b"\0" * 12


def test_response_to_a_request_built_in_code():
    req = PcpRequest(opcode=1, lifetime=60, client_ip=CLIENT, nonce=NONCE, protocol=UDP,
                     internal_port=53, third_party=OTHER_HOST, prefer_failure=True,
                     filters=(PcpFilter(112, 53, REMOTE),))
    out = pc.pcp_response(req, PcpResult.SUCCESS, 60, 1, external_port=53, external_ip=NAT_IP)
    assert out[24:60] == map_body(protocol=UDP, internal=53, external=53, ext_ip=NAT_IP)
    assert out[60:] == third_party() + prefer_failure() + filter_option(112, 53, REMOTE)


def test_pcp_error_of_a_whole_request():
    raw = map_request(option(99, b"abc"))
    err = pcp_fails(raw)
    out = pc.pcp_error(err.raw, err.opcode, err.result, 1800, 4242)
    assert len(out) == len(raw) == 68
    version, r_op, reserved, result, lifetime, epoch, tail = response_header(out)
    assert (version, r_op, reserved, result, lifetime, epoch) == (2, 0x81, 0, 5, 1800, 4242)
    assert tail == CLIENT.packed[4:]         # RFC 6887 7.2: last 96 bits of the client IP
    assert out[24:] == raw[24:]


@pytest.mark.parametrize("raw, size", [
    (b"\x01\x01\x00", 24),                   # 3 bytes: the header, zero-padded
    (header(1) + b"\0" * 3, 24),             # 27: cut to a multiple of 4
    (header(1) + b"\0" * 6, 28),
    (bytes([2, 1]) + b"\x07" * 1099, 1100),  # 1101: cut to 1100
    (bytes([2, 1]) + b"\x07" * 1500, 1100),
])
def test_pcp_error_sizes(raw, size):
    out = pc.pcp_error(raw, 1, PcpResult.MALFORMED_REQUEST, 0, 7)
    assert len(out) == size
    assert response_header(out)[:6] == (2, 0x81, 0, 3, 0, 7)
    assert out[12:] == raw[12:size].ljust(size - 12, b"\0")


def test_pcp_error_answers_other_versions_with_version_2():
    raw = header(1, version=1) + map_body()
    err = pcp_fails(raw)
    out = pc.pcp_error(err.raw, err.opcode, err.result, 0, 1)
    assert response_header(out)[:4] == (2, 0x81, 0, PcpResult.UNSUPP_VERSION)


def test_pcp_announce():
    out = pc.pcp_announce(99)
    assert out == struct.pack("!BBBBII", 2, 0x80, 0, 0, 0, 99) + b"\0" * 12
    assert pc.pcp_announce(2 ** 32 + 5)[8:12] == struct.pack("!I", 5)


def test_natpmp_address_response():
    out = pc.natpmp_address(1000, IPv4Address("198.51.100.1"))
    assert struct.unpack("!BBHI4s", out) == (0, 128, 0, 1000,
                                             IPv4Address("198.51.100.1").packed)
    err = pc.natpmp_address(1000, IPv4Address("198.51.100.1"), PmpResult.NETWORK_FAILURE)
    assert struct.unpack("!BBHI4s", err) == (0, 128, 3, 1000, b"\0\0\0\0")


@pytest.mark.parametrize("opcode", [1, 2])
def test_natpmp_map_response(opcode):
    req = PmpRequest(opcode, internal_port=5000, external_port=15000, lifetime=7200)
    out = pc.natpmp_map(req, PmpResult.SUCCESS, 321, 15001, 3600)
    assert struct.unpack("!BBHIHHI", out) == (0, 128 + opcode, 0, 321, 5000, 15001, 3600)
    err = pc.natpmp_map(req, PmpResult.OUT_OF_RESOURCES, 321, 15001, 3600)
    assert struct.unpack("!BBHIHHI", err) == (0, 128 + opcode, 4, 321, 5000, 0, 0)


def test_natpmp_error():
    assert struct.unpack("!BBHI", pc.natpmp_error(0, PmpResult.UNSUPP_VERSION, 55)) \
        == (0, 128, 1, 55)
    raw = bytes([0, 9]) + bytes(range(10, 24))
    out = pc.natpmp_error(9, PmpResult.UNSUPP_OPCODE, 55, raw=raw)
    assert len(out) == len(raw)
    assert struct.unpack_from("!BBHI", out) == (0, 137, 5, 55)
    assert out[8:] == raw[8:]
    assert len(pc.natpmp_error(9, PmpResult.UNSUPP_OPCODE, 55, raw=b"\x00\x09")) == 8


def test_our_answers_loop_back_silently():
    """Answers reaching port 5351 again (a client echoing, a loop) are dropped."""
    req = pc.parse(map_request())
    assert isinstance(req, PcpRequest)
    answers = [
        pc.pcp_response(req, PcpResult.SUCCESS, 60, 1, external_port=1, external_ip=NAT_IP),
        pc.pcp_error(b"\x02\x05\x00", 5, PcpResult.UNSUPP_OPCODE, 0, 1),
        pc.pcp_announce(1),
        pc.natpmp_address(1, IPv4Address("192.0.2.1")),
        pc.natpmp_map(PmpRequest(1, 1, 1, 1), 0, 1, 1, 1),
        pc.natpmp_error(0, 1, 1),
    ]
    for answer in answers:
        with pytest.raises(Silent):
            pc.parse(answer)


# ------------------------------------------------------------------------ fuzz

def fuzz_inputs(rng: random.Random, count: int):
    """Random bytes, half of them from the first two bytes the parsers branch on,
    and random damage to valid requests."""
    valid = [map_request(third_party(), filter_option(96, 1, REMOTE)), peer_request(),
             header(0), struct.pack("!BBHHHI", 0, 1, 0, 1, 2, 3), b"\x00\x00"]
    for i in range(count):
        kind = i % 4
        if kind == 0:
            yield rng.randbytes(rng.randrange(0, 1200))
        elif kind == 1:
            first = bytes([rng.choice([0, 1, 2, 2, 2, 3]), rng.choice([0, 1, 2, 3, 0x81])])
            yield first + rng.randbytes(rng.choice([0, 2, 10, 22, 58, 78, 100, 1098]))
        elif kind == 2:
            data = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            yield bytes(data)
        else:
            body = b"".join(struct.pack("!BBH", rng.choice([1, 2, 3, 99, 200]), 0,
                                        rng.choice([0, 4, 16, 20, 65535]))
                            + rng.randbytes(rng.choice([0, 4, 16, 20]))
                            for _ in range(rng.randrange(0, 5)))
            yield rng.choice([map_request(), peer_request(), header(0)]) + body


def test_fuzz_only_the_three_exceptions():
    rng = random.Random(6887)
    seen: set[str] = set()
    for payload in fuzz_inputs(rng, 2000):
        try:
            req = pc.parse(payload)
        except PcpError as err:
            seen.add(f"pcp:{err.result.name}")
            out = pc.pcp_error(err.raw, err.opcode, err.result, 0, 1)
            assert 24 <= len(out) <= 1100 and len(out) % 4 == 0
            assert out[0] == 2 and out[1] & 0x80
        except PmpError as err:
            seen.add(f"pmp:{err.result.name}")
            assert pc.natpmp_error(err.opcode, err.result, 1, raw=err.raw)[1] & 0x80
        except Silent as drop:
            seen.add(drop.why)
        else:
            seen.add(type(req).__name__)
            if isinstance(req, PcpRequest):
                out = pc.pcp_response(req, PcpResult.SUCCESS, 1, 1)
                assert len(out) <= len(payload) and len(out) % 4 == 0
    assert {"PcpRequest", "PmpRequest", "pcp:MALFORMED_REQUEST", "pcp:MALFORMED_OPTION",
            "pcp:UNSUPP_VERSION", "pcp:UNSUPP_OPCODE", "pcp:UNSUPP_OPTION",
            "pmp:UNSUPP_OPCODE", "pcp_response", "natpmp_response"} <= seen
