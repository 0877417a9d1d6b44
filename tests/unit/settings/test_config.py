"""Every [nat] option: defaults, good values, and bad values with their message."""
from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from oslo_config import cfg

from ryu_app.settings import config, options as declared

REQUIRED = {"external_ip": "198.51.100.1/24", "external_port": "s1-eth1",
            "internal_subnet": "10.0.0.0/24"}
# Where an option's value lands when it is not a field of the same name:
# BridgeConfig's groups, and ControllerConfig (the options of PROCESS_WIDE).
FIELDS = {
    "tcp_established_timeout": "timers.tcp_established",
    "tcp_transitory_timeout": "timers.tcp_transitory",
    "udp_timeout": "timers.udp", "icmp_timeout": "timers.icmp",
    "port_quarantine": "timers.port_quarantine", "binding_idle_timeout": "timers.binding_idle",
    "max_connections": "admission.max_connections",
    "max_connections_per_host": "admission.max_connections_per_host",
    "max_addresses_per_mac": "admission.max_addresses_per_mac",
    "packet_in_port_rate": "admission.port_rate", "packet_in_port_burst": "admission.port_burst",
    "packet_in_host_rate": "admission.host_rate", "packet_in_host_burst": "admission.host_burst",
    "log_mappings": "mapping_log.enabled", "mapping_log_file": "mapping_log.file",
    "ipfix_collector": "ipfix.collector", "ipfix_log_destination": "ipfix.log_destination",
    "ipfix_template_interval": "ipfix.template_interval",
    "mapping_log_max_bytes": "mapping_log.max_bytes", "mapping_log_backups": "mapping_log.backups",
    "coordination_url": "ha.coordination_url", "ha_group": "ha.group", "ha_lease": "ha.lease",
    "ha_interval": "ha.interval",
}


def parse(tmp_path, **options) -> cfg.ConfigOpts:
    """Parse a real config file holding ``options`` (None drops a required one)."""
    values = {**REQUIRED, **options}
    body = "".join(f"{k} = {v}\n" for k, v in values.items() if v is not None)
    path = tmp_path / "ryu-snat.conf"
    path.write_text("[nat]\n" + body)
    conf = cfg.ConfigOpts()
    config.register(conf)
    conf(args=["--config-file", str(path)], default_config_files=[])
    return conf


def load(tmp_path, warnings=None, **options) -> config.BridgeConfig:
    """The bridge of a [nat] holding ``options``."""
    return config.load(parse(tmp_path, **options),
                       warn=(warnings.append if warnings is not None else lambda m: None))


def load_controller(tmp_path, **options) -> config.ControllerConfig:
    return config.load_controller(parse(tmp_path, **options))


def load_both(tmp_path, **options) -> tuple[config.BridgeConfig, config.ControllerConfig]:
    conf = parse(tmp_path, **options)
    return config.load(conf, warn=lambda m: None), config.load_controller(conf)


def value_of(bridge, controller, option: str):
    """The checked value of ``option``, wherever it lives."""
    value = controller if option in config.PROCESS_WIDE else bridge
    for name in FIELDS.get(option, option).split("."):
        value = getattr(value, name)
    return value


def test_defaults(tmp_path):
    c, ctl = load_both(tmp_path)
    assert c.external_ip == ipaddress.IPv4Interface("198.51.100.1/24")
    assert c.external_address == ipaddress.IPv4Address("198.51.100.1")
    assert c.external_port == "s1-eth1"
    assert c.external_gateway_ip is None
    assert c.internal_subnet == ipaddress.IPv4Network("10.0.0.0/24")
    assert c.internal_gateway_ip == ipaddress.IPv4Address("10.0.0.1")  # first host
    assert c.gateway_mac == config.DEFAULT_GATEWAY_MAC
    assert int(c.gateway_mac[:2], 16) & 0b10, "default MAC must be locally administered"
    assert c.port_range == (1024, 65535)
    assert (c.timers.tcp_established, c.timers.tcp_transitory) == (7440, 240)
    assert (c.timers.udp, c.timers.icmp) == (300, 60)
    assert ctl.stats_interval == 10
    assert c.admission.max_connections == 100000
    assert c.admission.max_connections_per_host == 4096
    assert c.dpid is None
    assert c.filtering == "address-and-port-dependent"
    assert c.tcp_filtering == c.udp_filtering == "address-and-port-dependent"
    assert c.timers.port_quarantine == 120 and ctl.mapping_log.enabled is True


