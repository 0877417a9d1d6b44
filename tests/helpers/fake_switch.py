"""A small fake OpenFlow 1.3 switch for unit tests that check packet fate.

It applies the flow-mods our code builds (add, delete with cookie masks),
keeps tables, priorities, counters and idle timers, and answers "what does
this frame arriving on this port become": OpenFlow 1.3's pipeline runs
(apply-actions at once; write-actions into the action set, run in the
spec's order at the end; write-metadata; goto-table; meters, as token
buckets in the switch's time) and the frames that leave are returned.  Packet-outs are applied the same way.  Frames are
parsed and rebuilt with ``ryu.lib.packet`` (checksums recomputed, as a
switch does).  Messages may come as Ryu parser objects or as the bytes of
:class:`ryu_app.openflow.flow_encoding.Encoded`, parsed back with Ryu's parser.

:class:`Wire` connects a FakeSwitch to a controller object with the Gateway's
methods, so packet-ins, packet-outs and flow-removed messages go round as they
would over the OpenFlow channel.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ryu.lib.packet import arp, ethernet, icmp, ipv4, packet, tcp, udp
from ryu.ofproto import ether, inet
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_app.openflow.flow_encoding import Encoded

CONTROLLER = ofp.OFPP_CONTROLLER
Removed = tuple[int, int, int, int]   # what an OFPFlowRemoved carries: cookie, reason, packets, bytes


def frame_fields(in_port: int, data: bytes) -> dict[str, Any]:
    """The OXM fields of a frame, as OFPMatch names them."""
    pkt = packet.Packet(data)
    eth = pkt.get_protocol(ethernet.ethernet)
    fields: dict[str, Any] = {"in_port": in_port, "eth_src": eth.src, "eth_dst": eth.dst,
                              "eth_type": eth.ethertype}
    if (a := pkt.get_protocol(arp.arp)) is not None:
        fields.update(arp_op=a.opcode, arp_spa=a.src_ip, arp_tpa=a.dst_ip,
                      arp_sha=a.src_mac, arp_tha=a.dst_mac)
    if (ip := pkt.get_protocol(ipv4.ipv4)) is not None:
        fields.update(ipv4_src=ip.src, ipv4_dst=ip.dst, ip_proto=ip.proto,
                      ip_frag=(1 if ip.flags & 0x1 or ip.offset else 0) | (2 if ip.offset else 0))
        if (t := pkt.get_protocol(tcp.tcp)) is not None:
            fields.update(tcp_src=t.src_port, tcp_dst=t.dst_port, tcp_flags=t.bits)
        if (u := pkt.get_protocol(udp.udp)) is not None:
            fields.update(udp_src=u.src_port, udp_dst=u.dst_port)
        if (i := pkt.get_protocol(icmp.icmp)) is not None:
            fields.update(icmpv4_type=i.type, icmpv4_code=i.code)
    return fields


def _field_matches(name: str, want: Any, have: Any) -> bool:
    if isinstance(want, tuple):          # masked field (value, mask)
        value, mask = want
        if name.startswith(("ipv4_", "arp_spa", "arp_tpa")):
            v, m, h = (int(ipaddress.IPv4Address(x)) for x in (value, mask, have))
            return v & m == h & m
        return int(value) & int(mask) == int(have) & int(mask)
    return want == have


# set-field name -> (protocol class, attribute); what a match must hold to allow it
_SET_FIELDS = {"eth_src": (ethernet.ethernet, "src"), "eth_dst": (ethernet.ethernet, "dst"),
               "ipv4_src": (ipv4.ipv4, "src"), "ipv4_dst": (ipv4.ipv4, "dst"),
               "tcp_src": (tcp.tcp, "src_port"), "tcp_dst": (tcp.tcp, "dst_port"),
               "udp_src": (udp.udp, "src_port"), "udp_dst": (udp.udp, "dst_port")}
_PREREQS = {"ipv4": {"eth_type": ether.ETH_TYPE_IP},
            "tcp": {"eth_type": ether.ETH_TYPE_IP, "ip_proto": inet.IPPROTO_TCP},
            "udp": {"eth_type": ether.ETH_TYPE_IP, "ip_proto": inet.IPPROTO_UDP}}


def check_prerequisites(match: dict[str, Any], actions: list) -> None:
    """Refuse, as OVS does (OFPBAC_MATCH_INCONSISTENT), a set-field or dec-TTL
    whose protocol the flow's match does not pin down."""
    for action in actions:
        if isinstance(action, parser.OFPActionSetField):
            need = _PREREQS.get(action.key.split("_")[0], {})
        elif isinstance(action, parser.OFPActionDecNwTtl):
            need = _PREREQS["ipv4"]
        else:
            continue
        missing = {k: v for k, v in need.items() if match.get(k) != v}
        assert not missing, f"{action} needs {missing} in the match {match}"


