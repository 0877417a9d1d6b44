"""Every OpenFlow message ryu-snat sends is built here, away from any datapath.

Messages are made with the OpenFlow 1.3 parser and ``datapath=None``; the one
send path (:mod:`ryu_app.openflow.sender`) attaches the datapath.  This keeps builders
pure and lets unit tests apply them to a fake flow table.

Cookies mean something (64 bits)::

    | app tag (16) | kind (8) | reserved (8) | id (32) |

The app tag marks our flows, so a masked delete or stats request never touches
anyone else's; the kind separates infrastructure rules from session flows; the
id is a rule number or a conntrack session id.  A flow dump can therefore be
mapped back to sessions (restart recovery reads it).
"""
from __future__ import annotations

import enum
import ipaddress
from typing import NamedTuple, Sequence

from ryu.ofproto import ether
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from conntrack.keys import ICMP, TCP, UDP, TcpFlags

APP_TAG = 0x5A7E
_APP_SHIFT = 48
_KIND_SHIFT = 40
APP_COOKIE_MASK = 0xFFFF << _APP_SHIFT
KIND_COOKIE_MASK = APP_COOKIE_MASK | (0xFF << _KIND_SHIFT)
ID_MASK = 0xFFFFFFFF

TABLE_NAT = 0        # gateway rules and the sessions' translations
TABLE_TCP_WATCH = 1  # TCP session packets continue here: RST copies go on to TABLE_PUNT
TABLE_PUNT = 2       # every packet for the controller passes here: metered per in_port
METADATA_MASK = 0xFFFFFFFFFFFFFFFF


class CookieKind(enum.IntEnum):
    """What a flow of ours is for (bits 40-47 of its cookie)."""

    INFRA = 0x01        # table-miss, ARP, gateway ICMP, filters
    PUNT_METER = 0x02   # TABLE_PUNT rule of one in_port (id = port = meter id)
    BINDING = 0x03      # a bound inside address from its own port and MAC (id = address)
    BINDING_DROP = 0x04 # a bound inside address from anywhere else: dropped (id = address)
    PUNT_CLASS = 0x05   # metadata tag and TABLE_PUNT rule of an uplink punt class (id = class)
    SESSION_OUT = 0x10  # forward (inside -> outside) flow of a session
    SESSION_IN = 0x11   # reverse (outside -> inside) flow of a session
    FLAGS_OUT = 0x12    # metadata tag: a TCP forward flow's packet, after TABLE_NAT
    FLAGS_IN = 0x13     # metadata tag: a TCP reverse flow's packet, after TABLE_NAT
    MAPPING = 0x20      # inbound probe of a mapping (id = pool index << 24 | protocol << 16 | port)
    LEASE = 0x21        # record of a PCP/NAT-PMP mapping, matching no packet (id = lease id)


class Priority(enum.IntEnum):
    """Priority bands of TABLE_NAT, highest first."""

    ANTI_SPOOF = 1003   # from the uplink with an inside source address: dropped
    FRAGMENT = 1002     # IPv4 fragments: only the controller can translate them
    NEW_TCP = 1001      # an inside host's TCP SYN: to the controller, above the sessions
    SESSION = 1000      # per-session forward/reverse rewrites
    BOUND = 900         # a bound inside address from its own port and MAC: to the controller
    NOT_BOUND_HERE = 899  # the same address from anywhere else: dropped (source guard)
    MAPPING = 800       # inbound to a mapped port from a new remote (filtering)
    GATEWAY = 500       # traffic addressed to the gateway itself (ARP, ping)
    UNSOLICITED = 20    # inbound to the NAT address with no session: dropped
    OUTSIDE = 10        # anything else from the uplink: dropped
    NEW_FLOW = 5        # inside IPv4 with no session: to the controller
    MISS = 0            # table-miss


class InfraRule(enum.IntEnum):
    """Ids of infrastructure rules, for their cookies."""

    TABLE_MISS = 1
    ARP_INSIDE = 2
    ARP_OUTSIDE = 3
    ICMP_INSIDE = 4
    ICMP_OUTSIDE = 5
    UNSOLICITED_DROP = 6
    OUTSIDE_DROP = 7
    NEW_FLOW = 8
    INSIDE_IPV6_DROP = 9
    FRAGMENTS_INSIDE = 10
    FRAGMENTS_OUTSIDE = 11
    SPOOFED_INSIDE_DROP = 12
    TCP_FIN_WATCH = 13  # tcp_fin_upcall's FIN match (earlier versions: FIN copies)
    TCP_RST_WATCH = 14
    TCP_WATCH_PASS = 15
    NEW_TCP = 16
    PUNT = 17           # TABLE_PUNT fallback: ports without a meter (yet), unmetered


