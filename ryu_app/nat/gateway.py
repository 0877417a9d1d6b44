"""The gateway's decisions: from switch events to lists of OpenFlow messages.

Nothing here sends: every method returns the messages to send, in order, and
the Ryu shell (:mod:`ryu_app.snat`) hands them to the one send path.  Tests
drive this class directly with bytes and port numbers.
"""
from __future__ import annotations

import functools
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ryu.lib.packet import arp, ethernet, icmp, ipv4, packet
from ryu.ofproto import ether

from conntrack import ICMP
from ryu_app.openflow import flows

from ryu_app.packets import replies

from ryu_app.packets import wire
from ryu_app.settings.config import BridgeConfig, ControllerConfig
from ryu_app.nat.counters import GatewayCounters
from ryu_app.journal.event_feed import EventFeed
from ryu_app.settings.forwards import Forward
from ryu_app.packets.icmp_errors import ERROR_TYPES
from ryu_app.journal.ipfix import IpfixExporter
from ryu_app.journal.mapping_log import MappingLog
from ryu_app.nat.service import NatService
from ryu_app.packets.packet_info import classify, quick_classify

LOG = logging.getLogger(__name__)


@dataclass
class SwitchState:
    """What the gateway knows of one connected switch."""

    dpid: int
    uplink: int | None = None                     # OpenFlow port to the outside
    ports: dict[str, int] = field(default_factory=dict)  # interface name -> port
    nat: NatService | None = None                 # exists once the uplink is known
    metered: dict[int, int] = field(default_factory=dict)  # port -> packet-ins its meter dropped
    meter_rates: dict[int, int] = field(default_factory=dict)  # port -> rate, where below the option's
    class_drops: dict[str, int] = field(default_factory=dict)  # uplink class -> packet-ins dropped
    # The standby of a controller pair: its table is rebuilt from each flow
    # dump (warm, read-only), and it logs, counts and announces nothing.
    standby: bool = False


