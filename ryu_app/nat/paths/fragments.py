"""IPv4 fragments through the NAT (RFC 4787 REQ-14), in order or not.

Only a datagram's first fragment carries its ports, so no flow can translate
the rest: a switch rule above the session flows sends every fragment (from
inside, or from outside to the NAT address) here.  The first fragment finds
(or makes: outbound, or inbound through a forward or EIF/ADF filtering) the
session and fixes the L4 checksum incrementally for the whole datagram;
later fragments, matched by (addresses, protocol, IP id), only get their
address rewritten.  Each translated fragment refreshes its session, and
counts as traffic of its direction when a session flow idles out.

Hostile fragments cost only a bounded table: a first fragment too short to
hold its whole L4 header, and TCP fragments at offset 8, are dropped (RFC
1858); fragments that come before their first wait, at most 64 per datagram,
2048 in all, 64 waiting datagrams per source, for 5 s.  A datagram whose
first fragment matched a session is never refused: when the table is full
it makes room (the oldest datagram still waiting, else the oldest entry).
Unfragmented traffic never comes here: it stays on the switch flows.
"""
from __future__ import annotations

import socket
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from ryu.lib import addrconv

from conntrack import ICMP, INBOUND, OUTBOUND, TCP, UDP, ConnTrack, Refused, Session
from ryu_app.nat.counters import Drop
from ryu_app.nat.flow_book import FlowBook
from ryu_app.nat.inside import InsideSide
from ryu_app.nat.source_guard import Bindings
from ryu_app.nat.uplink import Uplink
from ryu_app.openflow import flows
from ryu_app.openflow.flows import CookieKind
from ryu_app.packets.checksum import adjust, refresh
from ryu_app.packets.packet_info import PacketInfo
from ryu_app.packets.wire import ipv4_problem

#: The NAT's own entry for an inside packet that may open a session (checks,
#: source binding, quotas, hairpin refusal): (session or None, messages).
OutboundEntry = Callable[[int, str, PacketInfo, bytes, float], "tuple[Session | None, list]"]

ETH, TIMEOUT = 14, 5.0
MAX_DATAGRAMS, MAX_HELD_EACH, MAX_HELD, MAX_PER_SOURCE = 1024, 64, 2048, 64
ECHO_REQUEST, ECHO_REPLY = 8, 0
# Offsets in the L4 header: (source port/id, destination port/id, checksum).
_L4 = {TCP: (0, 2, 16), UDP: (0, 2, 6), ICMP: (4, 4, 2)}
_L4_MIN = {TCP: 20, UDP: 8, ICMP: 8}


@dataclass
class _Datagram:
    since: float
    source: tuple
    sid: int | None = None
    held: list[_Fragment] = field(default_factory=list)


@dataclass(frozen=True)
class _Fragment:
    """One fragment, trimmed to its IP packet (no Ethernet padding)."""

    frame: bytes
    ihl: int
    offset: int
    ident: int
    proto: int
    src: str
    dst: str


def _parse(data: bytes) -> _Fragment | str:
    problem = ipv4_problem(data[ETH:])
    if problem:
        return "malformed"
    ihl = (data[ETH] & 0x0F) * 4
    total, ident, frag = struct.unpack_from("!HHH", data, ETH + 2)
    if ETH + total > len(data):
        return "malformed"                     # cut short: nothing to forward whole
    src, dst = (socket.inet_ntoa(data[ETH + 12 + i:ETH + 16 + i]) for i in (0, 4))
    return _Fragment(bytes(data[:ETH + total]), ihl, (frag & 0x1FFF) * 8, ident,
                     data[ETH + 9], src, dst)