class UplinkClass(enum.IntEnum):
    """What the uplink sends to the controller, each with a meter of its own
    (``class_meters``): a flood of one cannot starve the others."""

    ARP = 1             # ARP for the NAT address (next hops' answers among them)
    ICMP = 2            # ICMP to the NAT address: echo, replies, errors
    FRAGMENT = 3        # fragments to the NAT address
    INBOUND = 4         # new inbound sessions: forwards, filtering of mapped ports


CLASS_METER_BASE = 0x10000   # meter id of a class: above every port number


#: An infrastructure rule repeated for each NAT address of a pool carries
#: the address's pool index above the rule id: ``rule | index << 8``.
INFRA_RULE_MASK = 0xFF


def make_cookie(kind: CookieKind, ident: int) -> int:
    """Cookie for a flow of ``kind`` with rule or session id ``ident``."""
    if not 0 <= ident <= ID_MASK:
        raise ValueError(f"cookie id {ident} does not fit in 32 bits")
    return (APP_TAG << _APP_SHIFT) | (int(kind) << _KIND_SHIFT) | ident


def parse_cookie(cookie: int) -> tuple[CookieKind, int] | None:
    """(kind, id) of one of our cookies, or None for a foreign flow."""
    if cookie >> _APP_SHIFT != APP_TAG:
        return None
    try:
        kind = CookieKind((cookie >> _KIND_SHIFT) & 0xFF)
    except ValueError:
        return None
    return kind, cookie & ID_MASK


def _to_controller() -> list:
    # OVS does not buffer packets: ask for the whole frame.
    return [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]


def punt_flow(cookie: int, priority: int, match: parser.OFPMatch,
              punt_class: UplinkClass | None = None) -> parser.OFPFlowMod:
    """A TABLE_NAT rule whose packets are for the controller: they go on to
    TABLE_PUNT, where the meter of their in_port decides (see ``punt_meter``),
    or of their uplink class, tagged in the metadata (``class_meters``)."""
    inst: list = [parser.OFPInstructionGotoTable(TABLE_PUNT)]
    if punt_class is not None:
        inst.insert(0, parser.OFPInstructionWriteMetadata(
            make_cookie(CookieKind.PUNT_CLASS, punt_class), METADATA_MASK))
    return parser.OFPFlowMod(None, cookie=cookie, table_id=TABLE_NAT, command=ofp.OFPFC_ADD,
                             priority=priority, match=match, instructions=inst)


def class_meters(rate: int) -> list:
    """A meter per uplink class at ``rate`` packets a second, and the
    TABLE_PUNT rule that sends the class's packets through it (above the
    port rules; a switch that refuses the meter refuses the rule, and the
    uplink's port meter takes the class instead).  Deleting a meter first
    also deletes the rule of an earlier run."""
    msgs: list = []
    for cls in UplinkClass:
        meter_id = CLASS_METER_BASE + cls
        band = parser.OFPMeterBandDrop(rate=rate, burst_size=rate)
        msgs += [
            parser.OFPMeterMod(None, command=ofp.OFPMC_DELETE, meter_id=meter_id),
            parser.OFPMeterMod(None, command=ofp.OFPMC_ADD, meter_id=meter_id, bands=[band],
                               flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS),
            parser.OFPFlowMod(
                None, cookie=make_cookie(CookieKind.PUNT_CLASS, cls), table_id=TABLE_PUNT,
                command=ofp.OFPFC_ADD, priority=20,
                match=parser.OFPMatch(metadata=(make_cookie(CookieKind.PUNT_CLASS, cls),
                                                METADATA_MASK)),
                instructions=[parser.OFPInstructionMeter(meter_id, ofp.OFPIT_METER),
                              parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                                           _to_controller())]),
        ]
    return msgs


