"""The Ryu application ``ryu_app.snat``: a thin shell around :class:`Gateway`.

Run it with the stock ``ryu-manager --config-file etc/ryu-snat.conf
ryu_app.snat ryu.app.ofctl_rest``.  Handlers only unpack events, ask the
gateway for the messages to send and pass them to the one :class:`Sender`.
"""
from __future__ import annotations

import functools
import ipaddress
import logging
import time
from typing import Any, Callable

from ryu import cfg as ryu_cfg
from ryu.app.wsgi import WSGIApplication
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER
from ryu.controller.handler import set_ev_cls
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3

from conntrack import Refused
from ryu_app import config, flows, forward_store, forwards
from ryu_app.gateway import Gateway
from ryu_app.rest import APP_KEY, NatFallbackController, NatRestController
from ryu_app.sender import Sender
from ryu_app.views import ConnectionsView

LOG = logging.getLogger("ryu_app.snat")
config.register(ryu_cfg.CONF)   # before ryu-manager reads the [nat] group
# Ryu's REST server listens on 0.0.0.0 unless told otherwise; ours changes
# state (forwards, deleting sessions), so it answers on loopback unless the
# operator asks for more (--wsapi-host, or wsapi_host in [DEFAULT]).  This
# module is imported before ryu-manager starts the server, and a default
# set now still yields to a value given on the command line or in a file.
ryu_cfg.CONF.set_default("wsapi_host", "127.0.0.1")


