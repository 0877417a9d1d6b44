"""IPv4 fragments through the NAT (RFC 4787 REQ-14), in order or not.

Only a datagram's first fragment carries its ports, so no flow can translate
the rest: a switch rule above the session flows sends every fragment (from
inside, or from outside to the NAT address) here.  The first fragment finds
(or makes, outbound) the session and fixes the L4 checksum incrementally for
the whole datagram; later fragments, matched by (addresses, protocol, IP id),
only get their address rewritten.  Fragments that come before their first
wait, bounded per datagram, in total and in time.  A flood of bogus fragments
costs only this bounded table: unfragmented traffic stays on the switch flows.
"""
from __future__ import annotations

import socket
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ryu.lib import addrconv

from conntrack import Session
from ryu_app import flows
from ryu_app.flows import CookieKind
from ryu_app.inet_checksum import adjust, refresh
from ryu_app.packet_info import ICMP, TCP, UDP, PacketInfo

if TYPE_CHECKING:
    from ryu_app.nat_service import NatService

ETH, TIMEOUT = 14, 5.0
MAX_DATAGRAMS, MAX_HELD_EACH, MAX_HELD = 1024, 64, 2048
ECHO_REQUEST, ECHO_REPLY = 8, 0
# Offsets in the L4 header: (source port/id, destination port/id, checksum).
_L4 = {TCP: (0, 2, 16), UDP: (0, 2, 6), ICMP: (4, 4, 2)}


@dataclass
class _Datagram:
    since: float
    sid: int | None = None
    held: list[bytes] = field(default_factory=list)


def _header(data: bytes) -> tuple[int, int, int, int, str, str] | None:
    """(ihl, offset, ident, protocol, src, dst) of an IPv4 frame, or None."""
    if len(data) < ETH + 20 or data[ETH] >> 4 != 4:
        return None
    ihl = (data[ETH] & 0x0F) * 4
    if ihl < 20 or len(data) < ETH + ihl:
        return None
    ident, frag = struct.unpack_from("!HH", data, ETH + 4)
    src, dst = (socket.inet_ntoa(data[ETH + 12 + i:ETH + 16 + i]) for i in (0, 4))
    return ihl, (frag & 0x1FFF) * 8, ident, data[ETH + 9], src, dst


class Fragments:
    """The fragment table of one NatService."""

    def __init__(self, nat: "NatService") -> None:
        self.nat = nat
        self.table: OrderedDict[tuple, _Datagram] = OrderedDict()
        self.held = 0

    def packet(self, in_port: int, eth_src: str, data: bytes, outside: bool, now: float) -> list:
        nat = self.nat
        head = _header(data)
        if head is None:
            return nat._drop("malformed")
        ihl, offset, ident, proto, src, dst = head
        if proto not in _L4:
            return nat._drop("unsupported_protocol")
        key = (outside, src, dst, proto, ident)
        dgram = self.table.get(key)
        if offset == 0:
            session, msgs = self._session(in_port, eth_src, data, ihl, proto, src, dst,
                                          outside, now)
            if session is None:
                return msgs
            if dgram is None:
                dgram = self._new(key, now)
            if dgram is not None:
                dgram.sid = session.id
            out = msgs + self._translate(session, data, ihl, proto, outside, first=True)
            if dgram is not None:
                for frag in dgram.held:
                    out += self._translate(session, frag, ihl, proto, outside, first=False)
                self.held -= len(dgram.held)
                dgram.held = []
            return out
        if dgram is not None and dgram.sid is not None:
            session = nat.ct.get(dgram.sid)
            if session is None:
                return nat._drop("fragment_no_session")
            return self._translate(session, data, ihl, proto, outside, first=False)
        dgram = dgram or self._new(key, now)
        if dgram is None or len(dgram.held) >= MAX_HELD_EACH or self.held >= MAX_HELD:
            return nat._drop("fragment_queue_full")
        dgram.held.append(data)       # before its first fragment: wait for it
        self.held += 1
        return []

    def _new(self, key: tuple, now: float) -> _Datagram | None:
        if len(self.table) >= MAX_DATAGRAMS:
            return None
        dgram = self.table[key] = _Datagram(now)
        return dgram

    def tick(self, now: float) -> None:
        """Forget datagrams older than TIMEOUT; count fragments that never matched."""
        while self.table:
            key, dgram = next(iter(self.table.items()))
            if now - dgram.since < TIMEOUT:
                break
            del self.table[key]
            if dgram.held:
                self.held -= len(dgram.held)
                for _ in dgram.held:
                    self.nat._drop("fragment_timeout")

    def _session(self, in_port: int, eth_src: str, data: bytes, ihl: int, proto: int,
                 src: str, dst: str, outside: bool, now: float) -> tuple[Session | None, list]:
        nat, l4 = self.nat, ETH + ihl
        if len(data) < l4 + 8:
            return None, nat._drop("malformed")
        if proto == ICMP:
            kind = ECHO_REPLY if outside else ECHO_REQUEST
            if data[l4] != kind:
                return None, nat._drop("icmp_unsupported")
            sport = dport = struct.unpack_from("!H", data, l4 + 4)[0]
        else:
            sport, dport = struct.unpack_from("!HH", data, l4)
        if outside:
            session = nat.ct.lookup_inbound(proto, src, 0 if proto == ICMP else sport, dst, dport)
            if session is None:
                return None, nat._drop("fragment_no_session")
            return session, []
        flags = data[l4 + 13] if proto == TCP else 0
        info = PacketInfo(proto, src, dst, sport, dport, data[ETH + 8], flags,
                          ECHO_REQUEST if proto == ICMP else -1)
        session, msgs = nat.outbound_session(in_port, eth_src, info, data, now)
        if session is None:
            return None, msgs
        hop = nat.next_hop(dst)
        mac = nat.next_hops.lookup(hop, now)
        if mac is None:
            nat._drop("next_hop_unresolved")
            return None, msgs + [nat._arp_request(hop)]
        if proto != ICMP:
            msgs += nat._ensure_flows(session, mac)   # for the datagram's unfragmented kin
        return session, msgs

    def _translate(self, session: Session, data: bytes, ihl: int, proto: int, outside: bool,
                   first: bool) -> list:
        """Rewrite one fragment: address (and, in the first, port and checksum)."""
        nat = self.nat
        buf, ip, l4 = bytearray(data), ETH, ETH + ihl
        if buf[ip + 8] <= 1:
            return nat._drop("ttl_expired")
        if outside:
            host = nat.hosts.get(str(session.inside_ip))
            if host is None:
                return nat._drop("inbound_unresolved")
            addr_at, port_off, new_port = ip + 16, _L4[proto][1], session.inside_port
            new_addr, mac, port = socket.inet_aton(str(session.inside_ip)), host.mac, host.port
        else:
            mac = nat.next_hops.lookup(nat.next_hop(str(session.remote_ip)) or "", 0.0) or ""
            if not mac:
                return nat._drop("next_hop_unresolved")
            addr_at, port_off, new_port = ip + 12, _L4[proto][0], session.external_port
            new_addr, port = socket.inet_aton(str(session.external_ip)), nat.uplink
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
        buf[6:12] = addrconv.mac.text_to_bin(nat.config.gateway_mac)
        rec = nat.records.get(session.id)
        if rec is not None:
            rec.count_sent(CookieKind.SESSION_IN if outside else CookieKind.SESSION_OUT, len(buf))
        return [flows.packet_out(port, bytes(buf))]