def punt_fallback() -> parser.OFPFlowMod:
    """TABLE_PUNT's lowest rule: to the controller, unmetered (ports not
    described yet, a switch that refused a meter, metering turned off)."""
    return parser.OFPFlowMod(
        None, cookie=make_cookie(CookieKind.INFRA, InfraRule.PUNT), table_id=TABLE_PUNT,
        command=ofp.OFPFC_ADD, priority=0, match=parser.OFPMatch(),
        instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, _to_controller())])


def punt_meter(port: int, rate: int, burst: int) -> list:
    """A packets-per-second meter for what ``port`` sends to the controller.

    One flooding host (new 5-tuples, junk fragments, pings) then fills only
    its own port's share of the controller; every other port's first
    packets still get through.  The meter id is the port number.  A meter
    left by an earlier run is deleted first: OpenFlow refuses to add an
    existing one, and deleting it also deletes the rule that used it.
    """
    band = parser.OFPMeterBandDrop(rate=rate, burst_size=burst)
    return [
        parser.OFPMeterMod(None, command=ofp.OFPMC_DELETE, meter_id=port),
        parser.OFPMeterMod(None, command=ofp.OFPMC_ADD, meter_id=port, bands=[band],
                           flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS),
        parser.OFPFlowMod(
            None, cookie=make_cookie(CookieKind.PUNT_METER, port), table_id=TABLE_PUNT,
            command=ofp.OFPFC_ADD, priority=10, match=parser.OFPMatch(in_port=port),
            instructions=[parser.OFPInstructionMeter(port, ofp.OFPIT_METER),
                          parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                                       _to_controller())]),
    ]


def punt_meter_rate(port: int, rate: int, burst: int) -> parser.OFPMeterMod:
    """A port's packet-in meter at a new rate (``ryu_app.openflow.punt_meters``)."""
    return parser.OFPMeterMod(None, command=ofp.OFPMC_MODIFY, meter_id=port,
                              flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS,
                              bands=[parser.OFPMeterBandDrop(rate=rate, burst_size=burst)])


def punt_unmeter(port: int) -> list:
    """A port gone: its rule and its meter."""
    return [delete_flow(make_cookie(CookieKind.PUNT_METER, port), TABLE_PUNT),
            parser.OFPMeterMod(None, command=ofp.OFPMC_DELETE, meter_id=port)]


def meter_stats_request() -> parser.OFPMeterStatsRequest:
    return parser.OFPMeterStatsRequest(None, 0, ofp.OFPM_ALL)


def flow_add(cookie: int, priority: int, match: parser.OFPMatch, actions: Sequence,
             idle_timeout: int = 0, flags: int = 0) -> parser.OFPFlowMod:
    """An OFPFC_ADD in TABLE_NAT applying ``actions``."""
    inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions))]
    return parser.OFPFlowMod(None, cookie=cookie, table_id=TABLE_NAT,
                             command=ofp.OFPFC_ADD, idle_timeout=idle_timeout,
                             priority=priority, flags=flags, match=match,
                             instructions=inst)


def delete_app_flows(kind: CookieKind | None = None) -> parser.OFPFlowMod:
    """Delete all our flows (or those of one kind) in every table; never others'."""
    cookie, mask = APP_TAG << _APP_SHIFT, APP_COOKIE_MASK
    if kind is not None:
        cookie, mask = make_cookie(kind, 0), KIND_COOKIE_MASK
    return parser.OFPFlowMod(None, cookie=cookie, cookie_mask=mask,
                             table_id=ofp.OFPTT_ALL, command=ofp.OFPFC_DELETE,
                             out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                             match=parser.OFPMatch())


def delete_flow(cookie: int, table_id: int = TABLE_NAT) -> parser.OFPFlowMod:
    """Delete the flow with exactly this cookie in ``table_id``."""
    return parser.OFPFlowMod(None, cookie=cookie, cookie_mask=(1 << 64) - 1,
                             table_id=table_id, command=ofp.OFPFC_DELETE,
                             out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                             match=parser.OFPMatch())


def barrier() -> parser.OFPBarrierRequest:
    return parser.OFPBarrierRequest(None)


def port_desc_request() -> parser.OFPPortDescStatsRequest:
    return parser.OFPPortDescStatsRequest(None, 0)


def table_miss() -> parser.OFPFlowMod:
    """Unmatched packets go to the controller (first packets of new flows)."""
    return punt_flow(make_cookie(CookieKind.INFRA, InfraRule.TABLE_MISS), Priority.MISS,
                     parser.OFPMatch())


