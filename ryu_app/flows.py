"""Every OpenFlow message ryu-snat sends is built here, away from any datapath.

Messages are made with the OpenFlow 1.3 parser and ``datapath=None``; the one
send path (:mod:`ryu_app.sender`) attaches the datapath.  This keeps builders
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
from typing import Sequence

from ryu.ofproto import ether, inet
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

APP_TAG = 0x5A7E
_APP_SHIFT = 48
_KIND_SHIFT = 40
APP_COOKIE_MASK = 0xFFFF << _APP_SHIFT
KIND_COOKIE_MASK = APP_COOKIE_MASK | (0xFF << _KIND_SHIFT)
ID_MASK = 0xFFFFFFFF

TABLE_NAT = 0   # the only table so far; its owner is this module


class CookieKind(enum.IntEnum):
    """What a flow of ours is for (bits 40-47 of its cookie)."""

    INFRA = 0x01        # table-miss, ARP, gateway ICMP, filters
    SESSION_OUT = 0x10  # forward (inside -> outside) flow of a session
    SESSION_IN = 0x11   # reverse (outside -> inside) flow of a session


class Priority(enum.IntEnum):
    """Priority bands of TABLE_NAT, highest first."""

    SESSION = 1000      # per-session forward/reverse rewrites
    GATEWAY = 500       # traffic addressed to the gateway itself (ARP, ping)
    MISS = 0            # table-miss


class InfraRule(enum.IntEnum):
    """Ids of infrastructure rules, for their cookies."""

    TABLE_MISS = 1
    ARP_INSIDE = 2
    ARP_OUTSIDE = 3
    ICMP_INSIDE = 4
    ICMP_OUTSIDE = 5


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


def barrier() -> parser.OFPBarrierRequest:
    return parser.OFPBarrierRequest(None)


def port_desc_request() -> parser.OFPPortDescStatsRequest:
    return parser.OFPPortDescStatsRequest(None, 0)


def table_miss() -> parser.OFPFlowMod:
    """Unmatched packets go to the controller (first packets of new flows)."""
    return flow_add(make_cookie(CookieKind.INFRA, InfraRule.TABLE_MISS), Priority.MISS,
                    parser.OFPMatch(), _to_controller())


def arp_to_controller(rule: InfraRule, in_port: int | None,
                      target: ipaddress.IPv4Address) -> parser.OFPFlowMod:
    """ARP asking for (or answering) one of the gateway's addresses."""
    fields = {"eth_type": ether.ETH_TYPE_ARP, "arp_tpa": str(target)}
    if in_port is not None:
        fields["in_port"] = in_port
    return flow_add(make_cookie(CookieKind.INFRA, rule), Priority.GATEWAY,
                    parser.OFPMatch(**fields), _to_controller())


def icmp_to_controller(rule: InfraRule, in_port: int | None,
                       target: ipaddress.IPv4Address) -> parser.OFPFlowMod:
    """ICMP addressed to one of the gateway's own addresses (ping the router)."""
    fields = {"eth_type": ether.ETH_TYPE_IP, "ip_proto": inet.IPPROTO_ICMP,
              "ipv4_dst": str(target)}
    if in_port is not None:
        fields["in_port"] = in_port
    return flow_add(make_cookie(CookieKind.INFRA, rule), Priority.GATEWAY,
                    parser.OFPMatch(**fields), _to_controller())


def packet_out(out_port: int, data: bytes,
               in_port: int = ofp.OFPP_CONTROLLER) -> parser.OFPPacketOut:
    """Send ``data`` (a whole frame built by the controller) out of ``out_port``."""
    return parser.OFPPacketOut(None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                               actions=[parser.OFPActionOutput(out_port, 0)], data=data)
