"""Build the checked configuration from parsed options, once, at start.

The app calls :func:`load_controller` and :func:`load_profiles` once: every
option is checked and the results are frozen (:mod:`ryu_app.settings.model`),
so no handler ever sees an unchecked value.  A bad value raises
:class:`ConfigError`, whose message is one line naming the option.  Timers
below the RFC floors are accepted and reported through ``warn``.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Callable

from oslo_config import cfg

from conntrack.deterministic import DeterministicMap

from ryu_app.settings import files, options, validate
from ryu_app.settings.errors import GROUP, PROFILE_PREFIX, ConfigError
from ryu_app.settings.forwards import Forward, conflict as forward_conflict, parse_spec
from ryu_app.settings.model import (AdmissionConfig, PortControlConfig, BridgeConfig, ControllerConfig, HaConfig,
                                    IpfixConfig, MappingLogConfig, TimerConfig)

Warn = Callable[[str], None]
_BRIDGE_NAMES = {opt.dest for opt in options.BRIDGE_OPTS}
_ALL_NAMES = {opt.dest for opt in options.OPTS}


class _Reader:
    """One section's option values; a profile's unset ones come from ``[nat]``.

    oslo.config converts values lazily, on first access: a non-integer timer
    or one out of its bounds would otherwise surface as a traceback out of
    the app's constructor instead of one line naming the option.
    """

    def __init__(self, conf: cfg.ConfigOpts, section: str = GROUP) -> None:
        self._conf = conf
        self._sections = [section] if section == GROUP else [section, GROUP]

    def __call__(self, name: str) -> Any:
        for section in self._sections:
            try:
                value = getattr(self._conf[section], name)
            except cfg.ConfigFileValueError as exc:
                raw = files.raw_value(self._conf, section, name)
                if raw is None:
                    quoted = re.findall(r"'([^']*)'", str(exc))
                    raw = quoted[-1] if quoted else "?"
                raise ConfigError(name, raw, options.problem(name, raw)) from None
            except cfg.ConfigSourceValueError as exc:
                # An OS_NAT__<OPTION> environment variable (oslo.config reads
                # them over the files): the same one line, naming the variable.
                variable, raw = files.environment_value(str(exc))
                raise ConfigError(name, raw, f"{options.problem(name, raw)} "
                                  f"(set by the environment variable {variable})") from None
            if value is not None:
                return value
        return None

    def number(self, name: str) -> Any:
        """A numeric option oslo has bounded already; blank in the file is refused."""
        value = self(name)
        if value is None:
            raise ConfigError(name, None, f"must be {options.bounds(name)}")
        return value


def _warn(warn: Warn | None) -> Warn:
    return warn or logging.getLogger(__name__).warning


def load(conf: cfg.ConfigOpts | None = None, warn: Warn | None = None) -> BridgeConfig:
    """The bridge of ``[nat]`` alone (one bridge, or every switch when
    ``dpid`` is unset).  Raises :class:`ConfigError` on the first bad option."""
    conf = options.register(conf)
    files.reject_unknown(conf, _ALL_NAMES, options.PROCESS_WIDE)
    return _bridge(_Reader(conf), GROUP, _warn(warn))


def load_controller(conf: cfg.ConfigOpts | None = None) -> ControllerConfig:
    """The options one controller process has once, from ``[nat]``."""
    conf = options.register(conf)
    files.reject_unknown(conf, _ALL_NAMES, options.PROCESS_WIDE)
    read = _Reader(conf)
    lease = read.number("ha_lease")
    interval = read.number("ha_interval")
    if interval > lease / 4:
        raise ConfigError("ha_interval", interval, f"must be 0.05..{lease / 4:g} seconds "
                          "(a quarter of ha_lease)")
    ha = HaConfig(coordination_url=validate.coordination_url(read("coordination_url")),
                  group=validate.ha_group(read("ha_group")), lease=lease,
                  interval=float(interval))
    mapping_log = MappingLogConfig(
        enabled=bool(read("log_mappings")),
        file=validate.writable_file("mapping_log_file", read("mapping_log_file")),
        max_bytes=read.number("mapping_log_max_bytes"),
        backups=read.number("mapping_log_backups"),
        syslog=validate.syslog_address("mapping_log_syslog", read("mapping_log_syslog")))
    ipfix = IpfixConfig(
        collector=validate.udp_collector("ipfix_collector", read("ipfix_collector")),
        log_destination=bool(read("ipfix_log_destination")),
        template_interval=read.number("ipfix_template_interval"))
    return ControllerConfig(rest_token=validate.token(read("rest_token")),
                            stats_interval=read.number("stats_interval"),
                            ha=ha, mapping_log=mapping_log, ipfix=ipfix)


def load_profiles(conf: cfg.ConfigOpts | None = None,
                  warn: Warn | None = None) -> list[BridgeConfig]:
    """One :class:`BridgeConfig` per NAT bridge.

    Without ``[nat:NAME]`` sections that is ``[nat]`` alone.  With them, each
    section is one bridge's profile: its ``dpid`` is required, and an option
    the section does not set takes its value from ``[nat]``; the options of
    :data:`~ryu_app.settings.options.PROCESS_WIDE` are refused there.
    """
    conf = options.register(conf)
    warn = _warn(warn)
    names = files.profile_names(conf)
    if not names:
        return [load(conf, warn)]
    files.reject_unknown(conf, _ALL_NAMES, options.PROCESS_WIDE)
    profiles: list[BridgeConfig] = []
    for name in names:
        section = PROFILE_PREFIX + name
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", name):
            raise ConfigError("section", section, "a profile name is 1..32 letters, digits, "
                              "'_', '.' or '-'", section)
        options.register_profile(conf, section)
        try:
            files.reject_unknown(conf, _BRIDGE_NAMES, options.PROCESS_WIDE, section)
            profile = _bridge(_Reader(conf, section), name, warn)
            if profile.dpid is None:
                raise ConfigError("dpid", None, "required in a bridge's profile")
        except ConfigError as err:
            raise err.in_section(section) from None
        profiles.append(profile)
    _distinct(profiles)
    return profiles


def _distinct(profiles: list[BridgeConfig]) -> None:
    """Two profiles may not claim one switch, one NAT address, one MAC (two
    bridges on one outside segment would make its switches' MAC learning
    flap between them) or one forwards file."""
    for field_name in ("dpid", "external_ip", "gateway_mac", "forwards_file"):
        seen: dict[object, str] = {}
        for p in profiles:
            value = getattr(p, field_name)
            if value is None:
                continue
            key = value.ip if field_name == "external_ip" else value
            if key in seen:
                raise ConfigError(field_name, str(value), f"already used by [{PROFILE_PREFIX}"
                                  f"{seen[key]}]", PROFILE_PREFIX + p.name)
            seen[key] = p.name
    owner: dict[object, str] = {}
    for p in profiles:
        for addr in p.outside_addresses:
            if addr in owner and owner[addr] != p.name:
                raise ConfigError("external_pool", str(addr), f"already used by [{PROFILE_PREFIX}"
                                  f"{owner[addr]}]", PROFILE_PREFIX + p.name)
            owner[addr] = p.name


def _bridge(read: _Reader, profile: str, warn: Warn) -> BridgeConfig:
    """Check one profile's options (``[nat]``'s, or a bridge's over them)."""
    where = GROUP if profile == GROUP else PROFILE_PREFIX + profile

    external_ip = validate.external_ip(read("external_ip"))
    internal_subnet = validate.internal_subnet(read("internal_subnet"))
    if internal_subnet.overlaps(external_ip.network):
        raise ConfigError("internal_subnet", str(internal_subnet),
                          f"overlaps the external prefix {external_ip.network}")

    ext_gw = None
    if read("external_gateway_ip"):
        ext_gw = validate.ipv4_address("external_gateway_ip", read("external_gateway_ip"))
        validate.host_in("external_gateway_ip", ext_gw, external_ip.network)
        if ext_gw == external_ip.ip:
            raise ConfigError("external_gateway_ip", str(ext_gw), "is the NAT address itself")

    pool = validate.external_pool(read("external_pool"), external_ip, ext_gw)

    if read("internal_gateway_ip"):
        int_gw = validate.ipv4_address("internal_gateway_ip", read("internal_gateway_ip"))
        validate.host_in("internal_gateway_ip", int_gw, internal_subnet)
    else:
        int_gw = next(internal_subnet.hosts())

    timers = _timers(read, where, warn)
    low, high = validate.port_range(read("port_range"))
    block_size = int(read("port_block_size") or 0)
    if block_size > high - low + 1:
        raise ConfigError("port_block_size", block_size,
                          f"larger than port_range ({high - low + 1} ports)")
    deterministic = bool(read("deterministic"))
    if deterministic:
        if not block_size:
            raise ConfigError("deterministic", "true", "needs port_block_size (the block each "
                              "inside address owns)")
        try:
            DeterministicMap(internal_subnet, pool or (external_ip.ip,), low, high, block_size)
        except ValueError as exc:
            raise ConfigError("deterministic", "true", str(exc)) from None
    admission = _admission(read, where, warn)

    filtering = validate.filtering("filtering", read("filtering"))
    forwards: dict[tuple[str, int], Forward] = {}
    for spec in read("forwards") or []:
        try:
            fwd = parse_spec(spec, internal_subnet, int_gw)
        except ValueError as exc:
            raise ConfigError("forwards", spec, str(exc)) from None
        clash = forward_conflict(fwd, forwards.values())
        if clash:
            raise ConfigError("forwards", spec, clash)
        forwards[fwd.key] = fwd

    ext_gw_mac = read("external_gateway_mac")
    return BridgeConfig(
        name=profile,
        dpid=validate.dpid(read("dpid")),
        external_ip=external_ip,
        external_port=validate.external_port(read("external_port")),
        external_gateway_ip=ext_gw,
        external_pool=pool,
        external_gateway_mac=(validate.mac(ext_gw_mac, "external_gateway_mac")
                              if ext_gw_mac else None),
        internal_subnet=internal_subnet,
        internal_gateway_ip=int_gw,
        gateway_mac=validate.mac(read("gateway_mac")),
        port_range=validate.port_range(read("port_range")),
        port_parity=bool(read("port_parity")),
        port_block_size=block_size,
        port_blocks_per_host=int(read("port_blocks_per_host")),
        deterministic=deterministic,
        filtering=filtering,
        tcp_filtering=validate.filtering_or("tcp_filtering", read("tcp_filtering"), filtering),
        udp_filtering=validate.filtering_or("udp_filtering", read("udp_filtering"), filtering),
        tcp_fin_upcall=bool(read("tcp_fin_upcall")),
        forwards=tuple(forwards.values()),
        forwards_file=validate.writable_file("forwards_file", read("forwards_file")),
        static_bindings=validate.static_bindings(read("static_bindings"), internal_subnet),
        timers=timers,
        admission=admission,
        port_control=_port_control(read, where),
    )


