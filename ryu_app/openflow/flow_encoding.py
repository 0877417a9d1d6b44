"""The messages of a new session, encoded with ``struct``: the same bytes as
the Ryu-built ones in :mod:`ryu_app.openflow.flows`, at a fraction of the cost.

Every new connection costs two flow-mods and a packet-out.  Built with Ryu's
parser classes, each match is normalised field by field from text (about
0.1 ms each here), and serialising walks the same objects again: most of a
session's controller time.  Here a session's match fields and actions are
packed straight from its :class:`~ryu_app.openflow.flows.SessionFlowSpec`, with the
pieces that repeat (the gateway's MAC, a remote's address) cached.
``tests/unit/openflow/test_flow_encoding.py`` proves the bytes equal to Ryu's for
every kind of session.

An :class:`Encoded` message is what the sender sends (it only adds the
xid); :meth:`Encoded.decode` turns it back into Ryu's parser objects, for
the fake switch of the unit tests and for logging the cause of an error.
"""
from __future__ import annotations

import socket
import struct
from functools import lru_cache
from typing import Any

from ryu.ofproto import nicira_ext, ofproto_common
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_app.openflow.flows import (L4_MATCH_FIELDS, METADATA_MASK, TABLE_NAT, TABLE_TCP_WATCH,
                                    CookieKind, Priority, SessionFlowSpec, make_cookie, watch_tag)

_HEADER = struct.Struct("!BBHI")
_FLOW_MOD = struct.Struct(ofp.OFP_FLOW_MOD_PACK_STR0)
_PACKET_OUT = struct.Struct(ofp.OFP_PACKET_OUT_PACK_STR)
_MATCH_HEAD = struct.Struct("!HH")
_INST_HEAD = struct.Struct(ofp.OFP_INSTRUCTION_ACTIONS_PACK_STR)
_WRITE_METADATA = struct.Struct(ofp.OFP_INSTRUCTION_WRITE_METADATA_PACK_STR)
_GOTO = struct.Struct(ofp.OFP_INSTRUCTION_GOTO_TABLE_PACK_STR)
_OUTPUT = struct.Struct(ofp.OFP_ACTION_OUTPUT_PACK_STR)
_DEC_TTL = struct.pack(ofp.OFP_ACTION_HEADER_PACK_STR, ofp.OFPAT_DEC_NW_TTL,
                       ofp.OFP_ACTION_HEADER_SIZE)
_GOTO_WATCH = _GOTO.pack(ofp.OFPIT_GOTO_TABLE, ofp.OFP_INSTRUCTION_GOTO_TABLE_SIZE,
                         TABLE_TCP_WATCH)
_U8, _U16, _U32 = struct.Struct("!B"), struct.Struct("!H"), struct.Struct("!I")
# NXAST_FIN_TIMEOUT (Ryu's NXActionFinTimeout): experimenter action header,
# Nicira subtype, fin_idle_timeout, fin_hard_timeout, 2 bytes of padding.
_FIN_TIMEOUT = struct.Struct("!HHIHHH2x")

# OXM class OPENFLOW_BASIC (0x8000), field numbers of OpenFlow 1.3 (s7.2.3.7).
_FIELD = {"in_port": (0, 4), "eth_dst": (3, 6), "eth_src": (4, 6), "eth_type": (5, 2),
          "ip_proto": (10, 1), "ipv4_src": (11, 4), "ipv4_dst": (12, 4),
          "tcp_src": (13, 2), "tcp_dst": (14, 2), "udp_src": (15, 2), "udp_dst": (16, 2)}
_ETH_IP = b"\x80\x00\x0a\x02\x08\x00"          # eth_type=0x0800


def _oxm_header(name: str) -> bytes:
    number, size = _FIELD[name]
    return struct.pack("!HBB", 0x8000, number << 1, size)


_OXM_HEAD = {name: _oxm_header(name) for name in _FIELD}


@lru_cache(maxsize=65536)
def _ip(addr: str) -> bytes:
    return socket.inet_aton(addr)


@lru_cache(maxsize=4096)
def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _pad8(length: int) -> bytes:
    return b"\x00" * (-length % 8)


