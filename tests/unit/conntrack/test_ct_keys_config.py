from ipaddress import IPv4Address

import pytest

from conntrack import ConntrackConfig, Filtering, ip_to_int
from conntrack.keys import check_port, pack_ikey, pack_okey, unpack_ikey, unpack_okey


def test_ip_to_int_accepts_int_str_and_address():
    assert ip_to_int("10.0.0.1") == 0x0A000001
    assert ip_to_int(IPv4Address("10.0.0.1")) == 0x0A000001
    assert ip_to_int(0x0A000001) == 0x0A000001


@pytest.mark.parametrize("bad", [-1, 2**32, "10.0.0", "::1", 1.5, None])
def test_ip_to_int_rejects_non_ipv4(bad):
    with pytest.raises(ValueError):
        ip_to_int(bad)


def test_check_port_range():
    assert check_port(0) == 0 and check_port(65535) == 65535
    for bad in (-1, 65536, "80", 80.0, True, None):
        with pytest.raises(ValueError):
            check_port(bad)


def test_keys_round_trip_extremes():
    for proto, ip, port, rip, rport in [(6, 0, 0, 0, 0), (17, 2**32 - 1, 65535, 2**32 - 1, 65535), (1, 1, 2, 3, 4)]:
        ikey = pack_ikey(proto, ip, port)
        assert unpack_ikey(ikey) == (proto, ip, port)
        assert unpack_okey(pack_okey(ikey, rip, rport)) == (proto, ip, port, rip, rport)
        assert ikey < 2**60  # two 30-bit digits: small int object


def test_config_defaults_are_rfc_values():
    c = ConntrackConfig(external_ip="192.0.2.1")
    assert c.external_ip == IPv4Address("192.0.2.1")
    assert (c.tcp_established_timeout, c.tcp_opening_timeout, c.tcp_closing_timeout) == (7440, 240, 240)
    assert (c.udp_timeout, c.icmp_timeout, c.quarantine) == (300, 60, 120)
    assert c.filtering(6) is Filtering.ADDRESS_AND_PORT_DEPENDENT
    assert c.rfc_warnings() == []


def test_config_coerces_filtering_strings_and_is_frozen():
    c = ConntrackConfig(external_ip=0xC0000201, udp_filtering="endpoint-independent")
    assert c.udp_filtering is Filtering.ENDPOINT_INDEPENDENT
    with pytest.raises(Exception):
        c.udp_timeout = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "overrides",
    [
        {"external_ip": "not-an-ip"},
        {"port_range": (2000, 1999)},
        {"port_range": (0, 100)},
        {"port_range": (1000, 2000)},  # overlaps low_port_range with preservation on
        {"port_range": (600, 700), "low_port_range": (1, 599)},  # high ports would map low
        {"low_port_range": (1, 1024)},
        {"icmp_id_range": (0, 70000)},
        {"udp_timeout": 0},
        {"tcp_established_timeout": -5},
        {"icmp_timeout": float("nan")},
        {"quarantine": -1},
        {"max_connections": 0},
        {"max_connections_per_host": 2**32},
        {"tcp_filtering": "open"},
        {"preserve_parity": "yes"},
    ],
)
def test_config_rejects_impossible_settings(overrides):
    args = {"external_ip": "192.0.2.1", **overrides}
    with pytest.raises(ValueError):
        ConntrackConfig(**args)


def test_overlap_allowed_without_low_port_preservation():
    c = ConntrackConfig(external_ip="192.0.2.1", port_range=(1, 65535), preserve_low_ports=False)
    assert c.port_range == (1, 65535)


def test_rfc_warnings_name_below_floor_settings():
    c = ConntrackConfig(external_ip="192.0.2.1", udp_timeout=30, tcp_opening_timeout=60, quarantine=0)
    notes = " ".join(c.rfc_warnings())
    assert "udp_timeout" in notes and "tcp_opening_timeout" in notes and "quarantine" in notes
