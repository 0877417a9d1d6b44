"""REST under /nat through Ryu's own WSGI application (no server needed)."""
from __future__ import annotations

import json

import pytest
from ryu.app.wsgi import WSGIApplication
from webob import Request

from ryu_app.rest import APP_KEY, NatFallbackController, NatRestController


class StubApp:
    """Stands in for SnatApp: the REST layer only calls stats_snapshot()."""

    def stats_snapshot(self) -> dict:
        return {"switches_connected": 1, "packet_ins": 3, "arp_replies": 2,
                "icmp_echo_replies": 0, "drops": {"ipv6": 1}}


@pytest.fixture
def wsgi():
    app = WSGIApplication()
    app.register(NatRestController, {APP_KEY: StubApp()})
    app.register(NatFallbackController, {})
    return app


def call(wsgi, method: str, path: str) -> tuple[int, dict]:
    resp = Request.blank(path, method=method).get_response(wsgi)
    assert resp.content_type == "application/json"
    return resp.status_int, json.loads(resp.body)


def test_stats_is_json(wsgi):
    status, body = call(wsgi, "GET", "/nat/stats")
    assert status == 200
    assert body["switches_connected"] == 1 and body["drops"] == {"ipv6": 1}


@pytest.mark.parametrize("method,path", [
    ("GET", "/nat/nothing-here"), ("GET", "/nat"), ("GET", "/nat/"),
    ("POST", "/nat/stats"), ("DELETE", "/nat/stats/1"),
])
def test_unknown_resources_are_json_404(wsgi, method, path):
    status, body = call(wsgi, method, path)
    assert status == 404
    assert path in body["error"]


def test_unknown_query_parameter_is_json_400(wsgi):
    status, body = call(wsgi, "GET", "/nat/stats?verbose=1")
    assert status == 400
    assert "verbose" in body["error"]
