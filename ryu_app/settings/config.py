"""The gateway's ``[nat]`` options: registered on Ryu's CONF, validated once.

``ryu-manager --config-file FILE`` parses ``ryu.cfg.CONF``; options registered
on ``oslo_config.cfg.CONF`` instead would silently keep their defaults.  The app
calls :func:`load` once at start: every option is checked and the result is a
frozen :class:`NatConfig`, so no handler ever sees an unchecked value.  A bad
value raises :class:`ConfigError`, whose message is one line naming the option.
"""
from __future__ import annotations

import configparser
import copy
import difflib
import ipaddress
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

from oslo_config import cfg

from ryu_app.settings.forwards import conflict as forward_conflict, parse_spec

GROUP = "nat"
DEFAULT_GATEWAY_MAC = "02:53:4e:41:54:01"   # locally administered; "SNAT" in hex

# RFC floors (seconds): lower values are accepted for labs and tests, with a warning.
RFC_FLOORS = {
    "tcp_established_timeout": 7440,   # RFC 5382 REQ-5
    "tcp_transitory_timeout": 240,     # RFC 5382 REQ-5
    "udp_timeout": 120,                # RFC 4787 REQ-5
    "icmp_timeout": 60,                # RFC 5508 REQ-2
}

OPTS = [
    cfg.StrOpt("external_ip", help="NAT address with its prefix, e.g. 198.51.100.1/24"),
    cfg.StrOpt("external_port",
               help="uplink to the outside: OpenFlow port number or interface name"),
    cfg.StrOpt("external_gateway_ip",
               help="next hop for remotes off the external prefix (optional)"),
    cfg.StrOpt("external_gateway_mac",
               help="pin the MAC of external_gateway_ip: never learned, never asked by ARP "
                    "(optional; by default learned from replies to the gateway's own ARP "
                    "requests)"),
    cfg.StrOpt("internal_subnet", help="inside network, e.g. 10.0.0.0/24"),
    cfg.StrOpt("internal_gateway_ip",
               help="gateway address inside (default: first host of internal_subnet)"),
    cfg.StrOpt("gateway_mac", default=DEFAULT_GATEWAY_MAC,
               help="MAC the gateway answers ARP with on both sides"),
    cfg.StrOpt("port_range", default="1024-65535",
               help="external ports handed out for mappings, LOW-HIGH"),
    cfg.IntOpt("tcp_established_timeout", default=7440,
               help="idle timeout (s) of established TCP; RFC 5382 floor 7440"),
    cfg.IntOpt("tcp_transitory_timeout", default=240,
               help="idle timeout (s) of opening/closing TCP; RFC 5382 floor 240"),
    cfg.BoolOpt("tcp_fin_upcall", default=False,
                help="send each TCP connection's first FIN through Open vSwitch's slow "
                     "path, so that its fin_timeout applies at once instead of at the next "
                     "revalidation (about half a second later); only for datapaths whose "
                     "flows do not report TCP flags (hardware offload): it costs an upcall "
                     "per FIN, and the FIN overtakes the data queued with it"),
    cfg.IntOpt("udp_timeout", default=300, help="UDP idle timeout (s); RFC 4787 floor 120"),
    cfg.IntOpt("icmp_timeout", default=60, help="ICMP query idle timeout (s); RFC 5508 floor 60"),
    cfg.IntOpt("stats_interval", default=10, help="seconds between flow-stats polls"),
    cfg.IntOpt("max_connections", default=100000, help="bound on tracked sessions"),
    cfg.IntOpt("max_connections_per_host", default=4096,
               help="sessions one inside host may hold (RFC 6888 REQ-4)"),
    cfg.IntOpt("max_addresses_per_mac", default=8,
               help="inside addresses one (switch port, MAC) may hold (IP source guard); "
                    "0: no limit"),
    cfg.IntOpt("binding_idle_timeout", default=300,
               help="seconds an inside address stays bound to its port and MAC once it "
                    "holds no session and sends nothing to the controller"),
    cfg.ListOpt("static_bindings", default=[],
                help="inside addresses bound for good, ADDRESS=MAC@PORT (OpenFlow port "
                     "number), e.g. 10.0.0.11=02:00:00:00:00:11@1: no other port or MAC "
                     "may ever use them"),
    cfg.StrOpt("dpid", help="datapath id to serve (decimal or 0x-hex); default every switch"),
    cfg.StrOpt("filtering", default="address-and-port-dependent",
               help="inbound filtering for TCP and UDP (RFC 4787 REQ-8): "
                    "endpoint-independent, address-dependent or address-and-port-dependent"),
    cfg.StrOpt("tcp_filtering",
               help="inbound filtering for TCP only (RFC 5382 REQ-3, RFC 7857 s5); "
                    "default: the value of filtering"),
    cfg.StrOpt("udp_filtering",
               help="inbound filtering for UDP only (RFC 4787 REQ-8, RFC 7857 s6); "
                    "default: the value of filtering"),
    cfg.IntOpt("port_quarantine", default=120,
               help="seconds a freed external port is not reused (RFC 6888 REQ-8); 0 = off"),
    cfg.BoolOpt("port_parity", default=False,
                help="keep the parity of the inside port in the external port (RFC 4787 REQ-4)"),
    cfg.ListOpt("forwards", default=[],
                help="static port forwards, PROTOCOL:PORT=INSIDE_IP:PORT, comma-separated"),
    cfg.BoolOpt("log_mappings", default=True,
                help="log each mapping creation and deletion (RFC 6888 section 4)"),
    cfg.StrOpt("mapping_log_file", default=None,
               help="write the mapping log to this file, in batches each second, instead "
                    "of the ryu_snat.mappings logger (much cheaper per new session)"),
    cfg.IntOpt("packet_in_port_rate", default=3000,
               help="packets a second each switch port may send to the controller (an "
                    "OpenFlow meter per port, in the switch) while the controller keeps "
                    "up; when it falls behind, a port sending far more than the others is "
                    "cut to the busiest other one's rate until it sends less; 0 = no meters"),
    cfg.IntOpt("packet_in_port_burst", default=0,
               help="packets a port may send to the controller at once above its rate "
                    "(the meter's burst) while at packet_in_port_rate; 0 = as many as "
                    "packet_in_port_rate"),
    cfg.IntOpt("packet_in_host_rate", default=0,
               help="a hard limit on the packet-ins a second the controller handles from "
                    "one source (IPv4 address or MAC) on one port; 0 = none: sources share "
                    "the controller fairly only when it is overloaded"),
    cfg.IntOpt("packet_in_host_burst", default=0,
               help="packet-ins one source may send at once above packet_in_host_rate; "
                    "0 = as many as packet_in_host_rate"),
    cfg.StrOpt("rest_token", secret=True,
               help="bearer token that POST and DELETE under /nat need "
                    "(Authorization: Bearer TOKEN), at least 16 characters; unset: "
                    "no token, so keep the REST API on 127.0.0.1 (wsapi_host)"),
    cfg.IntOpt("mapping_log_max_bytes", default=100 * 1024 * 1024,
               help="rotate mapping_log_file before it grows past this many bytes "
                    "(to FILE.1 ... FILE.N); 0 = never"),
    cfg.IntOpt("mapping_log_backups", default=5,
               help="rotated mapping log files kept (FILE.1 is the newest)"),
    cfg.StrOpt("coordination_url", secret=True,
               help="tooz URL of the coordination engine that elects the MASTER of a "
                    "controller pair, e.g. redis://127.0.0.1:6379 (unset: this controller "
                    "is alone and acts on every switch it serves)"),
    cfg.StrOpt("ha_group", default="ryu-snat",
               help="name the two controllers of a pair share in the coordination engine"),
    cfg.IntOpt("ha_lease", default=2,
               help="seconds the MASTER's lock outlives its last renewal: a dead "
                    "MASTER is replaced after at most this long"),
    cfg.FloatOpt("ha_interval", default=0.25,
                 help="seconds between renewals of the lock (and the standby's tries "
                      "for it); at most a quarter of ha_lease"),
    cfg.StrOpt("forwards_file", default=None,
               help="keep the forwards added over REST in this JSON file, so that a "
                    "restarted controller has them again (unset: they live in memory)"),
]