class Fragments:
    """The fragment table of one switch.  A first fragment from inside goes
    through the NAT's own outbound entry, as a whole packet would."""

    def __init__(self, ct: ConnTrack, book: FlowBook, hosts: Bindings, uplink: Uplink,
                 inside: InsideSide, outbound: OutboundEntry, drop: Drop) -> None:
        self.ct, self.book, self.hosts, self.uplink = ct, book, hosts, uplink
        self.inside, self.outbound, self.drop = inside, outbound, drop
        self.table: OrderedDict[tuple, _Datagram] = OrderedDict()
        self.waiting: OrderedDict[tuple, None] = OrderedDict()   # datagrams without a first
        # Datagrams waiting for their first fragment, per source, oldest first.
        self.per_source: dict[tuple, OrderedDict[tuple, None]] = {}
        self.held = 0

    def packet(self, in_port: int, eth_src: str, data: bytes, outside: bool, now: float) -> list:
        frag = _parse(data)
        if isinstance(frag, str):
            return self.drop(frag)
        if frag.proto not in _L4:
            return self.drop("unsupported_protocol")
        if frag.proto == TCP and frag.offset == 8:
            return self.drop("fragment_tiny")     # RFC 1858: would rewrite TCP flags
        key = (outside, frag.src, frag.dst, frag.proto, frag.ident)
        dgram = self.table.get(key)
        if frag.offset == 0:
            return self._first(key, dgram, in_port, eth_src, frag, outside, now)
        if dgram is not None and dgram.sid is not None:
            session = self.ct.get(dgram.sid)
            if session is None:
                return self.drop("fragment_no_session")
            return self._translate(session, frag, outside, first=False, now=now)
        dgram = dgram or self._new(key, (outside, frag.src), now)
        if dgram is None or len(dgram.held) >= MAX_HELD_EACH or self.held >= MAX_HELD:
            return self.drop("fragment_queue_full")
        dgram.held.append(frag)          # before its first fragment: wait for it
        self.held += 1
        return []

    def _first(self, key: tuple, dgram: _Datagram | None, in_port: int, eth_src: str,
               frag: _Fragment, outside: bool, now: float) -> list:
        session, msgs = self._session(in_port, eth_src, frag, outside, now)
        if session is None:
            return msgs
        if dgram is None:           # a first fragment proves a session: it may push out
            dgram = self._new(key, (outside, frag.src), now, proven=True)   # junk
        out = msgs + self._translate(session, frag, outside, first=True, now=now)
        if dgram is not None:
            dgram.sid = session.id
            if self.waiting.pop(key, False) is None:    # it waited: it is proven now
                self._unwait(key, dgram.source)
            for held in dgram.held:
                out += self._translate(session, held, outside, first=False, now=now)
            self.held -= len(dgram.held)
            dgram.held = []
        return out

    def _new(self, key: tuple, source: tuple, now: float, proven: bool = False) -> _Datagram | None:
        """A table entry.  Datagrams still waiting for their first fragment
        are limited per source: a new one pushes out that source's oldest
        (fragments forged in a source's name then churn its share but never
        lock out its real datagrams, whose first fragment follows within
        moments even when the network reorders them).  One whose first
        fragment matched a session (``proven``) is not limited, and when the
        table is full it makes room (the oldest waiting datagram, else the
        oldest entry), so forged fragments cannot crowd out a session."""
        mine = self.per_source.get(source)
        if not proven and mine is not None and len(mine) >= MAX_PER_SOURCE:
            self._forget(next(iter(mine)), "fragment_evicted")
        if len(self.table) >= MAX_DATAGRAMS:
            if not proven:
                return None
            if not self._evict_waiting():
                self._forget(next(iter(self.table)), "fragment_evicted")
        dgram = self.table[key] = _Datagram(now, source)
        if not proven:
            self.waiting[key] = None
            self.per_source.setdefault(source, OrderedDict())[key] = None
        return dgram

    def _evict_waiting(self) -> bool:
        """Make room: drop the oldest datagram whose first fragment never came."""
        key = next(iter(self.waiting), None)
        if key is None:
            return False
        self._forget(key, "fragment_evicted")
        return True

    def _forget(self, key: tuple, reason: str) -> None:
        dgram = self.table.pop(key)
        if self.waiting.pop(key, False) is None:
            self._unwait(key, dgram.source)
        self.held -= len(dgram.held)
        for _ in dgram.held:
            self.drop(reason)

    def _unwait(self, key: tuple, source: tuple) -> None:
        mine = self.per_source[source]
        del mine[key]
        if not mine:
            del self.per_source[source]

    def tick(self, now: float) -> None:
        """Forget datagrams older than TIMEOUT; count fragments that never matched."""
        while self.table:
            key, dgram = next(iter(self.table.items()))
            if now - dgram.since < TIMEOUT:
                break
            self._forget(key, "fragment_timeout")

    def _session(self, in_port: int, eth_src: str, frag: _Fragment, outside: bool,
                 now: float) -> tuple[Session | None, list]:
        data, proto, l4 = frag.frame, frag.proto, ETH + frag.ihl
        need = _L4_MIN[proto] if proto != TCP or len(data) < l4 + 13 else \
            max(20, (data[l4 + 12] >> 4) * 4)
        if len(data) < l4 + need:
            return None, self.drop("fragment_tiny")   # RFC 1858: the whole header, or nothing
        if proto == ICMP:
            if data[l4] != (ECHO_REPLY if outside else ECHO_REQUEST):
                return None, self.drop("icmp_unsupported")
            sport = dport = struct.unpack_from("!H", data, l4 + 4)[0]
        else:
            sport, dport = struct.unpack_from("!HH", data, l4)
        flags = data[l4 + 13] if proto == TCP else 0
        if outside:
            return self._inbound_session(eth_src, frag, sport, dport, flags, now)
        info = PacketInfo(proto, frag.src, frag.dst, sport, dport, data[ETH + 8], flags,
                          ECHO_REQUEST if proto == ICMP else -1)
        session, msgs = self.outbound(in_port, eth_src, info, data, now)
        if session is None:
            return None, msgs
        mac = self.book.next_hop_mac(session, now)
        if mac is None:
            self.drop("next_hop_unresolved")
            hop = self.uplink.route(frag.dst)
            assert hop is not None        # the outbound entry checked the route
            return None, msgs + [self.uplink.arp_request(hop, now)]
        if proto != ICMP:
            msgs += self.book.ensure_flows(session, mac)   # for the datagram's unfragmented kin
        return session, msgs

    def _inbound_session(self, eth_src: str, frag: _Fragment, sport: int, dport: int,
                         flags: int, now: float) -> tuple[Session | None, list]:
        """The session of an inbound first fragment: an existing one, or one
        that a forward or the filtering mode lets in, as for whole packets."""
        ct, book, up, proto = self.ct, self.book, self.uplink, frag.proto
        session = ct.lookup_inbound(proto, frag.src, 0 if proto == ICMP else sport,
                                        frag.dst, dport)
        if session is not None:
            return session, []
        if proto == ICMP or ct.mapping_of_port(proto, dport, frag.dst) is None:
            return None, self.drop("fragment_no_session")
        try:
            session = ct.accept_inbound(proto, frag.src, sport, frag.dst, dport, now, flags)
        except Refused as refused:
            return None, self.drop(f"inbound_{refused.reason.value}")
        if self.hosts.get(str(session.inside_ip)) is None:
            # Ask for the host; the sender's next datagram gets through.
            # No flowless session is left behind meanwhile.
            self.drop("inbound_unresolved")
            return None, (book.end(session, "inside_host_unresolved", now)
                          + [self.inside.arp_request(str(session.inside_ip))])
        hop = up.route(frag.src)
        mac = up.hops.lookup(hop, now) if hop is not None else None
        if hop is None or mac is None:
            # The next hop is learned from ARP alone (never from a packet's
            # source MAC, which anyone may forge): ask; the next datagram passes.
            self.drop("inbound_unresolved")
            return None, (book.end(session, "next_hop_unresolved", now)
                          + ([up.arp_request(hop, now)] if hop is not None else []))
        return session, book.ensure_flows(session, mac)

    def _translate(self, session: Session, frag: _Fragment, outside: bool, first: bool,
                   now: float) -> list:
        """Rewrite one fragment: address (and, in the first, port and checksum)."""
        proto, up = frag.proto, self.uplink
        buf, ip, l4 = bytearray(frag.frame), ETH, ETH + frag.ihl
        if buf[ip + 8] <= 1:
            return self.drop("ttl_expired")
        if outside:
            host = self.hosts.get(str(session.inside_ip))
            if host is None:
                return self.drop("inbound_unresolved")
            addr_at, port_off, new_port = ip + 16, _L4[proto][1], session.inside_port
            new_addr, mac, port = socket.inet_aton(str(session.inside_ip)), host.mac, host.port
        else:
            hop_mac = self.book.next_hop_mac(session, now)
            if hop_mac is None:
                return self.drop("next_hop_unresolved")
            mac = hop_mac
            addr_at, port_off, new_port = ip + 12, _L4[proto][0], session.external_port
            new_addr, port = socket.inet_aton(str(session.external_ip)), up.port
        old_addr = bytes(buf[addr_at:addr_at + 4])
        if first:
            csum_at = l4 + _L4[proto][2]
            old_port = bytes(buf[l4 + port_off:l4 + port_off + 2])
            new_port_b = struct.pack("!H", new_port)
            if proto == ICMP:
                adjust(buf, csum_at, old_port, new_port_b)
            elif not (proto == UDP and struct.unpack_from("!H", buf, csum_at)[0] == 0):
                adjust(buf, csum_at, old_addr + old_port, new_addr + new_port_b, proto == UDP)
            buf[l4 + port_off:l4 + port_off + 2] = new_port_b
        buf[addr_at:addr_at + 4] = new_addr
        buf[ip + 8] -= 1
        refresh(buf, ip + 10, ip, l4)
        buf[0:6] = addrconv.mac.text_to_bin(mac)
        buf[6:12] = addrconv.mac.text_to_bin(up.gateway_mac)
        self._seen(session, outside, len(buf), now)
        return [flows.packet_out(port, bytes(buf))]

    def _seen(self, session: Session, outside: bool, size: int, now: float) -> None:
        """A fragment of ``session`` passed: it counts, refreshes the session
        (RFC 4787 REQ-6) and keeps its direction's flow alive when it idles."""
        kind = CookieKind.SESSION_IN if outside else CookieKind.SESSION_OUT
        self.ct.touch(session, INBOUND if outside else OUTBOUND, now)
        rec = self.book.records.get(session.id)
        if rec is not None:
            rec.count_sent(kind, size)
            rec.fragments_at[kind] = now
