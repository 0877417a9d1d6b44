"""Several NAT bridges under one controller: ``[nat:NAME]`` profiles, and the
Ryu shell routing each switch's events to its own profile's gateway."""
from __future__ import annotations

import ipaddress

import pytest
from oslo_config import cfg
from ryu.controller import ofp_event
from ryu.controller.handler import MAIN_DISPATCHER
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from helpers.frames import arp_request
from helpers.ryu_shell import RecordingDatapath, snat_app
from ryu_app.settings import config
from ryu_app import snat
from ryu_app.ops.metrics import exposition

TWO_BRIDGES = """
[nat]
internal_subnet = 10.0.0.0/24
udp_timeout = 200
rest_token = a-token-of-twenty-chars

[nat:east]
dpid = 1
external_ip = 198.51.100.1/24
external_port = 1

[nat:west]
dpid = 0x4
external_ip = 198.51.100.2/24
external_port = 1
internal_subnet = 10.0.1.0/24
gateway_mac = 02:53:4e:41:54:04
udp_timeout = 150
"""


def parse(tmp_path, text: str) -> cfg.ConfigOpts:
    path = tmp_path / "ryu-snat.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    config.register(conf)
    conf(args=["--config-file", str(path)], default_config_files=[])
    return conf


def profiles(tmp_path, text: str = TWO_BRIDGES) -> list[config.BridgeConfig]:
    return config.load_profiles(parse(tmp_path, text), warn=lambda m: None)


def test_each_section_is_a_bridge_and_unset_options_come_from_nat(tmp_path):
    east, west = profiles(tmp_path)
    assert (east.name, east.dpid, west.name, west.dpid) == ("east", 1, "west", 4)
    assert east.internal_subnet == ipaddress.IPv4Network("10.0.0.0/24")     # from [nat]
    assert west.internal_subnet == ipaddress.IPv4Network("10.0.1.0/24")     # its own
    assert str(west.internal_gateway_ip) == "10.0.1.1"     # derived from its own subnet
    assert (east.timers.udp, west.timers.udp) == (200, 150)


def test_the_controllers_options_come_from_nat_whatever_the_profiles(tmp_path):
    controller = config.load_controller(parse(tmp_path, TWO_BRIDGES))
    assert controller.rest_token == "a-token-of-twenty-chars"
    bad = TWO_BRIDGES.replace("rest_token = a-token-of-twenty-chars", "stats_interval = 0")
    with pytest.raises(config.ConfigError) as err:
        config.load_controller(parse(tmp_path, bad))
    assert str(err.value) == "invalid [nat] stats_interval='0': must be 1..86400 seconds"


def test_without_sections_nat_is_the_one_profile(tmp_path):
    [only] = profiles(tmp_path, "[nat]\nexternal_ip = 198.51.100.1/24\n"
                                "external_port = s1-eth1\ninternal_subnet = 10.0.0.0/24\n")
    assert (only.name, only.dpid) == ("nat", None)


@pytest.mark.parametrize("change, section, option", [
    ("dpid = 1\nexternal_ip = 198.51.100.2/24", "nat:west", "dpid"),   # east's switch
    ("dpid = 4\nexternal_ip = 198.51.100.1/24", "nat:west", "external_ip"),
    ("dpid = 4\nstats_interval = 3", "nat:west", "stats_interval"),  # [nat] only
    ("dpid = 4\nudp_timout = 3", "nat:west", "udp_timout"),          # misspelt
    ("external_ip = 198.51.100.2/24", "nat:west", "dpid"),           # no dpid
    ("dpid = 4\nexternal_ip = 198.51.100.2", "nat:west", "external_ip"),
    ("dpid = 4\nexternal_ip = 198.51.100.2/24", "nat:west", "gateway_mac"),   # east's MAC
])
def test_a_bad_profile_names_its_section_and_option(tmp_path, change, section, option):
    text = TWO_BRIDGES.split("[nat:west]")[0] + "[nat:west]\nexternal_port = 1\n" + change + "\n"
    if "dpid = 0x4" == change:
        text = text.replace("[nat:east]\ndpid = 1", "[nat:east]\ndpid = 4")
    with pytest.raises(config.ConfigError) as err:
        profiles(tmp_path, text)
    assert err.value.option == option
    assert str(err.value).startswith(f"invalid [{section}] {option}="), str(err.value)


# -- the Ryu shell with two profiles ---------------------------------------------
@pytest.fixture
def two(tmp_path, monkeypatch):
    loaded = profiles(tmp_path)
    monkeypatch.setattr(snat.config, "load_profiles", lambda *a, **k: loaded)
    with snat_app() as (app, _wsgi):
        yield app