def test_the_types_defaults_are_the_options_defaults(tmp_path):
    """Built directly (tests, tools), the two types agree with a default [nat]."""
    c, ctl = load_both(tmp_path)
    assert c == config.BridgeConfig(external_ip=c.external_ip, external_port=c.external_port,
                                     internal_subnet=c.internal_subnet,
                                     internal_gateway_ip=c.internal_gateway_ip)
    assert ctl == config.ControllerConfig()


def test_process_wide_options_are_the_controllers_only(tmp_path):
    bridge_fields = {f.name for f in dataclasses.fields(config.BridgeConfig)}
    assert not bridge_fields & set(config.PROCESS_WIDE)
    assert {"rest_token", "stats_interval", "ha", "mapping_log", "ipfix"} == {
        f.name for f in dataclasses.fields(config.ControllerConfig)}


def test_config_is_frozen(tmp_path):
    c, ctl = load_both(tmp_path)
    for group, name in ((c, "name"), (c.timers, "udp"), (c.admission, "port_rate"),
                        (ctl, "rest_token"), (ctl.ha, "lease"), (ctl.mapping_log, "file")):
        with pytest.raises(AttributeError):
            setattr(group, name, 1)


def test_options_live_on_ryu_conf():
    """ryu-manager parses ryu.cfg.CONF; our options must be registered there."""
    from ryu import cfg as ryu_cfg
    import ryu_app.snat  # noqa: F401  (registers at import)
    assert "external_ip" in ryu_cfg.CONF.nat


@pytest.mark.parametrize("option,value,expected", [
    ("external_ip", "203.0.113.5/28", ipaddress.IPv4Interface("203.0.113.5/28")),
    ("external_port", "7", 7),
    ("external_port", "uplink0", "uplink0"),
    ("external_gateway_ip", "198.51.100.254", ipaddress.IPv4Address("198.51.100.254")),
    ("internal_subnet", "192.168.8.0/22", ipaddress.IPv4Network("192.168.8.0/22")),
    ("internal_gateway_ip", "10.0.0.254", ipaddress.IPv4Address("10.0.0.254")),
    ("gateway_mac", "0A:00:27:00:00:01", "0a:00:27:00:00:01"),
    ("port_range", "20000-29999", (20000, 29999)),
    ("port_range", " 5 - 5 ", (5, 5)),
    ("tcp_established_timeout", "65535", 65535),
    ("tcp_transitory_timeout", "300", 300),
    ("udp_timeout", "600", 600),
    ("icmp_timeout", "120", 120),
    ("stats_interval", "2", 2),
    ("max_connections", "10", 10),
    ("max_connections_per_host", "10", 10),
    ("dpid", "0x1", 1),
    ("dpid", "42", 42),
    ("dpid", "0xffffffffffffffff", 2 ** 64 - 1),
    ("filtering", "endpoint-independent", "endpoint-independent"),
    ("filtering", "Address-Dependent", "address-dependent"),
    ("tcp_filtering", "endpoint-independent", "endpoint-independent"),
    ("tcp_filtering", " Address-Dependent ", "address-dependent"),
    ("udp_filtering", "endpoint-independent", "endpoint-independent"),
    ("udp_filtering", "address-and-port-dependent", "address-and-port-dependent"),
    ("port_quarantine", "0", 0),
    ("log_mappings", "false", False),
    ("port_parity", "true", True),
    ("ipfix_collector", "192.0.2.9:4739", ("192.0.2.9", 4739)),
    ("ipfix_collector", "[2001:db8::9]:4739", ("2001:db8::9", 4739)),
    ("ipfix_log_destination", "true", True),
    ("ipfix_template_interval", "5", 5),
])
def test_good_values(tmp_path, option, value, expected):
    extra = {"internal_gateway_ip": None} if option == "internal_subnet" else {}
    assert value_of(*load_both(tmp_path, **{option: value}, **extra), option) == expected


