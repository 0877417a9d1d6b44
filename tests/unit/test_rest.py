"""REST under /nat through Ryu's own WSGI application (no server needed)."""
from __future__ import annotations

import json

import pytest
from ryu.app.wsgi import WSGIApplication
from webob import Request

from ryu_app.rest import APP_KEY, NatFallbackController, NatRestController


class StubApp:
    """Stands in for SnatApp: these tests only reach stats_snapshot()."""

    def __init__(self) -> None:
        self.rest_errors = 0
        self.broken = False

    def stats_snapshot(self) -> dict:
        if self.broken:
            raise KeyError("a bug of ours")
        return {"switches_connected": 1, "packet_ins": 3, "arp_replies": 2,
                "icmp_echo_replies": 0, "drops": {"ipv6": 1}}

    def count_rest_error(self) -> None:
        self.rest_errors += 1


@pytest.fixture
def stub():
    return StubApp()


@pytest.fixture
def wsgi(stub):
    app = WSGIApplication()
    app.register(NatRestController, {APP_KEY: stub})
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


def test_a_bug_behind_an_endpoint_is_a_counted_json_500(wsgi, stub):
    stub.broken = True
    status, body = call(wsgi, "GET", "/nat/stats")
    assert status == 500 and "internal error" in body["error"]
    assert stub.rest_errors == 1
    stub.broken = False
    assert call(wsgi, "GET", "/nat/stats")[0] == 200


@pytest.mark.parametrize("path", ["/nat/connections/%C2%B2", "/nat/connections/%D9%A3",
                                  "/nat/connections/12345678901"])
def test_ids_that_only_look_like_numbers_are_json_400(wsgi, path):
    status, body = call(wsgi, "GET", path)
    assert status == 400 and "connection id" in body["error"]


@pytest.mark.parametrize("body,problem", [
    (b"[" * 100000 + b"]" * 100000, "larger than"),
    (b"[" * 20000 + b"]" * 20000, "not JSON"),
    (b"{not json", "not JSON"),
])
def test_hostile_forward_bodies_are_json_400(wsgi, body, problem):
    resp = Request.blank("/nat/forwards", method="POST", body=body).get_response(wsgi)
    assert resp.status_int == 400 and problem in json.loads(resp.body)["error"]
