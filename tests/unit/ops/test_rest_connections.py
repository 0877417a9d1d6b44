"""REST over the real app: SnatApp's own WSGI routes, its gateway on a fake
switch, sessions made by real frames.  What an operator's curl would see."""
from __future__ import annotations

import json
import time

import pytest
from webob import Request

from helpers.fake_switch import Wire
from helpers.nat_lab import (H1, H2, PORTS, S1, S2, TCP, UDP, UPLINK, flows_of, in_frame,
                             nat, open_flow, out_frame)
from helpers.ryu_shell import WireDatapath, snat_app, wired_app

FIELDS = {"id", "protocol", "state", "internal_ip", "internal_port", "external_ip",
          "external_port", "remote_ip", "remote_port", "packets_out", "bytes_out",
          "packets_in", "bytes_in", "created", "last_seen", "expires_in"}


@pytest.fixture
def rig():
    with wired_app() as rigged:
        yield rigged


def rest(wsgi, method: str, path: str) -> tuple[int, object]:
    resp = Request.blank(path, method=method).get_response(wsgi)
    assert resp.content_type == "application/json", resp
    return resp.status_int, json.loads(resp.body)


def test_connections_list_every_field_and_filter(rig):
    app, wsgi, wire = rig
    udp_s, _ = open_flow(wire, H1, 40000, S1, 53, UDP)
    tcp_s, _ = open_flow(wire, H2, 41000, S2, 80, TCP)
    status, conns = rest(wsgi, "GET", "/nat/connections")
    assert status == 200 and [c["id"] for c in conns] == [udp_s.id, tcp_s.id]
    assert all(FIELDS <= set(c) for c in conns)
    udp_c = conns[0]
    assert (udp_c["protocol"], udp_c["internal_ip"], udp_c["internal_port"]) == ("udp", H1.ip, 40000)
    assert (udp_c["external_ip"], udp_c["remote_ip"], udp_c["remote_port"]) == \
        ("198.51.100.1", S1.ip, 53)
    assert udp_c["state"] == "UNREPLIED" and 299 <= udp_c["expires_in"] <= 300
    assert [c["id"] for c in rest(wsgi, "GET", "/nat/connections?protocol=tcp")[1]] == [tcp_s.id]
    assert [c["id"] for c in rest(wsgi, "GET", f"/nat/connections?internal_ip={H1.ip}")[1]] \
        == [udp_s.id]
    assert rest(wsgi, "GET", "/nat/connections?protocol=udp&internal_ip=10.0.0.99")[1] == []


@pytest.mark.parametrize("query,problem", [
    ("protocol=sctp", "protocol must be one of"), ("internal_ip=10.0.0", "not an IPv4"),
    ("state=open", "state must be one of"), ("remote_port=70000", "remote_port must be"),
    ("external_ip=1.2.3", "not an IPv4"), ("dpid=zz", "dpid must be"), ("shape=round", "unknown query parameter"), ("protocol=tcp&protocol=udp", "2 times"),
])
def test_bad_filters_are_json_400(rig, query, problem):
    status, body = rest(rig[1], "GET", f"/nat/connections?{query}")
    assert status == 400 and problem in body["error"]


def test_one_connection_and_its_counters_from_flow_stats(rig):
    app, wsgi, wire = rig
    s, _ = open_flow(wire, H1, 40000, S1, 53, UDP)
    for _ in range(3):
        wire.send(H1.port, out_frame(H1, 40000, S1, 53, payload=b"x" * 100))
    wire.send(UPLINK, in_frame(S1, 53, s.external_port, payload=b"y" * 200))
    wire.poll_stats()
    status, conn = rest(wsgi, "GET", f"/nat/connections/{s.id}")
    assert status == 200 and conn["id"] == s.id and conn["state"] == "REPLIED"
    assert (conn["packets_out"], conn["packets_in"]) == (4, 1)
    assert conn["bytes_in"] == len(in_frame(S1, 53, s.external_port, payload=b"y" * 200))
    assert rest(wsgi, "GET", "/nat/connections/999")[0] == 404


def test_delete_ends_the_session_and_its_flows(rig):
    app, wsgi, wire = rig
    s, _ = open_flow(wire, H1, 40000, S1, 53, UDP)
    assert flows_of(wire, s.id)
    status, body = rest(wsgi, "DELETE", f"/nat/connections/{s.id}")
    assert status == 200 and body == {"deleted": s.id, "dpid": 1}
    assert flows_of(wire, s.id) == {}, "the switch still holds the session's flows"
    assert rest(wsgi, "GET", f"/nat/connections/{s.id}")[0] == 404
    assert rest(wsgi, "DELETE", f"/nat/connections/{s.id}")[0] == 404
    stats = rest(wsgi, "GET", "/nat/stats")[1]
    assert (stats["active"], stats["created"], stats["removed"]) == (0, 1, 1)
    assert stats["ports_in_use"] == {"tcp": 0, "udp": 0, "icmp": 0}
    assert stats["ports_quarantined"]["udp"] == 1


def test_stats_count_packet_ins_drops_and_ports(rig):
    app, wsgi, wire = rig
    open_flow(wire, H1, 40000, S1, 53, UDP)
    wire.send(H1.port, out_frame(H1, 40001, S1, 80, proto=TCP, bits=0x10))   # mid-stream ACK
    status, stats = rest(wsgi, "GET", "/nat/stats")
    assert status == 200
    assert stats["switches_connected"] == 1 and stats["active"] == 1 and stats["created"] == 1
    assert stats["packet_ins"] == wire.packet_ins
    assert stats["drops"] == {"tcp_not_syn": 1}
    assert stats["ports_in_use"] == {"tcp": 0, "udp": 1, "icmp": 0}
    assert nat(wire).ct.stats().active == 1


def post(wsgi, path: str, body: dict) -> tuple[int, dict]:
    resp = Request.blank(path, method="POST", body=json.dumps(body).encode()).get_response(wsgi)
    return resp.status_int, json.loads(resp.body)


@pytest.mark.parametrize("connected", [True, False])
def test_forwards_that_clash_are_refused_with_or_without_a_switch(connected):
    with snat_app(forwards="tcp:8080=10.0.0.11:80") as (app, wsgi):
        if connected:
            wire = Wire(app.gateway)
            wire.connect(PORTS)
            app.datapaths[1] = WireDatapath(wire)
        same_port = {"protocol": "tcp", "external_port": 8080, "internal_ip": "10.0.0.12",
                     "internal_port": 80}
        same_inside = {"protocol": "tcp", "external_port": 8081, "internal_ip": "10.0.0.11",
                       "internal_port": 80}
        status, body = post(wsgi, "/nat/forwards", same_port)
        assert status == 400 and "already forwarded to 10.0.0.11:80" in body["error"]
        status, body = post(wsgi, "/nat/forwards", same_inside)
        assert status == 400 and "already forwarded from port 8080" in body["error"]
        other = {**same_inside, "internal_port": 81}
        assert post(wsgi, "/nat/forwards", other) == (200, other)
        assert rest(wsgi, "GET", "/nat/forwards")[1] == [
            {"protocol": "tcp", "external_port": 8080, "internal_ip": "10.0.0.11",
             "internal_port": 80}, other]
