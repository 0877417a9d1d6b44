"""Checks oslo.config cannot declare: addresses, MACs, ranges, names, files.

oslo.config enforces types, ``min``/``max`` and ``choices`` (see
:mod:`ryu_app.settings.options`); what is left is text with a structure of
its own (``198.51.100.1/24``, ``LOW-HIGH``, ``ADDRESS=MAC@PORT``, a dpid in
hex) and relations between values.  Each function takes the option's name
and raw value and returns the parsed value or raises :class:`ConfigError`.
"""
from __future__ import annotations

import ipaddress
import os
import re

from ryu_app.settings.errors import ConfigError

FILTERING_MODES = ("endpoint-independent", "address-dependent", "address-and-port-dependent")
OFPP_MAX = 0xFFFFFF00   # reserved OpenFlow ports above it are not uplinks


def required(name: str, value: object) -> str:
    if value is None or not str(value).strip():
        raise ConfigError(name, value, "required")
    return str(value).strip()


def ipv4_address(name: str, value: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise ConfigError(name, value, "not an IPv4 address") from None


def host_in(name: str, addr: ipaddress.IPv4Address, net: ipaddress.IPv4Network) -> None:
    """``addr`` is a host of ``net``: inside it, not its network or broadcast address."""
    if addr not in net:
        raise ConfigError(name, str(addr), f"not inside {net}")
    if net.prefixlen < 31 and addr in (net.network_address, net.broadcast_address):
        raise ConfigError(name, str(addr), f"is the network or broadcast address of {net}")


def external_ip(value: str | None) -> ipaddress.IPv4Interface:
    raw = required("external_ip", value)
    if "/" not in raw:
        raise ConfigError("external_ip", raw, "needs a prefix length, e.g. 198.51.100.1/24")
    try:
        iface = ipaddress.IPv4Interface(raw)
    except ValueError:
        raise ConfigError("external_ip", raw, "not an IPv4 interface address") from None
    host_in("external_ip", iface.ip, iface.network)
    return iface


MAX_POOL = 256   # conntrack keeps port tables per pool address (about 9 MiB each)


def external_pool(specs: list[str] | None, external: ipaddress.IPv4Interface,
                  gateway: ipaddress.IPv4Address | None) -> tuple[ipaddress.IPv4Address, ...]:
    """``ADDRESS`` and ``FIRST-LAST`` items, hosts of ``external_ip``'s
    prefix, none twice and none the next hop: the pool in the order given."""
    pool: list[ipaddress.IPv4Address] = []
    for spec in specs or []:
        raw = str(spec).strip()
        first_text, _, last_text = raw.partition("-")
        first = ipv4_address("external_pool", first_text.strip())
        last = ipv4_address("external_pool", last_text.strip()) if last_text else first
        if last < first:
            raise ConfigError("external_pool", raw, "range runs backwards")
        if int(last) - int(first) + len(pool) >= MAX_POOL:
            raise ConfigError("external_pool", raw, f"more than {MAX_POOL} addresses")
        for n in range(int(first), int(last) + 1):
            addr = ipaddress.IPv4Address(n)
            host_in("external_pool", addr, external.network)
            if addr in pool:
                raise ConfigError("external_pool", raw, f"lists {addr} twice")
            if addr == gateway:
                raise ConfigError("external_pool", raw, f"{addr} is the external gateway")
            pool.append(addr)
    return tuple(pool)


def external_port(value: str | None) -> int | str:
    """An OpenFlow port number (1..OFPP_MAX) or an interface name."""
    raw = required("external_port", value)
    if raw.isdigit():
        number = int(raw)
        if not 1 <= number <= OFPP_MAX:
            raise ConfigError("external_port", number, f"must be at least 1 and at most {OFPP_MAX}")
        return number
    if len(raw) > 15 or not re.fullmatch(r"[A-Za-z0-9_.:@-]+", raw):
        raise ConfigError("external_port", raw, "not a port number or interface name")
    return raw


def internal_subnet(value: str | None) -> ipaddress.IPv4Network:
    raw = required("internal_subnet", value)
    try:
        net = ipaddress.IPv4Network(raw, strict=True)
    except ValueError as exc:
        raise ConfigError("internal_subnet", raw, f"not an IPv4 network ({exc})") from None
    if net.prefixlen > 30:
        raise ConfigError("internal_subnet", raw, "prefix longer than /30 leaves no hosts")
    return net


def mac(value: str | None, option: str = "gateway_mac") -> str:
    """A unicast, non-zero MAC, lower case."""
    raw = required(option, value).lower()
    if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", raw):
        raise ConfigError(option, value, "not a MAC address like 02:00:00:00:00:01")
    if int(raw[:2], 16) & 1:
        raise ConfigError(option, value, "is a multicast MAC")
    if raw == "00:00:00:00:00:00":
        raise ConfigError(option, value, "is all zeros")
    return raw


def static_bindings(specs: list[str] | None,
                    inside: ipaddress.IPv4Network) -> tuple[tuple[str, str, int], ...]:
    """ADDRESS=MAC@PORT entries: an inside host address each, once."""
    out: dict[str, tuple[str, str, int]] = {}
    for spec in specs or []:
        match = re.fullmatch(r"\s*([0-9.]+)\s*=\s*([0-9A-Fa-f:]+)\s*@\s*(\d+)\s*", spec)
        if match is None:
            raise ConfigError("static_bindings", spec, "not ADDRESS=MAC@PORT")
        ip = ipv4_address("static_bindings", match.group(1))
        host_in("static_bindings", ip, inside)
        if str(ip) in out:
            raise ConfigError("static_bindings", spec, f"{ip} is bound twice")
        port = int(match.group(3))
        if not 1 <= port < OFPP_MAX:
            raise ConfigError("static_bindings", spec, "port is not a switch port number")
        out[str(ip)] = (str(ip), mac(match.group(2), "static_bindings"), port)
    return tuple(out.values())


def port_range(value: str | None) -> tuple[int, int]:
    raw = required("port_range", value)
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", raw)
    if not match:
        raise ConfigError("port_range", raw, "expected LOW-HIGH, e.g. 1024-65535")
    low, high = int(match.group(1)), int(match.group(2))
    if not 1 <= low <= high <= 65535:
        raise ConfigError("port_range", raw, "needs 1 <= LOW <= HIGH <= 65535")
    return low, high


def dpid(value: str | None) -> int | None:
    """A datapath id in decimal or 0x-hex; unset: None."""
    if value is None or not str(value).strip():
        return None
    raw = str(value).strip().lower()
    try:
        number = int(raw, 16) if raw.startswith("0x") else int(raw, 10)
    except ValueError:
        raise ConfigError("dpid", value, "not a decimal or 0x-hex datapath id") from None
    if not 0 <= number < 2 ** 64:
        raise ConfigError("dpid", value, "outside 0..2^64-1")
    return number


def filtering(name: str, value: str | None) -> str:
    """A filtering mode, lower case (oslo compares the choices ignoring case)."""
    mode = (value or "").strip().lower()
    if mode not in FILTERING_MODES:
        raise ConfigError(name, value, f"must be one of {', '.join(FILTERING_MODES)}")
    return mode


def filtering_or(name: str, value: str | None, default: str) -> str:
    """A per-protocol filtering option; unset (or blank) falls back to ``default``."""
    if value is None or not str(value).strip():
        return default
    return filtering(name, value)


def token(value: str | None) -> str | None:
    """A bearer token: printable ASCII without spaces, long enough to guess slowly."""
    if value is None or value == "":
        return None
    if not re.fullmatch(r"[\x21-\x7e]{16,256}", value):
        # Never echo a secret into the log: name the option only.
        raise ConfigError("rest_token", "***", "must be 16..256 printable ASCII characters, "
                          "no spaces")
    return value


def coordination_url(value: str | None) -> str | None:
    """A tooz URL (secret: it may carry a password, so never echoed); blank: None."""
    if value is None or not str(value).strip():
        return None
    url = str(value).strip()
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*://\S*", url):
        raise ConfigError("coordination_url", "***", "not a URL like redis://HOST:PORT")
    return url


def ha_group(value: str | None) -> str:
    name = str(value or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
        raise ConfigError("ha_group", value, "1..64 letters, digits, '_.:-'")
    return name


def writable_file(name: str, path: str | None) -> str | None:
    """A file we may create or append to, checked now, not at the first event."""
    if not path:
        return None
    target = path if os.path.exists(path) else (os.path.dirname(os.path.abspath(path)))
    if os.path.isdir(path) or not os.access(target, os.W_OK):
        raise ConfigError(name, path, "not a writable file")
    return path


def syslog_address(name: str, value: str | None) -> str | None:
    """``HOST:PORT`` of a syslog server (UDP) or the path of a Unix socket."""
    if not value:
        return None
    if value.startswith("/"):
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit() \
            or not 0 < int(port) < 65536:
        raise ConfigError(name, value, "not HOST:PORT (UDP) or the path of a Unix socket")
    return value


def udp_collector(name: str, value: str | None) -> tuple[str, int] | None:
    """``ADDRESS:PORT`` (``[ADDRESS]:PORT`` for IPv6) of a UDP collector."""
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if not sep or address is None or not port.isascii() or not port.isdigit() \
            or not 0 < int(port) < 65536:
        raise ConfigError(name, value, "not ADDRESS:PORT of a UDP collector "
                          "(an IP address, [ADDRESS]:PORT for IPv6)")
    return str(address), int(port)
