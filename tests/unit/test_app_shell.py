"""The Ryu shell ``SnatApp`` with Ryu's own event and message classes.

Only the datapath is fake: it records what the app sends through it.
"""
from __future__ import annotations

import pytest
from ryu.controller import ofp_event
from ryu.controller.handler import MAIN_DISPATCHER
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from helpers.frames import arp_request
from helpers.ryu_shell import RecordingDatapath, snat_app
from ryu_app import snat


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

    app._send_event(packet_in(new, 2, arp_request("00:00:00:00:00:01", "10.0.0.11", "10.0.0.1")), MAIN_DISPATCHER)
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
    app._send_event(packet_in(dp, 2, frame), MAIN_DISPATCHER)
    assert app.stats_snapshot()["handler_errors"] == 1
    app._send_event(packet_in(dp, 2, frame), MAIN_DISPATCHER)
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
        inbound = second.gateway.switches[1].nat.inbound_sessions
        assert ("tcp", 8080) in inbound.forwards and ("udp", 5300) not in inbound.forwards


def test_a_corrupt_forwards_file_is_logged_not_fatal(tmp_path, caplog):
    saved = tmp_path / "forwards.json"
    saved.write_text("[{\"protocol\": \"tcp\", \"external_port\": 99999}, oops")
    with snat_app(external_port="1", forwards_file=str(saved)) as (app_, _):
        assert app_.list_forwards() == []
    assert "forwards_file" in caplog.text and "unreadable" in caplog.text


class SocketDatapath(RecordingDatapath):
    """A datapath whose switch connection is a real socket pair, so the app
    can see whether messages wait unread (``switch`` writes them)."""

    def __init__(self, dpid: int) -> None:
        super().__init__(dpid)
        import socket
        import types
        mine, self.switch = socket.socketpair()
        mine.setblocking(False)
        self.socket = types.SimpleNamespace(fd=mine)
        self.state = MAIN_DISPATCHER
        self.writes = 0

    def send(self, buf: bytes) -> bool:
        self.writes += 1
        return super().send(buf)


def arp_from(n: int) -> bytes:
    return arp_request(f"00:00:00:00:01:{n:02x}", f"10.0.0.{n}", "10.0.0.1")


def replied_to(dp) -> list[str]:
    """The hosts (MACs) the gateway's ARP replies went to, in order."""
    from ryu.lib.packet import ethernet, packet
    return [packet.Packet(m.data).get_protocol(ethernet.ethernet).dst for m in dp.sent
            if isinstance(m, parser.OFPPacketOut)]


def test_a_packet_in_is_handled_at_once_while_the_controller_keeps_up(app):
    """Nothing queued, nothing unread from the switch: handled in the receive
    loop itself, no queue, no hop, no budget (a thousand in a row)."""
    dp = SocketDatapath(1)
    connect(app, dp)
    for _ in range(1000):
        app._send_event(packet_in(dp, 2, arp_from(11)), MAIN_DISPATCHER)
        assert len(app.packet_ins) == 0
    assert len(replied_to(dp)) == 1000
    assert app.stats_snapshot()["drops"].get("packet_in_budget", 0) == 0


def test_behind_the_switch_packet_ins_queue_per_source_and_are_served_in_turn(app, monkeypatch):
    """With messages unread in the connection, packet-ins queue; once the
    receive loop has read its chunk they are served, the sources in turn:
    h1's one request is answered second, not after h2's twenty, and the
    twenty-one answers leave in writes of eight, not one each."""
    dp = SocketDatapath(1)
    connect(app, dp)
    dp.switch.send(b"\x04" * 8)            # the switch has sent more than was read
    for _ in range(20):
        app._send_event(packet_in(dp, 3, arp_from(12)), MAIN_DISPATCHER)
    app._send_event(packet_in(dp, 2, arp_from(11)), MAIN_DISPATCHER)
    assert len(app.packet_ins) == 21 and replied_to(dp) == []
    dp.socket.fd.recv(64)                  # read: nothing waits any more
    monkeypatch.setattr(snat, "DRAIN_SLICE", 60.0)   # one slice, however slow this machine
    writes = dp.writes
    app._drain(dp)
    assert len(app.packet_ins) == 0 and dp.writes == writes + 3
    replies = replied_to(dp)
    assert len(replies) == 21
    assert replies.index("00:00:00:00:01:0b") == 1


def flow_polls(dp: RecordingDatapath) -> list:
    """The flow-stats requests the app sent (multipart, type OFPMP_FLOW)."""
    return [m for m in dp.sent if getattr(m, "msg_type", None) == ofp.OFPT_MULTIPART_REQUEST
            and int.from_bytes(m.buf[8:10], "big") == ofp.OFPMP_FLOW]


def test_a_slow_flow_stats_reply_still_counts(app, monkeypatch):
    """A switch that takes longer than ``stats_interval`` to answer: the next
    poll waits for the reply in flight instead of replacing it, so the reply
    is taken as ours and its counters reach the sessions."""
    dp = RecordingDatapath(1)
    connect(app, dp)
    app.datapaths[1] = dp
    clock = [1000.0]
    monkeypatch.setattr(snat.time, "monotonic", lambda: clock[0])

    adoption = len(flow_polls(dp))          # the dump asked for on connect

    def polls():
        return flow_polls(dp)[adoption:]

    app._poll_stats()
    first = polls()[-1]
    clock[0] += app.gateway.controller.stats_interval      # no answer yet
    app._poll_stats()
    assert polls() == [first], "a second poll replaced the one in flight"

    counted = []
    monkeypatch.setattr(app.gateway, "flow_stats_reply",
                        lambda dpid, body, more, polled=True: counted.append(polled) or [])
    reply = parser.OFPFlowStatsReply(dp, body=[], flags=0)
    reply.xid = first.xid
    app._flow_stats(ofp_event.EventOFPFlowStatsReply(reply))
    assert counted == [True]
    assert app.stats_poll_seconds[1] == app.gateway.controller.stats_interval

    app._poll_stats()                                        # answered: poll again
    assert len(polls()) == 2


def test_a_poll_never_answered_is_given_up(app, monkeypatch):
    dp = RecordingDatapath(1)
    connect(app, dp)
    app.datapaths[1] = dp
    clock = [1000.0]
    monkeypatch.setattr(snat.time, "monotonic", lambda: clock[0])
    adoption = len(flow_polls(dp))
    app._poll_stats()
    clock[0] += 3 * app.gateway.controller.stats_interval
    app._poll_stats()
    polls = flow_polls(dp)[adoption:]
    assert len(polls) == 2 and app._poll_xids[1] == polls[1].xid