def guarded(handler: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """A bug of ours in an event handler is logged with its traceback and
    counted (``handler_errors`` in ``GET /nat/stats``); the next event is
    handled as usual, and the mapping table is never half-changed by a
    handler (the engine's methods are atomic)."""
    @functools.wraps(handler)
    def wrapper(self: "SnatApp", ev: Any) -> None:
        try:
            handler(self, ev)
        except Exception:
            self.gateway.counters.handler_errors += 1
            LOG.exception("%s failed on %s", handler.__name__, type(ev).__name__)
    return wrapper


class SnatApp(app_manager.RyuApp):
    """Source NAT between an inside network and an uplink of one OVS bridge."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            self.config = config.load(ryu_cfg.CONF, warn=LOG.warning)
        except config.ConfigError as err:
            # One clear line (Ryu's log: stderr, or --log-file) and exit 2,
            # not a traceback.
            LOG.error("ryu-snat: %s", err)
            raise SystemExit(2) from None
        self.gateway = Gateway(self.config)
        self._restore_forwards()
        self.sender = Sender()
        self.datapaths: dict[int, Any] = {}
        # Flow-stats polls: when the one in flight was sent, and how long the
        # last answered one took (GET /metrics: ryu_snat_stats_poll_seconds).
        self._poll_sent: dict[int, float] = {}
        self.stats_poll_seconds: dict[int, float] = {}
        self.view = ConnectionsView(self.gateway)
        wsgi: WSGIApplication = kwargs["wsgi"]
        wsgi.register(NatRestController, {APP_KEY: self})
        wsgi.register(NatFallbackController, {})
        self._warn_if_exposed(str(getattr(ryu_cfg.CONF, "wsapi_host", "") or "0.0.0.0"))
        LOG.info("ryu-snat: NAT address %s, inside %s (gateway %s), uplink %s",
                 self.config.external_ip, self.config.internal_subnet,
                 self.config.internal_gateway_ip, self.config.external_port)
        self.threads.append(hub.spawn(self._every, 1.0, self._tick))
        self.threads.append(hub.spawn(self._every, self.config.stats_interval, self._poll_stats))

    def _warn_if_exposed(self, host: str) -> None:
        """One line at start when anyone who reaches the REST API may change state."""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback and self.config.rest_token is None:
            LOG.warning("ryu-snat: the REST API listens on %s without rest_token: anyone who "
                        "reaches it can add forwards and end sessions", host)

    # -- REST (called by ryu_app.rest) --------------------------------------
    @property
    def rest_token(self) -> str | None:
        return self.config.rest_token

    def stats_snapshot(self) -> dict:
        return self.view.stats()

    def port_pool_sizes(self) -> dict[str, int]:
        """External ports each protocol's pool holds (ICMP ids come from the same range)."""
        low, high = self.config.port_range
        return {name: high - low + 1 for name in ("tcp", "udp", "icmp")}

    def count_rest_error(self) -> None:
        self.gateway.counters.rest_errors += 1

    def delete_connection(self, dpid: int, sid: int) -> bool:
        msgs = self.gateway.delete_session(dpid, sid)
        if msgs is None:
            return False
        self._send(dpid, msgs)
        return True

    def list_forwards(self) -> list[dict]:
        return [f.as_dict() for f in sorted(self.gateway.forwards.values(), key=str)]

    def add_forward(self, body: Any) -> dict:
        """Validate and add a forward on every switch; ValueError -> 400."""
        cfg = self.config
        fwd = forwards.from_json(body, cfg.internal_subnet, cfg.internal_gateway_ip)
        clash = forwards.conflict(fwd, self.gateway.forwards.values())
        if clash:
            raise ValueError(clash)
        try:
            per_switch = self.gateway.add_forward(fwd)
        except Refused as refused:
            raise ValueError(f"{fwd.protocol} port {fwd.external_port}: {refused}") from None
        for dpid, msgs in per_switch.items():
            self._send(dpid, msgs)
        self._save_forwards()
        LOG.info("forward added: %s", fwd)
        return fwd.as_dict()

    def remove_forward(self, protocol: str, port: int) -> bool:
        per_switch = self.gateway.remove_forward(protocol, port)
        if per_switch is None:
            return False
        for dpid, msgs in per_switch.items():
            self._send(dpid, msgs)
        self._save_forwards()
        LOG.info("forward removed: %s port %d", protocol, port)
        return True

    def _save_forwards(self) -> None:
        """The REST-added forwards to ``forwards_file`` (config ones come back anyway)."""
        try:
            forward_store.save(self.config.forwards_file, [
                f for f in self.gateway.forwards.values() if f not in self.config.forwards])
        except OSError as why:
            LOG.error("forwards_file %s not written: %s", self.config.forwards_file, why)

    def _restore_forwards(self) -> None:
        cfg = self.config
        for fwd in forward_store.load(cfg.forwards_file, cfg.internal_subnet,
                                      cfg.internal_gateway_ip):
            clash = forwards.conflict(fwd, self.gateway.forwards.values())
            if clash:
                LOG.error("saved forward %s not restored: %s", fwd, clash)
                continue
            self.gateway.forwards[fwd.key] = fwd
            LOG.info("forward restored: %s", fwd)

    # -- timers --------------------------------------------------------------
    def _every(self, seconds: float, work: Any) -> None:
        """Run ``work`` every ``seconds``; a failure is logged, never fatal."""
        while True:
            hub.sleep(seconds)
            try:
                work()
            except Exception:
                LOG.exception("periodic %s failed", work.__name__)

    def _tick(self) -> None:
        for dpid, msgs in self.gateway.tick(time.monotonic()).items():
            self._send(dpid, msgs)

    def _poll_stats(self) -> None:
        meters = [flows.meter_stats_request()] if self.config.packet_in_port_rate else []
        for dpid in list(self.gateway.switches):
            self._poll_sent.setdefault(dpid, time.monotonic())
            self._send(dpid, [flows.flow_stats_request()] + meters)

    def _send(self, dpid: int, msgs: list) -> None:
        dp = self.datapaths.get(dpid)
        if dp is not None and msgs:
            self.sender.send(dp, msgs)

    # -- OpenFlow events ---------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _switch_features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        if not self.gateway.serves(dp.id):
            LOG.info("ignoring switch %016x (dpid option is %016x)", dp.id, self.config.dpid)
            return
        LOG.info("switch %016x connected", dp.id)
        self.datapaths[dp.id] = dp
        self.sender.send(dp, self.gateway.switch_connected(dp.id))

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _switch_gone(self, ev: Any) -> None:
        dp = ev.datapath
        # A switch that reconnects before its old connection is reaped gets a
        # new datapath with the same id: the old one's death must not end it.
        if dp.id is not None and self.datapaths.get(dp.id) is dp:
            LOG.info("switch %016x disconnected", dp.id)
            self.gateway.switch_disconnected(dp.id)
            self.datapaths.pop(dp.id, None)
            self._poll_sent.pop(dp.id, None)      # its reply will never come

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def _port_desc(self, ev: Any) -> None:
        dp = ev.msg.datapath
        ports = {p.name.decode(errors="replace"): p.port_no for p in ev.msg.body}
        self.sender.send(dp, self.gateway.ports_described(dp.id, ports))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def _port_status(self, ev: Any) -> None:
        dp = ev.msg.datapath
        if dp.id in self.gateway.switches:
            self.sender.send(dp, [flows.port_desc_request()])

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        match = msg.match
        self.sender.send(dp, self.gateway.packet_in(
            dp.id, match["in_port"], msg.data, cookie=msg.cookie,
            metadata=match.get("metadata", 0) if msg.table_id else 0))

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    @guarded
    def _flow_removed(self, ev: Any) -> None:
        msg = ev.msg
        self._send(msg.datapath.id, self.gateway.flow_removed(
            msg.datapath.id, msg.cookie, msg.reason, msg.packet_count, msg.byte_count))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def _flow_stats(self, ev: Any) -> None:
        msg = ev.msg
        more = bool(msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE)
        sent = None if more else self._poll_sent.pop(msg.datapath.id, None)
        if sent is not None:
            self.stats_poll_seconds[msg.datapath.id] = time.monotonic() - sent
        self._send(msg.datapath.id, self.gateway.flow_stats_reply(msg.datapath.id, msg.body, more))

    @set_ev_cls(ofp_event.EventOFPMeterStatsReply, MAIN_DISPATCHER)
    @guarded
    def _meter_stats(self, ev: Any) -> None:
        msg = ev.msg
        self.gateway.meter_stats(msg.datapath.id, {
            m.meter_id: sum(b.packet_band_count for b in m.band_stats) for m in msg.body})

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        self.gateway.counters.openflow_errors += 1
        culprit = self.sender.culprit(msg.datapath.id, msg.xid)
        LOG.error("switch %s: OpenFlow error type=%d code=%d for %s",
                  msg.datapath.id, msg.type, msg.code, culprit if culprit is not None
                  else f"xid {msg.xid} (not remembered)")
