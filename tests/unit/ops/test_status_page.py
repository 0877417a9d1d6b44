"""GET / (the status page) and what it reads, through the real SnatApp's
WSGI application: the page and its assets are served, every JSON call the
page makes answers without the rest_token, and /nat/bridges lists the
bridge with its switch.  (The page in a browser: tests/integration/
test_status_page.py.)"""
from __future__ import annotations

import json
import re

import pytest
from webob import Request

from helpers.nat_lab import H1, S1, open_flow
from helpers.ryu_shell import wired_app
from ryu_app.ops.status_page import ASSETS

TOKEN = "a-token-of-twenty-chars"


@pytest.fixture
def rig():
    with wired_app(rest_token=TOKEN) as rigged:
        yield rigged


def get(wsgi, path: str):
    return Request.blank(path).get_response(wsgi)


@pytest.mark.parametrize("path,kind", [("/", "text/html"), ("/status.js", "text/javascript"),
                                       ("/status.css", "text/css")])
def test_the_page_and_its_assets_are_served(rig, path, kind):
    resp = get(rig[1], path)
    assert resp.status_int == 200 and resp.content_type == kind
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.body


def test_every_call_the_page_makes_answers_without_the_token(rig):
    """The page holds no secret: it only reads, and reads need no token."""
    _app, wsgi, wire = rig
    open_flow(wire, H1, 5000, S1, 53)
    script = get(wsgi, "/status.js").text
    paths = set(re.findall(r'getJSON\("(/[^"?]+)', script))
    assert paths == {"/nat/stats", "/nat/ha", "/nat/bridges", "/nat/connections"}
    assert "method" not in script           # no POST/DELETE from the page
    for path in sorted(paths):
        resp = get(wsgi, path)
        assert resp.status_int == 200, (path, resp.body)
    page = get(wsgi, f"/nat/connections?internal_ip={H1.ip}&limit=50")
    assert [s["internal_ip"] for s in json.loads(page.body)] == [H1.ip]
    assert get(wsgi, "/").text.count('src="/status.js"') == 1


def test_bridges_lists_each_profile_with_its_switch(rig):
    _app, wsgi, wire = rig
    open_flow(wire, H1, 5000, S1, 53)
    body = json.loads(get(wsgi, "/nat/bridges").body)
    assert body == [{"bridge": "nat", "dpid": None, "external_ip": "198.51.100.1",
                     "external_pool": ["198.51.100.1"],
                     "switches": [{"dpid": f"{wire.switch.dpid:016x}", "active": 1,
                                   "created": 1}]}]
