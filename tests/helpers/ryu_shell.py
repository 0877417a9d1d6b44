"""The real Ryu shell ``SnatApp`` for unit tests, with a fake datapath.

``snat_app()`` builds the app the way ``ryu-manager`` does (options on
``ryu.cfg.CONF``, Ryu's WSGI application for REST); datapaths here only
record or forward what the app sends.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from ryu import cfg as ryu_cfg
from ryu.app.wsgi import WSGIApplication
from ryu.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_app.openflow import flow_encoding

from ryu_app import snat

LAB = {"external_ip": "198.51.100.1/24", "external_port": "s1-eth1",
       "internal_subnet": "10.0.0.0/24"}


class RecordingDatapath:
    """What the app needs of a datapath: an id, the v1.3 modules, an xid
    counter and ``send`` (bytes, as Ryu's Datapath queues them).  What it is
    sent is parsed back (flow-mods and packet-outs by Ryu's parser) into
    ``sent``, so tests see the bytes the switch would."""

    ofproto = ofp
    ofproto_parser = parser

    def __init__(self, dpid: int) -> None:
        self.id = dpid
        self.xid = 0
        self.sent: list = []
        self.address = ("127.0.0.1", 40000 + dpid)
        self.state = MAIN_DISPATCHER
        self.is_active = True

    def send_msg(self, msg) -> None:
        """Ryu's Datapath.send_msg, as the app uses it for single messages."""
        self.sent.append(msg)

    def close(self) -> None:
        self.state = DEAD_DISPATCHER
        self.is_active = False

    def send(self, buf: bytes) -> bool:
        msgs = [flow_encoding.decode(one) for one in flow_encoding.split(buf)]
        self.sent += msgs
        self.received(msgs)
        return True

    def received(self, msgs: list) -> None:
        """What the switch does with them (nothing, here)."""


class WireDatapath(RecordingDatapath):
    """A datapath whose messages reach a :class:`helpers.fake_switch.Wire`."""

    def __init__(self, wire: Any) -> None:
        super().__init__(wire.switch.dpid)
        self.wire = wire

    def received(self, msgs: list) -> None:
        self.wire.run(msgs)


@contextlib.contextmanager
def snat_app(**options: Any) -> Iterator[tuple[snat.SnatApp, WSGIApplication]]:
    """A SnatApp with ``[nat]`` options (the lab's by default) and its WSGI app."""
    conf = ryu_cfg.CONF
    values = {**LAB, **options}
    for name, value in values.items():
        conf.set_override(name, value, group="nat")
    try:
        wsgi = WSGIApplication()
        yield snat.SnatApp(wsgi=wsgi), wsgi
    finally:
        for name in values:
            conf.clear_override(name, group="nat")


@contextlib.contextmanager
def wired_app(**options: Any) -> Iterator[tuple[snat.SnatApp, WSGIApplication, Any]]:
    """The app (``snat_app``) with a fake switch connected: its gateway on a
    :class:`Wire`, the switch's datapath answering through it, the clock
    monotonic (the views count in monotonic time): (app, wsgi, wire)."""
    import time

    from helpers.fake_switch import Wire
    from helpers.nat_lab import PORTS

    with snat_app(**options) as (app, wsgi):
        wire = Wire(app.gateway)
        wire.now = wire.switch.now = time.monotonic()
        wire.connect(PORTS)
        app.datapaths[wire.switch.dpid] = WireDatapath(wire)
        yield app, wsgi, wire
