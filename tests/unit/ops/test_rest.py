"""REST under /nat through Ryu's own WSGI application (no server needed)."""
from __future__ import annotations

import io
import ipaddress
import json
import subprocess
import sys

import pytest
from ryu.app.wsgi import WSGIApplication
from webob import Request

from ryu_app.settings import forwards
from ryu_app.ops.rest import APP_KEY, NatFallbackController, NatRestController


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


@pytest.mark.parametrize("body,status,problem", [
    (b"[" * 100000 + b"]" * 100000, 413, "larger than"),
    (b"[" * 20000 + b"]" * 20000, 400, "not JSON"),
    (b"{not json", 400, "not JSON"),
])
def test_hostile_forward_bodies_are_json_errors(wsgi, body, status, problem):
    resp = Request.blank("/nat/forwards", method="POST", body=body).get_response(wsgi)
    assert resp.status_int == status and problem in json.loads(resp.body)["error"]


class _Unread(io.BytesIO):
    """A request body that counts what was read of it."""

    read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def test_a_body_too_large_is_refused_by_its_content_length_unread(wsgi):
    """A client announcing 100 MB is answered at once: nothing is read."""
    body = _Unread(b"x" * 1024)
    req = Request.blank("/nat/forwards", method="POST")
    req.environ["wsgi.input"], req.environ["CONTENT_LENGTH"] = body, str(100 * 2 ** 20)
    resp = req.get_response(wsgi)
    assert resp.status_int == 413 and "Content-Length" in json.loads(resp.body)["error"]
    assert body.read_bytes == 0


def test_a_chunked_body_is_read_no_further_than_the_bound(wsgi):
    body = _Unread(b"[" * 200000)
    req = Request.blank("/nat/forwards", method="POST")
    req.environ["wsgi.input"] = body
    req.environ.pop("CONTENT_LENGTH", None)
    req.headers["Transfer-Encoding"] = "chunked"
    resp = req.get_response(wsgi)
    assert resp.status_int == 413
    assert body.read_bytes <= 64 * 1024 + 1


# -- a state-changing request needs the configured bearer token ----------------------
TOKEN = "0123456789abcdef-token"
INSIDE, GATEWAY = ipaddress.IPv4Network("10.0.0.0/24"), ipaddress.IPv4Address("10.0.0.1")
FORWARD = {"protocol": "tcp", "external_port": 8080, "internal_ip": "10.0.0.11",
           "internal_port": 80}


class ForwardsApp(StubApp):
    """Forwards validated as SnatApp.add_forward does (``forwards.from_json``)."""

    def __init__(self, token: str | None) -> None:
        super().__init__()
        self.rest_token = token
        self.added: list[dict] = []

    def add_forward(self, body, dpid=None):
        fwd = forwards.from_json(body, INSIDE, GATEWAY).as_dict()
        self.added.append(fwd)
        return fwd

    def remove_forward(self, protocol: str, port: int, dpid=None) -> bool:
        return any(f["protocol"] == protocol and f["external_port"] == port for f in self.added)


def guarded_wsgi(token: str | None) -> tuple[WSGIApplication, ForwardsApp]:
    app, stub = WSGIApplication(), ForwardsApp(token)
    app.register(NatRestController, {APP_KEY: stub})
    app.register(NatFallbackController, {})
    return app, stub


def send(wsgi, method: str, path: str, body=None, token: str | None = None, raw=None):
    req = Request.blank(path, method=method)
    if body is not None or raw is not None:
        req.body = raw if raw is not None else json.dumps(body).encode()
        req.content_type = "application/json"
    if token is not None:
        req.headers["Authorization"] = f"Bearer {token}"
    resp = req.get_response(wsgi)
    assert resp.content_type == "application/json"
    return resp


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/nat/forwards", FORWARD),
    ("DELETE", "/nat/forwards/tcp/8080", None),
    ("DELETE", "/nat/connections/7", None),
])
def test_changes_without_the_token_are_a_json_401(method, path, body):
    wsgi, stub = guarded_wsgi(TOKEN)
    for token in (None, "not-the-token-at-all", TOKEN[:-1]):
        resp = send(wsgi, method, path, body, token=token)
        assert resp.status_int == 401, (token, resp.body)
        assert "Authorization: Bearer" in json.loads(resp.body)["error"]
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert stub.added == []


