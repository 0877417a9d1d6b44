"""The ``[nat]`` options as oslo.config declares them, with their bounds.

Types, ``min``/``max`` and ``choices`` are oslo.config's own, so
``oslo-config-generator`` (namespace ``ryu_snat``: :func:`list_opts`) prints
them into ``etc/ryu-snat.conf.sample`` and ``docs/configuration.md`` shows
them.  oslo.config converts lazily and words its refusals for developers
("Should be less than or equal to 65535", no option name): :func:`problem`
says the same thing as the one line an operator gets.

``ryu-manager --config-file FILE`` parses ``ryu.cfg.CONF``; options
registered on ``oslo_config.cfg.CONF`` instead would silently keep their
defaults, hence :func:`register`.
"""
from __future__ import annotations

import copy
from typing import Iterable

from oslo_config import cfg

from ryu_app.settings.errors import GROUP, PROFILE_PREFIX
from ryu_app.settings.model import DEFAULT_GATEWAY_MAC
from ryu_app.settings.validate import FILTERING_MODES

IDLE_TIMEOUT_MAX = 65535    # OpenFlow idle_timeout is 16 bits
DAY = 86400
RATE_MAX = 10_000_000       # packets a second

# RFC floors (seconds): lower values are accepted for labs and tests, with a warning.
RFC_FLOORS = {
    "tcp_established_timeout": 7440,   # RFC 5382 REQ-5
    "tcp_transitory_timeout": 240,     # RFC 5382 REQ-5
    "udp_timeout": 120,                # RFC 4787 REQ-5
    "icmp_timeout": 60,                # RFC 5508 REQ-2
}
REQUIRED = ("external_ip", "external_port", "internal_subnet")   # no default can do

_MODES = [("endpoint-independent", "any remote may reach a mapping"),
          ("address-dependent", "only remotes the inside host has sent to"),
          ("address-and-port-dependent", "only the remote address and port it has sent to")]
# Per protocol: blank or unset means the value of ``filtering``.
_PROTOCOL_MODES = [("", "the value of filtering"), *_MODES]
assert [mode for mode, _ in _MODES] == list(FILTERING_MODES)


def _seconds(name: str, default: int, help: str, low: int = 1,
             high: int = IDLE_TIMEOUT_MAX) -> cfg.IntOpt:
    return cfg.IntOpt(name, default=default, min=low, max=high, help=help)


def _rate(name: str, default: int, help: str) -> cfg.IntOpt:
    return cfg.IntOpt(name, default=default, min=0, max=RATE_MAX, help=help)


