"""A fake OpenFlow 1.3 switch that drives a real ``ryu-manager`` over TCP.

Why: the controller's session set-up rate is what limits a NAT gateway's new
connections per second, and measuring it through OVS + Mininet measures the
kernel too.  This plays the switch side of the protocol just well enough for
Ryu apps (HELLO, FEATURES, PORT_DESC, BARRIER, ECHO, flow stats), answers the
gateway's ARP for its next hop, and feeds PACKET_INs with unique 5-tuples.
A session is complete when the PACKET_OUT carrying its packet comes back.

Everything on the hot path is raw ``struct`` (Ryu's own parser costs more per
message than the controller under test would), so the generator stays well
below one core; :class:`RunResult` reports its CPU time against wall time to
show it.  Nothing here asserts: benches and tests decide what is good.
"""
from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

OFP_VERSION = 0x04
# Message types (OpenFlow 1.3.5 section 7.1).
HELLO, ERROR, ECHO_REQUEST, ECHO_REPLY = 0, 1, 2, 3
FEATURES_REQUEST, FEATURES_REPLY, GET_CONFIG_REQUEST, GET_CONFIG_REPLY = 5, 6, 7, 8
PACKET_IN, PACKET_OUT, FLOW_MOD = 10, 13, 14
MULTIPART_REQUEST, MULTIPART_REPLY, BARRIER_REQUEST, BARRIER_REPLY = 18, 19, 20, 21
ROLE_REQUEST, ROLE_REPLY = 24, 25
MP_FLOW, MP_PORT_DESC = 1, 13
MPF_REPLY_MORE = 1
OFPR_NO_MATCH, OFPR_ACTION = 0, 1
OFPFC_ADD = 0
NO_BUFFER = 0xFFFFFFFF

_HEADER = struct.Struct("!BBHI")
_FEATURES = struct.Struct("!QIBB2xII")            # OFP_SWITCH_FEATURES_PACK_STR
_MULTIPART = struct.Struct("!HH4x")               # OFP_MULTIPART_REQUEST/REPLY
_PORT = struct.Struct("!I4x6s2x16sIIIIIIII")      # OFP_PORT_PACK_STR
_PACKET_IN = struct.Struct("!IHBBQ")              # OFP_PACKET_IN_PACK_STR
_PACKET_OUT = struct.Struct("!IIH6x")             # OFP_PACKET_OUT_PACK_STR
_FLOW_MOD_COOKIE = struct.Struct("!Q")            # first field of ofp_flow_mod
_FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")    # OFP_FLOW_STATS_0_PACK_STR
_EMPTY_MATCH = struct.pack("!HH4x", 1, 4)         # OFPMT_OXM, no fields, padded to 8
_IN_PORT_MATCH = struct.Struct("!HHII4x")         # OXM match with in_port only, padded to 16
_OXM_IN_PORT = 0x80000004                         # class OPENFLOW_BASIC, field 0, 4 bytes
MAX_MSG = 0xFFFF

ETH_IP, ETH_ARP = 0x0800, 0x0806
TCP, UDP = 6, 17
GATEWAY_MAC = "02:53:4e:41:54:01"                 # ryu_app.settings.config.DEFAULT_GATEWAY_MAC

# Ports of the fake switch, as nat_topo's s1: port 1 is the uplink.
DEFAULT_PORTS = ((1, "s1-eth1"), (2, "s1-eth2"), (3, "s1-eth3"))
UPLINK, INSIDE_PORT = 1, 2


# -- frames ----------------------------------------------------------------------
def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    return _fold(sum(struct.unpack(f"!{len(data) // 2}H", data)))


def ipv4_frame(dst_mac: bytes, src_mac: bytes, src: bytes, dst: bytes, proto: int,
               l4: bytes, ident: int = 0) -> bytes:
    """Ethernet + IPv4 (no options, DF, TTL 64) around an L4 segment whose
    checksum field is still zero; both checksums are filled in."""
    total = 20 + len(l4)
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, proto, 0,
                       src, dst)
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(l4))
    csum = checksum(pseudo + l4) or (0xFFFF if proto == UDP else 0)
    at = 16 if proto == TCP else 6
    l4 = l4[:at] + struct.pack("!H", csum) + l4[at + 2:]
    return dst_mac + src_mac + struct.pack("!H", ETH_IP) + head + l4