@pytest.mark.parametrize("option,value,problem", [
    ("external_ip", None, "required"),
    ("external_ip", "198.51.100.1", "needs a prefix length"),
    ("external_ip", "300.1.1.1/24", "not an IPv4 interface"),
    ("external_ip", "2001:db8::1/64", "not an IPv4 interface"),
    ("external_ip", "198.51.100.0/24", "network or broadcast"),
    ("external_ip", "198.51.100.255/24", "network or broadcast"),
    ("external_port", None, "required"),
    ("external_port", "0", "must be at least 1"),
    ("external_port", "4294967295", "at most"),
    ("external_port", "bad name!", "not a port number or interface name"),
    ("external_port", "a-very-long-interface-name", "not a port number or interface name"),
    ("external_gateway_ip", "203.0.113.1", "not inside 198.51.100.0/24"),
    ("external_gateway_ip", "198.51.100.1", "NAT address itself"),
    ("external_gateway_ip", "gateway", "not an IPv4 address"),
    ("internal_subnet", None, "required"),
    ("internal_subnet", "10.0.0.1/24", "not an IPv4 network"),
    ("internal_subnet", "10.0.0.0/31", "leaves no hosts"),
    ("internal_subnet", "198.51.100.0/25", "overlaps the external prefix"),
    ("internal_gateway_ip", "10.0.1.1", "not inside 10.0.0.0/24"),
    ("internal_gateway_ip", "10.0.0.0", "network or broadcast"),
    ("internal_gateway_ip", "10.0.0.255", "network or broadcast"),
    ("gateway_mac", "02:00:00:00:00", "not a MAC address"),
    ("gateway_mac", "01:00:5e:00:00:01", "multicast"),
    ("gateway_mac", "00:00:00:00:00:00", "all zeros"),
    ("port_range", "1024", "expected LOW-HIGH"),
    ("port_range", "2000-1000", "LOW <= HIGH"),
    ("port_range", "0-100", "LOW <= HIGH"),
    ("port_range", "1-70000", "LOW <= HIGH"),
    ("tcp_established_timeout", "0", "must be 1..65535 seconds"),
    ("tcp_established_timeout", "70000", "must be 1..65535 seconds"),
    ("tcp_transitory_timeout", "-5", "must be 1..65535 seconds"),
    ("udp_timeout", "0", "must be 1..65535 seconds"),
    ("icmp_timeout", "65536", "must be 1..65535 seconds"),
    ("stats_interval", "0", "must be 1..86400 seconds"),
    ("max_connections", "0", "at least 1"),
    ("max_connections_per_host", "0", "at least 1"),
    ("dpid", "s1", "not a decimal or 0x-hex"),
    ("filtering", "full-cone", "must be one of endpoint-independent"),
    ("tcp_filtering", "full-cone", "must be one of endpoint-independent"),
    ("udp_filtering", "restricted-cone", "must be one of endpoint-independent"),
    ("forwards", "tcp:80=10.0.0.11:80,tcp:80=10.0.0.12:80", "already forwarded to 10.0.0.11:80"),
    ("forwards", "tcp:80=10.0.0.11:80,tcp:81=10.0.0.11:80", "already forwarded from port 80"),
    ("port_quarantine", "-1", "must be 0..86400"),
    ("dpid", "0x10000000000000000", "outside"),
    ("mapping_log_file", "/nonexistent-dir/mappings.log", "not a writable file"),
    ("mapping_log_file", "/tmp", "not a writable file"),
    ("rest_token", "short", "16..256 printable ASCII"),
    ("mapping_log_max_bytes", "-1", "must be 0..1099511627776 bytes"),
    ("mapping_log_backups", "0", "must be 1..1000 files"),
    ("rest_token", "sixteen chars but spaces", "no spaces"),
    ("packet_in_port_rate", "-1", "must be 0..10000000"),
    ("packet_in_host_burst", "20000000", "must be 0..10000000"),
    ("ipfix_collector", "collector.example:4739", "not ADDRESS:PORT of a UDP collector"),
    ("ipfix_collector", "192.0.2.9", "not ADDRESS:PORT of a UDP collector"),
    ("ipfix_collector", "192.0.2.9:0", "not ADDRESS:PORT of a UDP collector"),
    ("ipfix_collector", "192.0.2.9:65536", "not ADDRESS:PORT of a UDP collector"),
    ("ipfix_template_interval", "0", "must be 1..3600 seconds"),
])
def test_bad_values_name_the_option(tmp_path, option, value, problem):
    with pytest.raises(config.ConfigError) as info:
        load_both(tmp_path, **{option: value})
    message = str(info.value)
    assert message.startswith(f"invalid [nat] {option}=")
    assert problem in message
    assert "\n" not in message
    assert info.value.option == option


