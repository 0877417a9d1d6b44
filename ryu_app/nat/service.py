"""Source NAT on one switch: sessions live in conntrack, their flows in the switch.

:class:`NatService` turns packet-ins, flow-removed messages, flow stats and
the passing of time into lists of OpenFlow messages.  It decides nothing about
mappings itself (that is :mod:`conntrack`'s job) and sends nothing (that is
the Ryu shell's).

Life of a TCP/UDP session:

1. The first inside packet reaches the controller (no flow matches).  The
   engine creates the session (or returns it, for a duplicate packet-in).
2. Once the next hop's MAC is known (ARP, with a bounded hold queue), the
   forward and reverse flows go in with idle timeout = the session's timeout,
   and the packet itself is sent through the forward flow's actions.
3. Flow stats set the session's counters; growth refreshes it in conntrack;
   a TCP handshake seen in the counters moves it to ESTABLISHED, and both
   flows are re-added with the longer idle timeout.
4. When one flow idles out while the other is still there, the session
   lives on if the surviving direction may refresh it (outbound always,
   RFC 4787 REQ-6; inbound only once replied): the idle flow is re-added at
   once, so no packet of the quiet direction is lost.  A re-added flow that
   carries nothing proves nothing: when the other flow idles out while it
   stands in, both directions have been quiet for a whole timeout and the
   session ends.  Otherwise, or when both are gone, the session ends and
   its port is freed.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Callable, TypeVar

from ryu.ofproto import ofproto_v1_3 as ofp

from conntrack import ICMP, OUTBOUND, TCP, UDP, Event, Refused, RefuseReason, Session, TcpFlags
from conntrack.keys import unpack_okey
from ryu_app.journal.ipfix import BridgeReports
from ryu_app.journal.mapping_log import MappingLog
from ryu_app.nat.addresses import int_text, ipv4
from ryu_app.nat.admission import outbound_problem
from ryu_app.nat.counters import GatewayCounters
from ryu_app.nat.engine import make_engine
from ryu_app.nat.flow_book import FlowBook
from ryu_app.nat.flow_record import COUNTED_KINDS, OTHER_FLOW, FlowRecord
from ryu_app.nat.guard import SourceGuard
from ryu_app.nat.inside import InsideSide
from ryu_app.nat.neighbors import NextHops
from ryu_app.nat.paths.echo import EchoPaths
from ryu_app.nat.paths.fragments import Fragments
from ryu_app.nat.paths.hairpin import Hairpin
from ryu_app.nat.paths.icmp_signals import IcmpSignals
from ryu_app.nat.paths.inbound_sessions import InboundSessions
from ryu_app.nat.paths.port_control import PortControl
from ryu_app.nat.paths.tcp_tracking import TcpTracking
from ryu_app.nat.probes import MappingProbes
from ryu_app.nat.rebuild import Rebuild, TcpTimeouts
from ryu_app.nat.source_guard import Bindings, InsideHost
from ryu_app.nat.uplink import Held, Uplink
from ryu_app.openflow import flow_encoding, flows, lease_records
from ryu_app.openflow.flows import CookieKind
from ryu_app.packets.icmp_errors import ERROR_TYPES
from ryu_app.packets.packet_info import PacketInfo
from ryu_app.packets.port_control import SERVER_PORT as PCP_PORT
from ryu_app.settings.config import BridgeConfig
from ryu_app.settings.forwards import Forward

LOG = logging.getLogger(__name__)


E = TypeVar("E")


def _one_hook(*hooks: Callable[[E], None] | None) -> Callable[[E], None] | None:
    """The engine takes one hook per kind of event (sessions, port blocks):
    the mapping log, the event feed, IPFIX, any of them or none."""
    live = [hook for hook in hooks if hook is not None]
    if len(live) <= 1:
        return live[0] if live else None

    def each(event: E) -> None:
        for hook in live:
            hook(event)
    return each


def _infra_rule(ident: int) -> flows.InfraRule | None:
    try:
        return flows.InfraRule(ident & flows.INFRA_RULE_MASK)
    except ValueError:
        return None


class NatService:
    """Sessions and flows of one switch, given its uplink port number.

    The one module that wires the switch's NAT together: each packet path
    gets only the collaborators it uses (the engine, the flow book, the
    bindings, one side's neighbours, a drop function) and returns messages.
    """

    def __init__(self, config: BridgeConfig, counters: GatewayCounters, uplink: int,
                 mapping_log: MappingLog | None = None,
                 events: Callable[[Event], None] | None = None,
                 reports: BridgeReports | None = None) -> None:
        self.config = config
        self.counters = counters
        # No mapping log given, none kept: the gateway gives one only when
        # [nat] log_mappings is on, and none for a standby's warm table.
        # ``reports``: IPFIX NAT events (ipfix_collector), or None.
        self.reports = reports
        # With port blocks the mapping log has a line per block, not per session.
        blocks = config.port_block_size > 0
        self.ct = make_engine(config, on_event=_one_hook(
            None if blocks else mapping_log, events,
            reports.event if reports is not None else None),
            on_block=_one_hook(mapping_log.block if mapping_log is not None and blocks else None,
                                 reports.block if reports is not None and blocks else None))
        gw_ip = str(config.external_gateway_ip) if config.external_gateway_ip else None
        pinned = ({gw_ip: config.external_gateway_mac}
                  if config.external_gateway_mac and gw_ip else {})
        self.outside = Uplink(port=uplink, address=str(config.external_address),
                              pool=tuple(str(a) for a in config.nat_addresses),
                              gateway_mac=config.gateway_mac, hops=NextHops(pinned=pinned),
                              direct=config.external_range, gateway=gw_ip)
        self.inside = InsideSide(config.gateway_mac, str(config.internal_gateway_ip))
        self.hosts = Bindings(
            max_per_mac=config.admission.max_addresses_per_mac, idle=config.timers.binding_idle,
            static={ip: InsideHost(mac, port) for ip, mac, port in config.static_bindings})
        self.probes = MappingProbes(self.outside, config.filtering_for,
                                    kept=lambda mapping: bool(self.ct.held_peers(mapping)))
        self.book = FlowBook(self.ct, self.hosts, self.outside, self.probes,
                             config.timers.tcp_transitory)
        self.guard = SourceGuard(self.hosts, self.ct, self.book, self.inside, counters,
                                 config.admission.max_connections_per_host)
        self.rebuild = Rebuild(self.ct, self.book, self.hosts, counters, TcpTimeouts(
            config.timers.tcp_transitory, config.timers.tcp_established))
        drop = counters.dropped
        ct, book, hosts, outside, inside = self.ct, self.book, self.hosts, self.outside, self.inside
        self.echo = EchoPaths(ct, hosts, outside, drop)
        self.tcp = TcpTracking(ct, book, drop)
        report = self._report_refusal if reports is not None else None
        self.inbound_sessions = InboundSessions(ct, book, hosts, outside, inside, self.probes,
                                                drop, report)
        self.icmp = IcmpSignals(ct, book, hosts, inside, outside, counters)
        self.hairpin = Hairpin(ct, book, hosts, inside, outside, drop, report)
        self.fragments = Fragments(ct, book, hosts, outside, inside, self.outbound_session, drop)
        self.port_control = PortControl(
            ct, self.probes, outside, config.port_control, config.internal_subnet,
            str(config.internal_gateway_ip), config.gateway_mac, self.host_seen,
            log=mapping_log.note if mapping_log is not None else None)
        self._pcp_server = str(config.internal_gateway_ip)
        self._arp_warned: set[tuple[str, str]] = set()
        self.switch_drops: dict[str, int] = {}
        # True from the switch's (re)connection until its flow dump is read:
        # no new mapping may take a port a surviving flow still holds.
        self.adopting = False
        self.polls = 0          # flow-stats replies to our polls, counted at their last part
        self._dump: list = []
        self.away_since: float | None = None   # when the switch's connection was lost
        for fwd in config.forwards:
            self.install_forward(fwd)       # probe flows go in with the gateway rules

    # -- what the rest of the gateway reads -----------------------------------------
    @property
    def uplink(self) -> int:
        return self.outside.port

    @property
    def records(self) -> dict[int, FlowRecord]:
        return self.book.records

    @property
    def next_hops(self) -> NextHops[Held]:
        return self.outside.hops

    def where(self, session: Session) -> str:
        """Where the session's packets are handled: switch, controller or pending."""
        return self.book.where(session)

    def probe_flows(self) -> list:
        """The mapping probe flows and PCP/NAT-PMP lease records the switch
        should hold (after a connect)."""
        return self.probes.all() + self.port_control.records()

    # -- port forwards and ports ------------------------------------------------------
    def install_forward(self, fwd: Forward) -> bool:
        """A forward known before this switch came (config or REST).  One the
        engine refuses is logged and counted, never a reason to fail the
        switch: every other rule still goes in."""
        try:
            self.inbound_sessions.add_forward(fwd)
        except (Refused, ValueError) as why:
            LOG.error("forward %s not installed: %s", fwd, why)
            self.counters.drop("forward_refused")
            return False
        return True

    def add_forward(self, fwd: Forward) -> list:
        """Refused (port in use...) or ValueError if it cannot be installed."""
        return self.inbound_sessions.add_forward(fwd)

    def remove_forward(self, protocol: str, port: int) -> list | None:
        return self.inbound_sessions.remove_forward(protocol, port)

    def set_inside_ports(self, ports: set[int]) -> None:
        """Every port but the uplink: where an unknown inside host is asked for."""
        self.inside.ports = ports

    def bound_ports(self) -> set[int]:
        return self.guard.bound_ports()

    def ports_down(self, ports: set[int]) -> list:
        """Inside ports gone or down: the addresses bound there are free."""
        return self.guard.ports_down(ports)

    def unbind(self, ips: list[str], why: str) -> list:
        return self.guard.unbind(ips, why)

    def host_seen(self, ip: str, mac: str, port: int, now: float) -> list | None:
        return self.guard.host_seen(ip, mac, port, now)

    def inside_arp(self, ip: str, mac: str, port: int, now: float) -> list:
        """An ARP from inside names ``ip``: a claim, checked before it moves anything."""
        return self.guard.arp_from_inside(ip, mac, port, now)

    def host_answered(self, ip: str, mac: str, port: int, now: float) -> list:
        """An inside host's ARP to the gateway: a claim, and if the address is
        bound right there, what waited for that host goes to it."""
        msgs = self.guard.arp_from_inside(ip, mac, port, now)
        host = self.hosts.get(ip)
        if host is not None and (host.mac, host.port) == (mac, port):
            msgs += self.inbound_sessions.learned_inside(ip, now)
        return msgs

    # -- packets ----------------------------------------------------------------------
    def packet(self, in_port: int, eth_src: str, info: PacketInfo | str, data: bytes,
               outside: bool, now: float) -> list:
        """The one entrance for an IPv4 packet (not a fragment) the switch sent
        up: from the uplink, or from an inside port."""
        if outside:
            return self.from_outside(eth_src, info, data, now)
        return self.from_inside(in_port, eth_src, info, data, now)

    def rst_copy(self, kind: CookieKind, sid: int, data: bytes, now: float) -> list:
        """A copy of an RST that passed a session flow (tagged with its session)."""
        return self.tcp.rst_seen(kind, sid, data, now)

    def fragment(self, in_port: int, eth_src: str, data: bytes, outside: bool,
                 now: float) -> list:
        """An IPv4 fragment from either side."""
        return self.fragments.packet(in_port, eth_src, data, outside, now)

    def from_inside(self, in_port: int, eth_src: str, info: PacketInfo | str,
                    data: bytes, now: float) -> list:
        """The first packet(s) of an inside host's flow: map, install, send on."""
        if isinstance(info, str):
            return self.counters.dropped(info)
        if self.adopting:
            return self.counters.dropped("adopting")
        if info.protocol == UDP and info.dport == PCP_PORT and info.dst == self._pcp_server:
            return self.port_control.packet(in_port, eth_src, info, data, now)
        if info.protocol == ICMP and info.icmp_type in ERROR_TYPES:
            return self.icmp.outbound_error(in_port, eth_src, info, data, now)
        session, msgs = self.outbound_session(in_port, eth_src, info, data, now, hairpin=True)
        if session is None:
            return msgs
        return msgs + self.send_out(session, data, now)

    def outbound_session(self, in_port: int, eth_src: str, info: PacketInfo, data: bytes,
                         now: float, hairpin: bool = False) -> tuple[Session | None, list]:
        """Check an inside packet, learn its host, find or make its session.

        (session, messages) or (None, messages) when it is not to be sent on:
        dropped and counted, answered (Time Exceeded, 3/13), or hairpinned.
        """
        src, dst = ipv4(info.src), ipv4(info.dst)
        reason = outbound_problem(self.config, src, dst, info)
        if reason and not (reason == "ttl_expired" and src in self.config.internal_subnet):
            return None, self.counters.dropped(reason)
        msgs = self.host_seen(info.src, eth_src, in_port, now)
        if msgs is None:
            return None, []          # bound elsewhere: not even a Time Exceeded
        if reason:
            return None, msgs + self.icmp.ttl_expired(in_port, eth_src, data, now)
        if info.dst in self.outside.addresses:
            if not hairpin:
                return None, msgs + self.counters.dropped("hairpin_fragment")
            return None, msgs + self.hairpin.packet(info, data, now)
        if self.outside.route(info.dst) is None:
            return None, msgs + self.counters.dropped("no_route")
        src_n, dst_n = int(src), int(dst)   # the engine is fastest with ints
        session = self.ct.lookup_outbound(info.protocol, src_n, info.sport, dst_n, info.dport)
        if session is None:
            if info.protocol == TCP and info.tcp_flags & (TcpFlags.SYN | TcpFlags.ACK) != TcpFlags.SYN:
                return None, msgs + self.counters.dropped("tcp_not_syn")   # no mapping mid-stream
            try:
                self.guard.check_quota(info.src)
                session = self.ct.create_outbound(info.protocol, src_n, info.sport, dst_n,
                                                  info.dport, now, info.tcp_flags)
            except Refused as refused:
                self.counters.dropped(refused.reason.value)
                self._report_refusal(refused.reason, src_n, info.protocol, now)
                return None, msgs + self.icmp.prohibited(in_port, eth_src, data, now)
        elif info.protocol == TCP and info.tcp_flags & (TcpFlags.SYN | TcpFlags.ACK) == TcpFlags.SYN:
            msgs += self.tcp.syn_again(session, now)
        return session, msgs

    def _report_refusal(self, reason: RefuseReason, inside_ip: int, protocol: int,
                        now: float) -> None:
        """A refused new session to IPFIX (quota exceeded, ports exhausted on
        the address the host is paired with), if it is on."""
        if self.reports is not None:
            address = self.ct.host_address(inside_ip) or self.ct.addresses[0]
            self.reports.refused(reason, inside_ip, protocol, int(address), now)

    def send_out(self, session: Session, data: bytes, now: float) -> list:
        """Send ``data`` of ``session`` outwards, once its next hop is known."""
        remote = int_text(unpack_okey(session.okey)[3])
        hop = self.outside.route(remote)
        assert hop is not None      # outbound_session refused remotes without a route
        mac = self.outside.hops.lookup(hop, now)
        if mac is None:
            accepted, ask = self.outside.hops.hold(hop, (session.id, OUTBOUND, data), now)
            if not accepted:
                self.counters.dropped("arp_queue_full")
                if session.id not in self.book.records and not self.outside.hops.holds(session.id):
                    return self.book.end(session, "arp_queue_full", now)
            return [self.outside.arp_request(hop, now)] if ask else []
        if session.protocol == ICMP:
            return self.echo.outbound(session, mac, data, now)
        msgs = self.book.ensure_flows(session, mac)
        rec = self.book.records[session.id]
        rec.count_sent(CookieKind.SESSION_OUT, len(data))
        msgs.append(flow_encoding.packet_out_forward(rec.spec, data))
        return msgs

    # -- packets from outside ------------------------------------------------------
    def from_outside(self, eth_src: str, info: PacketInfo | str, data: bytes, now: float) -> list:
        """Inbound to the NAT address that reached the controller: a mapping
        probe (EIF/ADF filtering) or ICMP echo on the controller path."""
        if isinstance(info, str):
            return self.counters.dropped(info)
        if self.adopting:
            return self.counters.dropped("adopting")
        if info.dst not in self.outside.addresses:
            return self.counters.dropped("outside_not_for_us")
        if info.protocol == ICMP:
            if info.is_echo_reply:
                return self.echo.inbound(info, data, now)
            if info.icmp_type in ERROR_TYPES:
                return self.icmp.inbound_error(data, info.dst)
            return self.counters.dropped("icmp_unsupported")
        return self.inbound_sessions.packet(eth_src, info, data, now)

    def learn_next_hop(self, ip: str, mac: str, now: float) -> list:
        """An ARP reply from the outside to a request of ours: ``ip`` is at
        ``mac``; release what waited.  Anything else (a request, a
        gratuitous or unasked reply) is counted and teaches nothing: a
        forged one would send sessions to the wrong MAC."""
        if ipaddress.IPv4Address(ip) not in self.config.external_ip.network:
            return []
        if not self.outside.hops.solicited(ip, now):
            known = self.outside.hops.lookup(ip, now)
            if known is not None and known != mac and len(self._arp_warned) < 1024 \
                    and (ip, mac) not in self._arp_warned:
                self._arp_warned.add((ip, mac))     # once per claim: a flood logs little
                LOG.warning("unsolicited ARP says next hop %s is at %s (it is at %s): "
                            "ignored", ip, mac, known)
            return self.counters.dropped("arp_unsolicited")
        msgs: list = []
        for sid, direction, data in self.outside.hops.learn(ip, mac, now):
            session = self.ct.get(sid)
            if session is None:
                continue
            if direction == OUTBOUND:
                msgs += self.send_out(session, data, now)
            else:
                msgs += self.inbound_sessions.deliver(session, data, now)
        return msgs

    # -- flows ------------------------------------------------------------------------
    def flow_removed(self, cookie: int, reason: int, packets: int, octets: int,
                     now: float) -> list:
        """A session flow left the switch: keep the session, or end it."""
        parsed = flows.parse_cookie(cookie)
        if parsed is None or parsed[0] not in OTHER_FLOW:
            return []
        kind, sid = parsed
        rec = self.book.records.get(sid)
        if rec is None:
            return []
        if reason == ofp.OFPRR_DELETE and kind in rec.replacing:
            rec.replaced(kind, packets, octets)    # the host moved: its new flow is in
            return []
        rec.retire(kind, packets, octets)
        rec.installed.discard(kind)
        rec.revived.discard(kind)
        session = self.ct.get(sid)
        if session is not None:
            self.ct.set_counters(sid, *self.book.totals(rec))
        if session is None or rec.ending:
            return self.book.forget(sid) if not rec.installed else []
        if reason == ofp.OFPRR_IDLE_TIMEOUT and (
                rec.active(kind, now, session.timeout)      # its fragments passed the controller
                or self._other_keeps(session, rec, kind, now)):
            # Re-added at once, standing in until it carries traffic itself.
            rec.installed.add(kind)
            rec.revived.add(kind)
            return [self.book.flow_of(rec, kind)]
        why = "idle" if reason == ofp.OFPRR_IDLE_TIMEOUT else "flow_deleted"
        return self.book.end(session, why, now)

    def _other_keeps(self, session: Session, rec: FlowRecord, kind: CookieKind,
                     now: float) -> bool:
        """Is the session's other direction active, and may it keep the
        session alive (outbound always; inbound once replied)?  A hairpinned
        session's other direction is its peer's one flow."""
        timeout = session.timeout
        if rec.peer is not None:
            peer = self.book.records.get(rec.peer)
            return peer is not None and peer.active(CookieKind.SESSION_OUT, now, timeout)
        other = OTHER_FLOW[kind]
        return rec.active(other, now, timeout) and (
            other == CookieKind.SESSION_OUT or session.replied)

    # -- periodic work --------------------------------------------------------------
    def flow_stats(self, entries: list[tuple[int, int, int, int]], now: float,
                   more: bool = False) -> list:
        """Apply a part of a flow-stats reply to our poll (``more``: not its
        last): (cookie, packets, bytes, idle timeout) of each of our flows.

        Only the sessions the reply names are looked at: a reply comes in
        parts (one event each) and walking every record per part cost a
        third of a second at 100k sessions, with packet-ins waiting.
        """
        touched: dict[int, FlowRecord] = {}
        idle: dict[int, dict] = {}
        dropped: dict[str, int] = {}     # a rule repeated per pool address counts once, summed
        for cookie, packets, octets, idle_timeout in entries:
            parsed = flows.parse_cookie(cookie)
            if parsed is None:
                continue
            kind, ident = parsed
            if kind == CookieKind.INFRA:
                rule = _infra_rule(ident)
                if rule in (flows.InfraRule.UNSOLICITED_DROP, flows.InfraRule.OUTSIDE_DROP,
                            flows.InfraRule.INSIDE_IPV6_DROP, flows.InfraRule.SPOOFED_INSIDE_DROP):
                    name = rule.name.lower()
                    dropped[name] = dropped.get(name, 0) + packets
            elif kind == CookieKind.BINDING_DROP:
                self.guard.drops[ident] = packets
            elif kind in COUNTED_KINDS:
                rec = self.book.records.get(ident)
                if rec is not None and kind not in rec.replacing:
                    rec.update(kind, packets, octets)
                    touched[ident] = rec
                    idle.setdefault(ident, {})[kind] = idle_timeout
        self.switch_drops.update(dropped)
        if self.guard.drops:
            self.switch_drops["source_guard"] = sum(self.guard.drops.values())
        msgs: list = []
        for sid, rec in touched.items():
            session = self.ct.set_counters(sid, *self.book.totals(rec), now=now)
            if session is not None and session.protocol == TCP and not rec.ending:
                msgs += self.tcp.flows_seen(session, rec, idle[sid], now, self.polls)
        if not more:
            self.polls += 1
        return msgs

    def tick(self, now: float, grace: float) -> list:
        """ARP retries, given-up holds, and the engine's expiry as a backstop.

        The switch is authoritative for sessions with flows: their flows idle
        out first and flow-removed ends them.  The engine's sweep lags by
        ``grace`` (it only learns of activity from stats polls) and catches
        sessions whose flow-removed never came or that never got flows.
        """
        msgs: list = []
        ask, given_up = self.outside.hops.tick(now)
        msgs += [self.outside.arp_request(ip, now) for ip in ask]
        for sid, _direction, _data in given_up:
            self.counters.dropped("next_hop_unresolved")
            session = self.ct.get(sid)
            if session is not None and sid not in self.book.records:
                msgs += self.book.end(session, "next_hop_unresolved", now)
        for session in self.ct.expire(now, grace):
            msgs += self.book.after_end(session, now)
        self.book.sweep_ending(now, grace)
        self.fragments.tick(now)
        return (msgs + self.inbound_sessions.tick(now) + self.guard.tick(now)
                + self.port_control.tick(now))

    def uplink_moved(self, uplink: int, now: float) -> list:
        """The uplink has a new port number: end every session (their flows
        point at the old one) and the probe flows that name it; ids go on."""
        msgs: list = []
        for session in self.ct.sessions():
            msgs += self.book.end(session, "uplink_moved", now)
        self.outside.port = uplink
        return msgs + [flows.delete_app_flows(CookieKind.MAPPING)]

    # -- after a (re)connection: the switch's flows are the truth ----------------------
    def flow_dump(self, stats: list, more: bool, now: float) -> list:
        """A part of the flow-stats reply; the last part ends the adoption."""
        self._dump += stats
        if more:
            return []
        dump, self._dump, self.adopting = self._dump, [], False
        away = None if self.away_since is None else now - self.away_since
        self.away_since = None
        msgs = self.rebuild.from_dump(dump, now, away)
        if away is None:           # a new controller: the leases come back from their records
            msgs += self.port_control.adopt(lease_records.read_records(dump), now)
            msgs += self.port_control.announce(sorted(self.inside.ports), now)
        return msgs

    def lost_switch(self, now: float) -> None:
        """The switch's connection is gone; the sessions stay (since the first loss)."""
        if self.away_since is None:
            self.away_since = now

    def expire_away(self, now: float, grace: float) -> None:
        """While the switch is away, sessions end by the engine's timers
        alone (logged as any expiry); their flow deletes have no switch to
        go to, and a switch that comes back has lost them or idled them out."""
        for session in self.ct.expire(now, grace):
            self.book.after_end(session, now)
            self.book.forget(session.id)
        self.port_control.tick(now)    # leases end on time; their records time out in the switch

    # -- operator ---------------------------------------------------------------------
    def delete(self, sid: int, now: float) -> list | None:
        session = self.ct.get(sid)
        if session is None:
            return None
        return self.book.end(session, "operator", now)
