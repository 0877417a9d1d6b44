"""GET /nat/connections in pages (?limit=N&after=ID): every session exactly
once, in id order, each page bounded work however large the table."""
from __future__ import annotations

import json
import time

import pytest
from webob import Request

from helpers.fake_switch import Wire
from helpers.nat_lab import H1, PORTS, S1, TCP, UDP, nat, open_flow
from helpers.ryu_shell import wired_app
from ryu_app.ops import views


@pytest.fixture
def rig():
    with wired_app() as rigged:
        yield rigged


def get(wsgi, path: str):
    resp = Request.blank(path).get_response(wsgi)
    assert resp.content_type == "application/json", resp
    return resp.status_int, json.loads(resp.body), resp.headers


def sessions(wire: Wire, n: int, first_host: int = 2, proto: int = UDP) -> list[int]:
    """``n`` sessions made in the engine (no flows: listing does not care)."""
    ct, now = nat(wire).ct, time.monotonic()
    return [ct.create_outbound(proto, f"10.0.0.{first_host + i % 50}", 20000 + i // 50,
                               S1.ip, 53, now).id for i in range(n)]


def walk(wsgi, path: str) -> tuple[list[int], int]:
    """Follow the Link headers from ``path``; (ids seen, pages fetched)."""
    ids, pages = [], 0
    while path:
        status, body, headers = get(wsgi, path)
        assert status == 200
        ids += [c["id"] for c in body]
        pages += 1
        link = headers.get("Link")
        if link is None:
            assert "X-Next-After" not in headers
            break
        assert link.endswith('>; rel="next"')
        path = link[1:link.index(">")]
        assert f"after={headers['X-Next-After']}" in path
    return ids, pages


def test_pages_give_every_session_once_in_id_order(rig):
    app, wsgi, wire = rig
    first, _ = open_flow(wire, H1, 40000, S1, 53, UDP)      # one with flows, like the others
    ids = [first.id] + sessions(wire, 24)
    seen, pages = walk(wsgi, "/nat/connections?limit=10")
    assert seen == sorted(ids) and pages == 3
    status, body, headers = get(wsgi, f"/nat/connections?limit=10&after={ids[9]}")
    assert [c["id"] for c in body] == ids[10:20] and headers["X-Next-After"] == str(ids[19])


def test_no_parameters_is_the_first_thousand(rig):
    app, wsgi, wire = rig
    ids = sessions(wire, 1001)
    status, body, headers = get(wsgi, "/nat/connections")
    assert status == 200 and [c["id"] for c in body] == ids[:1000]
    assert headers["X-Next-After"] == str(ids[999])
    assert [c["id"] for c in get(wsgi, headers["Link"][1:].split(">")[0])[1]] == ids[1000:]


def test_small_tables_answer_in_one_page_without_a_link(rig):
    app, wsgi, wire = rig
    ids = sessions(wire, 3)
    status, body, headers = get(wsgi, "/nat/connections")
    assert [c["id"] for c in body] == ids and "Link" not in headers
    assert get(wsgi, f"/nat/connections?after={ids[-1]}")[1] == []
    assert get(wsgi, "/nat/connections?limit=3")[2].get("Link") is None


def test_filters_carry_over_to_the_next_page(rig):
    app, wsgi, wire = rig
    udp = sessions(wire, 6)
    tcp = sessions(wire, 6, first_host=60, proto=TCP)
    seen, pages = walk(wsgi, "/nat/connections?protocol=tcp&limit=4")
    assert seen == tcp and pages == 2
    seen, _ = walk(wsgi, "/nat/connections?internal_ip=10.0.0.2&limit=1")
    assert seen == [udp[0]]


def test_a_filter_that_rarely_matches_looks_at_a_bounded_share(rig, monkeypatch):
    app, wsgi, wire = rig
    monkeypatch.setattr(views, "SCAN_BUDGET", 10)
    ids = sessions(wire, 30, first_host=2)
    wanted = sessions(wire, 1, first_host=99)
    status, body, headers = get(wsgi, "/nat/connections?internal_ip=10.0.0.99")
    assert body == [] and headers["X-Next-After"] == str(ids[9]), "the budget ends the page"
    seen, pages = walk(wsgi, "/nat/connections?internal_ip=10.0.0.99")
    assert seen == wanted and pages == 4


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"), ("limit=10001", "limit"), ("limit=abc", "limit"), ("limit=-1", "limit"),
    ("limit=", "limit"), ("limit=%C2%B2", "limit"), ("after=x", "after"),
    ("after=4294967296", "after"), ("after=-5", "after"), ("limit=5&limit=6", "limit"),
])
def test_bad_page_parameters_are_json_400_naming_the_field(rig, query, field):
    app, wsgi, _wire = rig
    status, body, _ = get(wsgi, f"/nat/connections?{query}")
    assert status == 400
    assert body["error"].startswith(field) or f"parameter {field}" in body["error"]
    assert app.gateway.counters.rest_errors == 0, "a caller's mistake is not our bug"


def test_largest_page_and_cursor_bounds_are_accepted(rig):
    app, wsgi, wire = rig
    ids = sessions(wire, 2)
    assert [c["id"] for c in get(wsgi, "/nat/connections?limit=10000&after=0")[1]] == ids
    assert get(wsgi, "/nat/connections?after=4294967295")[1] == []


def test_a_page_never_splits_an_id_across_switches(rig):
    app, wsgi, wire = rig
    app.gateway.switch_connected(2)
    app.gateway.ports_described(2, PORTS)
    one = sessions(wire, 3)
    ct2, now = app.gateway.switches[2].nat.ct, time.monotonic()
    two = [ct2.create_outbound(UDP, "10.0.0.40", 30000 + i, S1.ip, 53, now).id for i in range(3)]
    assert one == two   # each switch numbers its own sessions
    status, body, headers = get(wsgi, "/nat/connections?limit=3")
    assert [(c["id"], c["dpid"]) for c in body] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert headers["X-Next-After"] == "2"
    rest = get(wsgi, "/nat/connections?limit=3&after=2")[1]
    assert [(c["id"], c["dpid"]) for c in rest] == [(3, 1), (3, 2)]