def test_the_app_reads_process_wide_options_once_for_every_bridge(tmp_path, monkeypatch):
    loaded = profiles(tmp_path)
    monkeypatch.setattr(snat.config, "load_profiles", lambda *a, **k: loaded)
    with snat_app(rest_token="0123456789abcdef", stats_interval=3) as (app, _wsgi):
        assert app.rest_token == "0123456789abcdef"
        assert app.controller.stats_interval == 3
        assert [gw.config.name for gw in app.gateways] == ["east", "west"]
        assert all(gw.controller is app.controller for gw in app.gateways)
        assert app.gateways[1].mapping_log is app.gateways[0].mapping_log


def connect(app, dpid: int) -> RecordingDatapath:
    dp = RecordingDatapath(dpid)
    app._switch_features(ofp_event.EventOFPSwitchFeatures(parser.OFPSwitchFeatures(dp)))
    return dp


def arp_for(app, dp: RecordingDatapath, src_ip: str, gateway_ip: str) -> list:
    dp.sent.clear()
    msg = parser.OFPPacketIn(dp, reason=ofp.OFPR_NO_MATCH, table_id=0, cookie=0,
                             match=parser.OFPMatch(in_port=2),
                             data=arp_request("00:00:00:00:00:01", src_ip, gateway_ip))
    app._send_event(ofp_event.EventOFPPacketIn(msg), MAIN_DISPATCHER)
    return [m for m in dp.sent if isinstance(m, parser.OFPPacketOut)]


def test_each_switch_gets_its_own_profiles_rules_and_answers(two):
    east, west = connect(two, 1), connect(two, 4)
    stranger = connect(two, 9)
    arp_rules = lambda dp: {str(m.match.get("arp_tpa")) for m in dp.sent
                            if isinstance(m, parser.OFPFlowMod) and "arp_tpa" in m.match}
    assert arp_rules(east) == {"198.51.100.1", "10.0.0.1"}
    assert arp_rules(west) == {"198.51.100.2", "10.0.1.1"}
    assert stranger.sent == [] and 9 not in two.datapaths
    # Each bridge answers ARP for its own inside gateway only.
    assert arp_for(two, west, "10.0.1.11", "10.0.1.1")
    assert not arp_for(two, west, "10.0.0.11", "10.0.0.1")
    assert arp_for(two, east, "10.0.0.11", "10.0.0.1")
    stats = two.stats_snapshot()
    assert stats["switches_connected"] == 2
    assert set(stats["bridges"]) == {"east", "west"}
    assert stats["bridges"]["west"]["dpid"] == 4
    assert stats["bridges"]["west"]["external_ip"] == "198.51.100.2"
    assert stats["bridges"]["east"]["arp_replies"] == 1
    assert stats["bridges"]["west"]["arp_replies"] == 1
    assert stats["arp_replies"] == 2


def test_forwards_need_the_bridge_when_there_are_several(two):
    connect(two, 1), connect(two, 4)
    body = {"protocol": "tcp", "external_port": 8080, "internal_ip": "10.0.1.20",
            "internal_port": 80}
    with pytest.raises(ValueError, match="several NAT bridges"):
        two.add_forward(body)
    with pytest.raises(ValueError, match="no NAT bridge has dpid 7"):
        two.add_forward(body, 7)
    with pytest.raises(ValueError):            # 10.0.1.20 is not inside east's subnet
        two.add_forward(body, 1)
    assert two.add_forward(body, 4)["internal_ip"] == "10.0.1.20"
    assert two.list_forwards() == [{**body, "bridge": "west", "dpid": 4}]
    assert not two.remove_forward("tcp", 8080, 1)
    assert two.remove_forward("tcp", 8080, 4)


def test_metrics_have_a_series_per_bridge(two):
    connect(two, 1), connect(two, 4)
    for dp_id in (1, 4):     # the port lists: the uplink is port 1 on both
        dp = two.datapaths[dp_id]
        two._port_desc(ofp_event.EventOFPPortDescStatsReply(parser.OFPPortDescStatsReply(
            dp, body=[parser.OFPPort(port_no=1, hw_addr="00:00:00:00:00:01", name=b"up",
                                     config=0, state=0, curr=0, advertised=0, supported=0,
                                     peer=0, curr_speed=0, max_speed=0)])))
    text = exposition(two).decode()
    assert 'ryu_snat_bridge_sessions{bridge="east",dpid="0000000000000001"} 0.0' in text
    assert 'ryu_snat_bridge_sessions{bridge="west",dpid="0000000000000004"} 0.0' in text
