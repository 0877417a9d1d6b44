"""A clean stop (SIGTERM, SIGINT): no packet-in handled once it began, the
mapping log's pending batch written, then the MASTER lock given back.

The app is the real Ryu shell on a fake switch; the coordination engine is
a fake tooz coordinator that reads the mapping log file when its lock is
released (the order is the point: written first, then handed over).
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from ryu.controller import ofp_event
from ryu.controller.handler import MAIN_DISPATCHER
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser
from webob import Request

from helpers.fake_switch import Wire
from helpers.nat_lab import H1, PORTS, S1, UDP, nat, open_flow, out_frame
from helpers.ryu_shell import WireDatapath, snat_app
from ryu_app.ha.election import Election
from ryu_app.ops import stopping


class FakeLock:
    def __init__(self, mapping_log: Path) -> None:
        self.mapping_log = mapping_log
        self.held = False
        self.log_at_release: str | None = None

    def acquire(self, blocking: bool = True) -> bool:
        self.held = True
        return True

    def is_still_owner(self) -> bool:
        return self.held

    def release(self) -> bool:
        self.log_at_release = self.mapping_log.read_text()
        self.held = False
        return True


class FakeCoordinator:
    def __init__(self, lock: FakeLock) -> None:
        self.lock, self.running = lock, False

    def start(self, start_heart: bool = False) -> None:
        self.running = True

    def get_lock(self, name: bytes) -> FakeLock:
        return self.lock

    def heartbeat(self) -> None:
        pass

    def stop(self) -> None:
        self.running = False


def packet_in(dp, in_port: int, data: bytes):
    msg = parser.OFPPacketIn(dp, reason=ofp.OFPR_NO_MATCH, table_id=0, cookie=0,
                             match=parser.OFPMatch(in_port=in_port), data=data)
    return ofp_event.EventOFPPacketIn(msg)


@pytest.fixture
def rig(tmp_path):
    path = tmp_path / "mappings.log"
    with snat_app(mapping_log_file=str(path)) as (app, wsgi):
        wire = Wire(app.gateway)
        wire.now = wire.switch.now = time.monotonic()
        wire.connect(PORTS)
        dp = WireDatapath(wire)
        app.datapaths[wire.switch.dpid] = dp
        lock = FakeLock(path)
        app.election = Election("redis://unit", "unit", 2, "a", coordinator=FakeCoordinator(lock))
        app.election.start()
        app.election.step()
        app.roles.leader = True
        yield app, wsgi, wire, dp, lock, path


def test_the_stop_writes_the_pending_batch_then_gives_the_lock_back(rig):
    app, _wsgi, wire, dp, lock, path = rig
    session, _ = open_flow(wire, H1, 5000, S1, 53)
    assert path.read_text() == "", "the creation waits for the next batch"

    app._begin_stop("SIGTERM")            # what the signal handler does first
    sent = len(dp.sent)
    app._send_event(packet_in(dp, H1.port, out_frame(H1, 5001, S1, 53, proto=UDP)),
                    MAIN_DISPATCHER)
    assert len(dp.sent) == sent and len(nat(wire).ct) == 1, "no session after the stop began"
    assert app.stats_snapshot()["drops"]["controller_stopping"] == 1

    with hub.Timeout(5):             # Ryu joins every thread of the app
        app.stop()
    app.close()
    line = (f"mapping created: udp 10.0.0.11:5000 -> 198.51.100.1:{session.external_port} "
            f"(session {session.id})")
    assert line in path.read_text()
    assert lock.log_at_release is not None and line in lock.log_at_release, \
        "the lock was given back before the mapping log was written"
    assert not lock.held and not app.election.leader
    assert not app.election._coord.running


def test_rest_changes_are_refused_while_stopping(rig):
    app, wsgi = rig[0], rig[1]
    app._begin_stop("SIGTERM")
    req = Request.blank("/nat/forwards", method="POST", body=json.dumps({
        "protocol": "udp", "external_port": 5300, "internal_ip": "10.0.0.12",
        "internal_port": 53}).encode(), content_type="application/json")
    resp = req.get_response(wsgi)
    assert resp.status_int == 503 and "stopping" in json.loads(resp.body)["error"]


@pytest.fixture
def handlers():
    """The process's own SIGTERM and SIGINT handlers, back after the test."""
    saved = {sig: signal.getsignal(sig) for sig in stopping.SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", stopping.SIGNALS)
def test_sigterm_and_sigint_begin_the_stop_and_take_ryu_managers_close_path(handlers, sig):
    """Ryu closes its apps when KeyboardInterrupt reaches its main greenlet."""
    begun: list[str] = []
    stopping.install(begun.append)
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(sig)
    assert begun == [sig.name]


def test_a_worker_greenlet_is_not_cut_short(handlers):
    """A signal that lands while a greenlet works (a packet-in, a Redis call)
    reaches the main greenlet once that greenlet yields, not in its middle."""
    begun: list[str] = []
    finished: list[bool] = []
    stopping.install(begun.append)

    def worker() -> None:
        signal.raise_signal(signal.SIGTERM)
        finished.append(True)

    with pytest.raises(KeyboardInterrupt):
        hub.spawn(worker)
        hub.sleep(1)
    assert begun == ["SIGTERM"] and finished == [True]


def test_a_second_signal_while_stopping_exits_at_once(handlers, monkeypatch):
    exits: list[int] = []
    monkeypatch.setattr(stopping.os, "_exit", exits.append)
    begun: list[str] = []
    stopping.install(begun.append)
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
    signal.raise_signal(signal.SIGINT)
    assert begun == ["SIGTERM"] and exits == [128 + signal.SIGINT]
