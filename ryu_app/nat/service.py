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
from typing import Callable

from ryu.ofproto import ofproto_v1_3 as ofp

from conntrack import OUTBOUND, Event, Refused, RefuseReason, Session, State, TCP, TcpFlags
from conntrack.keys import unpack_okey
from ryu_app.openflow import flow_encoding
from ryu_app.openflow import flows
from ryu_app.packets import replies
from ryu_app.openflow.adoption import AdoptedSession, read_sessions
from ryu_app.nat.addresses import int_text, ipv4
from ryu_app.nat.admission import outbound_problem
from ryu_app.settings.config import NatConfig
from ryu_app.nat.counters import GatewayCounters
from ryu_app.nat.engine import make_engine
from ryu_app.nat.flow_record import COUNTED_KINDS, OTHER_FLOW, FlowRecord
from ryu_app.journal.mapping_log import MappingLog
from ryu_app.openflow.flows import CookieKind, SessionPath
from ryu_app.settings.forwards import Forward
from ryu_app.packets.icmp_errors import ERROR_TYPES
from ryu_app.nat.neighbors import NextHops
from ryu_app.nat.source_guard import Bindings, Claim, InsideHost
from ryu_app.packets.packet_info import ICMP, PacketInfo
from ryu_app.nat.paths.tcp_tracking import flow_idle_timeout

LOG = logging.getLogger(__name__)


def _one_hook(*hooks: Callable[[Event], None] | None) -> Callable[[Event], None] | None:
    """The engine takes one event hook: the mapping log, the event feed, or both."""
    live = [hook for hook in hooks if hook is not None]
    if len(live) <= 1:
        return live[0] if live else None

    def each(event: Event) -> None:
        for hook in live:
            hook(event)
    return each