def test_the_token_lets_changes_through_and_reads_need_none():
    wsgi, stub = guarded_wsgi(TOKEN)
    assert send(wsgi, "POST", "/nat/forwards", FORWARD, token=TOKEN).status_int == 200
    assert send(wsgi, "DELETE", "/nat/forwards/tcp/8080", token=TOKEN).status_int == 200
    assert send(wsgi, "GET", "/nat/stats").status_int == 200
    assert stub.added == [FORWARD]


def test_without_a_configured_token_changes_need_none():
    wsgi, stub = guarded_wsgi(None)
    assert send(wsgi, "POST", "/nat/forwards", FORWARD).status_int == 200


@pytest.mark.parametrize("change,field", [
    ({"external_port": "8080"}, "external_port"),
    ({"external_port": 70000}, "external_port"),
    ({"external_port": True}, "external_port"),
    ({"internal_port": 0}, "internal_port"),
    ({"internal_ip": "192.0.2.7"}, "internal_ip"),
    ({"internal_ip": 167772171}, "internal_ip"),
    ({"protocol": "sctp"}, "protocol"),
    ({"comment": "x"}, "comment"),
])
def test_every_bad_field_is_a_400_that_names_it(change, field):
    wsgi, stub = guarded_wsgi(TOKEN)
    resp = send(wsgi, "POST", "/nat/forwards", {**FORWARD, **change}, token=TOKEN)
    error = json.loads(resp.body)["error"]
    assert resp.status_int == 400 and field in error, error
    assert "Traceback" not in error and stub.added == []


@pytest.mark.parametrize("raw", [b"", b"null", b"[1, 2]", b'"tcp"', b"\xff\xfe", b"{"])
def test_bodies_that_are_not_a_forward_object_are_a_400(raw):
    wsgi, stub = guarded_wsgi(TOKEN)
    resp = send(wsgi, "POST", "/nat/forwards", raw=raw, token=TOKEN)
    assert resp.status_int == 400, resp.body
    assert "Traceback" not in resp.text and stub.added == []


def test_the_app_answers_on_loopback_unless_told_otherwise():
    """Ryu's default is 0.0.0.0; importing the app makes it 127.0.0.1, and a
    value given by the operator still wins (a fresh interpreter: Ryu's CONF
    is global)."""
    code = ("import sys, ryu_app.snat; from ryu import cfg; "
            "cfg.CONF(args=sys.argv[1:], project='ryu', default_config_files=[]); "
            "print(cfg.CONF.wsapi_host)")
    run = lambda *args: subprocess.run([sys.executable, "-c", code, *args], check=True,
                                       capture_output=True, text=True).stdout.strip()
    assert run() == "127.0.0.1"
    assert run("--wsapi-host", "0.0.0.0") == "0.0.0.0"


def test_the_openflow_listener_is_on_loopback_unless_told_otherwise():
    """Ryu's OpenFlow listener is on every address by default, and whoever
    connects is served as a switch: importing the app makes it 127.0.0.1;
    the operator's value still wins."""
    code = ("import sys, ryu_app.snat; from ryu import cfg; "
            "cfg.CONF(args=sys.argv[1:], project='ryu', default_config_files=[]); "
            "print(cfg.CONF.ofp_listen_host)")
    run = lambda *args: subprocess.run([sys.executable, "-c", code, *args], check=True,  # noqa: E731
                                       capture_output=True, text=True).stdout.strip()
    assert run() == "127.0.0.1"
    assert run("--ofp-listen-host", "192.0.2.1") == "192.0.2.1"


@pytest.mark.parametrize("wsapi,token,ofp,tls,said", [
    ("127.0.0.1", None, "127.0.0.1", False, []),
    ("0.0.0.0", None, "127.0.0.1", False, ["REST API listens on 0.0.0.0 without rest_token"]),
    ("0.0.0.0", "t0ken-t0ken-t0ken", "127.0.0.1", False, []),
    ("127.0.0.1", None, "", False, ["OpenFlow listener is on 0.0.0.0 without TLS"]),
    ("::1", None, "192.0.2.1", True, []),
])
def test_start_up_says_who_can_reach_the_controller(wsapi, token, ofp, tls, said):
    from ryu_app.snat import exposure_warnings
    warnings = exposure_warnings(wsapi, token, ofp, tls)
    assert len(warnings) == len(said) and all(w in line for w, line in zip(said, warnings))