REQUIRED = ("external_ip", "external_port", "internal_subnet")   # no default can do
# One process, one value: these live in [nat] only, never in a bridge's profile.
PROCESS_WIDE = ("rest_token", "log_mappings", "mapping_log_file", "mapping_log_max_bytes",
                "mapping_log_backups", "stats_interval", "coordination_url", "ha_group",
                "ha_lease", "ha_interval")
PROFILE_PREFIX = "nat:"      # [nat:NAME]: one NAT bridge's profile
FILTERING_MODES = ("endpoint-independent", "address-dependent", "address-and-port-dependent")
_TCP, _UDP = 6, 17   # IP protocol numbers


class ConfigError(ValueError):
    """An invalid ``[nat]`` option; ``str()`` is one line naming it."""

    def __init__(self, option: str, value: object, problem: str,
                 section: str = GROUP) -> None:
        super().__init__(f"invalid [{section}] {option}={value!r}: {problem}")
        self.option, self.value, self.problem = option, value, problem

    def in_section(self, section: str) -> "ConfigError":
        """The same error, naming the bridge profile it was found in."""
        return ConfigError(self.option, self.value, self.problem, section)


@dataclass(frozen=True)
class NatConfig:
    """Checked gateway configuration; built only by :func:`load`."""

    external_ip: ipaddress.IPv4Interface
    external_port: int | str
    external_gateway_ip: ipaddress.IPv4Address | None
    internal_subnet: ipaddress.IPv4Network
    internal_gateway_ip: ipaddress.IPv4Address
    gateway_mac: str
    port_range: tuple[int, int]
    tcp_established_timeout: int
    tcp_transitory_timeout: int
    udp_timeout: int
    icmp_timeout: int
    stats_interval: int
    max_connections: int
    max_connections_per_host: int
    dpid: int | None
    filtering: str = "address-and-port-dependent"
    # Per protocol (RFC 7857 s5-6); None (only when built directly) means ``filtering``.
    tcp_filtering: str | None = None
    udp_filtering: str | None = None
    port_quarantine: int = 120
    log_mappings: bool = True
    mapping_log_file: str | None = None
    mapping_log_max_bytes: int = 0
    mapping_log_backups: int = 5
    forwards_file: str | None = None
    forwards: tuple = ()
    port_parity: bool = False
    tcp_fin_upcall: bool = False
    packet_in_port_rate: int = 0       # 0: no meters (the option's default is on)
    packet_in_port_burst: int = 0
    rest_token: str | None = None
    packet_in_host_rate: int = 0       # 0: no hard limit per source
    packet_in_host_burst: int = 0
    name: str = GROUP                  # the profile: "nat", or NAME of [nat:NAME]
    coordination_url: str | None = None   # None: no controller pair (no election)
    ha_group: str = "ryu-snat"
    ha_lease: int = 2
    ha_interval: float = 0.25
    max_addresses_per_mac: int = 0     # 0: no limit (the option's default is 8)
    binding_idle_timeout: int = 300
    static_bindings: tuple = ()        # ((address, mac, port), ...)
    external_gateway_mac: str | None = None

    def __post_init__(self) -> None:
        for name in ("tcp_filtering", "udp_filtering"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.filtering)
        # First and last address of each side's prefix, as ints: every
        # first packet is checked against them (ryu_app.nat.admission).
        for name, net in (("inside_range", self.internal_subnet),
                          ("external_range", self.external_ip.network)):
            object.__setattr__(self, name, (int(net.network_address),
                                            int(net.broadcast_address)))

    # Set by __post_init__ from the two prefixes (not fields: never given).
    inside_range: ClassVar[tuple[int, int]]
    external_range: ClassVar[tuple[int, int]]

    def filtering_for(self, protocol: int) -> str:
        """The filtering mode of an IP protocol number: TCP's, UDP's, else ``filtering``."""
        return {_TCP: self.tcp_filtering, _UDP: self.udp_filtering}.get(protocol, self.filtering)

    @property
    def external_address(self) -> ipaddress.IPv4Address:
        return self.external_ip.ip