def _timers(read: _Reader, where: str, warn: Warn) -> TimerConfig:
    """The idle timeouts: RFC floors warn, the two TCP ones must differ."""
    seconds = {}
    for name, floor in options.RFC_FLOORS.items():
        seconds[name] = read.number(name)
        if seconds[name] < floor:
            warn(f"[{where}] {name}={seconds[name]} is below the RFC floor of {floor} s")
    established = seconds["tcp_established_timeout"]
    transitory = seconds["tcp_transitory_timeout"]
    if transitory + 1 >= established:
        # fin_timeout lowers a flow to the transitory timeout, opening flows
        # carry it plus one: both must differ from the established timeout.
        raise ConfigError("tcp_transitory_timeout", transitory,
                          f"must be at least 2 s below tcp_established_timeout ({established})")
    return TimerConfig(tcp_established=established, tcp_transitory=transitory,
                       udp=seconds["udp_timeout"], icmp=seconds["icmp_timeout"],
                       port_quarantine=read.number("port_quarantine"),
                       binding_idle=read.number("binding_idle_timeout"))


def _port_control(read: _Reader, where: str) -> PortControlConfig:
    """The PCP/NAT-PMP server's bounds."""
    low, high = read.number("port_control_min_lifetime"), read.number("port_control_max_lifetime")
    if low > high:
        raise ConfigError("port_control_min_lifetime", low,
                          f"longer than port_control_max_lifetime ({high})", where)
    rate = read.number("port_control_rate")
    return PortControlConfig(
        enabled=bool(read("port_control")), min_lifetime=low, max_lifetime=high,
        max_per_host=read.number("port_control_max_per_host"),
        third_party=bool(read("port_control_third_party")), rate=rate, burst=2 * rate)


def _admission(read: _Reader, where: str, warn: Warn) -> AdmissionConfig:
    """Session bounds (the per-host one clamped to the table's), rates."""
    max_conn = read.number("max_connections")
    per_host = read.number("max_connections_per_host")
    if per_host > max_conn:
        warn(f"[{where}] max_connections_per_host={per_host} exceeds "
             f"max_connections={max_conn}; using {max_conn}")
        per_host = max_conn
    return AdmissionConfig(
        max_connections=max_conn, max_connections_per_host=per_host,
        max_addresses_per_mac=read.number("max_addresses_per_mac"),
        port_rate=read.number("packet_in_port_rate"),
        port_burst=read.number("packet_in_port_burst"),
        host_rate=read.number("packet_in_host_rate"),
        host_burst=read.number("packet_in_host_burst"))