@pytest.mark.parametrize("option,value,problem", [
    (name, "five", "must be an integer") for name in (
        "tcp_established_timeout", "tcp_transitory_timeout", "udp_timeout", "icmp_timeout",
        "stats_interval", "max_connections", "max_connections_per_host", "port_quarantine")
] + [("port_parity", "maybe", "must be true or false"),
     ("log_mappings", "sometimes", "must be true or false"),
     ("stats_interval", "1.5", "must be an integer")])
def test_values_oslo_cannot_convert_name_the_option(tmp_path, option, value, problem):
    with pytest.raises(config.ConfigError) as info:
        load_both(tmp_path, **{option: value})
    assert str(info.value) == f"invalid [nat] {option}={value!r}: {problem}"
    assert info.value.option == option


@pytest.mark.parametrize("option,value,problem", [
    ("udp_timeout", "70000", "must be 1..65535 seconds"),
    ("max_connections", "0", "must be at least 1"),
    ("port_quarantine", "86401", "must be 0..86400 seconds"),
    ("packet_in_host_rate", "-3", "must be 0..10000000 packets a second"),
    ("mapping_log_backups", "1001", "must be 1..1000 files"),
    ("ha_lease", "61", "must be 1..60 seconds"),
    ("ha_interval", "0.01", "must be 0.05..15 seconds"),
    ("ha_interval", "often", "must be a number"),
    ("filtering", "Full-Cone", "must be one of endpoint-independent, address-dependent, "
                               "address-and-port-dependent"),
    ("udp_filtering", "open", "must be one of endpoint-independent, address-dependent, "
                              "address-and-port-dependent"),
])
def test_values_out_of_the_declared_bounds_or_choices_quote_the_value(tmp_path, option, value,
                                                                      problem):
    """oslo.config refuses them (min/max/choices) without naming the option or
    quoting the value; the one line the operator gets does both."""
    with pytest.raises(config.ConfigError) as info:
        load_both(tmp_path, **{option: value})
    assert str(info.value) == f"invalid [nat] {option}={value!r}: {problem}"


def test_bounds_and_choices_are_declared_to_oslo():
    """So that oslo-config-generator and the reference show them."""
    opts = declared.BY_NAME
    assert (opts["udp_timeout"].type.min, opts["udp_timeout"].type.max) == (1, 65535)
    assert (opts["packet_in_port_rate"].type.min, opts["packet_in_port_rate"].type.max) == \
        (0, 10_000_000)
    assert list(opts["filtering"].type.choices) == [
        "endpoint-independent", "address-dependent", "address-and-port-dependent"]
    assert "" in opts["tcp_filtering"].type.choices, "blank: the value of filtering"


