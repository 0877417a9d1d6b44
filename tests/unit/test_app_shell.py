"""The Ryu shell ``SnatApp`` with Ryu's own event and message classes.

Only the datapath is fake: it records what the app sends through it.
"""
from __future__ import annotations

import pytest
from ryu.controller import ofp_event
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from helpers.frames import arp_request
from helpers.ryu_shell import RecordingDatapath, snat_app


@pytest.fixture
def app():
    with snat_app(external_port="1") as (application, _wsgi):
        yield application


def connect(app, dp: RecordingDatapath) -> None:
    app._switch_features(ofp_event.EventOFPSwitchFeatures(parser.OFPSwitchFeatures(dp)))


def packet_in(dp: RecordingDatapath, in_port: int, data: bytes):
    msg = parser.OFPPacketIn(dp, reason=ofp.OFPR_NO_MATCH, table_id=0, cookie=0,
                             match=parser.OFPMatch(in_port=in_port), data=data)
    return ofp_event.EventOFPPacketIn(msg)


def test_reconnect_survives_the_old_connections_death(app):
    """Ryu reaps a switch's old connection after the new one said hello; the
    old one's DEAD event must not make the app forget the live switch."""
    old, new = RecordingDatapath(1), RecordingDatapath(1)
    connect(app, old)
    connect(app, new)
    app._switch_gone(ofp_event.EventOFPStateChange(old))
    assert 1 in app.gateway.switches

    app._packet_in(packet_in(new, 2, arp_request("00:00:00:00:00:01", "10.0.0.11", "10.0.0.1")))
    replies = [m for m in new.sent if isinstance(m, parser.OFPPacketOut)]
    assert replies, "the reconnected switch's ARP for the gateway went unanswered"
    assert app.gateway.counters.drops.get("unknown_switch", 0) == 0


def test_the_live_connections_death_forgets_the_switch(app):
    dp = RecordingDatapath(1)
    connect(app, dp)
    app._switch_gone(ofp_event.EventOFPStateChange(dp))
    assert 1 not in app.gateway.switches and 1 not in app.datapaths


def test_a_bug_in_a_handler_is_counted_and_the_next_event_is_handled(app, monkeypatch):
    dp = RecordingDatapath(1)
    connect(app, dp)
    real = app.gateway.packet_in
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug of ours")
        return real(*args, **kwargs)

    monkeypatch.setattr(app.gateway, "packet_in", flaky)
    frame = arp_request("00:00:00:00:00:01", "10.0.0.11", "10.0.0.1")
    app._packet_in(packet_in(dp, 2, frame))
    assert app.stats_snapshot()["handler_errors"] == 1
    app._packet_in(packet_in(dp, 2, frame))
    assert [m for m in dp.sent if isinstance(m, parser.OFPPacketOut)], "second ARP unanswered"


def test_forwards_added_over_rest_survive_a_restart(tmp_path):
    """With ``forwards_file`` set, a new controller process has them again and
    installs them on the switch it meets; a removed one stays removed."""
    saved = tmp_path / "forwards.json"
    body = {"protocol": "tcp", "external_port": 8080, "internal_ip": "10.0.0.11",
            "internal_port": 80}
    gone = {"protocol": "udp", "external_port": 5300, "internal_ip": "10.0.0.12",
            "internal_port": 53}
    with snat_app(external_port="1", forwards_file=str(saved)) as (first, _):
        first.add_forward(body)
        first.add_forward(gone)
        assert first.remove_forward("udp", 5300)
    with snat_app(external_port="1", forwards_file=str(saved)) as (second, _):
        assert second.list_forwards() == [body]
        dp = RecordingDatapath(1)
        connect(second, dp)
        inbound = second.gateway.switches[1].nat.inbound
        assert ("tcp", 8080) in inbound.forwards and ("udp", 5300) not in inbound.forwards


def test_a_corrupt_forwards_file_is_logged_not_fatal(tmp_path, caplog):
    saved = tmp_path / "forwards.json"
    saved.write_text("[{\"protocol\": \"tcp\", \"external_port\": 99999}, oops")
    with snat_app(external_port="1", forwards_file=str(saved)) as (app_, _):
        assert app_.list_forwards() == []
    assert "forwards_file" in caplog.text and "unreadable" in caplog.text