class NatService:
    """Sessions and flows of one switch, given its uplink port number."""

    def __init__(self, config: NatConfig, counters: GatewayCounters, uplink: int,
                 mapping_log: MappingLog | None = None,
                 events: Callable[[Event], None] | None = None) -> None:
        self.config = config
        self.counters = counters
        self.uplink = uplink
        if mapping_log is None and config.log_mappings:
            mapping_log = MappingLog()
        self.ct = make_engine(config, on_event=_one_hook(
            mapping_log if config.log_mappings else None, events))
        self.records: dict[int, FlowRecord] = {}
        # Ended sessions whose flow deletes are out, by when: their records go
        # when the flow-removed notices come, or after a grace period (a
        # delete of flows that had already gone brings no notice at all).
        self._ending: dict[int, float] = {}
        pinned = ({str(config.external_gateway_ip): config.external_gateway_mac}
                  if config.external_gateway_mac and config.external_gateway_ip else {})
        self.next_hops: NextHops[tuple[int, int, bytes]] = NextHops(pinned=pinned)
        self.hosts = Bindings(
            max_per_mac=config.max_addresses_per_mac, idle=config.binding_idle_timeout,
            static={ip: InsideHost(mac, port) for ip, mac, port in config.static_bindings})
        # Addresses unbound (link down, idle) while sessions of theirs lived:
        # when they are bound again, those sessions' flows follow.
        self._orphans: set[str] = set()
        self._guard_drops: dict[int, int] = {}   # address -> packets its drop rule counted
        self._bindings_swept = 0.0
        self._arp_warned: set[tuple[str, str]] = set()
        self.switch_drops: dict[str, int] = {}
        self._external = str(config.external_address)
        # True from the switch's (re)connection until its flow dump is read:
        # no new mapping may take a port a surviving flow still holds.
        self.adopting = False
        self.polls = 0          # flow-stats replies to our polls, counted at their last part
        self._dump: list = []
        from ryu_app.nat.paths.echo import EchoPaths   # these two use the records above
        from ryu_app.nat.paths.fragments import Fragments
        from ryu_app.nat.paths.hairpin import Hairpin
        from ryu_app.nat.paths.icmp_signals import IcmpSignals
        from ryu_app.nat.paths.inbound import Inbound
        from ryu_app.nat.paths.probes import MappingProbes
        from ryu_app.nat.paths.tcp_tracking import TcpTracking
        self.echo = EchoPaths(self)
        self.tcp = TcpTracking(self)
        self.probes = MappingProbes(self)
        self.inbound = Inbound(self)
        self.icmp = IcmpSignals(self)
        self.hairpin = Hairpin(self)
        self.fragments = Fragments(self)
        for fwd in config.forwards:
            self.install_forward(fwd)       # probe flows go in with the gateway rules

    def install_forward(self, fwd: Forward) -> bool:
        """A forward known before this switch came (config or REST).  One the
        engine refuses is logged and counted, never a reason to fail the
        switch: every other rule still goes in."""
        try:
            self.inbound.add_forward(fwd)
        except (Refused, ValueError) as why:
            LOG.error("forward %s not installed: %s", fwd, why)
            self.counters.drop("forward_refused")
            return False
        return True

    # -- packets from inside ------------------------------------------------------
    def from_inside(self, in_port: int, eth_src: str, info: PacketInfo | str,
                    data: bytes, now: float) -> list:
        """The first packet(s) of an inside host's flow: map, install, send on."""
        if isinstance(info, str):
            return self._drop(info)
        if self.adopting:
            return self._drop("adopting")
        if info.protocol == ICMP and info.icmp_type in ERROR_TYPES:
            return self.icmp.outbound_error(in_port, eth_src, info, data, now)
        session, msgs = self.outbound_session(in_port, eth_src, info, data, now, hairpin=True)
        if session is None:
            return msgs
        return msgs + self._send_out(session, data, now)

    def outbound_session(self, in_port: int, eth_src: str, info: PacketInfo, data: bytes,
                         now: float, hairpin: bool = False) -> tuple[Session | None, list]:
        """Check an inside packet, learn its host, find or make its session.

        (session, messages) or (None, messages) when it is not to be sent on:
        dropped and counted, answered (Time Exceeded, 3/13), or hairpinned.
        """
        src, dst = ipv4(info.src), ipv4(info.dst)
        reason = outbound_problem(self.config, src, dst, info)
        if reason and not (reason == "ttl_expired" and src in self.config.internal_subnet):
            return None, self._drop(reason)
        msgs = self.host_seen(info.src, eth_src, in_port, now)
        if msgs is None:
            return None, []          # bound elsewhere: not even a Time Exceeded
        if reason:
            return None, msgs + self.icmp.ttl_expired(in_port, eth_src, data, now)
        if dst == self.config.external_address:
            if not hairpin:
                return None, msgs + self._drop("hairpin_fragment")
            return None, msgs + self.hairpin.packet(info, data, now)
        if self.next_hop(info.dst) is None:
            return None, msgs + self._drop("no_route")
        src_n, dst_n = int(src), int(dst)   # the engine is fastest with ints
        session = self.ct.lookup_outbound(info.protocol, src_n, info.sport, dst_n, info.dport)
        if session is None:
            if info.protocol == TCP and info.tcp_flags & (TcpFlags.SYN | TcpFlags.ACK) != TcpFlags.SYN:
                return None, msgs + self._drop("tcp_not_syn")   # no mapping mid-stream
            try:
                self._check_place_quota(info.src)
                session = self.ct.create_outbound(info.protocol, src_n, info.sport, dst_n,
                                                  info.dport, now, info.tcp_flags)
            except Refused as refused:
                self._drop(refused.reason.value)
                return None, msgs + self.icmp.prohibited(in_port, eth_src, data, now)
        elif info.protocol == TCP and info.tcp_flags & (TcpFlags.SYN | TcpFlags.ACK) == TcpFlags.SYN:
            msgs += self.tcp.syn_again(session, now)
        return session, msgs

    def host_seen(self, ip: str, mac: str, port: int, now: float) -> list | None:
        """A packet from (port, mac) names ``ip`` as its source.  None when the
        address is bound elsewhere (``ryu_app.nat.source_guard``): refused,
        counted, learned from never.  Otherwise the rules a new binding needs."""
        claim = self.hosts.claim(ip, mac, port, now)
        if claim is Claim.SAME:
            return []
        if claim is not Claim.NEW:
            self._drop("source_guard" if claim is Claim.ELSEWHERE else "source_guard_full")
            return None
        msgs = flows.binding_rules(ip, mac, port)
        while self.hosts.evicted:           # the table was full: the oldest made room
            msgs += flows.delete_binding(self.hosts.evicted.pop())
        if ip in self._orphans:
            self._orphans.discard(ip)
            msgs += self._follow(ip, InsideHost(mac, port))
        return msgs

    def _check_place_quota(self, ip: str) -> None:
        """``max_connections_per_host`` is charged to the (port, MAC) that
        sends, across every address bound there: more addresses are no way
        around it."""
        siblings = self.hosts.siblings(ip)
        if len(siblings) > 1 and sum(self.ct.host_sessions(int(ipv4(a))) for a in siblings) \
                >= self.config.max_connections_per_host:
            raise Refused(RefuseReason.HOST_QUOTA, f"port and MAC of {ip}")

    def inside_arp(self, ip: str, mac: str, port: int, now: float) -> list:
        """An ARP from inside names ``ip`` as its sender.  From where the
        address is bound, or for a free one, it binds as any packet does;
        from elsewhere it starts a move check (both places asked) and
        teaches nothing."""
        self.hosts.answered(ip, mac, port)
        if self.hosts.checking(ip) is not None:
            return []
        old = self.hosts.get(ip)
        if old is None or (old.mac, old.port) == (mac, port):
            msgs = self.host_seen(ip, mac, port, now)
            return msgs or []
        self._drop("source_guard_arp")
        if not self.hosts.start_check(ip, mac, port, now):
            return []
        self.counters.move_checks += 1
        LOG.warning("%s is bound to port %d (%s); %s on port %d claims it: asking both by ARP",
                    ip, old.port, old.mac, mac, port)
        return [self._probe(ip, old), self._probe(ip, InsideHost(mac, port))]

    def _probe(self, ip: str, place: InsideHost):
        cfg = self.config
        return flows.packet_out(place.port, replies.arp_request(
            cfg.gateway_mac, str(cfg.internal_gateway_ip), ip, place.mac))

    def _follow(self, ip: str, host: InsideHost) -> list:
        """The host of ``ip`` is at ``host`` now: its sessions' flows follow
        (the forward flow matches the port and MAC, so the old one goes)."""
        msgs: list = []
        for rec in self.records.values():
            p = rec.path
            if p.inside_ip != ip or not rec.installed or rec.ending or rec.hairpin:
                continue
            if (p.inside_mac, p.inside_switch_port) == (host.mac, host.port):
                continue
            rec.path = p._replace(inside_mac=host.mac, inside_switch_port=host.port)
            if CookieKind.SESSION_OUT in rec.installed:
                rec.replace(CookieKind.SESSION_OUT)
                msgs.append(flows.delete_forward_flow(p.session_id))
            msgs += [self.flow_of(rec, kind) for kind in sorted(rec.installed)]
        return msgs

    def unbind(self, ips: list[str], why: str) -> list:
        """Free addresses (their port went down, or they idled): their rules go."""
        msgs: list = []
        for ip in ips:
            if self.hosts.unbind(ip) is None:
                continue
            LOG.info("%s unbound (%s)", ip, why)
            self._guard_drops.pop(int(ipv4(ip)), None)
            if self.ct.host_sessions(int(ipv4(ip))):
                self._orphans.add(ip)
            msgs += flows.delete_binding(ip)
        return msgs

    def ports_down(self, ports: set[int]) -> list:
        """Inside ports gone or down: the addresses bound there are free."""
        return self.unbind(self.hosts.on_ports(ports), "port down") if ports else []

    def _guard_tick(self, now: float) -> list:
        """Move checks that are due; now and then, bindings gone idle."""
        msgs: list = []
        outcome = self.hosts.due(now)
        msgs += [self._probe(ip, place) for ip, place in outcome.probe]
        for ip, claimant in outcome.refused:
            LOG.warning("%s stays bound: its port answered, or %s on port %d did not",
                        ip, claimant.mac, claimant.port)
            self._drop("source_guard_move_refused")
        for ip, host in outcome.moved:
            LOG.warning("%s moved to port %d (%s): its old place was silent", ip, host.port,
                        host.mac)
            self.counters.hosts_moved += 1
            msgs += flows.delete_binding(ip) + flows.binding_rules(ip, host.mac, host.port)
            msgs += self._follow(ip, host)
        if now - self._bindings_swept >= 5:
            self._bindings_swept = now
            msgs += self.unbind(self.hosts.idle_ones(
                now, lambda ip: self.ct.host_sessions(int(ipv4(ip))) > 0), "idle")
        return msgs

    def next_hop(self, remote: str) -> str | None:
        """Remotes on the external prefix directly, others via the gateway."""
        low, high = self.config.external_range
        if low <= int(ipv4(remote)) <= high:
            return remote
        gw = self.config.external_gateway_ip
        return str(gw) if gw is not None else None

    def _send_out(self, session: Session, data: bytes, now: float) -> list:
        """Send ``data`` of ``session`` outwards, once its next hop is known."""
        remote = int_text(unpack_okey(session.okey)[3])
        hop = self.next_hop(remote)
        mac = self.next_hops.lookup(hop, now)
        if mac is None:
            accepted, ask = self.next_hops.hold(hop, (session.id, OUTBOUND, data), now)
            if not accepted:
                self._drop("arp_queue_full")
                if session.id not in self.records and not self.next_hops.holds(session.id):
                    return self.end(session, "arp_queue_full", now)
            return [self._arp_request(hop, now)] if ask else []
        if session.protocol == ICMP:
            return self.echo.outbound(session, mac, data, now)
        msgs = self._ensure_flows(session, mac)
        rec = self.records[session.id]
        rec.count_sent(CookieKind.SESSION_OUT, len(data))
        msgs.append(flow_encoding.packet_out_forward(rec.path, data))
        return msgs

    def totals(self, rec: FlowRecord) -> tuple[int, int, int, int]:
        """A session's counters: its flows', and for a hairpinned one, its
        replies from the other host's flow."""
        out_p, out_b, in_p, in_b = rec.totals()
        peer = self.records.get(rec.peer) if rec.peer is not None else None
        if peer is not None:
            in_p, in_b = peer.totals()[:2]
        return out_p, out_b, in_p, in_b

    def plain_packets(self, rec: FlowRecord) -> tuple[int, int]:
        """Packets out and in without FIN or RST (a hairpinned session's
        inbound ones are its peer's outbound)."""
        out_p, in_p = rec.plain_packets()
        peer = self.records.get(rec.peer) if rec.peer is not None else None
        return (out_p, peer.plain_packets()[0]) if peer is not None else (out_p, in_p)

    def flow_of(self, rec: FlowRecord, kind: CookieKind):
        """One of a session's flows as it is now (path, idle timeout), to re-add;
        a hairpinned session's one flow has its own actions."""
        rec.sent(kind)
        if rec.actions is None:
            return flow_encoding.session_flow(rec.path, kind)
        return flows.session_flow(rec.path, kind, rec.actions)

    def next_hop_mac(self, session: Session, now: float) -> str | None:
        """The MAC the session's packets go out to: fresh from the ARP cache,
        else the one its flows use (an ARP entry ages out while a session lives)."""
        mac = self.next_hops.lookup(self.next_hop(str(session.remote_ip)) or "", now)
        rec = self.records.get(session.id)
        return mac or (rec.path.next_hop_mac if rec is not None else None)

    def _arp_request(self, ip: str, now: float) -> object:
        self.next_hops.asked(ip, now)
        frame = replies.arp_request(self.config.gateway_mac, self._external, ip)
        return flows.packet_out(self.uplink, frame)

    # -- packets from outside ------------------------------------------------------
    def from_outside(self, eth_src: str, info: PacketInfo | str, data: bytes, now: float) -> list:
        """Inbound to the NAT address that reached the controller: a mapping
        probe (EIF/ADF filtering) or ICMP echo on the controller path."""
        if isinstance(info, str):
            return self._drop(info)
        if self.adopting:
            return self._drop("adopting")
        if info.dst != self._external:
            return self._drop("outside_not_for_us")
        if info.protocol == ICMP:
            if info.is_echo_reply:
                return self.echo.inbound(info, data, now)
            if info.icmp_type in ERROR_TYPES:
                return self.icmp.inbound_error(data)
            return self._drop("icmp_unsupported")
        return self.inbound.packet(eth_src, info, data, now)

    def learn_next_hop(self, ip: str, mac: str, now: float) -> list:
        """An ARP reply from the outside to a request of ours: ``ip`` is at
        ``mac``; release what waited.  Anything else (a request, a
        gratuitous or unasked reply) is counted and teaches nothing: a
        forged one would send sessions to the wrong MAC."""
        if ipaddress.IPv4Address(ip) not in self.config.external_ip.network:
            return []
        if not self.next_hops.solicited(ip, now):
            known = self.next_hops.lookup(ip, now)
            if known is not None and known != mac and len(self._arp_warned) < 1024 \
                    and (ip, mac) not in self._arp_warned:
                self._arp_warned.add((ip, mac))     # once per claim: a flood logs little
                LOG.warning("unsolicited ARP says next hop %s is at %s (it is at %s): "
                            "ignored", ip, mac, known)
            return self._drop("arp_unsolicited")
        msgs: list = []
        for sid, direction, data in self.next_hops.learn(ip, mac, now):
            session = self.ct.get(sid)
            if session is None:
                continue
            if direction == OUTBOUND:
                msgs += self._send_out(session, data, now)
            else:
                msgs += self.inbound.deliver(session, data, now)
        return msgs

    # -- flows ------------------------------------------------------------------------
    def path(self, session: Session, next_hop_mac: str) -> SessionPath | None:
        protocol, inside, inside_port, remote, remote_port = unpack_okey(session.okey)
        inside_ip = int_text(inside)
        host = self.hosts.get(inside_ip)
        if host is None:
            return None
        closing = self.config.tcp_transitory_timeout if protocol == TCP else 0
        return SessionPath(
            session_id=session.id, protocol=protocol,
            inside_ip=inside_ip, inside_port=inside_port,
            external_ip=self._external, external_port=session.external_port,
            remote_ip=int_text(remote), remote_port=remote_port,
            inside_mac=host.mac, inside_switch_port=host.port, next_hop_mac=next_hop_mac,
            uplink=self.uplink, gateway_mac=self.config.gateway_mac,
            idle_timeout=flow_idle_timeout(session, closing), closing_timeout=closing)

    def _ensure_flows(self, session: Session, next_hop_mac: str) -> list:
        """Both flows of ``session`` unless already sent (duplicate packet-ins)."""
        rec = self.records.get(session.id)
        if rec is not None and rec.installed == set(OTHER_FLOW):
            return []
        path = self.path(session, next_hop_mac)
        if rec is None:
            rec = self.records[session.id] = FlowRecord(path)
        rec.path = path
        rec.installed = set(OTHER_FLOW)
        rec.ending = False
        rec.revived.clear()
        for kind in OTHER_FLOW:
            rec.sent(kind)
        msgs = flow_encoding.session_flows(path)
        msgs += self.probes.for_session(session, add=True)
        return msgs

    def flow_removed(self, cookie: int, reason: int, packets: int, octets: int,
                     now: float) -> list:
        """A session flow left the switch: keep the session, or end it."""
        parsed = flows.parse_cookie(cookie)
        if parsed is None or parsed[0] not in OTHER_FLOW:
            return []
        kind, sid = parsed
        rec = self.records.get(sid)
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
            self.ct.set_counters(sid, *self.totals(rec))
        if session is None or rec.ending:
            return self._forget(sid) if not rec.installed else []
        if reason == ofp.OFPRR_IDLE_TIMEOUT and (
                rec.active(kind, now, session.timeout)      # its fragments passed the controller
                or self._other_keeps(session, rec, kind, now)):
            # Re-added at once, standing in until it carries traffic itself.
            rec.installed.add(kind)
            rec.revived.add(kind)
            return [self.flow_of(rec, kind)]
        why = "idle" if reason == ofp.OFPRR_IDLE_TIMEOUT else "flow_deleted"
        return self.end(session, why, now)

    def _other_keeps(self, session: Session, rec: FlowRecord, kind: CookieKind,
                     now: float) -> bool:
        """Is the session's other direction active, and may it keep the
        session alive (outbound always; inbound once replied)?  A hairpinned
        session's other direction is its peer's one flow."""
        timeout = session.timeout
        if rec.peer is not None:
            peer = self.records.get(rec.peer)
            return peer is not None and peer.active(CookieKind.SESSION_OUT, now, timeout)
        other = OTHER_FLOW[kind]
        return rec.active(other, now, timeout) and (
            other == CookieKind.SESSION_OUT or session.replied)

    def end(self, session: Session, reason: str, now: float) -> list:
        """End a live session now: engine entry, its flows, its mapping probe.
        Idling out in the switch counts as expiry."""
        if session.alive:
            self.ct.remove(session, reason, now, timed_out=reason == "idle")
        return self._after_end(session, now)

    def _after_end(self, session: Session, now: float | None = None) -> list:
        msgs = self.probes.for_session(session, add=False)
        rec = self.records.get(session.id)
        if rec is None:
            return msgs
        if rec.peer is not None:     # a hairpinned pair is one conversation: both end
            peer, rec.peer = self.ct.get(rec.peer), None
            if peer is not None:
                msgs += self.end(peer, "hairpin_peer_ended", session.last_seen
                                 if now is None else now)
        if rec.installed:
            rec.ending = True
            self._ending[session.id] = session.last_seen if now is None else now
            return msgs + [flows.delete_session_flows(session.id)]
        return msgs + self._forget(session.id)

    def _forget(self, sid: int) -> list:
        """Both session flows are gone: drop the record (the FIN/RST watch
        rules are shared, nothing of the session is left in the switch)."""
        self.records.pop(sid, None)
        self._ending.pop(sid, None)
        return []

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
        for cookie, packets, octets, idle_timeout in entries:
            parsed = flows.parse_cookie(cookie)
            if parsed is None:
                continue
            kind, ident = parsed
            if kind == CookieKind.INFRA:
                rule = flows.InfraRule(ident) if ident in flows.InfraRule._value2member_map_ else None
                if rule in (flows.InfraRule.UNSOLICITED_DROP, flows.InfraRule.OUTSIDE_DROP,
                            flows.InfraRule.INSIDE_IPV6_DROP, flows.InfraRule.SPOOFED_INSIDE_DROP):
                    self.switch_drops[rule.name.lower()] = packets
            elif kind == CookieKind.BINDING_DROP:
                self._guard_drops[ident] = packets
            elif kind in COUNTED_KINDS:
                rec = self.records.get(ident)
                if rec is not None and kind not in rec.replacing:
                    rec.update(kind, packets, octets)
                    touched[ident] = rec
                    idle.setdefault(ident, {})[kind] = idle_timeout
        if self._guard_drops:
            self.switch_drops["source_guard"] = sum(self._guard_drops.values())
        msgs: list = []
        for sid, rec in touched.items():
            session = self.ct.set_counters(sid, *self.totals(rec), now=now)
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
        ask, given_up = self.next_hops.tick(now)
        msgs += [self._arp_request(ip, now) for ip in ask]
        for sid, _direction, _data in given_up:
            self._drop("next_hop_unresolved")
            session = self.ct.get(sid)
            if session is not None and sid not in self.records:
                msgs += self.end(session, "next_hop_unresolved", now)
        for session in self.ct.expire(now, grace):
            msgs += self._after_end(session, now)
        for sid in [sid for sid, since in self._ending.items() if now - since > grace]:
            rec = self.records.get(sid)
            if rec is not None and rec.ending:
                self._forget(sid)
            else:
                self._ending.pop(sid, None)    # revived under the same id meanwhile
        self.fragments.tick(now)
        return msgs + self.inbound.tick(now) + self._guard_tick(now)

    def uplink_moved(self, uplink: int, now: float) -> list:
        """The uplink has a new port number: end every session (their flows
        point at the old one) and the probe flows that name it; ids go on."""
        msgs: list = []
        for session in self.ct.sessions():
            msgs += self.end(session, "uplink_moved", now)
        self.uplink = uplink
        return msgs + [flows.delete_app_flows(CookieKind.MAPPING)]

    # -- after a (re)connection: the switch's flows are the truth ----------------------
    def flow_dump(self, stats: list, more: bool, now: float) -> list:
        """A part of the flow-stats reply; the last part ends the adoption."""
        self._dump += stats
        if more:
            return []
        dump, self._dump, self.adopting = self._dump, [], False
        bound = self._adopt_bindings(dump, now)
        sessions, discard = read_sessions(dump, self.config.gateway_mac)
        msgs: list = []
        kept = 0
        for adopted in sessions:
            upgraded = self._adopt(adopted, now)
            if upgraded is not None:
                kept += 1
                msgs += upgraded
            else:
                discard += [flows.make_cookie(kind, adopted.path.session_id)
                            for kind in OTHER_FLOW]
        if discard:
            LOG.warning("%d session flows on the switch could not be accounted for: deleted",
                        len(discard))
            self.counters.flows_discarded += len(discard)
            msgs += [flows.delete_flow(cookie) for cookie in discard]
        LOG.info("adopted %d sessions from the switch's flows", kept)
        for session in self.ct.sessions():
            msgs += self.probes.for_session(session, add=True)
        for ip, host in self.hosts.as_dict().items():   # static ones, those of sessions
            if ip not in bound:
                msgs += flows.binding_rules(ip, host["mac"], host["port"])
        return msgs

    def _adopt_bindings(self, dump: list, now: float) -> set[str]:
        """Bindings back from their rules in the switch (a restart keeps
        every host where it was): the addresses found."""
        found: set[str] = set()
        for stat in dump:
            parsed = flows.parse_cookie(stat.cookie)
            if parsed is None or parsed[0] != CookieKind.BINDING:
                continue
            ip = int_text(parsed[1])
            try:
                mac, port = stat.match["eth_src"], stat.match["in_port"]
            except KeyError:
                continue
            if self.hosts.restore(ip, mac, port, now):
                found.add(ip)
            else:
                LOG.warning("binding of %s on port %d (%s) in the switch disagrees with "
                            "static_bindings: replaced", ip, port, mac)
        return found

    def _adopt(self, adopted: AdoptedSession, now: float) -> list | None:
        """Rebuild one session and its flow record: the flows to re-add (an
        earlier version's TCP flows, without fin_timeout), or None if it
        cannot be adopted."""
        p, hairpin = adopted.path, adopted.hairpin
        if p.external_ip != self._external or (hairpin is None and p.uplink != self.uplink):
            return None
        if hairpin is not None:
            p = p._replace(uplink=self.uplink)
        idle = adopted.idle or {}
        # UDP: replied once its reverse flow (a hairpinned one: its peer's) has carried a packet.
        replied = (hairpin.peer_packets if hairpin is not None
                   else adopted.counts[CookieKind.SESSION_IN].packets) > 0
        state, lowered = (State.REPLIED if replied else State.UNREPLIED), set()
        upgrade = p.protocol == TCP and p.closing_timeout != self.config.tcp_transitory_timeout
        if p.protocol == TCP:
            p = p._replace(closing_timeout=self.config.tcp_transitory_timeout)
            state, lowered = self._tcp_state_of(idle)
        try:
            session = self.ct.restore(
                p.session_id, p.protocol, p.inside_ip, p.inside_port, p.external_ip,
                p.external_port, p.remote_ip, p.remote_port,
                created_at=now - adopted.age, last_seen=now, state=state)
        except (Refused, ValueError) as why:
            LOG.warning("session %d on the switch not adopted: %s", p.session_id, why)
            return None
        rematch = not adopted.bound     # an earlier version's forward flow: any port
        if not self.hosts.restore(p.inside_ip, p.inside_mac, p.inside_switch_port, now):
            # Bound elsewhere (a static binding, or its binding rule names
            # another place): the session's flows follow the binding.
            host = self.hosts.get(p.inside_ip)
            assert host is not None
            p = p._replace(inside_mac=host.mac, inside_switch_port=host.port)
            rematch = True
        if p.protocol == TCP:
            p = p._replace(idle_timeout=flow_idle_timeout(
                session, p.closing_timeout))
        rec = self.records[session.id] = FlowRecord(p, installed=set(adopted.counts))
        rec.sent_idle, rec.fin_lowered = dict(idle), lowered
        if hairpin is not None:
            rec.hairpin, rec.actions, rec.peer = True, list(hairpin.actions), hairpin.peer
        for kind, counts in adopted.counts.items():
            rec.update(kind, counts.packets, counts.octets)
        self.ct.set_counters(session.id, *self.totals(rec))
        self.counters.sessions_adopted += 1
        msgs = []
        if rematch and CookieKind.SESSION_OUT in rec.installed:
            rec.replace(CookieKind.SESSION_OUT)     # a new match: the old flow goes
            msgs.append(flows.delete_forward_flow(p.session_id))
        if upgrade or rematch:
            msgs += [self.flow_of(rec, kind) for kind in sorted(rec.installed)]
        return msgs

    def _tcp_state_of(self, idle: dict) -> tuple[State, set]:
        """A TCP session's state from its flows' idle timeouts (opening flows
        carry the closing timeout plus one; fin_timeout lowers a flow to the
        closing timeout), and the flows a FIN or RST lowered."""
        cfg = self.config
        closing, established = cfg.tcp_transitory_timeout, cfg.tcp_established_timeout
        timeouts = set(idle.values())
        if timeouts == {closing}:
            return State.CLOSING, set()
        if closing + 1 in timeouts:
            return State.SYN_SENT, set()
        lowered = {kind for kind, t in idle.items() if t == closing}
        if lowered and established in timeouts:
            return State.FIN_WAIT, lowered
        return State.ESTABLISHED, set()

    # -- operator ---------------------------------------------------------------------
    def delete(self, sid: int, now: float) -> list | None:
        session = self.ct.get(sid)
        if session is None:
            return None
        return self.end(session, "operator", now)

    def where(self, session: Session) -> str:
        """Where the session's packets are handled: switch, controller or pending."""
        if session.protocol == ICMP:
            return "controller"
        rec = self.records.get(session.id)
        return "switch" if rec is not None and rec.installed else "pending"

    # -- helpers ----------------------------------------------------------------------
    def _drop(self, reason: str) -> list:
        self.counters.drop(reason)
        return []
