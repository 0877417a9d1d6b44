"""The collector is set for a long-lived session table, and the reason that
is safe holds: the packet paths make no cyclic garbage (what the raised
thresholds would leave lying around longer).
"""
from __future__ import annotations

import gc

import pytest
from ryu.base import app_manager

from helpers.nat_lab import H1, H2, S1, TCP, UDP, make_lab, nat, open_flow
from helpers.ryu_shell import snat_app
from ryu_app.ops import collector
from ryu_app.settings import listeners


@pytest.fixture
def collector_restored():
    """Leave the test process's collector as the test found it."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_sessions_made_and_ended_leave_no_cyclic_garbage():
    lab = make_lab()
    open_flow(lab, H1, 999, S1, 80, proto=TCP)       # ARP, bindings: the first of each done
    gc.collect()
    gc.disable()
    try:
        for n in range(300):
            host = H1 if n % 2 else H2
            open_flow(lab, host, 10_000 + n, S1, 53, proto=UDP if n % 3 else TCP)
        lab.advance(400)                              # every session idles out, flows removed
        assert not list(nat(lab).ct.sessions())
        assert gc.collect() == 0, "a packet path left reference cycles behind"
    finally:
        gc.enable()


def test_the_controller_sets_the_collector_when_it_starts(monkeypatch, collector_restored):
    gc.set_threshold(700, 10, 10)
    monkeypatch.setattr(app_manager.RyuApp, "start", lambda self: None)
    monkeypatch.setattr(listeners, "first_problem", lambda conf: None)
    with snat_app() as (app, _wsgi):
        monkeypatch.setattr("ryu_app.ops.stopping.install", lambda begin: None)
        app.start()
        assert gc.get_threshold() == collector.THRESHOLDS
        assert gc.get_freeze_count() > 0               # start-up objects out of every walk