def test_a_blank_number_is_refused_naming_the_option(tmp_path):
    with pytest.raises(config.ConfigError, match=r"invalid \[nat\] udp_timeout=None: must be "
                                                 r"1..65535 seconds"):
        load(tmp_path, udp_timeout="")


def test_ha_interval_is_at_most_a_quarter_of_the_lease(tmp_path):
    with pytest.raises(config.ConfigError, match=r"ha_interval=0.75: must be 0.05..0.5 seconds "
                                                 r"\(a quarter of ha_lease\)"):
        load_controller(tmp_path, ha_interval="0.75")
    assert load_controller(tmp_path, ha_lease="4", ha_interval="1").ha.interval == 1.0


def test_unknown_option_is_refused_with_a_suggestion(tmp_path):
    with pytest.raises(config.ConfigError) as info:
        load(tmp_path, udp_timout="30")
    assert str(info.value).startswith("invalid [nat] udp_timout='30': unknown option in ")
    assert str(info.value).endswith("; did you mean udp_timeout?")


def test_default_section_keys_are_not_nat_options(tmp_path):
    path = tmp_path / "with-default.conf"
    body = "".join(f"{k} = {v}\n" for k, v in REQUIRED.items())
    path.write_text("[DEFAULT]\nwsapi_port = 8080\n[nat]\n" + body)
    conf = cfg.ConfigOpts()
    config.register(conf)
    conf.register_opt(cfg.IntOpt("wsapi_port"))
    conf(args=["--config-file", str(path)], default_config_files=[])
    assert config.load(conf).external_port == "s1-eth1"


@pytest.mark.parametrize("option,value,floor", [
    ("tcp_established_timeout", "60", 7440), ("tcp_transitory_timeout", "10", 240),
    ("udp_timeout", "5", 120), ("icmp_timeout", "3", 60)])
def test_timers_below_rfc_floor_warn_but_load(tmp_path, option, value, floor):
    warnings: list[str] = []
    others = {"tcp_transitory_timeout": "30"} if option == "tcp_established_timeout" else {}
    c = load(tmp_path, warnings, **{option: value}, **others)
    assert value_of(c, None, option) == int(value)
    assert f"[nat] {option}={value} is below the RFC floor of {floor} s" in warnings


def test_transitory_timeout_must_stay_below_the_established_one(tmp_path):
    """A FIN lowers a flow to the transitory timeout: the controller reads
    that in the flow stats only if it differs from the established one."""
    with pytest.raises(config.ConfigError, match=r"tcp_transitory_timeout=7439: must be at least "
                                          r"2 s below tcp_established_timeout \(7440\)"):
        load(tmp_path, [], tcp_transitory_timeout="7439")


def test_per_host_quota_above_table_bound_is_clamped_with_warning(tmp_path):
    warnings: list[str] = []
    c = load(tmp_path, warnings, max_connections="10")
    assert c.admission.max_connections == 10 and c.admission.max_connections_per_host == 10
    assert warnings == ["[nat] max_connections_per_host=4096 exceeds max_connections=10; "
                        "using 10"]


def test_rfc_defaults_do_not_warn(tmp_path):
    warnings: list[str] = []
    load(tmp_path, warnings)
    assert warnings == []


# -- filtering per protocol (RFC 4787 REQ-8, RFC 5382 REQ-3, RFC 7857 s5-6) -------------

@pytest.mark.parametrize("filtering", ["endpoint-independent", "address-dependent"])
def test_per_protocol_filtering_defaults_to_filtering(tmp_path, filtering):
    c = load(tmp_path, filtering=filtering)
    assert (c.filtering, c.tcp_filtering, c.udp_filtering) == (filtering,) * 3


def test_blank_per_protocol_filtering_means_unset(tmp_path):
    c = load(tmp_path, filtering="address-dependent", tcp_filtering="", udp_filtering=" ")
    assert (c.tcp_filtering, c.udp_filtering) == ("address-dependent", "address-dependent")