def action_set_order(actions: list) -> list:
    """The action set as OpenFlow 1.3 runs it (s5.10): one action per type
    (per field for set-field), decrement TTL, then set-fields, then output."""
    by_key: dict = {}
    for action in actions:
        key = ("set", action.key) if isinstance(action, parser.OFPActionSetField) else type(action)
        by_key[key] = action
    rank = {parser.OFPActionDecNwTtl: 0, parser.OFPActionSetField: 1, parser.OFPActionOutput: 2}
    return sorted(by_key.values(), key=lambda a: rank[type(a)])


def apply_actions(actions: list, data: bytes) -> list[tuple[int, bytes]]:
    """(port, frame) for each output of ``actions`` applied to ``data``, in order."""
    return run_actions(actions, data)[0]


def run_actions(actions: list, data: bytes) -> tuple[list[tuple[int, bytes]], bytes | None]:
    """(port, frame) for each output of ``actions`` applied to ``data``, in
    order, and the frame as the actions left it (None: dropped).

    Each output carries the frame as the actions before it made it; a TTL
    that decrements to zero drops the packet (OVS's default without an
    invalid-TTL packet-in).  Unmodified frames leave byte for byte.
    ``fin_timeout`` changes no frame (the pipeline applies it to its flow).
    """
    pkt, changed, out = None, False, []

    def current() -> bytes:
        if not changed:
            return bytes(data)
        pkt.serialize()
        return bytes(pkt.data)

    for action in actions:
        if isinstance(action, parser.OFPActionOutput):
            out.append((action.port, current()))
            continue
        if isinstance(action, parser.NXActionFinTimeout):
            continue
        if pkt is None:
            pkt = packet.Packet(bytes(data))
        elif changed:                       # the frame as serialised so far
            pkt = packet.Packet(current())
        if isinstance(action, parser.OFPActionSetField):
            proto_cls, attr = _SET_FIELDS[action.key]
            header = pkt.get_protocol(proto_cls)
            assert header is not None, f"{action.key} set on a frame without {proto_cls.__name__}"
            setattr(header, attr, action.value)
        elif isinstance(action, parser.OFPActionDecNwTtl):
            header = pkt.get_protocol(ipv4.ipv4)
            assert header is not None, "dec_nw_ttl on a frame without IPv4"
            if header.ttl <= 1:
                return out, None
            header.ttl -= 1
        else:
            raise NotImplementedError(f"action {action}")
        changed = True
        for proto in pkt.protocols:       # let serialize() recompute every checksum
            if isinstance(proto, (ipv4.ipv4, tcp.tcp, udp.udp, icmp.icmp)):
                proto.csum = 0
    return out, current()