@lru_cache(maxsize=65536)
def _match_head(protocol: int, in_port: int | None, src: str, dst: str,
                eth_src: str | None = None) -> bytes:
    """The fields of a match up to the addresses: the same for every session
    between two hosts, so cached."""
    parts = [_OXM_HEAD["in_port"], _U32.pack(in_port)] if in_port is not None else []
    if eth_src is not None:
        parts += [_OXM_HEAD["eth_src"], _mac(eth_src)]
    parts += [_ETH_IP, _OXM_HEAD["ip_proto"], _U8.pack(protocol),
              _OXM_HEAD["ipv4_src"], _ip(src), _OXM_HEAD["ipv4_dst"], _ip(dst)]
    return b"".join(parts)


_L4_MATCH = struct.Struct("!4sH4sH")


def _match(protocol: int, in_port: int | None, src: str, dst: str, sport: int, dport: int,
           eth_src: str | None = None) -> bytes:
    """An OFPMatch as Ryu serialises one made from keywords: fields sorted by
    OXM field number, padded to 8 bytes."""
    head = _match_head(protocol, in_port, src, dst, eth_src)
    src_field, dst_field = L4_MATCH_FIELDS[protocol]
    tail = _L4_MATCH.pack(_OXM_HEAD[src_field], sport, _OXM_HEAD[dst_field], dport)
    length = 4 + len(head) + len(tail)
    return _MATCH_HEAD.pack(ofp.OFPMT_OXM, length) + head + tail + _pad8(length)


@lru_cache(maxsize=65536)
def _set_field(name: str, value: bytes) -> bytes:
    """OFPActionSetField: type, length, one OXM, padded to 8 bytes."""
    body = _OXM_HEAD[name] + value
    pad = _pad8(4 + len(body))
    return _U16.pack(ofp.OFPAT_SET_FIELD) + _U16.pack(4 + len(body) + len(pad)) + body + pad


@lru_cache(maxsize=4096)
def _set_mac(name: str, mac: str) -> bytes:
    return _set_field(name, _mac(mac))


@lru_cache(maxsize=1024)
def _output(port: int, max_len: int = 0) -> bytes:
    return _OUTPUT.pack(ofp.OFPAT_OUTPUT, ofp.OFP_ACTION_OUTPUT_SIZE, port, max_len)


def _rewrite(p: SessionFlowSpec, eth_dst: str, ip_field: str, ip: str, l4_side: int, port: int,
             out_port: int) -> bytes:
    """flows._rewrite: set MACs, one address, (if it changes) one L4 port; dec TTL; output."""
    parts = [_set_mac("eth_src", p.gateway_mac), _set_mac("eth_dst", eth_dst),
             _set_field(ip_field, _ip(ip))]
    if p.external_port != p.inside_port:
        parts.append(_set_field(L4_MATCH_FIELDS[p.protocol][l4_side], _U16.pack(port)))
    parts += [_DEC_TTL, _output(out_port)]
    return b"".join(parts)


def forward_actions(p: SessionFlowSpec) -> bytes:
    uplink = p.uplink
    if uplink is None:
        raise ValueError(f"session {p.session_id}: no uplink to route its forward flow out of")
    return _rewrite(p, p.next_hop_mac, "ipv4_src", p.external_ip, 0, p.external_port, uplink)


def reverse_actions(p: SessionFlowSpec) -> bytes:
    return _rewrite(p, p.inside_mac, "ipv4_dst", p.inside_ip, 1, p.inside_port,
                    p.inside_switch_port)


class Encoded:
    """One OpenFlow message as bytes, all but its xid."""

    __slots__ = ("msg_type", "body", "xid")

    def __init__(self, msg_type: int, body: bytes) -> None:
        self.msg_type = msg_type
        self.body = body
        self.xid: int | None = None

    def serialize(self, xid: int) -> bytes:
        self.xid = xid
        return _HEADER.pack(ofp.OFP_VERSION, self.msg_type, 8 + len(self.body), xid) + self.body

    def decode(self) -> Any:
        """The same message as Ryu's parser objects (``datapath=None``)."""
        return decode(self.serialize(self.xid or 0))

    def __repr__(self) -> str:
        return repr(self.decode())


class Undecoded:
    """A message :func:`decode` has no parser for (barrier, stats requests)."""

    def __init__(self, msg_type: int, xid: int, buf: bytes) -> None:
        self.msg_type, self.xid, self.buf = msg_type, xid, buf

    def __repr__(self) -> str:
        return f"Undecoded(type={self.msg_type}, xid={self.xid}, {len(self.buf)} bytes)"