def test_per_protocol_filtering_overrides_filtering_for_its_protocol_only(tmp_path):
    c = load(tmp_path, filtering="address-dependent", udp_filtering="endpoint-independent")
    assert c.filtering == "address-dependent"
    assert c.tcp_filtering == "address-dependent"
    assert c.udp_filtering == "endpoint-independent"
    assert [c.filtering_for(p) for p in (6, 17, 1)] == \
        ["address-dependent", "endpoint-independent", "address-dependent"]


def test_bad_filtering_is_reported_even_when_both_protocols_override_it(tmp_path):
    with pytest.raises(config.ConfigError) as info:
        load(tmp_path, filtering="open", tcp_filtering="endpoint-independent",
             udp_filtering="endpoint-independent")
    assert info.value.option == "filtering"


def test_directly_built_config_falls_back_to_filtering(tmp_path):
    c = load(tmp_path)
    fields = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
    built = config.BridgeConfig(**{**fields, "filtering": "endpoint-independent",
                                "tcp_filtering": None, "udp_filtering": None})
    assert (built.tcp_filtering, built.udp_filtering) == ("endpoint-independent",) * 2


def test_engine_gets_each_protocols_filtering(tmp_path):
    from conntrack import Filtering
    from ryu_app.nat.engine import conntrack_config
    c = load(tmp_path, tcp_filtering="endpoint-independent", udp_filtering="address-dependent")
    ct = conntrack_config(c)
    assert ct.tcp_filtering is Filtering.ENDPOINT_INDEPENDENT
    assert ct.udp_filtering is Filtering.ADDRESS_DEPENDENT
    assert ct.icmp_filtering is Filtering.ADDRESS_AND_PORT_DEPENDENT


def test_engine_follows_port_options(tmp_path):
    """RFC 4787 REQ-3a/REQ-4 and RFC 6888 REQ-8 reach the engine as configured."""
    from ryu_app.nat.engine import conntrack_config
    ct = conntrack_config(load(tmp_path, port_parity="true", port_quarantine="30"))
    assert ct.preserve_parity is True and ct.quarantine == 30
    assert ct.preserve_low_ports is True, "ports below 1024 stay below 1024 by default"
    assert conntrack_config(load(tmp_path, port_range="1-65535")).preserve_low_ports is False


def test_a_bad_token_is_never_echoed(tmp_path):
    secret = "almost a good secret"
    with pytest.raises(config.ConfigError) as info:
        load_controller(tmp_path, rest_token=secret)
    assert secret not in str(info.value)


def test_a_good_token_and_the_packet_in_limits(tmp_path):
    c, ctl = load_both(tmp_path, rest_token="0123456789abcdef", packet_in_host_rate="50")
    assert ctl.rest_token == "0123456789abcdef"
    assert (c.admission.host_rate, c.admission.host_burst) == (50, 50)
    assert load_controller(tmp_path).rest_token is None


@pytest.mark.parametrize("variable,value,message", [
    ("OS_NAT__UDP_TIMEOUT", "five", "invalid [nat] udp_timeout='five': must be an integer "
     "(set by the environment variable OS_NAT__UDP_TIMEOUT)"),
    ("OS_NAT__PORT_PARITY", "maybe", "invalid [nat] port_parity='maybe': must be true or "
     "false (set by the environment variable OS_NAT__PORT_PARITY)"),
    ("OS_NAT__MAX_CONNECTIONS", "0", "invalid [nat] max_connections='0': must be "),
])
def test_a_bad_environment_value_is_one_line_naming_the_variable(tmp_path, monkeypatch,
                                                                  variable, value, message):
    """oslo.config reads OS_NAT__<OPTION> over the files; a bad one is reported
    as a bad file value is (one line, the option and the value), not as a
    traceback out of oslo.config."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(config.ConfigError) as info:
        load_both(tmp_path)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