def register(conf: cfg.ConfigOpts | None = None) -> cfg.ConfigOpts:
    """Register the ``[nat]`` options on ``conf`` (default: ``ryu.cfg.CONF``)."""
    if conf is None:
        from ryu import cfg as ryu_cfg   # the object ryu-manager parses
        conf = ryu_cfg.CONF
    try:
        conf.register_opts(OPTS, group=GROUP)
    except cfg.DuplicateOptError:
        pass  # registered already with identical definitions is fine
    return conf


def _required(name: str, value: str | None) -> str:
    if value is None or not str(value).strip():
        raise ConfigError(name, value, "required")
    return str(value).strip()


def _ipv4_address(name: str, value: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise ConfigError(name, value, "not an IPv4 address") from None


def _host_in(name: str, addr: ipaddress.IPv4Address, net: ipaddress.IPv4Network) -> None:
    if addr not in net:
        raise ConfigError(name, str(addr), f"not inside {net}")
    if net.prefixlen < 31 and addr in (net.network_address, net.broadcast_address):
        raise ConfigError(name, str(addr), f"is the network or broadcast address of {net}")


def _positive(name: str, value: int, upper: int | None = None) -> int:
    if value is None or value < 1 or (upper is not None and value > upper):
        bound = f" and at most {upper}" if upper else ""
        raise ConfigError(name, value, f"must be at least 1{bound}")
    return value


def _external_ip(value: str | None) -> ipaddress.IPv4Interface:
    raw = _required("external_ip", value)
    if "/" not in raw:
        raise ConfigError("external_ip", raw, "needs a prefix length, e.g. 198.51.100.1/24")
    try:
        iface = ipaddress.IPv4Interface(raw)
    except ValueError:
        raise ConfigError("external_ip", raw, "not an IPv4 interface address") from None
    _host_in("external_ip", iface.ip, iface.network)
    return iface


def _external_port(value: str | None) -> int | str:
    raw = _required("external_port", value)
    if raw.isdigit():
        # OFPP_MAX = 0xffffff00; reserved ports above it are not uplinks.
        return _positive("external_port", int(raw), 0xFFFFFF00)
    if len(raw) > 15 or not re.fullmatch(r"[A-Za-z0-9_.:@-]+", raw):
        raise ConfigError("external_port", raw, "not a port number or interface name")
    return raw


def _internal_subnet(value: str | None) -> ipaddress.IPv4Network:
    raw = _required("internal_subnet", value)
    try:
        net = ipaddress.IPv4Network(raw, strict=True)
    except ValueError as exc:
        raise ConfigError("internal_subnet", raw, f"not an IPv4 network ({exc})") from None
    if net.prefixlen > 30:
        raise ConfigError("internal_subnet", raw, "prefix longer than /30 leaves no hosts")
    return net


def _mac(value: str | None, option: str = "gateway_mac") -> str:
    raw = _required(option, value).lower()
    if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", raw):
        raise ConfigError(option, value, "not a MAC address like 02:00:00:00:00:01")
    if int(raw[:2], 16) & 1:
        raise ConfigError(option, value, "is a multicast MAC")
    if raw == "00:00:00:00:00:00":
        raise ConfigError(option, value, "is all zeros")
    return raw


def _static_bindings(specs: list[str] | None,
                     inside: ipaddress.IPv4Network) -> tuple[tuple[str, str, int], ...]:
    """ADDRESS=MAC@PORT entries: an inside host address each, once."""
    out: dict[str, tuple[str, str, int]] = {}
    for spec in specs or []:
        match = re.fullmatch(r"\s*([0-9.]+)\s*=\s*([0-9A-Fa-f:]+)\s*@\s*(\d+)\s*", spec)
        if match is None:
            raise ConfigError("static_bindings", spec, "not ADDRESS=MAC@PORT")
        ip = _ipv4_address("static_bindings", match.group(1))
        _host_in("static_bindings", ip, inside)
        if str(ip) in out:
            raise ConfigError("static_bindings", spec, f"{ip} is bound twice")
        port = int(match.group(3))
        if not 1 <= port < 0xFFFFFF00:
            raise ConfigError("static_bindings", spec, "port is not a switch port number")
        out[str(ip)] = (str(ip), _mac(match.group(2), "static_bindings"), port)
    return tuple(out.values())


def _port_range(value: str | None) -> tuple[int, int]:
    raw = _required("port_range", value)
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", raw)
    if not match:
        raise ConfigError("port_range", raw, "expected LOW-HIGH, e.g. 1024-65535")
    low, high = int(match.group(1)), int(match.group(2))
    if not 1 <= low <= high <= 65535:
        raise ConfigError("port_range", raw, "needs 1 <= LOW <= HIGH <= 65535")
    return low, high


def _dpid(value: str | None) -> int | None:
    if value is None or not str(value).strip():
        return None
    raw = str(value).strip().lower()
    try:
        dpid = int(raw, 16) if raw.startswith("0x") else int(raw, 10)
    except ValueError:
        raise ConfigError("dpid", value, "not a decimal or 0x-hex datapath id") from None
    if not 0 <= dpid < 2 ** 64:
        raise ConfigError("dpid", value, "outside 0..2^64-1")
    return dpid


def _filtering(name: str, value: str | None) -> str:
    mode = (value or "").strip().lower()
    if mode not in FILTERING_MODES:
        raise ConfigError(name, value, f"must be one of {', '.join(FILTERING_MODES)}")
    return mode


def _filtering_or(name: str, value: str | None, default: str) -> str:
    """A per-protocol filtering option; unset (or blank) falls back to ``default``."""
    if value is None or not str(value).strip():
        return default
    return _filtering(name, value)


class _Checked:
    """Reads ``[nat]`` options, turning oslo's own type errors into ConfigError.

    oslo.config converts values lazily, on first access: a non-integer timer
    or a non-boolean flag would otherwise surface as a traceback out of the
    app's constructor instead of one line naming the option.
    """

    def __init__(self, group: cfg.ConfigOpts.GroupAttr,
                 fallback: "cfg.ConfigOpts.GroupAttr | None" = None) -> None:
        self._group = group
        self._fallback = fallback     # a profile's unset options come from [nat]

    def __getattr__(self, name: str):
        try:
            if name in PROCESS_WIDE and self._fallback is not None:
                return getattr(self._fallback, name)
            value = getattr(self._group, name)
            if value is None and self._fallback is not None:
                value = getattr(self._fallback, name)
            return value
        except cfg.ConfigFileValueError as exc:
            kind = {cfg.IntOpt: "an integer", cfg.BoolOpt: "true or false",
                    cfg.FloatOpt: "a number"}
            opt = next((o for o in OPTS if o.dest == name), None)
            problem = kind.get(type(opt), "not a valid value")
            raw = _raw_value(exc)
            raise ConfigError(name, raw, f"must be {problem}" if opt else str(exc)) from None


def _config_paths(conf: cfg.ConfigOpts) -> list[str]:
    try:   # both exist only once the command line has been parsed
        paths = list(conf.config_file or [])
        if conf.config_dir:
            paths += sorted(str(p) for p in Path(conf.config_dir).glob("*.conf"))
    except cfg.NoSuchOptError:
        return []
    return paths


def _reject_unknown(conf: cfg.ConfigOpts, section: str = GROUP) -> None:
    """A misspelt option (``udp_timout``) would silently keep its default:
    refuse any key of the ``section`` of the config files that is not an
    option (in a bridge's profile, nor one that only ``[nat]`` may set)."""
    known = {opt.dest for opt in OPTS}
    if section != GROUP:
        known -= set(PROCESS_WIDE)
    for path in _config_paths(conf):
        parser = configparser.RawConfigParser(strict=False, interpolation=None,
                                              default_section="\0none")
        try:
            parser.read(path)
        except configparser.Error:
            continue   # oslo has parsed (or refused) the file already
        if not parser.has_section(section):
            continue
        for key, value in parser.items(section):
            name = key.replace("-", "_")
            if name in PROCESS_WIDE and section != GROUP:
                raise ConfigError(key, value, f"one value for the whole controller: set it "
                                  f"in [{GROUP}] ({path})", section)
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ConfigError(key, value, f"unknown option in {path}{hint}", section)


def _raw_value(exc: Exception) -> str:
    """The offending text from oslo's message ("... is not valid: ... 'five'")."""
    found = re.findall(r"'([^']*)'", str(exc))
    return found[-1] if found else "?"


def _bounded(name: str, value: int | None, low: int, high: int, unit: str) -> int:
    if value is None or not low <= value <= high:
        raise ConfigError(name, value, f"must be {low}..{high} {unit}")
    return value


def _token(value: str | None) -> str | None:
    """A bearer token: printable ASCII without spaces, long enough to guess slowly."""
    if value is None or value == "":
        return None
    if not re.fullmatch(r"[\x21-\x7e]{16,256}", value):
        # Never echo a secret into the log: name the option only.
        raise ConfigError("rest_token", "***", "must be 16..256 printable ASCII characters, "
                          "no spaces")
    return value


def _ha(group: _Checked) -> dict:
    """The controller pair's options: a tooz URL, a group name, lease and interval."""
    url = group.coordination_url
    if url is not None and not str(url).strip():
        url = None
    if url is not None:
        url = str(url).strip()
        if not re.fullmatch(r"[a-z][a-z0-9+.-]*://\S*", url):
            raise ConfigError("coordination_url", "***", "not a URL like redis://HOST:PORT")
    name = str(group.ha_group or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
        raise ConfigError("ha_group", group.ha_group, "1..64 letters, digits, '_.:-'")
    lease = _bounded("ha_lease", group.ha_lease, 1, 60, "seconds")
    interval = group.ha_interval
    if interval is None or not 0.05 <= interval <= lease / 4:
        raise ConfigError("ha_interval", interval, f"must be 0.05..{lease / 4:g} seconds "
                          "(a quarter of ha_lease)")
    return {"coordination_url": url, "ha_group": name, "ha_lease": lease,
            "ha_interval": float(interval)}


def _writable_file(name: str, path: str | None) -> str | None:
    """A file we may create or append to, checked now, not at the first event."""
    if not path:
        return None
    target = path if os.path.exists(path) else (os.path.dirname(os.path.abspath(path)))
    if os.path.isdir(path) or not os.access(target, os.W_OK):
        raise ConfigError(name, path, "not a writable file")
    return path


def load(conf: cfg.ConfigOpts | None = None,
         warn: Callable[[str], None] | None = None) -> NatConfig:
    """Validate the ``[nat]`` group of ``conf`` into a :class:`NatConfig`.

    Raises :class:`ConfigError` on the first bad option.  Timers below the RFC
    floors are accepted and reported through ``warn`` (default: log warning).
    """
    conf = register(conf)
    _reject_unknown(conf)
    return _build(_Checked(conf[GROUP]), GROUP, warn or logging.getLogger(__name__).warning)


def profile_names(conf: cfg.ConfigOpts) -> list[str]:
    """NAME of every ``[nat:NAME]`` section of the config files, in file order."""
    try:
        sections = conf.list_all_sections()
    except (AttributeError, cfg.NoSuchOptError):   # not parsed yet
        return []
    return [s[len(PROFILE_PREFIX):] for s in sections if s.startswith(PROFILE_PREFIX)]


def load_profiles(conf: cfg.ConfigOpts | None = None,
                  warn: Callable[[str], None] | None = None) -> list[NatConfig]:
    """One :class:`NatConfig` per NAT bridge.

    Without ``[nat:NAME]`` sections that is ``[nat]`` alone (one bridge, or
    every switch when ``dpid`` is unset).  With them, each section is one
    bridge's profile: its ``dpid`` is required, and an option the section
    does not set takes its value from ``[nat]``; the options of
    :data:`PROCESS_WIDE` are only read from ``[nat]``.
    """
    conf = register(conf)
    warn = warn or logging.getLogger(__name__).warning
    names = profile_names(conf)
    if not names:
        return [load(conf, warn)]
    _reject_unknown(conf)
    profiles: list[NatConfig] = []
    for name in names:
        section = PROFILE_PREFIX + name
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", name):
            raise ConfigError("section", section, "a profile name is 1..32 letters, digits, "
                              "'_', '.' or '-'", section)
        _register_profile(conf, section)
        try:
            _reject_unknown(conf, section)
            profile = _build(_Checked(conf[section], conf[GROUP]), name, warn)
            if profile.dpid is None:
                raise ConfigError("dpid", None, "required in a bridge's profile")
        except ConfigError as err:
            raise err.in_section(section) from None
        profiles.append(profile)
    _distinct(profiles)
    return profiles


def _register_profile(conf: cfg.ConfigOpts, section: str) -> None:
    """The bridge options on ``section``, all defaulting to None: unset means [nat]'s."""
    opts = []
    for opt in OPTS:
        if opt.dest not in PROCESS_WIDE:
            mine = copy.copy(opt)
            mine.default = None
            opts.append(mine)
    try:
        conf.register_opts(opts, group=section)
    except cfg.DuplicateOptError:
        pass


def _distinct(profiles: list[NatConfig]) -> None:
    """Two profiles may not claim one switch, one NAT address, one MAC (two
    bridges on one outside segment would make its switches' MAC learning
    flap between them) or one forwards file."""
    for field_name in ("dpid", "external_ip", "gateway_mac", "forwards_file"):
        seen: dict = {}
        for p in profiles:
            value = getattr(p, field_name)
            key = value.ip if field_name == "external_ip" else value
            if value is None:
                continue
            if key in seen:
                raise ConfigError(field_name, str(value), f"already used by [{PROFILE_PREFIX}"
                                  f"{seen[key]}]", PROFILE_PREFIX + p.name)
            seen[key] = p.name


def _build(group: _Checked, profile: str, warn: Callable[[str], None]) -> NatConfig:
    """Check one profile's options (``[nat]``'s, or a bridge's over them)."""
    where = GROUP if profile == GROUP else PROFILE_PREFIX + profile

    external_ip = _external_ip(group.external_ip)
    internal_subnet = _internal_subnet(group.internal_subnet)
    if internal_subnet.overlaps(external_ip.network):
        raise ConfigError("internal_subnet", str(internal_subnet),
                          f"overlaps the external prefix {external_ip.network}")

    ext_gw = None
    if group.external_gateway_ip:
        ext_gw = _ipv4_address("external_gateway_ip", group.external_gateway_ip)
        _host_in("external_gateway_ip", ext_gw, external_ip.network)
        if ext_gw == external_ip.ip:
            raise ConfigError("external_gateway_ip", str(ext_gw), "is the NAT address itself")

    if group.internal_gateway_ip:
        int_gw = _ipv4_address("internal_gateway_ip", group.internal_gateway_ip)
        _host_in("internal_gateway_ip", int_gw, internal_subnet)
    else:
        int_gw = next(internal_subnet.hosts())

    timers = {}
    for name, floor in RFC_FLOORS.items():
        seconds = _positive(name, getattr(group, name), 65535)  # OpenFlow idle_timeout is 16 bits
        if seconds < floor:
            warn(f"[{where}] {name}={seconds} is below the RFC floor of {floor} s")
        timers[name] = seconds
    if timers["tcp_transitory_timeout"] + 1 >= timers["tcp_established_timeout"]:
        # fin_timeout lowers a flow to the transitory timeout, opening flows
        # carry it plus one: both must differ from the established timeout.
        raise ConfigError("tcp_transitory_timeout", timers["tcp_transitory_timeout"],
                          "must be at least 2 s below tcp_established_timeout "
                          f"({timers['tcp_established_timeout']})")

    max_conn = _positive("max_connections", group.max_connections)
    per_host = _positive("max_connections_per_host", group.max_connections_per_host)
    if per_host > max_conn:
        warn(f"[{where}] max_connections_per_host={per_host} exceeds "
             f"max_connections={max_conn}; using {max_conn}")
        per_host = max_conn

    filtering = _filtering("filtering", group.filtering)
    tcp_filtering = _filtering_or("tcp_filtering", group.tcp_filtering, filtering)
    udp_filtering = _filtering_or("udp_filtering", group.udp_filtering, filtering)
    if group.port_quarantine is None or not 0 <= group.port_quarantine <= 86400:
        raise ConfigError("port_quarantine", group.port_quarantine, "must be 0..86400 seconds")

    meter = {}
    for scope in ("port", "host"):
        for name in (f"packet_in_{scope}_rate", f"packet_in_{scope}_burst"):
            meter[name] = _bounded(name, getattr(group, name), 0, 10_000_000,
                                   "packets a second")
        burst = f"packet_in_{scope}_burst"
        meter[burst] = meter[burst] or meter[f"packet_in_{scope}_rate"]

    forwards: dict = {}
    for spec in group.forwards or []:
        try:
            fwd = parse_spec(spec, internal_subnet, int_gw)
        except ValueError as exc:
            raise ConfigError("forwards", spec, str(exc)) from None
        clash = forward_conflict(fwd, forwards.values())
        if clash:
            raise ConfigError("forwards", spec, clash)
        forwards[fwd.key] = fwd

    ha = _ha(group)
    return NatConfig(
        **ha,
        max_addresses_per_mac=_bounded("max_addresses_per_mac", group.max_addresses_per_mac,
                                       0, 65536, "addresses"),
        binding_idle_timeout=_bounded("binding_idle_timeout", group.binding_idle_timeout,
                                      1, 86400, "seconds"),
        static_bindings=_static_bindings(group.static_bindings, internal_subnet),
        external_gateway_mac=(_mac(group.external_gateway_mac, "external_gateway_mac")
                              if group.external_gateway_mac else None),
        name=profile,
        port_parity=bool(group.port_parity),
        tcp_fin_upcall=bool(group.tcp_fin_upcall),
        forwards=tuple(forwards.values()),
        filtering=filtering,
        tcp_filtering=tcp_filtering,
        udp_filtering=udp_filtering,
        port_quarantine=group.port_quarantine,
        log_mappings=bool(group.log_mappings),
        mapping_log_file=_writable_file("mapping_log_file", group.mapping_log_file),
        mapping_log_max_bytes=_bounded("mapping_log_max_bytes", group.mapping_log_max_bytes,
                                       0, 2 ** 40, "bytes"),
        mapping_log_backups=_bounded("mapping_log_backups", group.mapping_log_backups,
                                     1, 1000, "files"),
        forwards_file=_writable_file("forwards_file", group.forwards_file),
        rest_token=_token(group.rest_token),
        external_ip=external_ip,
        external_port=_external_port(group.external_port),
        external_gateway_ip=ext_gw,
        internal_subnet=internal_subnet,
        internal_gateway_ip=int_gw,
        gateway_mac=_mac(group.gateway_mac),
        port_range=_port_range(group.port_range),
        stats_interval=_positive("stats_interval", group.stats_interval, 86400),
        max_connections=max_conn,
        max_connections_per_host=per_host,
        dpid=_dpid(group.dpid),
        **meter,
        **timers,
    )