def arp_to_controller(rule: InfraRule, in_port: int | None,
                      target: ipaddress.IPv4Address, index: int = 0) -> parser.OFPFlowMod:
    """ARP asking for (or answering) one of the gateway's addresses (from
    the uplink: its own class); ``index`` tells a pool's addresses apart."""
    fields = {"eth_type": ether.ETH_TYPE_ARP, "arp_tpa": str(target)}
    if in_port is not None:
        fields["in_port"] = in_port
    return punt_flow(make_cookie(CookieKind.INFRA, rule | index << 8), Priority.GATEWAY,
                     parser.OFPMatch(**fields), UplinkClass.ARP if in_port is not None else None)


def icmp_to_controller(rule: InfraRule, in_port: int | None,
                       target: ipaddress.IPv4Address, index: int = 0) -> parser.OFPFlowMod:
    """ICMP addressed to one of the gateway's own addresses (ping the router;
    from the uplink: its own class); ``index`` tells a pool's addresses apart."""
    fields = {"eth_type": ether.ETH_TYPE_IP, "ip_proto": ICMP,
              "ipv4_dst": str(target)}
    if in_port is not None:
        fields["in_port"] = in_port
    return punt_flow(make_cookie(CookieKind.INFRA, rule | index << 8), Priority.GATEWAY,
                     parser.OFPMatch(**fields), UplinkClass.ICMP if in_port is not None else None)


def packet_out(out_port: int, data: bytes,
               in_port: int = ofp.OFPP_CONTROLLER) -> parser.OFPPacketOut:
    """Send ``data`` (a whole frame built by the controller) out of ``out_port``."""
    return parser.OFPPacketOut(None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                               actions=[parser.OFPActionOutput(out_port, 0)], data=data)


def uplink_filters(uplink: int, nat_addresses: Sequence[ipaddress.IPv4Address],
                   inside: ipaddress.IPv4Network) -> list[parser.OFPFlowMod]:
    """Drop in the switch what comes from outside without a session.

    Packets from the uplink claiming an inside source are dropped above
    every session flow: forward flows match the inside 5-tuple on any port
    (so hosts may move), and must not be reachable from outside, where a
    forged segment could refresh a mapping or close it with an RST.
    Unsolicited inbound to the NAT address (RFC 5382 REQ-4: no answer, no
    RST) gets its own rule so its packet count is the "unsolicited" counter;
    everything else from the uplink (other hosts' traffic on the segment,
    IPv6, floods) is dropped by a broader rule below it.
    """
    return [
        flow_add(make_cookie(CookieKind.INFRA, InfraRule.SPOOFED_INSIDE_DROP), Priority.ANTI_SPOOF,
                 parser.OFPMatch(in_port=uplink, eth_type=ether.ETH_TYPE_IP,
                                 ipv4_src=(str(inside.network_address), str(inside.netmask))), []),
        *(flow_add(make_cookie(CookieKind.INFRA, InfraRule.UNSOLICITED_DROP | i << 8),
                   Priority.UNSOLICITED, parser.OFPMatch(in_port=uplink, eth_type=ether.ETH_TYPE_IP,
                                                         ipv4_dst=str(a)), [])
          for i, a in enumerate(nat_addresses)),
        flow_add(make_cookie(CookieKind.INFRA, InfraRule.OUTSIDE_DROP), Priority.OUTSIDE,
                 parser.OFPMatch(in_port=uplink), []),
    ]


def binding_rules(ip: str, mac: str, port: int) -> list[parser.OFPFlowMod]:
    """An inside address bound to (port, MAC): from there its packets that
    no session flow takes go to the controller; from anywhere else they are
    dropped in the switch, counted by the drop rule.  Both sit below the
    session flows (which match port and MAC themselves) and above the
    catch-all punt."""
    ident = int(ipaddress.IPv4Address(ip))
    return [
        punt_flow(make_cookie(CookieKind.BINDING, ident), Priority.BOUND,
                  parser.OFPMatch(in_port=port, eth_src=mac, eth_type=ether.ETH_TYPE_IP,
                                  ipv4_src=ip)),
        flow_add(make_cookie(CookieKind.BINDING_DROP, ident), Priority.NOT_BOUND_HERE,
                 parser.OFPMatch(eth_type=ether.ETH_TYPE_IP, ipv4_src=ip), []),
    ]