def lower_on_fin(flow: "Flow", actions: list, data: bytes) -> None:
    """OVS's fin_timeout: a FIN or RST through ``flow`` lowers its idle
    timeout (and a hard timeout, if given) to the action's, never raises it."""
    for action in actions:
        if not isinstance(action, parser.NXActionFinTimeout):
            continue
        t = packet.Packet(bytes(data)).get_protocol(tcp.tcp)
        if t is None or not t.bits & (0x01 | 0x04):
            return
        for attr, limit in (("idle_timeout", action.fin_idle_timeout),
                            ("hard_timeout", action.fin_hard_timeout)):
            now = getattr(flow, attr)
            if limit and (not now or now > limit):
                setattr(flow, attr, limit)


@dataclass
class Meter:
    """A packets-per-second drop band: ``rate`` a second, ``burst`` at once."""

    rate: int
    burst: int
    tokens: float = 0.0
    stamp: float | None = None
    packets: int = 0          # packets that came to the meter
    dropped: int = 0          # packets its band dropped

    def take(self, now: float) -> bool:
        self.packets += 1
        if self.stamp is None:
            self.tokens = self.burst
        else:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.dropped += 1
        return False


@dataclass(eq=False)
class Flow:
    cookie: int
    priority: int
    match: dict[str, Any]
    apply: list                       # apply-actions
    idle_timeout: int = 0
    flags: int = 0
    packets: int = 0
    bytes: int = 0
    last_used: float = 0.0
    table_id: int = 0
    write: list = field(default_factory=list)    # write-actions
    metadata: tuple[int, int] | None = None      # write-metadata (value, mask)
    goto: int | None = None
    created: float = 0.0
    meter: int | None = None
    hard_timeout: int = 0

    @property
    def actions(self) -> list:
        """Every action the flow applies or writes, in the order it runs them."""
        return self.apply + action_set_order(self.write)

    @classmethod
    def of(cls, msg: parser.OFPFlowMod, now: float) -> "Flow":
        flow = cls(msg.cookie, msg.priority, dict(msg.match.items()), [], msg.idle_timeout,
                   msg.flags, last_used=now, table_id=msg.table_id, created=now,
                   hard_timeout=msg.hard_timeout)
        for inst in msg.instructions:
            if isinstance(inst, parser.OFPInstructionActions):
                assert inst.type in (ofp.OFPIT_APPLY_ACTIONS, ofp.OFPIT_WRITE_ACTIONS), inst
                (flow.apply if inst.type == ofp.OFPIT_APPLY_ACTIONS else flow.write).extend(
                    inst.actions)
            elif isinstance(inst, parser.OFPInstructionWriteMetadata):
                flow.metadata = (inst.metadata, inst.metadata_mask)
            elif isinstance(inst, parser.OFPInstructionGotoTable):
                assert inst.table_id > msg.table_id, "goto-table must go forward (OF 1.3 s5.1)"
                flow.goto = inst.table_id
            elif isinstance(inst, parser.OFPInstructionMeter):
                flow.meter = inst.meter_id
            else:
                raise NotImplementedError(f"instruction {inst}")
        return flow

    def matches(self, fields: dict[str, Any]) -> bool:
        return all(name in fields and _field_matches(name, want, fields[name])
                   for name, want in self.match.items())

    def removed(self, reason: int) -> Removed:
        return self.cookie, reason, self.packets, self.bytes

    def stats(self, now: float) -> parser.OFPFlowStats:
        """This flow as a flow-stats reply entry, as Ryu's parser hands it over."""
        insts: list = []
        if self.meter is not None:
            insts.append(parser.OFPInstructionMeter(self.meter, ofp.OFPIT_METER))
        if self.apply:
            insts.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, self.apply))
        if self.write:
            insts.append(parser.OFPInstructionActions(ofp.OFPIT_WRITE_ACTIONS, self.write))
        if self.metadata is not None:
            insts.append(parser.OFPInstructionWriteMetadata(*self.metadata))
        if self.goto is not None:
            insts.append(parser.OFPInstructionGotoTable(self.goto))
        age = max(0.0, now - self.created)
        return parser.OFPFlowStats(
            table_id=self.table_id, duration_sec=int(age), duration_nsec=int(age % 1 * 1e9),
            priority=self.priority, idle_timeout=self.idle_timeout,
            hard_timeout=self.hard_timeout,
            flags=self.flags, cookie=self.cookie, packet_count=self.packets,
            byte_count=self.bytes, match=parser.OFPMatch(**self.match), instructions=insts)


