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
from typing import Any, Callable, cast

from ryu import cfg as ryu_cfg
from ryu.app.wsgi import WSGIApplication
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER
from ryu.controller.handler import set_ev_cls
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3

from conntrack import Refused
from ryu_app.settings import config
from ryu_app.openflow import flows
from ryu_app.nat import forward_store
from ryu_app.settings import forwards
from ryu_app.settings import listeners
from ryu_app.openflow import ofctl_compat
from ryu_app.openflow import tls_compat
from ryu_app.openflow import channel
from ryu_app.openflow import writer
from ryu_app.ha import roles
from ryu_app.ha.election import Election
from ryu_app.limits.fair_queue import FairQueue, frame_source
from ryu_app.nat.gateway import Gateway
from ryu_app.openflow.punt_meters import PuntMeters
from ryu_app.ops.rest import APP_KEY, NatFallbackController, NatRestController
from ryu_app.ops import collector, stopping
from ryu_app.ops.status_page import StatusPageController
from ryu_app.openflow.sender import Sender
from ryu_app.openflow.switch_claims import Claim as SwitchClaim
from ryu_app.openflow.switch_claims import SwitchClaims
from ryu_app.ops.views import ConnectionsView

LOG = logging.getLogger("ryu_app.snat")
# How long queued packet-ins are handled before a switch with more to read is
# read again (and their messages sent): fair shares need what came meanwhile.
DRAIN_SLICE = 0.002
METER_INTERVAL = 0.25   # how often the packet-in meters follow the load
FLUSH_EVERY = 8         # queued packet-ins handled per write to their switch
config.register(ryu_cfg.CONF)   # before ryu-manager reads the [nat] group
ofctl_compat.install()          # ofctl_rest's flow dumps show our fin_timeout
tls_compat.install()            # TLS to switches past their first connection
# Ryu's REST server listens on 0.0.0.0 unless told otherwise; ours changes
# state (forwards, deleting sessions), so it answers on loopback unless the
# operator asks for more (--wsapi-host, or wsapi_host in [DEFAULT]).  This
# module is imported before ryu-manager starts the server, and a default
# set now still yields to a value given on the command line or in a file.
ryu_cfg.CONF.set_default("wsapi_host", "127.0.0.1")
# The same for the OpenFlow listener: whoever connects to it as a switch is
# served (and, claiming a served dpid, could stand in for it).  A switch on
# another host needs ofp_listen_host set, and TLS (ctl_privkey, ctl_cert,
# ca_certs) is the way to let only the real one in.
ryu_cfg.CONF.set_default("ofp_listen_host", "127.0.0.1")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def exposure_warnings(wsapi_host: str, rest_token: str | None, ofp_host: str,
                      tls: bool) -> list[str]:
    """What a start-up should say about who can reach the controller."""
    warnings = []
    if not _loopback(wsapi_host or "0.0.0.0") and rest_token is None:
        warnings.append(f"ryu-snat: the REST API listens on {wsapi_host or '0.0.0.0'} without "
                        "rest_token: anyone who reaches it can add forwards and end sessions")
    if not _loopback(ofp_host or "0.0.0.0") and not tls:
        warnings.append(f"ryu-snat: the OpenFlow listener is on {ofp_host or '0.0.0.0'} without "
                        "TLS (ctl_privkey, ctl_cert, ca_certs): anyone who reaches it can "
                        "connect as a switch")
    return warnings


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
            self.configs = config.load_profiles(ryu_cfg.CONF, warn=LOG.warning)
            self.controller = config.load_controller(ryu_cfg.CONF)
        except config.ConfigError as err:
            # One clear line (Ryu's log: stderr, or --log-file) and exit 2,
            # not a traceback.
            LOG.error("ryu-snat: %s", err)
            raise SystemExit(2) from None
        # Options one controller has once ([nat] only) are self.controller's.
        ctl = self.controller
        first = Gateway(self.configs[0], ctl)
        # One gateway per NAT bridge profile; they share the mapping log
        # (one file) and the event feed (one GET /nat/events).
        self.gateways = [first] + [Gateway(c, ctl, mapping_log=first.mapping_log,
                                           events=first.events, ipfix=first.ipfix)
                                   for c in self.configs[1:]]
        self.gateway = first          # app-wide counters (handler and REST errors)
        self.event_feed = first.events   # (RyuApp.events is its own event queue)
        for gw in self.gateways:
            self._restore_forwards(gw)
        self.sender = Sender()
        writer.install()              # answers leave at once, no hop (ryu_app.openflow.writer)
        # Packet-ins wait here only while the controller is behind (see _admit).
        # One queue for every bridge: the first profile's per-source limit.
        admission = self.configs[0].admission
        self.packet_ins: FairQueue[Any] = FairQueue(
            rate=admission.host_rate, burst=admission.host_burst,
            on_drop=self._packet_in_dropped)
        # Packet-ins come to _admit, our polls' flow counters to _flow_counts.
        channel.install(self._admit, self._drain, self.name, self._flow_counts,
                            self._switch_claim)
        # Which connection may speak for a dpid (ryu_app.openflow.switch_claims).
        self.claims = SwitchClaims(lambda dpid: self._gateway_for(dpid) is not None)
        self._refused_dpids: set[int] = set()
        # The switch's per-port packet-in meters follow the load (ryu_app.openflow.punt_meters).
        self.punt_meters = PuntMeters(max(c.admission.port_rate for c in self.configs))
        self._handled = 0                    # packet-ins handled (the meters' measure)
        self._load_seen = (0, 0, 0, time.monotonic())   # handled, queued, dropped, when: last look
        self.datapaths: dict[int, Any] = {}
        # Flow-stats polls: when the one in flight was sent, and how long the
        # last answered one took (GET /metrics: ryu_snat_stats_poll_seconds).
        self._poll_sent: dict[int, float] = {}
        self._poll_xids: dict[int, int] = {}      # the xid of the poll in flight
        self.stats_poll_seconds: dict[int, float] = {}
        self.view = ConnectionsView(self.gateways)
        wsgi: WSGIApplication = kwargs["wsgi"]
        wsgi.register(NatRestController, {APP_KEY: self})
        wsgi.register(NatFallbackController, {})
        wsgi.register(StatusPageController, {})
        conf = ryu_cfg.CONF
        for warning in exposure_warnings(
                str(getattr(conf, "wsapi_host", "") or ""), ctl.rest_token,
                str(conf.ofp_listen_host or ""),
                conf.ctl_privkey is not None and conf.ctl_cert is not None):
            LOG.warning(warning)
        for cfg in self.configs:
            LOG.info("ryu-snat: %sNAT address %s, inside %s (gateway %s), uplink %s",
                     "" if cfg.dpid is None else f"[{cfg.name}] switch {cfg.dpid:016x}: ",
                     cfg.external_ip, cfg.internal_subnet, cfg.internal_gateway_ip,
                     cfg.external_port)
        # A controller pair: the coordination engine elects the MASTER; the
        # switches are told with OpenFlow role requests (ryu_app.ha.roles).
        self.roles = roles.SwitchRoles()
        self.election: Election | None = None
        self.takeovers: list[dict] = []       # GET /nat/ha: each switch taken over
        self._won_at: float | None = None
        self._warm: dict[int, tuple[float, int]] = {}   # dpid -> (takeover began, warm sessions)
        if ctl.ha.coordination_url:
            self.election = Election(ctl.ha.coordination_url, ctl.ha.group, ctl.ha.lease)
            LOG.info("ryu-snat: HA pair %r through %s, member %s: standby until elected",
                     ctl.ha.group, ctl.ha.coordination_url.split("://")[0],
                     self.election.member)
            self.threads.append(hub.spawn(self._every, ctl.ha.interval, self._ha_step))
        else:
            self.roles.leader = True          # alone: acts on every switch it serves
        self.threads.append(hub.spawn(self._every, METER_INTERVAL, self._adapt_meters))
        self.threads.append(hub.spawn(self._every, 1.0, self._tick))
        self.threads.append(hub.spawn(self._every, ctl.stats_interval, self._poll_stats))
        self._timers = list(self.threads)     # stopped first on the way out
        self.stopping: str | None = None      # why, once a stop began: no packet-in after

    # -- a clean stop (docs/operations.md) --------------------------------------
    def _begin_stop(self, why: str) -> None:
        """From the signal handler: from now on no packet-in is handled."""
        self.stopping = why

    def _stop_timers(self) -> None:
        """The HA step above all: once the lock is given back, none may take it again."""
        self.stopping = self.stopping or "close"
        for timer in self._timers:
            hub.kill(timer)
        self._timers = []

    def stop(self) -> None:
        """ryu-manager's shutdown, first part (its join waits for every thread)."""
        self._stop_timers()
        super().stop()

    def start(self) -> Any:
        """ryu-manager starts the apps, then its listeners: a second
        controller on the same ports would bind beside the first
        (SO_REUSEPORT) and share its switches, so it stops here, in one line."""
        busy = listeners.first_problem(ryu_cfg.CONF)
        if busy:
            LOG.error("ryu-snat: %s", busy)
            raise SystemExit(1)
        stopping.install(self._begin_stop)    # SIGTERM and SIGINT take the close path
        collector.tune()                      # rarer collections (ryu_app.ops.collector)
        return super().start()

    def close(self) -> None:
        """ryu-manager's shutdown: the mapping log's pending batch written,
        then the MASTER lock given back (the standby takes over at its next
        step, not when the lease runs out)."""
        self._stop_timers()
        log = self.gateway.mapping_log       # every bridge's gateway shares it
        led = self.election is not None and self.election.leader
        try:
            log.flush()
            if self.gateway.ipfix is not None:
                self.gateway.ipfix.close()   # what was noted goes to the collector
        finally:
            if self.election is not None:
                self.election.stop()
            log.close()
        LOG.info("ryu-snat: stopped: mapping log flushed%s, %d packet-ins refused while "
                 "stopping", ", MASTER lock released" if led else "",
                 self.gateway.counters.drops.get("controller_stopping", 0))
        super().close()

    # -- controller pair ------------------------------------------------------------
    def _ha_step(self) -> None:
        election = self.election
        assert election is not None     # scheduled only for a controller pair
        if not election.started and not election.try_start():
            return
        if election.step() and election.leader:
            self._won_at = time.monotonic()
        now = time.monotonic()
        for dpid, msgs in self.roles.lead(election.leader, now).items():
            self._send(dpid, msgs)

    def ha_status(self) -> dict:
        """GET /nat/ha: this controller's part in the pair."""
        el = self.election
        return {
            "enabled": el is not None,
            "member": el.member if el else None,
            "group": self.controller.ha.group if el else None,
            "leader": self.roles.leader,
            "engine_reachable": el.engine_reachable if el else None,
            "switches": {f"{dpid:016x}": {"role": st.role.name if st.role else None,
                                          "generation_id": st.generation_id}
                         for dpid, st in sorted(self.roles.switches.items())},
            "takeovers": self.takeovers[-10:],
        }

    def writable(self) -> None:
        """REST changes go to the MASTER only (roles.NotMaster: HTTP 503)."""
        if self.stopping:
            raise roles.NotMaster("this controller is stopping: send changes to the "
                                  "other controller of the pair, or after its restart")
        if not self.roles.leader:
            raise roles.NotMaster("this controller is the standby of an HA pair: "
                                  "send changes to the MASTER")

    @set_ev_cls(ofp_event.EventOFPRoleReply, MAIN_DISPATCHER)
    @guarded
    def _role_reply(self, ev: Any) -> None:
        msg = ev.msg
        dpid = msg.datapath.id
        gw = self._gateway_for(dpid)
        if gw is None:
            return
        now = time.monotonic()
        change = self.roles.reply(dpid, msg.role, msg.generation_id, now)
        self._send(dpid, change.msgs)
        if change.became is roles.Role.MASTER:
            warm = gw.sessions(dpid)
            self._warm[dpid] = (now, warm)
            LOG.info("ha: MASTER of switch %016x (generation %d); warm table %d sessions: "
                     "taking over", dpid, (msg.generation_id or 0), warm)
            self._send(dpid, gw.switch_connected(dpid))
        elif change.became is roles.Role.SLAVE:
            LOG.info("ha: SLAVE of switch %016x (generation %d): standing by", dpid,
                     msg.generation_id)
            self._send(dpid, gw.switch_connected(dpid, standby=True))

    def _gateway_for(self, dpid: int) -> Gateway | None:
        """The gateway whose profile names this switch (or serves every switch)."""
        return next((gw for gw in self.gateways if gw.serves(dpid)), None)

    def _serving(self, dpid: int) -> Gateway | None:
        """The gateway the connected switch ``dpid`` belongs to (once per
        packet-in: a plain loop, no generator)."""
        for gw in self.gateways:
            if dpid in gw.switches:
                return gw
        return None

    # -- REST (called by ryu_app.ops.rest) --------------------------------------
    @property
    def rest_token(self) -> str | None:
        return self.controller.rest_token

    def stats_snapshot(self) -> dict:
        stats = self.view.stats()
        stats["packet_in_queue"] = {"waiting": len(self.packet_ins),
                                    **self.packet_ins.counters.as_dict()}
        if self.gateway.ipfix is not None:
            stats["ipfix"] = self.gateway.ipfix.counters.as_dict()
        return stats

    def port_pool_sizes(self) -> dict[str, int]:
        """External ports each protocol's pools hold, every bridge's NAT address
        together (ICMP ids come from the same range)."""
        total = sum((c.port_range[1] - c.port_range[0] + 1) * len(c.nat_addresses)
                    for c in self.configs)
        return {name: total for name in ("tcp", "udp", "icmp")}

    def count_rest_error(self) -> None:
        self.gateway.counters.rest_errors += 1

    def delete_connection(self, dpid: int, sid: int) -> bool:
        self.writable()
        gw = self._serving(dpid)
        msgs = gw.delete_session(dpid, sid) if gw is not None else None
        if msgs is None:
            return False
        self._send(dpid, msgs)
        return True

    def revoke_port_mapping(self, protocol: int, ip: str, port: int,
                            peer: tuple[str, int] | None, dpid: int | None = None) -> list[int]:
        """End a host's PCP/NAT-PMP mapping on every switch (or ``dpid``)
        that has it: the switches it was ended on."""
        self.writable()
        done = []
        for gw in self.gateways:
            for sw in list(gw.switches):
                if dpid is not None and sw != dpid:
                    continue
                msgs = gw.revoke_port_mapping(sw, protocol, ip, port, peer)
                if msgs is not None:
                    self._send(sw, msgs)
                    done.append(sw)
        return done

    def _profile(self, dpid: int | None) -> Gateway:
        """The gateway a forward request is for: the only one, or the one of ``dpid``."""
        if len(self.gateways) == 1:
            if dpid is not None and self.gateway.config.dpid not in (None, dpid):
                raise ValueError(f"no NAT bridge has dpid {dpid}")
            return self.gateway
        if dpid is None:
            raise ValueError("this controller runs several NAT bridges: say which with "
                             "?dpid=")
        gw = next((g for g in self.gateways if g.config.dpid == dpid), None)
        if gw is None:
            raise ValueError(f"no NAT bridge has dpid {dpid}")
        return gw

    def list_forwards(self) -> list[dict]:
        if len(self.gateways) == 1:
            return [f.as_dict() for f in sorted(self.gateway.forwards.values(), key=str)]
        return [{**f.as_dict(), "bridge": gw.config.name, "dpid": gw.config.dpid}
                for gw in self.gateways for f in sorted(gw.forwards.values(), key=str)]

    def add_forward(self, body: Any, dpid: int | None = None) -> dict:
        """Validate and add a forward on the bridge's switch; ValueError -> 400."""
        self.writable()
        gw = self._profile(dpid)
        cfg = gw.config
        fwd = forwards.from_json(body, cfg.internal_subnet, cfg.internal_gateway_ip)
        clash = forwards.conflict(fwd, gw.forwards.values())
        if clash:
            raise ValueError(clash)
        try:
            per_switch = gw.add_forward(fwd)
        except Refused as refused:
            raise ValueError(f"{fwd.protocol} port {fwd.external_port}: {refused}") from None
        for sw, msgs in per_switch.items():
            self._send(sw, msgs)
        self._save_forwards(gw)
        LOG.info("forward added: %s", fwd)
        return fwd.as_dict()

    def remove_forward(self, protocol: str, port: int, dpid: int | None = None) -> bool:
        self.writable()
        gw = self._profile(dpid)
        per_switch = gw.remove_forward(protocol, port)
        if per_switch is None:
            return False
        for sw, msgs in per_switch.items():
            self._send(sw, msgs)
        self._save_forwards(gw)
        LOG.info("forward removed: %s port %d", protocol, port)
        return True

    def _save_forwards(self, gw: Gateway) -> None:
        """The REST-added forwards to ``forwards_file`` (config ones come back anyway)."""
        cfg = gw.config
        try:
            forward_store.save(cfg.forwards_file, [
                f for f in gw.forwards.values() if f not in cfg.forwards])
        except OSError as why:
            LOG.error("forwards_file %s not written: %s", cfg.forwards_file, why)

    @staticmethod
    def _restore_forwards(gw: Gateway) -> None:
        cfg = gw.config
        for fwd in forward_store.load(cfg.forwards_file, cfg.internal_subnet,
                                      cfg.internal_gateway_ip):
            clash = forwards.conflict(fwd, gw.forwards.values())
            if clash:
                LOG.error("saved forward %s not restored: %s", fwd, clash)
                continue
            gw.forwards[fwd.key] = fwd
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
        now = time.monotonic()
        self._close_silent(now)
        for gw in self.gateways:
            for dpid, msgs in gw.tick(now).items():
                self._send(dpid, msgs)

    def _poll_stats(self) -> None:
        for gw in self.gateways:
            meters = [flows.meter_stats_request()] if gw.config.admission.port_rate else []
            for dpid, state in list(gw.switches.items()):
                if state.standby:                 # a new warm table from each dump
                    self._send(dpid, gw.refresh_standby(dpid))
                    continue
                if self._poll_in_flight(dpid, gw.controller.stats_interval):
                    self._send(dpid, meters)
                    continue
                request = flows.flow_stats_request()
                self._send(dpid, [request] + meters)
                if request.xid is not None:
                    self._poll_sent[dpid] = time.monotonic()
                    self._poll_xids[dpid] = request.xid

    def _poll_in_flight(self, dpid: int, interval: float) -> bool:
        """Whether the last poll of ``dpid`` is still unanswered.  A busy
        switch or controller can take longer than an interval to answer:
        a new poll then would replace the one in flight, its reply would be
        taken for someone else's, and no poll would ever count.  A poll that
        stays unanswered for three intervals is given up."""
        sent = self._poll_sent.get(dpid)
        if sent is None or dpid not in self._poll_xids:
            return False
        waited = time.monotonic() - sent
        if waited < 3 * interval:
            return True
        LOG.warning("switch %016x: flow-stats poll unanswered after %.1f s; polling again",
                    dpid, waited)
        return False

    def _send(self, dpid: int, msgs: list) -> None:
        """The one way out; a controller that is not MASTER only reads."""
        dp = self.datapaths.get(dpid)
        if dp is not None and msgs:
            self.sender.send(dp, roles.writable(msgs, self._acting(dpid)))

    def _acting(self, dpid: int) -> bool:
        """Whether this controller may change the switch: alone, or its MASTER."""
        return self.election is None or self.roles.is_master(dpid)

    # -- OpenFlow events ---------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _switch_features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        gw = self._gateway_for(dp.id)
        if gw is None:
            LOG.info("ignoring switch %016x: no NAT bridge profile has its dpid (%s)", dp.id,
                     ", ".join(f"{c.dpid:016x}" for c in self.configs))
            return
        LOG.info("switch %016x connected", dp.id)
        self.datapaths[dp.id] = dp
        if self.election is not None:        # no change before our role is known
            for g in self.gateways:
                g.switch_disconnected(dp.id)
            self._send(dp.id, self.roles.connected(dp.id, time.monotonic()))
            return
        self._send(dp.id, gw.switch_connected(dp.id))

    def _switch_claim(self, dp: Any, dpid: int) -> bool:
        """A connection names its dpid (its features reply, before Ryu moves
        it on): refused when no bridge profile names it, or while another
        connection for it is alive (that one is asked by echo)."""
        served = self.datapaths.get(dpid)
        elsewhere = (served is not None and served is not dp and served.is_active
                     and served.state != DEAD_DISPATCHER)
        verdict, ask = self.claims.claim(dpid, elsewhere, time.monotonic())
        if verdict is SwitchClaim.ACCEPT:
            return True
        self.gateway.counters.drop(f"switch_{verdict.value}")
        if verdict is SwitchClaim.UNNAMED:
            # Open vSwitch retries every few seconds: said once per dpid.
            level = logging.DEBUG if dpid in self._refused_dpids else logging.WARNING
            self._refused_dpids.add(dpid)
            LOG.log(level, "refusing the switch at %s: no NAT bridge profile names its dpid "
                    "%016x (%s)", dp.address, dpid,
                    ", ".join(f"{c.dpid:016x}" for c in self.configs if c.dpid is not None))
            return False
        assert served is not None       # only a live other connection is refused now
        LOG.warning("refusing a second connection (%s) claiming switch %016x while the first "
                    "(%s) may be alive%s", dp.address, dpid, served.address,
                    ": asking it" if ask else "")
        if ask:
            served.send_msg(served.ofproto_parser.OFPEchoRequest(served, data=b"ryu-snat"))
        return False

    @set_ev_cls(ofp_event.EventOFPEchoReply, MAIN_DISPATCHER)
    def _echo_reply(self, ev: Any) -> None:
        dp = ev.msg.datapath
        if self._is_served(dp):
            self.claims.answered(dp.id)

    def _is_served(self, dp: Any) -> bool:
        """Is ``dp`` the connection this app serves its dpid through?"""
        return dp.id is not None and self.datapaths.get(dp.id) is dp

    def _close_silent(self, now: float) -> None:
        """Served connections that did not answer while another claimed
        their dpid are closed: the claimant gets in at its next try."""
        for dpid in self.claims.overdue(now):
            dp = self.datapaths.get(dpid)
            if dp is not None:
                LOG.warning("switch %016x: its connection (%s) did not answer; closing it",
                            dpid, dp.address)
                dp.close()

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _switch_gone(self, ev: Any) -> None:
        dp = ev.datapath
        # A switch that reconnects before its old connection is reaped gets a
        # new datapath with the same id: the old one's death must not end it.
        if self._is_served(dp):
            LOG.info("switch %016x disconnected", dp.id)
            for gw in self.gateways:
                gw.switch_disconnected(dp.id)
            self.roles.disconnected(dp.id)
            self.datapaths.pop(dp.id, None)
            self._poll_sent.pop(dp.id, None)      # its reply will never come
            self._poll_xids.pop(dp.id, None)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def _port_desc(self, ev: Any) -> None:
        dp = ev.msg.datapath
        gw = self._serving(dp.id)
        if gw is not None:
            ports = {p.name.decode(errors="replace"): p.port_no for p in ev.msg.body}
            down = {p.port_no for p in ev.msg.body if p.state & ofproto_v1_3.OFPPS_LINK_DOWN}
            self._send(dp.id, gw.ports_described(dp.id, ports, down))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def _port_status(self, ev: Any) -> None:
        dp = ev.msg.datapath
        if self._serving(dp.id) is not None:
            self._send(dp.id, [flows.port_desc_request()])

    # -- packet-in admission ------------------------------------------------------
    def _send_event(self, ev: Any, state: Any) -> None:
        """Ryu hands each event for this app here.  Packet-ins come straight
        to ``_admit`` from the receive loop (``ryu_app.openflow.channel``); one
        that still comes as an event (another app watches packet-ins too)
        skips Ryu's app queue as well.  Every other event takes that queue,
        in order, as usual."""
        if type(ev) is ofp_event.EventOFPPacketIn:
            if state == MAIN_DISPATCHER:
                dp = ev.msg.datapath
                self._admit(dp, channel.from_ryu(ev.msg), channel.unread(dp))
            return
        super()._send_event(ev, state)

    def _admit(self, dp: Any, pin: channel.PacketIn, more: bool) -> None:
        """Work-conserving and fair (``ryu_app.limits.fair_queue``): while the
        controller keeps up (nothing queued, no further message of the
        switch waiting: ``more``) a packet-in is handled at once, in the
        receive loop, with no hop through a queue; once it falls behind,
        packet-ins queue per source (switch, port, source address) and
        ``_drain`` takes them in turn after each chunk the loop reads, so
        the loop goes on reading and the switch's own queue (first come,
        first dropped) never fills."""
        gw = self._serving(dp.id)
        uplink = gw.switches[dp.id].uplink if gw is not None else None
        source = (dp.id, pin.in_port, frame_source(pin.data, pin.in_port == uplink))
        now = time.monotonic()
        item = (dp, pin)
        self.punt_meters.seen(source[:2])
        if not self.packet_ins.within_limit(source, item, now):
            return
        if not more and not len(self.packet_ins):
            self._handle_packet_in(dp, pin)
            return
        self.packet_ins.offer(source, item, now)

    def _drain(self, dp: Any) -> None:
        """Queued packet-ins, one source after another, their messages sent
        in one write per switch; once a slice of time is spent, a switch
        (``dp``, whose loop this is) that sent more is read first."""
        if not len(self.packet_ins):
            return
        start, handled = time.monotonic(), 0
        with self.sender.batch():
            while (item := self.packet_ins.take(time.monotonic())) is not None:
                self._handle_packet_in(*item)
                handled += 1
                if handled % FLUSH_EVERY == 0:
                    self.sender.flush()         # a batch's first answers do not wait for its last
                if time.monotonic() - start > DRAIN_SLICE:
                    self.sender.flush()
                    if channel.unread(dp):
                        return
                    start = time.monotonic()

    def _packet_in_dropped(self, item: Any, reason: str) -> None:
        """A packet-in dropped unhandled (queue full, waited too long, over
        an operator's hard limit): counted where /nat/stats shows drops."""
        gw = self._serving(item[0].id) or self.gateway
        gw.counters.packet_ins += 1
        gw.counters.drop({"full": "packet_in_queue_full", "stale": "packet_in_stale",
                          "limit": "packet_in_budget"}[reason])

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        """Never called (see ``_send_event``); it makes this app an observer
        of packet-ins, which is what brings them here at all."""

    def _adapt_meters(self) -> None:
        """Every METER_INTERVAL: the ports' meters follow the controller's load."""
        handled, queued, dropped, then = self._load_seen
        counters = self.packet_ins.counters
        now = time.monotonic()
        self._load_seen = (self._handled, counters.offered,
                           counters.dropped_full + counters.dropped_stale, now)
        uplinks = {(dpid, st.uplink) for gw in self.gateways for dpid, st in gw.switches.items()}
        changes = self.punt_meters.tick(self._handled - handled, self._load_seen[1] - queued,
                                        self._load_seen[2] - dropped, now - then, uplinks)
        by_switch: dict[int, dict[int, int]] = {}
        for key, rate in changes.items():
            dpid, port = cast("tuple[int, int]", key)      # the uplinks given above
            by_switch.setdefault(dpid, {})[port] = rate
        for dpid, rates in by_switch.items():
            gw = self._serving(dpid)
            if gw is not None:
                self._send(dpid, gw.punt_rates(dpid, rates))
                LOG.info("switch %016x: packet-in meters now %s", dpid,
                         ", ".join(f"port {p} {r}/s" for p, r in sorted(rates.items())))

    def _handle_packet_in(self, dp: Any, pin: channel.PacketIn) -> None:
        self._handled += 1
        if self.stopping:                    # nothing new once the stop began
            self.gateway.counters.packet_ins += 1
            self.gateway.counters.drop("controller_stopping")
            return
        try:
            gw = self._serving(dp.id)
            if gw is None or not self._acting(dp.id):
                self.gateway.counters.packet_ins += 1
                self.gateway.counters.drop("unknown_switch" if gw is None else "not_master")
                return
            self._send(dp.id, gw.packet_in(dp.id, pin.in_port, pin.data,
                                           metadata=pin.metadata if pin.table_id else 0))
        except Exception:
            self.gateway.counters.handler_errors += 1
            LOG.exception("packet-in from switch %s failed", dp.id)

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    @guarded
    def _flow_removed(self, ev: Any) -> None:
        msg = ev.msg
        gw = self._serving(msg.datapath.id)
        if gw is not None and self._acting(msg.datapath.id):
            self._send(msg.datapath.id, gw.flow_removed(
                msg.datapath.id, msg.cookie, msg.reason, msg.packet_count, msg.byte_count))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def _flow_stats(self, ev: Any) -> None:
        msg = ev.msg
        more = bool(msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE)
        polled = self._poll_xids.get(msg.datapath.id) == msg.xid
        sent = self._poll_sent.pop(msg.datapath.id, None) if polled and not more else None
        if polled and not more:
            del self._poll_xids[msg.datapath.id]
        if sent is not None:
            self.stats_poll_seconds[msg.datapath.id] = time.monotonic() - sent
        dpid = msg.datapath.id
        gw = self._serving(dpid)
        if gw is None:
            return
        was_adopting = gw.adopting(dpid)
        self._send(dpid, gw.flow_stats_reply(dpid, msg.body, more, polled=polled))
        if was_adopting and not gw.adopting(dpid) and dpid in self._warm:
            self._taken_over(gw, dpid)

    def _flow_counts(self, dp: Any, xid: int, counts: channel.FlowCounts) -> bool:
        """A part of our own poll's reply, read off the wire: counters for
        the sessions.  False (Ryu parses it, ``_flow_stats``) for another
        request's reply, or while the switch's flows are being adopted
        (that needs their matches)."""
        dpid = dp.id
        gw = self._serving(dpid)
        if self._poll_xids.get(dpid) != xid or gw is None or gw.adopting(dpid):
            return False
        try:
            if not counts.more:
                del self._poll_xids[dpid]
                sent = self._poll_sent.pop(dpid, None)
                if sent is not None:
                    self.stats_poll_seconds[dpid] = time.monotonic() - sent
            self._send(dpid, gw.flow_counts(dpid, counts.entries, more=counts.more))
        except Exception:
            self.gateway.counters.handler_errors += 1
            LOG.exception("flow counters of switch %016x failed", dpid)
        return True

    def _taken_over(self, gw: Gateway, dpid: int) -> None:
        """The new MASTER has read the switch's flows: the takeover is done."""
        began, warm = self._warm.pop(dpid)
        now = time.monotonic()
        record: dict[str, Any] = {"dpid": dpid, "warm_sessions": warm, "adopted": gw.sessions(dpid),
                  "seconds_after_role": round(now - began, 3),
                  "seconds_after_election": (round(now - self._won_at, 3)
                                             if self._won_at is not None else None),
                  "at": round(time.time(), 3)}
        self.takeovers.append(record)
        LOG.info("ha: switch %016x taken over: %d sessions adopted (warm table had %d), "
                 "%.0f ms after the role reply", dpid, record["adopted"], warm,
                 1000 * record["seconds_after_role"])

    @set_ev_cls(ofp_event.EventOFPMeterStatsReply, MAIN_DISPATCHER)
    @guarded
    def _meter_stats(self, ev: Any) -> None:
        msg = ev.msg
        gw = self._serving(msg.datapath.id)
        if gw is None:
            return
        gw.meter_stats(msg.datapath.id, {
            m.meter_id: sum(b.packet_band_count for b in m.band_stats) for m in msg.body})

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        self.gateway.counters.openflow_errors += 1
        ofp_ = msg.datapath.ofproto
        now = time.monotonic()
        if msg.type == ofp_.OFPET_ROLE_REQUEST_FAILED:
            self.sender.send(msg.datapath, self.roles.refused(msg.datapath.id, now))
        elif (msg.type, msg.code) == (ofp_.OFPET_BAD_REQUEST, ofp_.OFPBRC_IS_SLAVE):
            self.sender.send(msg.datapath, self.roles.demoted(msg.datapath.id, now))
        culprit = self.sender.culprit(msg.datapath.id, msg.xid)
        LOG.error("switch %s: OpenFlow error type=%d code=%d for %s",
                  msg.datapath.id, msg.type, msg.code, culprit if culprit is not None
                  else f"xid {msg.xid} (not remembered)")