def delete_binding(ip: str) -> list[parser.OFPFlowMod]:
    """Both rules of a binding."""
    ident = int(ipaddress.IPv4Address(ip))
    return [delete_flow(make_cookie(CookieKind.BINDING, ident)),
            delete_flow(make_cookie(CookieKind.BINDING_DROP, ident))]


def delete_forward_flow(session_id: int) -> parser.OFPFlowMod:
    """A session's forward flow alone (it moves to the host's new port)."""
    return delete_flow(make_cookie(CookieKind.SESSION_OUT, session_id))


def inside_rules(inside: ipaddress.IPv4Network) -> list[parser.OFPFlowMod]:
    """Inside IPv4 without a session goes to the controller; inside IPv6 is dropped.

    An inside host's TCP SYN (without ACK) goes up by a rule of its own,
    *above* the session flows.  That is for OVS's flow cache: the table's
    lookup then stops at this rule and never looks at the sessions' ports,
    so the datapath flow a punted SYN leaves behind is one per inside port
    (SYN set, ACK clear), not one per connection.  Every later SYN of the
    port hits it in the datapath, where its port's packet-in meter
    (TABLE_PUNT) drops what is over the rate before any upcall: a SYN flood
    to new ports costs OVS a lookup, not a translation each.  The
    handshake's ACK and the data (no SYN) miss it and meet their session
    flows.  A SYN on a session that exists (a retransmission, a new
    connection on a closing one's ports) reaches the controller too, which
    sends it on along the session.
    """
    return [
        punt_flow(make_cookie(CookieKind.INFRA, InfraRule.NEW_TCP), Priority.NEW_TCP,
                  parser.OFPMatch(eth_type=ether.ETH_TYPE_IP, ip_proto=TCP,
                                  ipv4_src=(str(inside.network_address), str(inside.netmask)),
                                  tcp_flags=(int(TcpFlags.SYN), int(TcpFlags.SYN | TcpFlags.ACK)))),
        punt_flow(make_cookie(CookieKind.INFRA, InfraRule.NEW_FLOW), Priority.NEW_FLOW,
                  parser.OFPMatch(eth_type=ether.ETH_TYPE_IP)),
        flow_add(make_cookie(CookieKind.INFRA, InfraRule.INSIDE_IPV6_DROP), Priority.NEW_FLOW,
                 parser.OFPMatch(eth_type=ether.ETH_TYPE_IPV6), []),
    ]


class SessionFlowSpec(NamedTuple):
    """Everything the two flows of one session need, as plain values (a
    tuple: one is made for every new session, and a frozen dataclass took
    several times as long to build).

    TCP and UDP only: OpenFlow 1.3 can neither match nor rewrite an ICMP
    echo identifier, so ICMP echo has no session flows and is translated in
    the controller (see ``ryu_app.nat.paths.echo``).
    """

    session_id: int
    protocol: int
    inside_ip: str
    inside_port: int
    external_ip: str
    external_port: int
    remote_ip: str
    remote_port: int
    inside_mac: str
    inside_switch_port: int
    next_hop_mac: str
    # None only in a hairpinned session read back from the switch
    # (ryu_app.openflow.adoption): its one flow goes back inside, and the
    # service fills in the uplink before any flow is built from the path.
    uplink: int | None
    gateway_mac: str
    idle_timeout: int
    closing_timeout: int = 0    # TCP: the idle timeout fin_timeout lowers a flow to


#: OpenFlow match field names of the (source, destination) ports of the
#: protocols with session flows (and mapping probes), by IP protocol number.
L4_MATCH_FIELDS: dict[int, tuple[str, str]] = {TCP: ("tcp_src", "tcp_dst"),
                                               UDP: ("udp_src", "udp_dst")}


def _match(protocol: int, in_port: int | None, src: str, dst: str, sport: int, dport: int,
           eth_src: str | None = None) -> parser.OFPMatch:
    fields: dict = {"eth_type": ether.ETH_TYPE_IP, "ip_proto": protocol,
                    "ipv4_src": src, "ipv4_dst": dst}
    if in_port is not None:
        fields["in_port"] = in_port
    if eth_src is not None:
        fields["eth_src"] = eth_src
    src_field, dst_field = L4_MATCH_FIELDS[protocol]
    fields[src_field], fields[dst_field] = sport, dport
    return parser.OFPMatch(**fields)