def tcp_syn(dst_mac: bytes, src_mac: bytes, src: bytes, dst: bytes, sport: int, dport: int,
            seq: int = 1) -> bytes:
    """A TCP SYN (no options, window 64240) in an Ethernet frame."""
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, 0, 5 << 4, 0x02, 64240, 0, 0)
    return ipv4_frame(dst_mac, src_mac, src, dst, TCP, seg)


def udp_datagram(dst_mac: bytes, src_mac: bytes, src: bytes, dst: bytes, sport: int,
                 dport: int, payload: bytes = b"ryu-snat") -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ipv4_frame(dst_mac, src_mac, src, dst, UDP, seg)


def arp_frame(opcode: int, src_mac: bytes, src_ip: bytes, dst_mac: bytes, dst_ip: bytes,
              eth_dst: bytes | None = None) -> bytes:
    """An ARP request (1) or reply (2), padded to the Ethernet minimum."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_IP, 6, 4, opcode, src_mac, src_ip,
                       dst_mac, dst_ip)
    eth = (eth_dst or dst_mac) + src_mac + struct.pack("!H", ETH_ARP)
    return (eth + body).ljust(60, b"\0")


def frame_key(data: bytes) -> bytes:
    """What identifies a generated packet in the PACKET_OUT that carries it
    back: source MAC, IP protocol, addresses and ports (unchanged by NAT,
    which rewrites in the switch through the packet-out's actions)."""
    return data[6:12] + data[23:24] + data[26:38]


# -- OpenFlow messages -----------------------------------------------------------------
def header(msg_type: int, length: int, xid: int) -> bytes:
    return _HEADER.pack(OFP_VERSION, msg_type, length, xid)


def packet_in(data: bytes, in_port: int, xid: int = 0, reason: int = OFPR_NO_MATCH,
              table_id: int = 0, cookie: int = 0, buffer_id: int = NO_BUFFER) -> bytes:
    """OFPT_PACKET_IN with a match of in_port only, and the whole frame."""
    body = (_PACKET_IN.pack(buffer_id, len(data), reason, table_id, cookie)
            + _IN_PORT_MATCH.pack(1, 12, _OXM_IN_PORT, in_port) + b"\0\0" + data)
    return header(PACKET_IN, 8 + len(body), xid) + body


def features_reply(xid: int, dpid: int) -> bytes:
    body = _FEATURES.pack(dpid, 0, 254, 0, 0x4F, 0)   # flow/table/port stats, groups, queues
    return header(FEATURES_REPLY, 8 + len(body), xid) + body


def port_desc_reply(xid: int, ports: tuple[tuple[int, str], ...], dpid: int) -> bytes:
    body = _MULTIPART.pack(MP_PORT_DESC, 0)
    for number, name in ports:
        hw = struct.pack("!HI", 0x0200 | (dpid & 0xFF), number)
        body += _PORT.pack(number, hw, name.encode(), 0, 4, 0x2840, 0x2840, 0x2840, 0,
                           10_000_000, 10_000_000)   # state LIVE; 10G copper, autoneg
    return header(MULTIPART_REPLY, 8 + len(body), xid) + body


def flow_stats_replies(xid: int, cookies: list[int]) -> list[bytes]:
    """A flow-stats reply with one entry per cookie, split into messages of at
    most 64 KiB (REPLY_MORE on all but the last); one empty reply for none."""
    entry_len = _FLOW_STATS.size + len(_EMPTY_MATCH)
    per_msg = (MAX_MSG - 16) // entry_len
    chunks = [cookies[i:i + per_msg] for i in range(0, len(cookies), per_msg)] or [[]]
    out = []
    for k, chunk in enumerate(chunks):
        flags = MPF_REPLY_MORE if k < len(chunks) - 1 else 0
        body = _MULTIPART.pack(MP_FLOW, flags) + b"".join(
            _FLOW_STATS.pack(entry_len, 0, 1, 0, 1000, 60, 0, 0, c, 1, 64) + _EMPTY_MATCH
            for c in chunk)
        out.append(header(MULTIPART_REPLY, 8 + len(body), xid) + body)
    return out


def parse_packet_out(buf: bytes | memoryview, offset: int, length: int) -> tuple[int, bytes]:
    """(in_port, data) of the PACKET_OUT at ``offset``."""
    _buffer_id, in_port, actions_len = _PACKET_OUT.unpack_from(buf, offset + 8)
    return in_port, bytes(buf[offset + 24 + actions_len:offset + length])


# -- the switch ---------------------------------------------------------------------
@dataclass
class Counters:
    """What the switch saw from the controller."""

    flow_mods: int = 0
    packet_outs: int = 0
    other_packet_outs: int = 0      # not one of ours (ARP replies, floods...)
    arp_requests: int = 0
    flow_stats_requests: int = 0
    barriers: int = 0
    errors: int = 0
    other: int = 0


class FakeSwitch:
    """One OpenFlow 1.3 switch on one TCP connection to the controller.

    ``pump()`` reads what the controller sent and answers it; PACKET_OUTs
    whose frame is one of ours are handed to ``on_packet_out(key, data)``.
    Next-hop ARP requests on the uplink are answered from ``neighbors``
    (IP -> MAC) with a PACKET_IN of the reply, as the real neighbour would.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", dpid: int = 1,
                 ports: tuple[tuple[int, str], ...] = DEFAULT_PORTS,
                 neighbors: dict[str, str] | None = None) -> None:
        self.address = (host, port)
        self.dpid = dpid
        self.ports = ports
        self.neighbors = {ip4(ip): mac(m) for ip, m in (neighbors or {}).items()}
        self.counters = Counters()
        self.on_packet_out: Callable[[bytes, bytes], None] = lambda key, data: None
        self.stats_cookies: Callable[[], list[int]] | None = None   # None: empty replies
        self.flow_cookies: dict[int, None] = {}    # cookies of added flows (for stats)
        self.track_cookies = False
        self.stats_requests_at: list[float] = []
        self.features_done = False
        self.port_descs = 0
        self.last_rx = 0.0
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._xid = 0

    # connection --------------------------------------------------------------
    def connect(self, timeout: float = 10.0) -> None:
        """Connect (retrying while the controller starts), say HELLO and wait
        until the controller has the features and the port list."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.create_connection(self.address, timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setblocking(False)
        self.send(header(HELLO, 8, self.next_xid()))
        while not (self.features_done and self.port_descs):
            if time.monotonic() > deadline:
                raise TimeoutError("controller did not finish the OpenFlow handshake")
            self.pump(0.1)

    def settle(self, quiet: float = 0.5, timeout: float = 10.0) -> None:
        """Pump until the controller has been silent for ``quiet`` seconds
        (its apps have installed their start-up flows)."""
        deadline = time.monotonic() + timeout
        self.last_rx = time.monotonic()
        while time.monotonic() - self.last_rx < quiet and time.monotonic() < deadline:
            self.pump(0.05)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def fileno(self) -> int:
        assert self._sock is not None
        return self._sock.fileno()

    def next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    # sending -----------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Queue ``data``; it is written at once if the socket takes it."""
        self._out.append(data)
        self.flush()

    def flush(self) -> None:
        if not self._out or self._sock is None:
            return
        data = b"".join(self._out)
        self._out.clear()
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self._out.append(data[sent:])

    # receiving ---------------------------------------------------------------
    def pump(self, timeout: float) -> int:
        """Wait up to ``timeout`` for data, then handle every whole message.
        Returns the number of messages handled."""
        sock = self._sock
        assert sock is not None
        wlist = [sock] if self._out else []
        readable, writable, _ = select.select([sock], wlist, [], timeout)
        if writable:
            self.flush()
        if not readable:
            return 0
        handled = 0
        while True:
            try:
                chunk = sock.recv(1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                raise ConnectionError("controller closed the connection")
            self._buf += chunk
            if len(chunk) < (1 << 20):
                break
        self.last_rx = time.monotonic()
        buf, offset, end = self._buf, 0, len(self._buf)
        view = memoryview(buf)
        try:
            while end - offset >= 8:
                _v, msg_type, length, xid = _HEADER.unpack_from(buf, offset)
                if length < 8:
                    raise ConnectionError(f"bad OpenFlow length {length}")
                if end - offset < length:
                    break
                if msg_type == FLOW_MOD:
                    self.counters.flow_mods += 1
                    if self.track_cookies and buf[offset + 25] == OFPFC_ADD:
                        self.flow_cookies[_FLOW_MOD_COOKIE.unpack_from(buf, offset + 8)[0]] = None
                elif msg_type == PACKET_OUT:
                    self._packet_out(view, offset, length)
                else:
                    self._control(msg_type, xid, bytes(view[offset:offset + length]))
                offset += length
                handled += 1
        finally:
            view.release()
        del self._buf[:offset]
        self.flush()
        return handled

    def _packet_out(self, view: memoryview, offset: int, length: int) -> None:
        _in_port, data = parse_packet_out(view, offset, length)
        self.counters.packet_outs += 1
        if len(data) >= 42 and data[12:14] == b"\x08\x06" and data[20:22] == b"\x00\x01":
            self._arp_request(data)
        elif len(data) >= 38:
            self.on_packet_out(frame_key(data), data)
        else:
            self.counters.other_packet_outs += 1

    def _arp_request(self, data: bytes) -> None:
        """A next-hop ARP request from the gateway: the neighbour answers."""
        self.counters.arp_requests += 1
        sender_mac, sender_ip, target_ip = data[22:28], data[28:32], data[38:42]
        their_mac = self.neighbors.get(target_ip)
        if their_mac is None:
            return
        reply = arp_frame(2, their_mac, target_ip, sender_mac, sender_ip)
        self.send(packet_in(reply, UPLINK, self.next_xid()))

    def _control(self, msg_type: int, xid: int, msg: bytes) -> None:
        if msg_type == ECHO_REQUEST:
            self.send(header(ECHO_REPLY, len(msg), xid) + msg[8:])
        elif msg_type == FEATURES_REQUEST:
            self.send(features_reply(xid, self.dpid))
            self.features_done = True
        elif msg_type == MULTIPART_REQUEST:
            mp_type = _MULTIPART.unpack_from(msg, 8)[0]
            if mp_type == MP_PORT_DESC:
                self.send(port_desc_reply(xid, self.ports, self.dpid))
                self.port_descs += 1
            elif mp_type == MP_FLOW:
                self.counters.flow_stats_requests += 1
                self.stats_requests_at.append(time.monotonic())
                cookies = self.stats_cookies() if self.stats_cookies else []
                for reply in flow_stats_replies(xid, cookies):
                    self.send(reply)
            else:   # any other statistics: an empty reply of the same type
                self.send(header(MULTIPART_REPLY, 16, xid) + _MULTIPART.pack(mp_type, 0))
        elif msg_type == BARRIER_REQUEST:
            self.counters.barriers += 1
            self.send(header(BARRIER_REPLY, 8, xid))
        elif msg_type == GET_CONFIG_REQUEST:
            self.send(header(GET_CONFIG_REPLY, 12, xid) + struct.pack("!HH", 0, 0xFFFF))
        elif msg_type == ROLE_REQUEST:
            self.send(header(ROLE_REPLY, len(msg), xid) + msg[8:])
        elif msg_type == ERROR:
            self.counters.errors += 1
        elif msg_type != HELLO:
            self.counters.other += 1


# -- workloads ------------------------------------------------------------------------
@dataclass
class Flows:
    """Unique new flows from inside hosts, as (key, PACKET_IN bytes).

    Flow i comes from host ``first_host + i % hosts`` (10.0.0.x) and source
    port ``first_port + i // hosts`` toward ``remote``:``dport``: every inside
    endpoint is new (so each session also needs a new external port), and
    hosts fill evenly, far below the per-host limit.  ``protocol`` is "tcp",
    "udp" or "mixed" (alternating).  ``unique_macs`` gives every flow its own
    source MAC (for a learning switch, where a flow is a new MAC).
    """

    protocol: str = "tcp"
    remote: str = "198.51.100.10"
    dport: int = 80
    hosts: int = 250
    first_host: int = 2
    first_port: int = 1024
    dst_mac: str = GATEWAY_MAC
    in_port: int = INSIDE_PORT
    unique_macs: bool = False
    reason: int = OFPR_NO_MATCH
    cookie: int = 0
    next_index: int = 0

    def __post_init__(self) -> None:
        self._dst = mac(self.dst_mac)
        self._remote = ip4(self.remote)

    def host_mac(self, host: int) -> bytes:
        return bytes((0x02, 0x00, 0x0A, 0x00, 0x00, host & 0xFF))

    def frame(self, i: int) -> bytes:
        host = self.first_host + i % self.hosts
        sport = self.first_port + i // self.hosts
        if sport > 65535:
            raise ValueError(f"flow {i}: out of source ports; use more hosts")
        src_mac = (bytes((0x06,)) + (i + 1).to_bytes(5, "big") if self.unique_macs
                   else self.host_mac(host))
        src = bytes((10, 0, 0, host))
        proto = self.protocol if self.protocol != "mixed" else ("tcp", "udp")[i % 2]
        if proto == "tcp":
            return tcp_syn(self._dst, src_mac, src, self._remote, sport, self.dport, seq=i)
        return udp_datagram(self._dst, src_mac, src, self._remote, sport, self.dport)

    def take(self, n: int) -> Iterator[tuple[bytes, bytes]]:
        """The next ``n`` flows: (completion key, PACKET_IN message)."""
        for _ in range(n):
            data = self.frame(self.next_index)
            self.next_index += 1
            yield frame_key(data), packet_in(data, self.in_port, 0, self.reason, 0, self.cookie)


@dataclass
class RunResult:
    """One measured run: how many completed, how fast, at what cost."""

    sent: int = 0
    completed: int = 0
    lost: int = 0
    wall_s: float = 0.0
    gen_cpu_s: float = 0.0
    ctl_cpu_s: float = float("nan")
    flow_mods: int = 0
    latencies_us: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.completed / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def gen_cpu_share(self) -> float:
        return self.gen_cpu_s / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def ctl_cpu_share(self) -> float:
        return self.ctl_cpu_s / self.wall_s if self.wall_s > 0 else float("nan")


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (from /proc)."""
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run(switch: FakeSwitch, flows: Flows, count: int, window: int = 64,
        timeout: float = 5.0, ctl_pid: int | None = None,
        record_latency: bool = False) -> RunResult:
    """Send ``count`` new flows keeping ``window`` PACKET_INs outstanding;
    wait for each one's PACKET_OUT.  One outstanding for ``timeout`` seconds
    is lost (counted, and its slot freed).  With ``record_latency`` every
    completion's round trip is kept (use ``window=1`` for one-at-a-time)."""
    pending: dict[bytes, float] = {}
    result = RunResult()
    lat = result.latencies_us
    now = time.perf_counter

    def done(key: bytes, _data: bytes) -> None:
        t0 = pending.pop(key, None)
        if t0 is not None:
            result.completed += 1
            if record_latency:
                lat.append((now() - t0) * 1e6)

    switch.on_packet_out = done
    source = flows.take(count)
    mods0 = switch.counters.flow_mods
    cpu0, ctl0, t_start = time.process_time(), process_cpu_s(ctl_pid), now()
    exhausted = False
    while True:
        room = window - len(pending)
        if room > 0 and not exhausted:
            batch = []
            t = now()
            for key, msg in source:
                pending[key] = t
                batch.append(msg)
                if len(batch) >= room:
                    break
            if len(batch) < room:
                exhausted = True
            if batch:
                result.sent += len(batch)
                switch.send(b"".join(batch))
        if not pending:
            if exhausted:
                break
            continue
        switch.pump(0.05)
        oldest = next(iter(pending.values()), None)
        if oldest is not None and now() - oldest > timeout:
            cutoff = now() - timeout
            for key in [k for k, t in pending.items() if t < cutoff]:
                del pending[key]
                result.lost += 1
    result.wall_s = now() - t_start
    result.gen_cpu_s = time.process_time() - cpu0
    result.ctl_cpu_s = process_cpu_s(ctl_pid) - ctl0
    result.flow_mods = switch.counters.flow_mods - mods0
    switch.on_packet_out = lambda key, data: None
    return result