class Gateway:
    """Decides what the switch should do with gateway traffic."""

    def __init__(self, config: BridgeConfig, controller: ControllerConfig | None = None,
                 mapping_log: MappingLog | None = None,
                 events: EventFeed | None = None,
                 ipfix: IpfixExporter | None = None) -> None:
        """``config`` is this bridge's profile, ``controller`` the options the
        process has once (default: their defaults).  ``mapping_log``,
        ``events`` and ``ipfix`` are shared when one controller runs several
        NAT bridges (one file, one feed, one exporter); by default the
        gateway makes its own from ``controller``."""
        self.config = config
        self.controller = controller or ControllerConfig()
        self.counters = GatewayCounters()
        self.switches: dict[int, SwitchState] = {}
        # The NAT of a switch whose connection is gone, kept for its return:
        # its sessions (mappings, counters, bindings) are put back into the
        # switch if the switch lost its flows meanwhile (ovs-vswitchd restarted).
        self.parked: dict[int, NatService] = {}
        self.first_dpid: int | None = None    # served when the profile names no dpid
        self.forwards: dict[tuple[str, int], Forward] = {f.key: f for f in config.forwards}
        # Every outside address is the gateway's: its own and the pool's.
        self._ours_outside = {str(a) for a in config.outside_addresses}
        self._ours_inside = self._ours_outside | {str(config.internal_gateway_ip)}
        logged = self.controller.mapping_log
        self.mapping_log = mapping_log or MappingLog(
            logged.file if logged.enabled else None, logged.max_bytes, logged.backups,
            logged.syslog if logged.enabled else None)
        self.events = events or EventFeed()     # for GET /nat/events (snatctl watch)
        exported = self.controller.ipfix
        self.ipfix = ipfix or (IpfixExporter(exported.collector, exported.log_destination,
                                             exported.template_interval)
                               if exported.collector is not None else None)

    # -- switch life cycle -------------------------------------------------
    def serves(self, dpid: int) -> bool:
        """The profile's ``dpid``; with none set, the first switch that came
        (one NAT address cannot be two bridges' at once), so another switch
        that connects later, or a process claiming another dpid, is refused."""
        if self.config.dpid is not None:
            return self.config.dpid == dpid
        return self.first_dpid is None or self.first_dpid == dpid

    def switch_connected(self, dpid: int, standby: bool = False) -> list:
        """Install the table-miss, ask for the ports; keep the flows there.

        The bridge is fail-secure: session flows that outlived a controller
        restart or a lost connection still carry traffic, and the flow dump
        asked for with the gateway rules rebuilds their sessions.  Our other
        rules are re-added in place (same match and priority: replaced, never
        missing for a moment).
        """
        if self.config.dpid is None and self.first_dpid is None:
            self.first_dpid = dpid
            LOG.info("serving switch %016x (dpid unset: the first to connect; set dpid to "
                     "name it)", dpid)
        state = SwitchState(dpid, standby=standby)
        if standby:
            self.parked.pop(dpid, None)     # the MASTER's flows are the truth now
        if isinstance(self.config.external_port, int):
            state.uplink = self.config.external_port
        self.switches[dpid] = state
        # Per-port punt meters come back with the port list; until then the
        # fallback sends to the controller unmetered.
        msgs = [flows.delete_app_flows(flows.CookieKind.PUNT_METER), flows.punt_fallback(),
                flows.table_miss(), *flows.retired_rules(), flows.port_desc_request()]
        if state.uplink is not None:
            msgs += self._gateway_rules(state)
        return msgs

    def switch_disconnected(self, dpid: int, now: float | None = None) -> None:
        """The switch's connection is gone: its NAT waits for it (a standby's
        warm table does not: the MASTER's flows are rebuilt into a new one)."""
        state = self.switches.pop(dpid, None)
        if state is not None and state.nat is not None and not state.standby:
            state.nat.lost_switch(_now(now))
            self.parked[dpid] = state.nat

    def refresh_standby(self, dpid: int) -> list:
        """A standby's switch: read the flows again into a new warm table
        (the old one's sessions may have ended at the MASTER since)."""
        state = self.switches.get(dpid)
        if state is None or not state.standby or state.uplink is None:
            return []
        if state.nat is not None and state.nat.adopting:
            return []                      # the last dump is still being read
        state.nat = None
        return self._gateway_rules(state)

    def adopting(self, dpid: int) -> bool:
        nat = self._nat(dpid)
        return nat is not None and nat.adopting

    def sessions(self, dpid: int) -> int:
        nat = self._nat(dpid)
        return len(nat.ct) if nat is not None else 0

    def ports_described(self, dpid: int, ports: Mapping[str, int],
                        down: Iterable[int] = ()) -> list:
        """Meter every port's packet-ins; resolve an uplink given by name and
        install the rules that need it; free the inside addresses bound to
        ports that are gone or whose link is ``down``."""
        state = self.switches.get(dpid)
        if state is None:
            return []
        state.ports = dict(ports)
        self._update_inside_ports(state)
        msgs = self._meter_ports(state) + self._resolve_uplink(state)
        if state.nat is not None and not state.standby:
            live = set(ports.values()) - set(down)
            gone = state.nat.bound_ports() - live
            msgs += state.nat.ports_down(gone)
        return msgs

    def _meter_ports(self, state: SwitchState) -> list:
        """A packet-in meter for each port that came, none for those gone."""
        rate = self.config.admission.port_rate
        ports = {p for p in state.ports.values() if p < 0xFFFFFF00} if rate else set()
        msgs = []
        for port in sorted(ports - state.metered.keys()):
            msgs += flows.punt_meter(port, rate, self.config.admission.port_burst)
            state.metered[port] = 0
        for port in sorted(state.metered.keys() - ports):
            msgs += flows.punt_unmeter(port)
            del state.metered[port]
            state.meter_rates.pop(port, None)
        return msgs

    def punt_rates(self, dpid: int, rates: Mapping[int, int]) -> list:
        """Set ports' packet-in meters to these rates (``ryu_app.openflow.punt_meters``),
        never above ``packet_in_port_rate``."""
        state = self.switches.get(dpid)
        if state is None:
            return []
        ceiling = self.config.admission.port_rate
        msgs = []
        for port, rate in sorted(rates.items()):
            if port not in state.metered:
                continue
            rate = min(rate, ceiling)
            if rate >= ceiling:
                state.meter_rates.pop(port, None)
            else:
                state.meter_rates[port] = rate
            msgs.append(flows.punt_meter_rate(port, rate, rate))
        return msgs

    def meter_stats(self, dpid: int, dropped: Mapping[int, int]) -> None:
        """A meter-stats reply: packet-ins each port's meter dropped (meter id = port)."""
        state = self.switches.get(dpid)
        if state is None:
            return
        for port, count in dropped.items():
            if port in state.metered:
                state.metered[port] = count
            elif (port - flows.CLASS_METER_BASE) in {c.value for c in flows.UplinkClass}:
                cls = flows.UplinkClass(port - flows.CLASS_METER_BASE)
                state.class_drops[f"uplink-{cls.name.lower()}"] = count

    def _resolve_uplink(self, state: SwitchState) -> list:
        """The uplink's port number from its name; the rules that need it."""
        dpid = state.dpid
        if isinstance(self.config.external_port, int):
            if self.config.external_port not in state.ports.values():
                LOG.warning("uplink port %d is not on switch %016x (yet)",
                            self.config.external_port, dpid)
            return []
        port_no = state.ports.get(self.config.external_port)
        if port_no is None:
            LOG.error("uplink %r is not on switch %016x; waiting for it to appear",
                      self.config.external_port, dpid)
            return []
        if port_no == state.uplink:
            return []
        state.uplink = port_no
        LOG.info("switch %016x: uplink %s is port %d", dpid, self.config.external_port, port_no)
        if state.nat is None:
            return self._gateway_rules(state)
        # The uplink came back under another number: every session's flows
        # lead to the old one.  They end (the engine, and so its session
        # ids, stay), and the rules that name the uplink are made anew.
        LOG.warning("switch %016x: uplink moved to port %d; its %d sessions end",
                    dpid, port_no, len(state.nat.ct))
        msgs = state.nat.uplink_moved(port_no, time.monotonic())
        return msgs + [flows.delete_app_flows(flows.CookieKind.INFRA), flows.barrier(),
                       flows.punt_fallback(), flows.table_miss()] + self._gateway_rules(state)

    def _gateway_rules(self, state: SwitchState) -> list:
        """ARP and ping for the gateway's two addresses, each on its own side;
        drop rules for the uplink; new inside flows to the controller."""
        cfg, up = self.config, state.uplink
        assert up is not None       # called once the uplink is known
        adopt = []
        if state.nat is None and state.standby:
            state.nat = NatService(cfg, GatewayCounters(), up)   # no mapping log
            state.nat.adopting = True
            return [flows.flow_stats_request()]   # a warm table needs no rules
        parked = self.parked.pop(state.dpid, None) if state.nat is None else None
        if parked is not None:
            # Back after a lost connection: the sessions it knew wait for
            # the flow dump, which says whether the switch kept their flows.
            state.nat = parked
            if parked.uplink != up:
                adopt += parked.uplink_moved(up, time.monotonic())
            parked.adopting = True
            adopt.append(flows.flow_stats_request())
        if state.nat is None:
            logged = self.mapping_log if self.controller.mapping_log.enabled else None
            blocks = 1 if cfg.deterministic else cfg.port_blocks_per_host
            reports = (self.ipfix.bridge(state.dpid, cfg.admission.max_connections,
                                         cfg.admission.max_connections_per_host,
                                         blocks * cfg.port_block_size)
                       if self.ipfix is not None else None)
            state.nat = NatService(cfg, self.counters, up, logged,
                                   functools.partial(self.events.record, state.dpid), reports)
            for fwd in self.forwards.values():
                if fwd not in cfg.forwards:
                    state.nat.install_forward(fwd)   # added over REST earlier
            state.nat.adopting = True
            adopt = [flows.flow_stats_request()]      # the reply rebuilds the sessions
        self._update_inside_ports(state)
        # The uplink's classes of packet-ins, each metered apart (the meters
        # before the rules that tag packets for them).
        classes = (flows.class_meters(max(1, cfg.admission.port_rate // len(flows.UplinkClass)))
                   if cfg.admission.port_rate else [])
        owned = cfg.outside_addresses      # the own address first: index 0, as before pools
        rules = classes + [
            *(rule for i, address in enumerate(owned) for rule in (
                flows.arp_to_controller(flows.InfraRule.ARP_OUTSIDE, up, address, i),
                flows.icmp_to_controller(flows.InfraRule.ICMP_OUTSIDE, up, address, i))),
            flows.arp_to_controller(flows.InfraRule.ARP_INSIDE, None, cfg.internal_gateway_ip),
            flows.icmp_to_controller(flows.InfraRule.ICMP_INSIDE, None, cfg.internal_gateway_ip),
        ]
        return (rules + flows.uplink_filters(up, owned, cfg.internal_subnet)
                + flows.inside_rules(cfg.internal_subnet) + flows.tcp_watch_rules(cfg.tcp_fin_upcall)
                + flows.fragment_rules(up, cfg.internal_subnet, owned)
                + state.nat.probe_flows() + adopt)

    @staticmethod
    def _update_inside_ports(state: SwitchState) -> None:
        if state.nat is not None:
            state.nat.set_inside_ports({
                p for p in state.ports.values() if p != state.uplink and p < 0xFFFFFF00})

    # -- port forwards (all switches) -------------------------------------------
    def add_forward(self, fwd: Forward) -> dict[int, list]:
        """Add a forward on every switch; ValueError/Refused leaves none changed."""
        done: list[NatService] = []
        msgs: dict[int, list] = {}
        try:
            for state in self.switches.values():
                if state.nat is not None:
                    msgs[state.dpid] = state.nat.add_forward(fwd)
                    done.append(state.nat)
        except Exception:
            for nat in done:
                nat.remove_forward(*fwd.key)
            raise
        self.forwards[fwd.key] = fwd
        return msgs

    def remove_forward(self, protocol: str, port: int) -> dict[int, list] | None:
        if self.forwards.pop((protocol, port), None) is None:
            return None
        return {s.dpid: s.nat.remove_forward(protocol, port) or []
                for s in self.switches.values() if s.nat is not None}

    # -- session life cycle, delegated to the switch's NatService ---------------
    def flow_removed(self, dpid: int, cookie: int, reason: int, packets: int, octets: int,
                     now: float | None = None) -> list:
        nat = self._nat(dpid)
        return nat.flow_removed(cookie, reason, packets, octets, _now(now)) if nat else []

    def flow_stats_reply(self, dpid: int, stats: list, more: bool,
                         now: float | None = None, polled: bool = True) -> list:
        """A part of a flow-stats reply (Ryu's OFPFlowStats): the adoption
        dump while the switch's sessions are being rebuilt, else counters.
        A reply to someone else's request (``polled`` false: an operator's
        ``ofctl_rest`` query) is theirs: TCP state moves on our polls' pace."""
        nat = self._nat(dpid)
        if nat is None or not (polled or nat.adopting):
            return []
        msgs = nat.flow_dump(stats, more, _now(now)) if nat.adopting else []
        entries = [(f.cookie, f.packet_count, f.byte_count, f.idle_timeout) for f in stats]
        return msgs + nat.flow_stats(entries, _now(now), more)

    def flow_counts(self, dpid: int, entries: list, now: float | None = None,
                    more: bool = False) -> list:
        """A part of a flow-stats reply as (cookie, packets, bytes, idle
        timeout) per flow, read off the wire (``ryu_app.openflow.channel``):
        counters only, so never while the switch's sessions are adopted."""
        nat = self._nat(dpid)
        if nat is None or nat.adopting:
            return []
        return nat.flow_stats(entries, _now(now), more)

    def tick(self, now: float | None = None) -> dict[int, list]:
        """Periodic work of every switch: ARP retries, expiry backstop."""
        grace = 2 * self.controller.stats_interval + 2
        self.mapping_log.flush()
        if self.ipfix is not None:
            self.ipfix.flush(_now(now))
        for nat in self.parked.values():
            nat.expire_away(_now(now), grace)   # no switch to tell: the engine's timers rule
        return {dpid: state.nat.tick(_now(now), grace)
                for dpid, state in self.switches.items() if state.nat is not None}

    def revoke_port_mapping(self, dpid: int, protocol: int, ip: str, port: int,
                            peer: tuple[str, int] | None, now: float | None = None) -> list | None:
        """End a mapping a host made over PCP/NAT-PMP (operator); None if none."""
        nat = self._nat(dpid)
        return nat.port_control.revoke(protocol, ip, port, peer, _now(now)) if nat else None

    def delete_session(self, dpid: int, sid: int, now: float | None = None) -> list | None:
        """End session ``sid`` on ``dpid`` (operator); None if there is none."""
        nat = self._nat(dpid)
        return nat.delete(sid, _now(now)) if nat else None

    def _nat(self, dpid: int) -> NatService | None:
        state = self.switches.get(dpid)
        return state.nat if state is not None else None

    # -- packets ---------------------------------------------------------------
    def packet_in(self, dpid: int, in_port: int, data: bytes, now: float | None = None,
                  metadata: int = 0) -> list:
        """Answer what is addressed to the gateway; NAT the rest; count drops.

        ``metadata`` is the packet's metadata when it was sent up: RSTs of a
        TCP session come up as copies (the switch forwards the RST itself),
        tagged with the session and direction.
        """
        self.counters.packet_ins += 1
        now = _now(now)
        state = self.switches.get(dpid)
        if state is None:
            self.counters.drop("unknown_switch")
            return []
        copied = flows.copied_session(metadata)
        if copied is not None:
            return state.nat.rst_copy(*copied, data, now) if state.nat else []
        quick = quick_classify(data)
        if quick is not None:             # TCP or UDP, not a fragment: as _ipv4 would
            if state.nat is None:
                return self._dropped("uplink_unknown")
            eth_src, info = quick
            outside = state.uplink is not None and in_port == state.uplink
            return state.nat.packet(in_port, eth_src, info, data, outside, now)
        try:
            pkt = wire.parse_frame(data)
        except wire.Malformed as why:
            LOG.debug("switch %016x port %d: malformed frame (%s)", dpid, in_port, why)
            self.counters.drop("malformed")
            return []
        eth = pkt.get_protocol(ethernet.ethernet)
        if eth is None:
            self.counters.drop("malformed")
            return []
        outside = state.uplink is not None and in_port == state.uplink
        if eth.ethertype == ether.ETH_TYPE_ARP:
            return self._arp(state, pkt, eth, in_port, outside, now)
        if eth.ethertype == ether.ETH_TYPE_IP:
            return self._ipv4(state, pkt, eth, in_port, outside, data, now)
        if eth.ethertype == ether.ETH_TYPE_IPV6:
            self.counters.drop("ipv6")
        else:
            self.counters.drop("unsupported_ethertype")
        return []

    def _arp(self, state: SwitchState, pkt: packet.Packet, eth: ethernet.ethernet,
             in_port: int, outside: bool, now: float) -> list:
        req = pkt.get_protocol(arp.arp)
        if req is None:
            self.counters.drop("malformed")
            return []
        ours = self._ours_outside if outside else {str(self.config.internal_gateway_ip)}
        if (not outside and req.src_ip == req.dst_ip and state.nat is not None
                and req.src_mac == eth.src and self._source_plausible(req.src_ip, outside)):
            # A gratuitous ARP from inside (a failover's new owner of an
            # address announcing itself): a claim like any other, checked
            # before it moves anything; never answered.
            return state.nat.inside_arp(req.src_ip, req.src_mac, in_port, now)
        if req.dst_ip not in ours:
            self.counters.drop("arp_not_for_gateway")
            return []
        if not self._source_plausible(req.src_ip, outside):
            self.counters.drop("spoofed_source")
            return []
        msgs = []
        if state.nat is not None:   # either opcode teaches us where the sender is
            if outside:
                msgs += state.nat.learn_next_hop(req.src_ip, req.src_mac, now)
            elif req.src_mac != eth.src:
                self.counters.drop("arp_mac_mismatch")   # binds nothing, asks nothing
            else:
                msgs += state.nat.host_answered(req.src_ip, req.src_mac, in_port, now)
        if req.opcode != arp.ARP_REQUEST:
            return msgs
        self.counters.arp_replies += 1
        reply = replies.arp_reply(eth, req, self.config.gateway_mac)
        return [flows.packet_out(in_port, reply)] + msgs

    def _ipv4(self, state: SwitchState, pkt: packet.Packet, eth: ethernet.ethernet,
              in_port: int, outside: bool, data: bytes, now: float) -> list:
        ip = pkt.get_protocol(ipv4.ipv4)
        if ip is None:
            self.counters.drop("malformed")
            return []
        if ip.flags & 0x1 or ip.offset:       # MF or an offset: a fragment
            if state.nat is None:
                return self._dropped("uplink_unknown")
            return state.nat.fragment(in_port, eth.src, data, outside, now)
        # A router answers ping on its own addresses: the NAT address from
        # both sides, the inside gateway address from inside.
        ours = self._ours_outside if outside else self._ours_inside
        if ip.proto == ICMP and ip.dst in ours:
            req = pkt.get_protocol(icmp.icmp)
            if req is None:
                self.counters.drop("malformed")
                return []
            if req.type != icmp.ICMP_ECHO_REQUEST or not isinstance(req.data, icmp.echo):
                if state.nat is not None and (outside or req.type in ERROR_TYPES):
                    # echo replies and errors from outside; an inside host's
                    # error about a hairpinned packet
                    return state.nat.packet(in_port, eth.src, classify(pkt, ip), data,
                                            outside, now)
                self.counters.drop("icmp_to_gateway_not_echo")
                return []
            if not self._source_plausible(ip.src, outside):
                self.counters.drop("spoofed_source")
                return []
            self.counters.icmp_echo_replies += 1
            reply = replies.echo_reply(eth, ip, req, self.config.gateway_mac)
            return [flows.packet_out(in_port, reply)]
        if state.nat is None:
            self.counters.drop("uplink_unknown")
            return []
        return state.nat.packet(in_port, eth.src, classify(pkt, ip), data, outside, now)

    def _dropped(self, reason: str) -> list:
        self.counters.drop(reason)
        return []

    def _source_plausible(self, src: str, outside: bool) -> bool:
        """Inside sources must be in the inside subnet; outside ones must not."""
        try:
            addr = ipaddress.IPv4Address(src)
        except ValueError:
            return False
        inside = addr in self.config.internal_subnet
        return inside != outside and not (addr.is_multicast or addr.is_unspecified)


def _now(now: float | None) -> float:
    return time.monotonic() if now is None else now