def forward_match(p: SessionFlowSpec) -> parser.OFPMatch:
    """The inside 5-tuple from the host's own port and MAC (its binding,
    ``ryu_app.nat.source_guard``): another inside host cannot inject into the
    mapping or close it with a forged RST."""
    return _match(p.protocol, p.inside_switch_port, p.inside_ip, p.remote_ip,
                  p.inside_port, p.remote_port, p.inside_mac)


def reverse_match(p: SessionFlowSpec) -> parser.OFPMatch:
    return _match(p.protocol, p.uplink, p.remote_ip, p.external_ip,
                  p.remote_port, p.external_port)


def _rewrite(p: SessionFlowSpec, eth_dst: str, ip_field: str, ip: str, l4_side: int,
             port: int, out_port: int) -> list:
    """Set MACs, one address and (if it changes) one L4 port; dec TTL; output."""
    actions = [parser.OFPActionSetField(eth_src=p.gateway_mac),
               parser.OFPActionSetField(eth_dst=eth_dst),
               parser.OFPActionSetField(**{ip_field: ip})]
    if p.external_port != p.inside_port:
        actions.append(parser.OFPActionSetField(**{L4_MATCH_FIELDS[p.protocol][l4_side]: port}))
    return actions + [parser.OFPActionDecNwTtl(), parser.OFPActionOutput(out_port, 0)]


def forward_actions(p: SessionFlowSpec) -> list:
    """Rewrite the source to the NAT address and port, route out the uplink."""
    uplink = p.uplink
    if uplink is None:
        raise ValueError(f"session {p.session_id}: no uplink to route its forward flow out of")
    return _rewrite(p, p.next_hop_mac, "ipv4_src", p.external_ip, 0, p.external_port, uplink)


def reverse_actions(p: SessionFlowSpec) -> list:
    """Rewrite the destination back to the inside host and deliver to its port."""
    return _rewrite(p, p.inside_mac, "ipv4_dst", p.inside_ip, 1, p.inside_port,
                    p.inside_switch_port)


def watch_tag(p: SessionFlowSpec, kind: CookieKind) -> int | None:
    """The metadata a TCP session flow writes before TABLE_TCP_WATCH: the
    cookie layout with kind FLAGS_OUT/FLAGS_IN and the session id, so an RST
    copy names its session and direction in the packet-in's match.  None
    for UDP, whose flows end in TABLE_NAT."""
    if p.protocol != TCP:
        return None
    return make_cookie(CookieKind.FLAGS_OUT if kind == CookieKind.SESSION_OUT
                       else CookieKind.FLAGS_IN, p.session_id)


def fin_timeout(closing_timeout: int) -> parser.NXActionFinTimeout:
    """Open vSwitch's fin_timeout: a FIN or RST through the flow lowers its
    idle timeout to ``closing_timeout`` (the transitory timeout), in the
    switch, with no packet-in."""
    return parser.NXActionFinTimeout(fin_idle_timeout=closing_timeout, fin_hard_timeout=0)


def session_instructions(actions: Sequence, tag: int | None, closing_timeout: int = 0) -> list:
    """Apply ``actions`` now; a TCP session's flow (``tag`` given) applies
    ``fin_timeout`` first, then tags the packet with its session and
    direction and goes on to TABLE_TCP_WATCH, where an RST (only) is copied
    to the controller.  The packet has left by then: the watch table sees
    the translated packet and can only add a copy."""
    if tag is None:
        return [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions))]
    return [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                         [fin_timeout(closing_timeout), *actions]),
            parser.OFPInstructionWriteMetadata(tag, METADATA_MASK),
            parser.OFPInstructionGotoTable(TABLE_TCP_WATCH)]


def session_flow(p: SessionFlowSpec, kind: CookieKind, actions: Sequence | None = None
                 ) -> parser.OFPFlowMod:
    """The forward (SESSION_OUT) or reverse (SESSION_IN) flow of a session;
    idle timeout = its expiry.  ``actions`` replace the usual rewrite
    (a hairpinned session's flow rewrites both ends)."""
    if kind == CookieKind.SESSION_OUT:
        match, acts = forward_match(p), forward_actions(p)
    else:
        match, acts = reverse_match(p), reverse_actions(p)
    return parser.OFPFlowMod(
        None, cookie=make_cookie(kind, p.session_id), table_id=TABLE_NAT,
        command=ofp.OFPFC_ADD, idle_timeout=p.idle_timeout, priority=Priority.SESSION,
        flags=ofp.OFPFF_SEND_FLOW_REM, match=match,
        instructions=session_instructions(acts if actions is None else actions,
                                          watch_tag(p, kind), p.closing_timeout))