@dataclass
class FakeSwitch:
    """One table; records every message it is sent and every flow-removed
    message it would send (``removed``, oldest first, until taken)."""

    dpid: int = 1
    flows: list[Flow] = field(default_factory=list)
    sent: list = field(default_factory=list)
    removed: list[Removed] = field(default_factory=list)
    now: float = 0.0
    stats_requests: list = field(default_factory=list)   # flow-stats requests not answered yet
    meters: dict[int, Meter] = field(default_factory=dict)

    def apply(self, msgs: list) -> list[tuple[int, bytes]]:
        """Apply controller messages; the frames their packet-outs send."""
        out = []
        for msg in msgs:
            if isinstance(msg, Encoded):
                msg = msg.decode()
            self.sent.append(msg)
            if isinstance(msg, parser.OFPFlowMod):
                self._flow_mod(msg)
            elif isinstance(msg, parser.OFPPacketOut):
                out += self.packet_out_fate(msg)
            elif isinstance(msg, parser.OFPFlowStatsRequest):
                self.stats_requests.append(msg)
            elif isinstance(msg, parser.OFPMeterMod):
                self._meter_mod(msg)
        return out

    def _meter_mod(self, msg: parser.OFPMeterMod) -> None:
        """As OVS does: ADD of an existing meter is refused (METER_EXISTS),
        DELETE of a missing one is silent and deletes the flows using it."""
        if msg.command == ofp.OFPMC_DELETE:
            self.meters.pop(msg.meter_id, None)
            self._remove([f for f in self.flows if f.meter == msg.meter_id], ofp.OFPRR_DELETE)
            return
        assert msg.flags & ofp.OFPMF_PKTPS and len(msg.bands) == 1, "one pktps band"
        [band] = msg.bands
        assert isinstance(band, parser.OFPMeterBandDrop), band
        assert msg.command != ofp.OFPMC_ADD or msg.meter_id not in self.meters, "METER_EXISTS"
        assert msg.command != ofp.OFPMC_MODIFY or msg.meter_id in self.meters, "UNKNOWN_METER"
        self.meters[msg.meter_id] = Meter(band.rate, band.burst_size if
                                          msg.flags & ofp.OFPMF_BURST else band.rate)

    def flow_stats_reply(self, req: parser.OFPFlowStatsRequest) -> list[parser.OFPFlowStats]:
        """The flows a flow-stats request selects (table and cookie mask)."""
        return [f.stats(self.now) for f in self.flows
                if req.table_id in (ofp.OFPTT_ALL, f.table_id)
                and f.cookie & req.cookie_mask == req.cookie & req.cookie_mask]

    def _flow_mod(self, msg: parser.OFPFlowMod) -> None:
        match = dict(msg.match.items())
        if msg.command == ofp.OFPFC_ADD:
            new = Flow.of(msg, self.now)
            check_prerequisites(match, new.actions)
            assert new.meter is None or new.meter in self.meters, "INVALID_METER"
            # OF 1.3: an identical flow is replaced (no flow-removed), counters kept.
            same = [f for f in self.flows if f.table_id == new.table_id
                    and f.priority == msg.priority and f.match == match]
            if same and not msg.flags & ofp.OFPFF_RESET_COUNTS:
                new.packets, new.bytes = same[0].packets, same[0].bytes
            self.flows = [f for f in self.flows if f not in same] + [new]
        elif msg.command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            def doomed(f: Flow) -> bool:
                if f.cookie & msg.cookie_mask != msg.cookie & msg.cookie_mask:
                    return False
                if msg.table_id not in (ofp.OFPTT_ALL, f.table_id):
                    return False
                if msg.command == ofp.OFPFC_DELETE_STRICT:
                    return f.priority == msg.priority and f.match == match
                return all(f.match.get(k) == v for k, v in match.items())
            self._remove([f for f in self.flows if doomed(f)], ofp.OFPRR_DELETE)
        else:
            raise NotImplementedError(f"flow-mod command {msg.command}")

    def _remove(self, gone: list[Flow], reason: int) -> list[Removed]:
        self.flows = [f for f in self.flows if f not in gone]
        notes = [f.removed(reason) for f in gone if f.flags & ofp.OFPFF_SEND_FLOW_REM]
        self.removed += notes
        return notes

    def lookup(self, in_port: int, data: bytes, table_id: int = 0,
               metadata: int = 0) -> Flow | None:
        """The highest-priority flow a frame hits in one table."""
        fields = frame_fields(in_port, data)
        fields["metadata"] = metadata
        hits = [f for f in self.flows if f.table_id == table_id and f.matches(fields)]
        if not hits:
            return None
        best = max(hits, key=lambda f: f.priority)
        best.packets += 1
        best.bytes += len(data)
        best.last_used = self.now
        return best

    def pipeline(self, in_port: int, data: bytes) -> list[tuple[int, bytes, Flow, int]]:
        """OpenFlow 1.3's pipeline from table 0: (port, frame, the flow that
        output it, the packet's metadata then) for every frame that leaves.
        Apply-actions change the packet the next table sees; a table without
        a matching flow drops the packet, action set and all."""
        out, action_set, metadata, table_id = [], [], 0, 0
        while True:
            flow = self.lookup(in_port, data, table_id, metadata)
            if flow is None:
                return out
            if flow.meter is not None and not self.meters[flow.meter].take(self.now):
                return out                       # the meter's band dropped it
            lower_on_fin(flow, flow.apply, data)
            sent, after = run_actions(flow.apply, data)
            out += [(p, f, flow, metadata) for p, f in sent]
            if after is None:
                return out
            data = after
            action_set += flow.write
            if flow.metadata is not None:
                value, mask = flow.metadata
                metadata = (metadata & ~mask) | (value & mask)
            if flow.goto is None:
                break
            table_id = flow.goto
        return out + [(p, f, flow, metadata)
                      for p, f in apply_actions(action_set_order(action_set), data)]

    def process(self, in_port: int, data: bytes) -> list[tuple[int, bytes]]:
        """What a frame arriving on ``in_port`` becomes: (port, frame) pairs;
        [] when dropped; (OFPP_CONTROLLER, frame) for a packet-in."""
        return [(port, frame) for port, frame, _flow, _meta in self.pipeline(in_port, data)]

    def outputs(self, in_port: int, data: bytes) -> list[int]:
        """Ports (or reserved ports such as OFPP_CONTROLLER) a frame goes to."""
        return [port for port, _frame in self.process(in_port, data)]

    def packet_out_fate(self, msg: parser.OFPPacketOut) -> list[tuple[int, bytes]]:
        """The frames a packet-out sends: its actions applied to its data."""
        assert msg.buffer_id == ofp.OFP_NO_BUFFER and msg.data, "OVS buffers nothing"
        return apply_actions(list(msg.actions), bytes(msg.data))

    def packet_outs(self) -> list[tuple[int, bytes]]:
        """(out_port, frame as sent) of every packet-out so far (actions not applied)."""
        return [(a.port, bytes(m.data)) for m in self.sent
                if isinstance(m, parser.OFPPacketOut)
                for a in m.actions if isinstance(a, parser.OFPActionOutput)]

    def advance(self, now: float) -> list[Removed]:
        """Time passes to ``now``: flows idle for their idle_timeout leave,
        and those older than their hard_timeout."""
        self.now = now
        hard = [f for f in self.flows if f.hard_timeout and now - f.created >= f.hard_timeout]
        removed = self._remove(hard, ofp.OFPRR_HARD_TIMEOUT) if hard else []
        idle = [f for f in self.flows
                if f.idle_timeout and now - f.last_used >= f.idle_timeout]
        return removed + self._remove(idle, ofp.OFPRR_IDLE_TIMEOUT)

    def expire(self, cookie: int) -> Removed:
        """Idle one flow out now, whatever its timer says (its flow-removed)."""
        [flow] = [f for f in self.flows if f.cookie == cookie]
        self.flows.remove(flow)
        return flow.removed(ofp.OFPRR_IDLE_TIMEOUT)

    def take_removed(self) -> list[Removed]:
        notes, self.removed = self.removed, []
        return notes

    def stats(self) -> list[parser.OFPFlowStats]:
        """A flow-stats reply of every flow, as Ryu's parser hands it over."""
        return [f.stats(self.now) for f in self.flows]