def split(buf: bytes) -> list[bytes]:
    """The OpenFlow messages one send concatenated, each whole."""
    out, offset = [], 0
    while offset < len(buf):
        _version, _type, length, _xid = _HEADER.unpack_from(buf, offset)
        out.append(bytes(buf[offset:offset + length]))
        offset += length
    return out


def decode(buf: bytes) -> Any:
    """One flow-mod or packet-out back into Ryu's parser objects (Ryu parses
    flow-mods itself; a packet-out is its header, Ryu-parsed actions, data)."""
    version, msg_type, length, xid = _HEADER.unpack_from(buf)
    if msg_type == ofp.OFPT_FLOW_MOD:
        msg = parser.OFPFlowMod.parser(None, version, msg_type, length, xid, buf)
    elif msg_type == ofp.OFPT_PACKET_OUT:
        buffer_id, in_port, actions_len = _PACKET_OUT.unpack_from(buf, 8)
        offset, end, actions = ofp.OFP_PACKET_OUT_SIZE, ofp.OFP_PACKET_OUT_SIZE + actions_len, []
        while offset < end:
            action = parser.OFPAction.parser(buf, offset)
            actions.append(action)
            offset += action.len
        msg = parser.OFPPacketOut(None, buffer_id=buffer_id, in_port=in_port,
                                  actions=actions, data=bytes(buf[end:length]))
        msg.xid = xid
    else:
        return Undecoded(msg_type, xid, bytes(buf))
    msg.datapath = None
    return msg


@lru_cache(maxsize=16)
def _fin_timeout(closing_timeout: int) -> bytes:
    return _FIN_TIMEOUT.pack(ofp.OFPAT_EXPERIMENTER, _FIN_TIMEOUT.size,
                             ofproto_common.NX_EXPERIMENTER_ID, nicira_ext.NXAST_FIN_TIMEOUT,
                             closing_timeout, 0)


def _instructions(actions: bytes, tag: int | None, closing_timeout: int) -> bytes:
    """flows.session_instructions: apply the actions; TCP (``tag``) first
    applies fin_timeout, then writes the tag and goes to TABLE_TCP_WATCH."""
    if tag is not None:
        actions = _fin_timeout(closing_timeout) + actions
    head = _INST_HEAD.pack(ofp.OFPIT_APPLY_ACTIONS, ofp.OFP_INSTRUCTION_ACTIONS_SIZE + len(actions))
    if tag is None:
        return head + actions
    return (head + actions
            + _WRITE_METADATA.pack(ofp.OFPIT_WRITE_METADATA,
                                   ofp.OFP_INSTRUCTION_WRITE_METADATA_SIZE, tag, METADATA_MASK)
            + _GOTO_WATCH)


def session_flow(p: SessionFlowSpec, kind: CookieKind) -> Encoded:
    """flows.session_flow(p, kind) (usual actions), encoded."""
    if kind == CookieKind.SESSION_OUT:     # flows.forward_match: from the host's binding
        match = _match(p.protocol, p.inside_switch_port, p.inside_ip, p.remote_ip,
                       p.inside_port, p.remote_port, p.inside_mac)
        actions = forward_actions(p)
    else:
        match = _match(p.protocol, p.uplink, p.remote_ip, p.external_ip, p.remote_port,
                       p.external_port)
        actions = reverse_actions(p)
    head = _FLOW_MOD.pack(make_cookie(kind, p.session_id), 0, TABLE_NAT, ofp.OFPFC_ADD,
                          p.idle_timeout, 0, Priority.SESSION, ofp.OFP_NO_BUFFER, 0, 0,
                          ofp.OFPFF_SEND_FLOW_REM)
    return Encoded(ofp.OFPT_FLOW_MOD, head + match
                   + _instructions(actions, watch_tag(p, kind), p.closing_timeout))


def session_flows(p: SessionFlowSpec) -> list[Encoded]:
    """flows.session_flows(p), encoded."""
    return [session_flow(p, CookieKind.SESSION_OUT), session_flow(p, CookieKind.SESSION_IN)]


def packet_out_forward(p: SessionFlowSpec, data: bytes) -> Encoded:
    """flows.packet_out_actions(flows.forward_actions(p), data), encoded: a
    session's first packet sent on as its forward flow would."""
    actions = forward_actions(p)
    return Encoded(ofp.OFPT_PACKET_OUT,
                   _PACKET_OUT.pack(ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER, len(actions))
                   + actions + bytes(data))
