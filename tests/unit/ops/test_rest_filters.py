"""Filters applied by the controller, DELETE by filter (snatctl flush as one
request), GET /nat/who from the live table and the rotated mapping log, and
the event feed's boot id: the real app's WSGI routes over a fake switch."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
from webob import Request

from helpers.fake_switch import Wire
from helpers.nat_lab import H1, H2, PORTS, S1, S2, TCP, UDP, flows_of, open_flow
from helpers.ryu_shell import wired_app


def make_rig(**options):
    ctx = wired_app(**options)
    app, wsgi, wire = ctx.__enter__()
    return ctx, app, wsgi, wire


@pytest.fixture
def rig():
    ctx, app, wsgi, wire = make_rig()
    try:
        yield app, wsgi, wire
    finally:
        ctx.__exit__(None, None, None)


def rest(wsgi, method: str, path: str) -> tuple[int, object]:
    resp = Request.blank(path, method=method).get_response(wsgi)
    assert resp.content_type == "application/json", resp
    return resp.status_int, json.loads(resp.body)


def ids(wsgi, query: str) -> list[int]:
    status, body = rest(wsgi, "GET", f"/nat/connections?{query}")
    assert status == 200, body
    return [c["id"] for c in body]


def test_every_filter_is_applied_by_the_controller(rig):
    app, wsgi, wire = rig
    a, _ = open_flow(wire, H1, 40000, S1, 53, UDP)
    b, _ = open_flow(wire, H1, 40001, S2, 53, UDP)
    c, _ = open_flow(wire, H2, 41000, S1, 80, TCP)
    assert ids(wsgi, f"remote_ip={S1.ip}") == [a.id, c.id]
    assert ids(wsgi, "remote_port=80") == [c.id]
    assert ids(wsgi, f"external_port={b.external_port}") == [b.id]
    assert ids(wsgi, "external_ip=198.51.100.1&protocol=udp") == [a.id, b.id]
    assert ids(wsgi, "external_ip=198.51.100.2") == []
    assert ids(wsgi, "internal_port=41000") == [c.id]
    assert ids(wsgi, "state=syn_sent") == [c.id]
    assert ids(wsgi, "state=UNREPLIED&internal_ip=10.0.0.11") == [a.id, b.id]
    assert ids(wsgi, "dpid=1") == ids(wsgi, "dpid=0x1") == [a.id, b.id, c.id]
    assert ids(wsgi, "dpid=2") == []


def test_delete_by_filter_is_one_request_and_unfiltered_needs_all(rig):
    app, wsgi, wire = rig
    a, _ = open_flow(wire, H1, 40000, S1, 53, UDP)
    b, _ = open_flow(wire, H1, 40001, S2, 53, UDP)
    c, _ = open_flow(wire, H2, 41000, S1, 80, TCP)
    status, body = rest(wsgi, "DELETE", "/nat/connections")
    assert status == 400 and "all=true" in body["error"]
    assert rest(wsgi, "DELETE", "/nat/connections?all=maybe")[0] == 400
    assert rest(wsgi, "DELETE", "/nat/connections?remote_port=x")[0] == 400
    assert ids(wsgi, "") == [a.id, b.id, c.id], "a refused DELETE ended something"

    status, body = rest(wsgi, "DELETE", f"/nat/connections?remote_ip={S1.ip}")
    assert status == 200 and body["deleted"] == 2
    assert body["connections"] == [{"id": a.id, "dpid": 1}, {"id": c.id, "dpid": 1}]
    assert flows_of(wire, a.id) == {} and flows_of(wire, c.id) == {}
    assert flows_of(wire, b.id), "a session the filter did not match lost its flows"
    assert ids(wsgi, "") == [b.id]

    assert rest(wsgi, "DELETE", "/nat/connections?all=true")[1]["deleted"] == 1
    assert ids(wsgi, "") == []
    assert rest(wsgi, "DELETE", "/nat/connections?protocol=tcp")[1]["deleted"] == 0


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_who_answers_from_the_live_table_and_the_rotated_log(tmp_path):
    log = tmp_path / "mappings.log"
    # Every batch rotates the file: the answers come from FILE.N too.
    ctx, app, wsgi, wire = make_rig(mapping_log_file=str(log), mapping_log_max_bytes=120,
                                    mapping_log_backups=5)
    try:
        a, _ = open_flow(wire, H1, 40000, S1, 53, UDP)
        port = a.external_port
        # Yesterday H2 held that port (a file rotated long ago).
        (tmp_path / "mappings.log.1").write_text(
            f"2026-01-01T09:00:00.000Z mapping created: udp 10.0.0.12:41000 -> "
            f"198.51.100.1:{port} (session 9)\n"
            f"2026-01-01T11:00:00.000+01:00 mapping expired (idle): udp 10.0.0.12:41000 -> "
            f"198.51.100.1:{port} (session 9, out 1/60 in 1/60)\n"
            "an unrelated line\n")
        app.gateway.mapping_log.flush()
        assert rest(wsgi, "DELETE", f"/nat/connections/{a.id}")[0] == 200
        app.gateway.mapping_log.flush()
        assert len(list(tmp_path.iterdir())) >= 3, "the log did not rotate"

        status, got = rest(wsgi, "GET", f"/nat/who?external=198.51.100.1:{port}")
        assert status == 200, got
        holders = [(h["source"], h["internal_ip"], h["internal_port"], h["ended"])
                   for h in got["holders"]]
        assert holders == [("log", H1.ip, 40000, "removed (operator)"),
                           ("log", H2.ip, 41000, "expired (idle)")]
        mine = got["holders"][0]
        assert mine["since"].endswith("Z") and _utc(mine["since"]) <= _utc(mine["until"])
        assert abs(_utc(mine["since"]) - time.time()) < 60

        status, then = rest(wsgi, "GET", f"/nat/who?external=198.51.100.1:{port}"
                                         "&at=2026-01-01T09:30:00Z")
        assert [h["internal_ip"] for h in then["holders"]] == [H2.ip], then
        assert then["holders"][0]["until"] == "2026-01-01T10:00:00.000Z"   # 11:00+01:00
        after = datetime(2026, 1, 1, 10, 0, 1, tzinfo=timezone.utc).timestamp()
        assert rest(wsgi, "GET", f"/nat/who?external=198.51.100.1:{port}&at={after}"
                    )[1]["holders"] == []

        b, _ = open_flow(wire, H2, 41001, S2, 53, UDP)
        status, live = rest(wsgi, "GET", f"/nat/who?external=198.51.100.1:{b.external_port}"
                                         f"&at={time.time()}&protocol=udp")
        [held] = live["holders"]
        assert (held["source"], held["internal_ip"], held["internal_port"], held["until"],
                held["remote_ip"]) == ("live", H2.ip, 41001, None, S2.ip)
    finally:
        ctx.__exit__(None, None, None)


@pytest.mark.parametrize("query,problem", [
    ("", "external=IP:PORT is required"), ("external=198.51.100.1", "IP:PORT"),
    ("external=198.51.100.1:70000", "0..65535"), ("external=nat:1", "not an IPv4"),
    ("external=198.51.100.1:1&at=yesterday", "RFC 3339"),
    ("external=198.51.100.1:1&at=2026-01-01T10:00:00", "no UTC offset"),
    ("external=198.51.100.1:1&protocol=sctp", "protocol must be"),
])
def test_who_bad_questions_are_json_400(rig, query, problem):
    status, body = rest(rig[1], "GET", f"/nat/who?{query}")
    assert status == 400 and problem in body["error"], body


def test_who_without_a_log_file_says_so(rig):
    app, wsgi, wire = rig
    a, _ = open_flow(wire, H1, 40000, S1, 53, UDP)
    got = rest(wsgi, "GET", f"/nat/who?external=198.51.100.1:{a.external_port}")[1]
    assert [h["session"] for h in got["holders"]] == [a.id]
    assert got["log"].startswith("none") and got["log_files"] == []


def test_events_carry_a_boot_id_time_and_timeout(rig):
    app, wsgi, wire = rig
    status, first = rest(wsgi, "GET", "/nat/events")
    boot = first["boot"]
    assert status == 200 and len(boot) == 16
    before = time.time()
    open_flow(wire, H1, 40000, S1, 53, UDP)
    page = rest(wsgi, "GET", f"/nat/events?after={first['last']}")[1]
    [event] = page["events"]
    assert page["boot"] == boot and event["timeout"] > 0
    assert before - 1 <= event["time"] <= time.time() + 1
    ctx, other, other_wsgi, _ = make_rig()
    try:
        assert rest(other_wsgi, "GET", "/nat/events")[1]["boot"] != boot
    finally:
        ctx.__exit__(None, None, None)


def test_with_port_blocks_the_log_has_a_line_per_block_and_who_answers_from_it(tmp_path):
    log = tmp_path / "mappings.log"
    ctx, app, wsgi, wire = make_rig(mapping_log_file=str(log), port_block_size=64,
                                    port_quarantine=0)
    try:
        a, _ = open_flow(wire, H1, 40000, S1, 53, UDP)
        b, _ = open_flow(wire, H1, 40001, S2, 53, UDP)
        first = 1024 + (a.external_port - 1024) // 64 * 64
        assert first <= b.external_port < first + 64, "both from H1's one block"
        assert rest(wsgi, "GET", "/nat/stats")[1]["port_blocks"] == {"tcp": 0, "udp": 1, "icmp": 0}
        for s in (a, b):
            assert rest(wsgi, "DELETE", f"/nat/connections/{s.id}")[0] == 200
        app.gateway.mapping_log.flush()
        lines = log.read_text().splitlines()
        block = f"udp {H1.ip} -> 198.51.100.1:{first}-{first + 63}"
        assert [line.split(" ", 1)[1] for line in lines] == [
            f"port block allocated: {block}", f"port block released: {block}"], lines
        # An abuse report for the second session's port finds H1 by its block.
        status, got = rest(wsgi, "GET", f"/nat/who?external=198.51.100.1:{b.external_port}")
        assert status == 200, got
        [held] = got["holders"]
        assert (held["source"], held["internal_ip"], held["block"], held["ended"]) == (
            "log", H1.ip, f"{first}-{first + 63}", "released")
    finally:
        ctx.__exit__(None, None, None)


def test_deterministic_mode_answers_who_from_the_formula_with_no_log(tmp_path):
    log = tmp_path / "mappings.log"
    # 10.0.0.0/24: 256 addresses, 256 blocks of 252 ports in 1024-65535.
    ctx, app, wsgi, wire = make_rig(mapping_log_file=str(log), port_block_size=252,
                                    deterministic=True)
    try:
        a, _ = open_flow(wire, H1, 40000, S1, 53, UDP)     # 10.0.0.11: block 11
        assert 1024 + 11 * 252 <= a.external_port < 1024 + 12 * 252
        status, got = rest(wsgi, "GET", "/nat/who?external=198.51.100.1:4047")
        assert status == 200, got
        computed = [h for h in got["holders"] if h["source"] == "deterministic"]
        assert [(h["internal_ip"], h["block"]) for h in computed] == [(H1.ip, "3796-4047")]
        # A port of a host that never sent anything: still known.
        status, got = rest(wsgi, "GET", "/nat/who?external=198.51.100.1:1024")
        assert [(h["source"], h["internal_ip"]) for h in got["holders"]] == [
            ("deterministic", "10.0.0.0")]
        app.gateway.mapping_log.flush()
        assert not log.exists() or log.read_text() == "", "no log lines are needed"
    finally:
        ctx.__exit__(None, None, None)


def test_deterministic_mode_refuses_a_pool_too_small_for_the_inside_prefix():
    from helpers.nat_config import make_config
    from ryu_app.settings.errors import ConfigError
    with pytest.raises(ConfigError, match="256 addresses"):
        make_config(port_block_size=512, deterministic=True)
    with pytest.raises(ConfigError, match="needs port_block_size"):
        make_config(deterministic=True)