@dataclass
class Wire:
    """A FakeSwitch connected to a controller with the Gateway's methods.

    Frames in, frames out: packet-ins go to the controller, its messages to
    the switch, the switch's flow-removed messages back to the controller.
    """

    gateway: Any
    switch: FakeSwitch = field(default_factory=FakeSwitch)
    now: float = 0.0
    packet_ins: int = 0
    last_poll: float = 0.0

    def connect(self, ports: dict[str, int]) -> None:
        self.run(self.gateway.switch_connected(self.switch.dpid))
        self.run(self.gateway.ports_described(self.switch.dpid, ports))

    def answer(self, in_port: int, reply: bytes, ip: str) -> list[tuple[int, bytes]]:
        """``ip``'s ARP ``reply`` to a request the gateway sent a moment ago
        (next hops are learned only from such answers)."""
        for state in self.gateway.switches.values():
            if state.nat is not None:
                state.nat.next_hops.asked(ip, self.now)
        return self.send(in_port, reply)

    def send(self, in_port: int, frame: bytes) -> list[tuple[int, bytes]]:
        """The frames that leave the switch because ``frame`` came in on ``in_port``."""
        out = []
        for port, data, flow, metadata in self.switch.pipeline(in_port, frame):
            if port != CONTROLLER:
                out.append((port, data))
                continue
            # A packet-in names the flow that sent it and the packet's metadata (OF 1.3).
            self.packet_ins += 1
            out += self.run(self.gateway.packet_in(self.switch.dpid, in_port, data, self.now,
                                                   metadata=metadata))
        return out

    def run(self, msgs: list | None) -> list[tuple[int, bytes]]:
        """Apply controller messages, then deliver flow-removed messages back."""
        out = self.switch.apply(msgs or [])
        for cookie, reason, packets, octets in self.switch.take_removed():
            out += self.run(self.gateway.flow_removed(self.switch.dpid, cookie, reason,
                                                      packets, octets, self.now))
        while self.switch.stats_requests:
            req = self.switch.stats_requests.pop(0)
            out += self.run(self.gateway.flow_stats_reply(
                self.switch.dpid, self.switch.flow_stats_reply(req), False, self.now))
        return out

    def advance(self, seconds: float, poll: float | None = 10.0) -> list[tuple[int, bytes]]:
        """Time passes as it does under the app: each second flows may idle
        out (flow-removed) and the gateway ticks; every ``poll`` seconds the
        flow stats are polled (None: never)."""
        end, out = self.now + seconds, []
        while self.now < end:
            self.now = min(end, self.now + 1.0)
            self.switch.advance(self.now)
            out += self.run([])
            if poll and self.now - self.last_poll >= poll:
                out += self.poll_stats()
            for msgs in self.gateway.tick(self.now).values():
                out += self.run(msgs)
        return out

    def poll_stats(self) -> list[tuple[int, bytes]]:
        """One flow-stats round trip (the gateway's periodic poll)."""
        self.last_poll = self.now
        return self.run(self.gateway.flow_stats_reply(self.switch.dpid, self.switch.stats(),
                                                      False, self.now))