# One NAT bridge: [nat], or a [nat:NAME] profile over it (BridgeConfig).
BRIDGE_OPTS = [
    cfg.StrOpt("external_ip", help="NAT address with its prefix, e.g. 198.51.100.1/24"),
    cfg.ListOpt("external_pool", default=[],
                help="addresses inside hosts are translated to, each host to one of them "
                     "(paired pooling, RFC 4787 REQ-2): ADDRESS or FIRST-LAST items inside "
                     "external_ip's prefix, comma-separated; empty: external_ip alone"),
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
    # BridgeConfig.timers
    _seconds("tcp_established_timeout", 7440,
             "idle timeout (s) of established TCP; RFC 5382 floor 7440"),
    _seconds("tcp_transitory_timeout", 240,
             "idle timeout (s) of opening/closing TCP; RFC 5382 floor 240"),
    cfg.BoolOpt("tcp_fin_upcall", default=False,
                help="send each TCP connection's first FIN through Open vSwitch's slow "
                     "path, so that its fin_timeout applies at once instead of at the next "
                     "revalidation (about half a second later); only for datapaths whose "
                     "flows do not report TCP flags (hardware offload): it costs an upcall "
                     "per FIN, and the FIN overtakes the data queued with it"),
    _seconds("udp_timeout", 300, "UDP idle timeout (s); RFC 4787 floor 120"),
    _seconds("icmp_timeout", 60, "ICMP query idle timeout (s); RFC 5508 floor 60"),
    # BridgeConfig.admission
    cfg.IntOpt("max_connections", default=100000, min=1, help="bound on tracked sessions"),
    cfg.IntOpt("max_connections_per_host", default=4096, min=1,
               help="sessions one inside host may hold (RFC 6888 REQ-4)"),
    cfg.IntOpt("max_addresses_per_mac", default=8, min=0, max=65536,
               help="inside addresses one (switch port, MAC) may hold (IP source guard); "
                    "0: no limit"),
    _seconds("binding_idle_timeout", 300,
             "seconds an inside address stays bound to its port and MAC once it "
             "holds no session and sends nothing to the controller", high=DAY),
    cfg.ListOpt("static_bindings", default=[],
                help="inside addresses bound for good, ADDRESS=MAC@PORT (OpenFlow port "
                     "number), e.g. 10.0.0.11=02:00:00:00:00:11@1: no other port or MAC "
                     "may ever use them"),
    cfg.StrOpt("dpid", help="datapath id to serve (decimal or 0x-hex); default every switch"),
    cfg.StrOpt("filtering", default="address-and-port-dependent", choices=_MODES,
               ignore_case=True,
               help="inbound filtering for TCP and UDP (RFC 4787 REQ-8): "
                    "endpoint-independent, address-dependent or address-and-port-dependent"),
    cfg.StrOpt("tcp_filtering", choices=_PROTOCOL_MODES, ignore_case=True,
               help="inbound filtering for TCP only (RFC 5382 REQ-3, RFC 7857 s5); "
                    "default: the value of filtering"),
    cfg.StrOpt("udp_filtering", choices=_PROTOCOL_MODES, ignore_case=True,
               help="inbound filtering for UDP only (RFC 4787 REQ-8, RFC 7857 s6); "
                    "default: the value of filtering"),
    _seconds("port_quarantine", 120,
             "seconds a freed external port is not reused (RFC 6888 REQ-8); 0 = off",
             low=0, high=DAY),
    cfg.IntOpt("port_block_size", default=0, min=0, max=65535,
               help="0: external ports are handed out one mapping at a time; N: each inside "
                    "host gets blocks of N consecutive ports of port_range per protocol and NAT "
                    "address, and the mapping log writes one line per block allocated and "
                    "released, not per session (RFC 6888 REQ-4, RFC 7422)"),
    cfg.IntOpt("port_blocks_per_host", default=4, min=1, max=65535,
               help="with port_block_size: most blocks one inside host holds per protocol; "
                    "a host over it is refused (refused.block_quota, ICMP 3/13)"),
    cfg.BoolOpt("deterministic", default=False,
                help="deterministic NAT (RFC 7422; needs port_block_size): each address of "
                     "internal_subnet owns one fixed block of port_block_size ports on one "
                     "NAT address, computed from the configuration alone, so no mapping log "
                     "is needed (snatctl who computes the owner of any external port)"),
    cfg.BoolOpt("port_control", default=True,
                help="answer PCP (RFC 6887: ANNOUNCE, MAP, PEER) and NAT-PMP (RFC 6886) "
                     "requests on UDP 5351 of internal_gateway_ip, so inside hosts map "
                     "their own inbound ports (RFC 6888 REQ-9)"),
    _seconds("port_control_min_lifetime", 120, "shortest lifetime a PCP or NAT-PMP "
             "mapping is given (a shorter request is raised to it)", high=DAY),
    _seconds("port_control_max_lifetime", 7200, "longest lifetime a PCP or NAT-PMP "
             "mapping is given (a longer request is cut to it; at most 65535: the "
             "switch keeps each mapping as a flow with that hard timeout)"),
    cfg.IntOpt("port_control_max_per_host", default=16, min=1, max=65535,
               help="most PCP/NAT-PMP mappings and peers one inside host holds (each "
                    "also counts against max_connections_per_host); more get "
                    "USER_EX_QUOTA / OUT_OF_RESOURCES"),
    cfg.BoolOpt("port_control_third_party", default=False,
                help="accept the PCP THIRD_PARTY option (a host mapping ports of another "
                     "inside address); off: NOT_AUTHORIZED"),
    _rate("port_control_rate", 10, "PCP/NAT-PMP requests a second each inside host may "
          "make (twice as many in a burst); more are dropped unanswered and counted; "
          "0 = no limit"),
    cfg.BoolOpt("port_parity", default=False,
                help="keep the parity of the inside port in the external port (RFC 4787 REQ-4)"),
    cfg.ListOpt("forwards", default=[],
                help="static port forwards, PROTOCOL:PORT=INSIDE_IP:PORT, comma-separated"),
    _rate("packet_in_port_rate", 3000,
          "packets a second each switch port may send to the controller (an "
          "OpenFlow meter per port, in the switch) while the controller keeps "
          "up; when it falls behind, a port sending far more than the others is "
          "cut to the busiest other one's rate until it sends less; 0 = no meters"),
    _rate("packet_in_port_burst", 0,
          "packets a port may send to the controller at once above its rate "
          "(the meter's burst) while at packet_in_port_rate; 0 = as many as "
          "packet_in_port_rate"),
    _rate("packet_in_host_rate", 0,
          "a hard limit on the packet-ins a second the controller handles from "
          "one source (IPv4 address or MAC) on one port; 0 = none: sources share "
          "the controller fairly only when it is overloaded"),
    _rate("packet_in_host_burst", 0,
          "packet-ins one source may send at once above packet_in_host_rate; "
          "0 = as many as packet_in_host_rate"),
    cfg.StrOpt("forwards_file", default=None,
               help="keep the forwards added over REST in this JSON file, so that a "
                    "restarted controller has them again (unset: they live in memory)"),
]