# -- GET /nat/events: the feed behind snatctl watch ----------------------------------
class FeedApp(StubApp):
    def __init__(self) -> None:
        super().__init__()
        from helpers.nat_lab import H1, S1, make_lab, open_flow
        self.lab = make_lab()
        self.gateway = self.lab.gateway
        self.event_feed = self.gateway.events
        self.open = lambda sport: open_flow(self.lab, H1, sport, S1, 53)


def test_events_long_poll_from_now_on():
    app, stub = WSGIApplication(), FeedApp()
    app.register(NatRestController, {APP_KEY: stub})
    start = json.loads(Request.blank("/nat/events").get_response(app).body)
    assert start["events"] == []
    session, _ = stub.open(5000)
    page = json.loads(Request.blank(f"/nat/events?after={start['last']}&wait=0")
                      .get_response(app).body)
    [event] = page["events"]
    assert (event["event"], event["id"], event["internal_port"], event["external_port"],
            event["state"]) == ("new", session.id, 5000, session.external_port, "UNREPLIED")
    assert page["last"] == event["seq"] and page["missed"] == 0
    empty = json.loads(Request.blank(f"/nat/events?after={page['last']}&wait=0.2")
                       .get_response(app).body)
    assert empty["events"] == []


@pytest.mark.parametrize("query", ["after=-1", "after=x", "after=0&wait=31", "after=0&wait=soon",
                                   "after=0&since=3"])
def test_bad_event_queries_are_json_400(query):
    app, stub = WSGIApplication(), FeedApp()
    app.register(NatRestController, {APP_KEY: stub})
    resp = Request.blank(f"/nat/events?{query}").get_response(app)
    assert resp.status_int == 400 and "error" in json.loads(resp.body)


def test_a_slow_watcher_is_told_what_it_missed():
    from ryu_app.journal.event_feed import EventFeed
    stub = FeedApp()
    stub.event_feed = feed = EventFeed(size=3)
    stub.gateway.switches[1].nat.ct.on_event = lambda e: feed.record(1, e)
    for sport in range(5000, 5005):
        stub.open(sport)
    events, missed = feed.since(0)
    assert [e["internal_port"] for e in events] == [5002, 5003, 5004] and missed == 2


def test_long_polls_are_bounded_in_number():
    """Each waiting watcher holds a green thread and a socket: past the
    bound the next is told to come back (503, Retry-After) at once, and
    once a place is free it waits again."""
    import eventlet
    from ryu_app.journal.event_feed import EventFeed
    app, stub = WSGIApplication(), FeedApp()
    stub.event_feed = feed = EventFeed(max_waiters=2)
    app.register(NatRestController, {APP_KEY: stub})
    poll = lambda: Request.blank(f"/nat/events?after={feed.last}&wait=0.5").get_response(app)  # noqa: E731
    waiting = [eventlet.spawn(poll) for _ in range(2)]
    eventlet.sleep(0.05)
    assert feed.waiters == 2
    busy = poll()
    assert busy.status_int == 503 and busy.headers["Retry-After"] == "1"
    assert "at most 2" in json.loads(busy.body)["error"]
    assert [g.wait().status_int for g in waiting] == [200, 200] and feed.waiters == 0
    assert poll().status_int == 200


def test_snatctl_watch_waits_its_turn_when_the_controller_is_busy():
    """A 503 with Retry-After is a turn to wait for, not a failure."""
    import requests
    from click.testing import CliRunner
    from ryu_app.ops import cli

    def response(status: int, body: dict, headers: dict | None = None) -> requests.Response:
        resp = requests.Response()
        resp.status_code, resp._content = status, json.dumps(body).encode()
        resp.headers.update(headers or {})
        return resp

    event = {"seq": 8, "event": "new", "protocol": "udp", "state": "UNREPLIED",
             "internal_ip": "10.0.0.11", "internal_port": 5000, "external_ip": "198.51.100.1",
             "external_port": 5000, "remote_ip": "198.51.100.10", "remote_port": 53, "id": 1,
             "reason": None}
    answers = [response(200, {"events": [], "last": 7, "missed": 0}),
               response(503, {"error": "busy"}, {"Retry-After": "0"}),
               response(200, {"events": [event], "last": 8, "missed": 0})]
    calls = []
    real = requests.request
    requests.request = lambda *a, **k: calls.append(k.get("params")) or answers.pop(0)
    try:
        done = CliRunner().invoke(cli.cli, ["watch", "--count", "1", "--timeout", "5", "--json"])
    finally:
        requests.request = real
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == event and len(calls) == 3
