"""The switch's copy of each PCP/NAT-PMP lease, so a restarted controller has them.

Sessions come back from their own flows (:mod:`ryu_app.openflow.adoption`),
but a mapping a host asked for may have no session at all.  Each lease is
kept as one *record flow* in TABLE_NAT that no packet can match: it matches
a metadata value with the top bit set, and metadata is zero in the first
table.  Its match holds the lease (protocol, inside address and port, the
peer for PEER, the PCP nonce in the two MAC fields, the external port and
pool index and origin in the metadata), its hard timeout is the lifetime
granted and its duration the time since then; the switch drops it when the
lifetime runs out even if no controller is there to do it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ryu.lib import addrconv
from ryu.ofproto import ether
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_app.openflow.flows import L4_MATCH_FIELDS, TABLE_NAT, CookieKind, delete_flow, make_cookie, parse_cookie

_MARK = 1 << 63          # no packet carries this metadata into TABLE_NAT
_NATPMP = 1 << 62
_COMPANION = 1 << 61     # NAT-PMP: the other protocol's same port is reserved too
RECORD_PRIORITY = 1
MAX_LIFETIME = 0xFFFF    # hard_timeout is 16 bits
NO_PEER = ("0.0.0.0", 0)


@dataclass(frozen=True)
class RecordedLease:
    """One record flow read back."""

    ident: int
    natpmp: bool
    protocol: int
    internal_ip: str
    internal_port: int
    pool_index: int
    external_port: int
    nonce: bytes
    peer: tuple[str, int] | None
    remaining: int           # seconds of lifetime left
    lifetime: int            # as granted
    companion: bool = False


def record_flow(ident: int, natpmp: bool, protocol: int, internal_ip: str, internal_port: int,
                pool_index: int, external_port: int, nonce: bytes,
                peer: tuple[str, int] | None, lifetime: int,
                companion: bool = False) -> parser.OFPFlowMod:
    """The record of a lease (added again on renewal: same match, new timeout)."""
    src_field, dst_field = L4_MATCH_FIELDS[protocol]
    peer_ip, peer_port = peer or NO_PEER
    nonce = nonce.ljust(12, b"\0")[:12]
    metadata = (_MARK | (_NATPMP if natpmp else 0) | (_COMPANION if companion else 0)
                | (pool_index << 16) | external_port)
    match = parser.OFPMatch(eth_dst=addrconv.mac.bin_to_text(nonce[6:]),
                            eth_src=addrconv.mac.bin_to_text(nonce[:6]),
                            eth_type=ether.ETH_TYPE_IP, ip_proto=protocol,
                            ipv4_src=internal_ip, ipv4_dst=peer_ip,
                            **{src_field: internal_port, dst_field: peer_port},
                            metadata=metadata)
    return parser.OFPFlowMod(None, cookie=make_cookie(CookieKind.LEASE, ident),
                             table_id=TABLE_NAT, command=ofp.OFPFC_ADD,
                             priority=RECORD_PRIORITY, hard_timeout=min(lifetime, MAX_LIFETIME),
                             match=match, instructions=[])


def delete_record(ident: int) -> parser.OFPFlowMod:
    return delete_flow(make_cookie(CookieKind.LEASE, ident))


def read_records(dump: Iterable) -> list[RecordedLease]:
    """The record flows of a flow-stats dump (Ryu's OFPFlowStats), as leases."""
    out = []
    for stat in dump:
        parsed = parse_cookie(stat.cookie)
        if parsed is None or parsed[0] != CookieKind.LEASE:
            continue
        try:
            match = stat.match
            protocol = match["ip_proto"]
            src_field, dst_field = L4_MATCH_FIELDS[protocol]
            metadata = match["metadata"]
            nonce = (addrconv.mac.text_to_bin(match["eth_src"])
                     + addrconv.mac.text_to_bin(match["eth_dst"]))
            peer = (match["ipv4_dst"], match[dst_field])
            out.append(RecordedLease(
                ident=parsed[1], natpmp=bool(metadata & _NATPMP), protocol=protocol,
                internal_ip=match["ipv4_src"], internal_port=match[src_field],
                pool_index=(metadata >> 16) & 0xFF, external_port=metadata & 0xFFFF,
                nonce=b"" if metadata & _NATPMP else nonce,
                peer=None if peer == NO_PEER else peer,
                remaining=max(0, stat.hard_timeout - stat.duration_sec), lifetime=stat.hard_timeout,
                companion=bool(metadata & _COMPANION)))
        except (KeyError, TypeError, ValueError):
            continue
    return out