# One controller process: [nat] only, never a profile (ControllerConfig).
CONTROLLER_OPTS = [
    cfg.StrOpt("rest_token", secret=True,
               help="bearer token that POST and DELETE under /nat need "
                    "(Authorization: Bearer TOKEN), at least 16 characters; unset: "
                    "no token, so keep the REST API on 127.0.0.1 (wsapi_host)"),
    _seconds("stats_interval", 10, "seconds between flow-stats polls", high=DAY),
    # ControllerConfig.mapping_log
    cfg.BoolOpt("log_mappings", default=True,
                help="log each mapping creation and deletion (RFC 6888 section 4)"),
    cfg.StrOpt("mapping_log_file", default=None,
               help="write the mapping log to this file, in batches each second, instead "
                    "of the ryu_snat.mappings logger (much cheaper per new session)"),
    cfg.IntOpt("mapping_log_max_bytes", default=100 * 1024 * 1024, min=0, max=2 ** 40,
               help="rotate mapping_log_file before it grows past this many bytes "
                    "(to FILE.1 ... FILE.N); 0 = never"),
    cfg.IntOpt("mapping_log_backups", default=5, min=1, max=1000,
               help="rotated mapping log files kept (FILE.1 is the newest)"),
    cfg.StrOpt("mapping_log_syslog", default=None,
               help="also send each mapping log line to syslog: HOST:PORT (UDP) or "
                    "the path of a Unix socket such as /dev/log (unset: no syslog)"),
    # ControllerConfig.ipfix
    cfg.StrOpt("ipfix_collector", default=None,
               help="send NAT events (session create and delete, quota exceeded, ports "
                    "exhausted, port blocks allocated and released) as IPFIX with RFC 8158's fields to this collector, "
                    "ADDRESS:PORT over UDP, e.g. 192.0.2.9:4739 ([ADDRESS]:PORT for "
                    "IPv6); unset: no IPFIX"),
    cfg.BoolOpt("ipfix_log_destination", default=False,
                help="put the remote address and port in IPFIX session records too "
                     "(RFC 6888 REQ-12: leave them out unless they must be kept)"),
    _seconds("ipfix_template_interval", 60, "seconds between resends of the IPFIX "
             "templates (a collector that starts later can read records from then on)",
             high=3600),
    # ControllerConfig.ha
    cfg.StrOpt("coordination_url", secret=True,
               help="tooz URL of the coordination engine that elects the MASTER of a "
                    "controller pair, e.g. redis://127.0.0.1:6379 (unset: this controller "
                    "is alone and acts on every switch it serves)"),
    cfg.StrOpt("ha_group", default="ryu-snat",
               help="name the two controllers of a pair share in the coordination engine"),
    _seconds("ha_lease", 2, "seconds the MASTER's lock outlives its last renewal: a dead "
             "MASTER is replaced after at most this long", high=60),
    cfg.FloatOpt("ha_interval", default=0.25, min=0.05, max=15.0,
                 help="seconds between renewals of the lock (and the standby's tries "
                      "for it); at most a quarter of ha_lease"),
]

