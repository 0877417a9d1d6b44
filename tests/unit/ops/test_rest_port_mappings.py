"""What operators see of the mappings hosts made over PCP and NAT-PMP:
``GET /nat/port-mappings``, ``/nat/stats`` ``port_control``, ``/metrics``
and ``snatctl mappings``, on the real app with a fake switch."""
from __future__ import annotations

import json
import struct

from click.testing import CliRunner
from webob import Request

from helpers.nat_lab import H1, UDP, ip_frame
from helpers.ryu_shell import wired_app
from ryu_app.ops import cli


def natpmp_map(op: int, iport: int, eport: int, lifetime: int) -> bytes:
    return struct.pack("!BBHHHI", 0, op, 0, iport, eport, lifetime)


def get(wsgi, path: str):
    resp = Request.blank(path).get_response(wsgi)
    return resp.status_int, resp.body.decode()


def test_a_hosts_mapping_shows_in_rest_stats_and_metrics(monkeypatch):
    with wired_app() as (app, wsgi, wire):
        wire.send(H1.port, ip_frame(H1.mac, H1.ip, 5350, "10.0.0.1", 5351, proto=UDP,
                                    payload=natpmp_map(2, 80, 8080, 600)))
        wire.send(H1.port, ip_frame(H1.mac, H1.ip, 5350, "10.0.0.1", 5351, proto=UDP,
                                    payload=b"\x07\x01"))
        status, body = get(wsgi, "/nat/port-mappings")
        assert status == 200
        [row] = json.loads(body)
        assert {k: row[k] for k in ("protocol", "internal_ip", "internal_port", "external_ip",
                                    "external_port", "origin", "lifetime", "peer", "dpid")} == {
            "protocol": "tcp", "internal_ip": H1.ip, "internal_port": 80,
            "external_ip": "198.51.100.1", "external_port": 8080, "origin": "natpmp",
            "lifetime": 600, "peer": None, "dpid": "0000000000000001"}
        assert 590 <= row["expires_in"] <= 600
        assert json.loads(get(wsgi, "/nat/port-mappings?dpid=2")[1]) == []
        assert get(wsgi, "/nat/port-mappings?dpid=x")[0] == 400
        stats = json.loads(get(wsgi, "/nat/stats")[1])["port_control"]
        assert stats["mappings"] == {"pcp": 0, "natpmp": 1}
        assert stats["requests"]["natpmp tcp success"] == 1
        assert stats["requests"]["pcp map unsupp_version"] == 1
        metrics = get(wsgi, "/metrics")[1]
        assert 'ryu_snat_port_control_mappings{origin="natpmp"} 1.0' in metrics
        assert 'ryu_snat_port_control_requests_total{what="natpmp tcp success"} 1.0' in metrics

        monkeypatch.setattr(cli.Api, "get", lambda self, path, **_: json.loads(get(wsgi, path)[1]))
        shown = CliRunner().invoke(cli.cli, ["mappings"])
        assert shown.exit_code == 0, shown.output
        assert "10.0.0.11:80" in shown.output and "198.51.100.1:8080" in shown.output
        assert "natpmp" in shown.output


def test_who_names_the_host_that_mapped_the_port():
    with wired_app() as (app, wsgi, wire):
        wire.send(H1.port, ip_frame(H1.mac, H1.ip, 5350, "10.0.0.1", 5351, proto=UDP,
                                    payload=natpmp_map(1, 5000, 15000, 600)))
        status, body = get(wsgi, "/nat/who?external=198.51.100.1:15000")
        assert status == 200
        [holder] = json.loads(body)["holders"]
        assert (holder["source"], holder["internal_ip"], holder["internal_port"],
                holder["port_mapping"], holder["until"]) == ("live", H1.ip, 5000, "natpmp", None)


def test_an_operator_revokes_a_hosts_mapping():
    with wired_app() as (app, wsgi, wire):
        wire.send(H1.port, ip_frame(H1.mac, H1.ip, 5350, "10.0.0.1", 5351, proto=UDP,
                                    payload=natpmp_map(2, 80, 8080, 600)))

        def call(method: str, path: str):
            resp = Request.blank(path, method=method).get_response(wsgi)
            return resp.status_int, json.loads(resp.body)

        assert call("DELETE", "/nat/port-mappings/tcp/10.0.0.11/81")[0] == 404
        assert call("DELETE", "/nat/port-mappings/icmp/10.0.0.11/80")[0] == 400
        assert call("DELETE", "/nat/port-mappings/tcp/10.0.0.300/80")[0] == 400
        assert call("DELETE", "/nat/port-mappings/tcp/10.0.0.11/80?peer=x")[0] == 400
        status, body = call("DELETE", "/nat/port-mappings/tcp/10.0.0.11/80")
        assert status == 200 and body["dpids"] == ["0000000000000001"], body
        assert call("GET", "/nat/port-mappings") == (200, [])
        assert app.gateway.switches[1].nat.ct.mapping_of_port(6, 8080) is None