def session_flows(p: SessionFlowSpec) -> list[parser.OFPFlowMod]:
    """The forward and reverse flows of a session."""
    return [session_flow(p, CookieKind.SESSION_OUT), session_flow(p, CookieKind.SESSION_IN)]


WATCH_FLAG_PRIORITY, WATCH_PASS_PRIORITY = 1, 0


def tcp_watch_rules(fin_upcall: bool = False) -> list[parser.OFPFlowMod]:
    """TABLE_TCP_WATCH, shared by every TCP session: an RST goes on to
    TABLE_PUNT (its port's packet-in meter, then the controller); every
    other packet ends here, already sent on by its session flow.

    FINs need no copy: the session flow's ``fin_timeout`` lowers its idle
    timeout in the switch and the flow-stats poll reads it back.  An RST
    lowers it too, but only in its own direction, and fin_timeout cannot
    tell an RST from a FIN: the copy is what moves a reset connection to the
    transitory timeout both ways (RFC 7857 s2.2) while a half-closed one
    keeps the established timeout (RFC 5382: one FIN is still the
    established phase).  Matching the RST bit here also keeps that bit in
    the datapath flow's mask, so each connection's first RST takes OVS's
    slow path.  The copy carries the translated headers and the session
    tag in its metadata.

    A FIN that hits its connection's cached datapath flow lowers the timeout
    when OVS's revalidator pushes that flow's statistics (TCP flags
    included), within about half a second.  With ``fin_upcall`` a rule
    matching FIN (doing nothing) keeps the FIN bit in the datapath flow's
    mask, so each connection's first FIN misses the cache and the slow path
    applies fin_timeout at once: for datapaths that do not report TCP flags.
    """
    def rule(ident: InfraRule, priority: int, match: parser.OFPMatch, instructions: list):
        return parser.OFPFlowMod(None, cookie=make_cookie(CookieKind.INFRA, ident),
                                 table_id=TABLE_TCP_WATCH, command=ofp.OFPFC_ADD,
                                 priority=priority, match=match, instructions=instructions)
    tcp = {"eth_type": ether.ETH_TYPE_IP, "ip_proto": TCP}
    rules = [rule(InfraRule.TCP_RST_WATCH, WATCH_FLAG_PRIORITY,
                  parser.OFPMatch(**tcp, tcp_flags=(int(TcpFlags.RST), int(TcpFlags.RST))),
                  [parser.OFPInstructionGotoTable(TABLE_PUNT)]),
             rule(InfraRule.TCP_WATCH_PASS, WATCH_PASS_PRIORITY, parser.OFPMatch(), [])]
    if fin_upcall:
        rules.append(rule(InfraRule.TCP_FIN_WATCH, WATCH_FLAG_PRIORITY,
                          parser.OFPMatch(**tcp, tcp_flags=(int(TcpFlags.FIN), int(TcpFlags.FIN))),
                          []))
    return rules


def retired_rules() -> list[parser.OFPFlowMod]:
    """Rules of earlier versions that no rule of this one replaces in place
    (the FIN copies of TABLE_TCP_WATCH): deleted when a switch connects,
    before the gateway's rules (``tcp_fin_upcall`` adds its own again)."""
    return [delete_flow(make_cookie(CookieKind.INFRA, InfraRule.TCP_FIN_WATCH), TABLE_TCP_WATCH)]


def copied_session(metadata: int) -> tuple[CookieKind, int] | None:
    """(FLAGS_OUT or FLAGS_IN, session id) of a packet-in that is an RST copy
    (its metadata carries a TCP session flow's tag); None for any other
    packet-in (first packets leave TABLE_NAT with metadata 0)."""
    if not metadata:
        return None
    tag = parse_cookie(metadata)
    if tag is None or tag[0] not in (CookieKind.FLAGS_OUT, CookieKind.FLAGS_IN):
        return None
    return tag