OPTS = BRIDGE_OPTS + CONTROLLER_OPTS
BY_NAME = {opt.dest: opt for opt in OPTS}
# One process, one value: these live in [nat] only, never in a bridge's profile.
PROCESS_WIDE = tuple(opt.dest for opt in CONTROLLER_OPTS)

# What the bounds of a numeric option count, for the one-line refusal.
UNITS = {
    **{opt.dest: "seconds" for opt in OPTS
       if opt.dest.endswith(("_timeout", "_interval", "_lease")) or opt.dest == "port_quarantine"},
    **{opt.dest: "packets a second" for opt in OPTS if opt.dest.startswith("packet_in_")},
    "max_connections": "sessions", "max_connections_per_host": "sessions",
    "max_addresses_per_mac": "addresses", "mapping_log_max_bytes": "bytes",
    "mapping_log_backups": "files",
}


def nat_group() -> cfg.OptGroup:
    """The ``[nat]`` group, its help saying how profiles and [nat] relate."""
    return cfg.OptGroup(GROUP, title="ryu-snat", help=(
        "The source-NAT gateway (ryu_app.snat). Several NAT bridges: each [nat:NAME] "
        "section is one bridge's profile; its dpid is required and an option it does not "
        "set takes its value from [nat]. These options have one value for the whole "
        "controller and are only read from [nat]: " + ", ".join(PROCESS_WIDE) + "."))


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """The ``oslo.config.opts`` entry point (namespace ``ryu_snat``)."""
    return [(nat_group(), list(OPTS))]


def register(conf: cfg.ConfigOpts | None = None) -> cfg.ConfigOpts:
    """Register the ``[nat]`` options on ``conf`` (default: ``ryu.cfg.CONF``)."""
    if conf is None:
        from ryu import cfg as ryu_cfg   # the object ryu-manager parses
        conf = ryu_cfg.CONF
    conf.register_group(nat_group())      # no-op when there already
    try:
        conf.register_opts(OPTS, group=GROUP)
    except cfg.DuplicateOptError:
        pass  # registered already with identical definitions is fine
    return conf


def register_profile(conf: cfg.ConfigOpts, section: str) -> None:
    """The bridge options on ``section``, all defaulting to None: unset means [nat]'s."""
    assert section.startswith(PROFILE_PREFIX)
    opts = []
    for opt in BRIDGE_OPTS:
        mine = copy.copy(opt)
        mine.default = None
        opts.append(mine)
    try:
        conf.register_opts(opts, group=section)
    except cfg.DuplicateOptError:
        pass


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def bounds(name: str) -> str:
    """``1..65535 seconds``, ``at least 1 sessions``: what a numeric option takes."""
    kind = BY_NAME[name].type
    low, high = getattr(kind, "min", None), getattr(kind, "max", None)
    unit = f" {UNITS[name]}" if name in UNITS else ""
    if low is not None and high is not None:
        return f"{_number(low)}..{_number(high)}{unit}"
    if low is not None:
        return f"at least {_number(low)}"
    return f"at most {_number(high)}" if high is not None else ""


def choices(name: str) -> list[str]:
    """The values a string option takes, blank left out; [] when any."""
    found: Iterable[str] = getattr(BY_NAME[name].type, "choices", None) or ()
    return [choice for choice in found if choice]


def problem(name: str, raw: object) -> str:
    """Why oslo.config refused ``raw`` for option ``name``, as an operator reads it."""
    opt = BY_NAME.get(name)
    if isinstance(opt, cfg.BoolOpt):
        return "must be true or false"
    if isinstance(opt, (cfg.IntOpt, cfg.FloatOpt)):
        convert = int if isinstance(opt, cfg.IntOpt) else float
        try:
            convert(str(raw).strip())
        except ValueError:
            return "must be an integer" if convert is int else "must be a number"
        return f"must be {bounds(name)}"
    if opt is not None and choices(name):
        return f"must be one of {', '.join(choices(name))}"
    return "not a valid value"