def delete_session_flows(session_id: int, kind: CookieKind | None = None) -> parser.OFPFlowMod:
    """Delete all flows of a session (or one of them), by cookie only."""
    if kind is None:  # kinds 0x10-0x13 differ in their last two bits
        cookie = make_cookie(CookieKind.SESSION_OUT, session_id)
        mask = APP_COOKIE_MASK | (0xFC << _KIND_SHIFT) | ID_MASK
    else:
        cookie, mask = make_cookie(kind, session_id), KIND_COOKIE_MASK | ID_MASK
    return parser.OFPFlowMod(None, cookie=cookie, cookie_mask=mask, table_id=TABLE_NAT,
                             command=ofp.OFPFC_DELETE, out_port=ofp.OFPP_ANY,
                             out_group=ofp.OFPG_ANY, match=parser.OFPMatch())


def flow_stats_request() -> parser.OFPFlowStatsRequest:
    """Stats of our flows only (cookie mask), for counters and the drop rules."""
    return parser.OFPFlowStatsRequest(None, 0, TABLE_NAT, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                      APP_TAG << _APP_SHIFT, APP_COOKIE_MASK, parser.OFPMatch())


def packet_out_ports(ports: Sequence[int], data: bytes) -> parser.OFPPacketOut:
    """One frame out of several ports (an ARP request to every inside port)."""
    return parser.OFPPacketOut(None, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                               actions=[parser.OFPActionOutput(p, 0) for p in ports], data=data)


def packet_out_actions(actions: Sequence, data: bytes,
                       in_port: int = ofp.OFPP_CONTROLLER) -> parser.OFPPacketOut:
    """Send ``data`` through ``actions`` (e.g. a new session's forward actions)."""
    return parser.OFPPacketOut(None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                               actions=list(actions), data=data)


def mapping_probe(uplink: int, nat_address: str, protocol: int, port: int,
                  add: bool = True, index: int = 0) -> parser.OFPFlowMod:
    """Inbound to a mapped external port (of pool address ``index``) from a
    remote with no session yet: to the controller, which applies the
    filtering mode (EIF/ADF only)."""
    cookie = make_cookie(CookieKind.MAPPING, (index << 24) | (protocol << 16) | port)
    if not add:
        return parser.OFPFlowMod(None, cookie=cookie, cookie_mask=KIND_COOKIE_MASK | ID_MASK,
                                 table_id=TABLE_NAT, command=ofp.OFPFC_DELETE,
                                 out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                                 match=parser.OFPMatch())
    fields = {"in_port": uplink, "eth_type": ether.ETH_TYPE_IP, "ip_proto": protocol,
              "ipv4_dst": nat_address, L4_MATCH_FIELDS[protocol][1]: port}
    return punt_flow(cookie, Priority.MAPPING, parser.OFPMatch(**fields), UplinkClass.INBOUND)


IP_FRAG_ANY = 1   # OVS's ip_frag (NXM_NX_IP_FRAG): set for every fragment


def _frag_match(*fields: tuple[str, object]) -> parser.OFPMatch:
    """A match ending in OVS's ip_frag, in the order given.

    Ryu sorts match fields by OXM type, which puts the Nicira field ip_frag
    before its prerequisite eth_type; OVS then refuses the flow (BAD_PREREQ).
    ``_ordered_fields`` keeps the order we give.
    """
    return parser.OFPMatch(_ordered_fields=[*fields, ("ip_frag", (IP_FRAG_ANY, IP_FRAG_ANY))])


def fragment_rules(uplink: int, inside: ipaddress.IPv4Network,
                   nat_addresses: Sequence[ipaddress.IPv4Address]) -> list[parser.OFPFlowMod]:
    """Every IPv4 fragment from inside, and to a NAT address from outside,
    to the controller (``ryu_app.nat.paths.fragments``): OVS gives fragments no L4 ports
    to match, so no session flow can translate them."""
    return [
        punt_flow(make_cookie(CookieKind.INFRA, InfraRule.FRAGMENTS_INSIDE), Priority.FRAGMENT,
                  _frag_match(("eth_type", ether.ETH_TYPE_IP),
                              ("ipv4_src", (str(inside.network_address), str(inside.netmask))))),
        *(punt_flow(make_cookie(CookieKind.INFRA, InfraRule.FRAGMENTS_OUTSIDE | i << 8),
                    Priority.FRAGMENT,
                    _frag_match(("in_port", uplink), ("eth_type", ether.ETH_TYPE_IP),
                                ("ipv4_dst", str(a))), UplinkClass.FRAGMENT)
          for i, a in enumerate(nat_addresses)),
    ]
