"""Inside hosts ask for their own mappings: PCP (RFC 6887) and NAT-PMP (RFC 6886).

Requests reach the controller as packet-ins (UDP to port 5351 of the inside
gateway address, which has no flow); the answer goes back as a packet-out.
The engine makes the mapping (``request_mapping`` for MAP and NAT-PMP,
``hold_peer`` for PEER), so a requested port obeys the same pool, pairing,
port blocks and quota as one made by traffic; this module checks the
request, keeps the lease (:mod:`ryu_app.nat.leases`) and the switch's
record of it (:mod:`ryu_app.openflow.lease_records`), and words the answer.

What the wire may send is hostile: a datagram that is not a request is
dropped silently (as the RFCs say) and counted; each inside host has a
request budget (``port_control_rate``); a request naming another host is
refused (ADDRESS_MISMATCH, NOT_AUTHORIZED).
"""
from __future__ import annotations

import ipaddress
import logging
import time
from typing import Callable

from conntrack import TCP, UDP, ConnTrack, Mapping, Refused, RefuseReason
from ryu_app.limits.ratelimit import PerKeyBuckets
from ryu_app.nat.leases import NATPMP, PCP, Lease, LeaseBook
from ryu_app.nat.probes import MappingProbes
from ryu_app.nat.uplink import Uplink
from ryu_app.openflow import flows, lease_records
from ryu_app.packets import port_control as wire
from ryu_app.packets import replies
from ryu_app.packets.packet_info import PacketInfo
from ryu_app.settings.model import PortControlConfig

LOG = logging.getLogger(__name__)

R = wire.PcpResult
SHORT_ERROR_LIFETIME = 30          # RFC 6887 s7.4: errors that may clear soon
LONG_ERROR_LIFETIME = 1800         # those that will not (the request is wrong)
_SHORT = {R.NETWORK_FAILURE, R.NO_RESOURCES, R.USER_EX_QUOTA, R.CANNOT_PROVIDE_EXTERNAL}
PMP_PROTOCOLS = {1: UDP, 2: TCP}   # NAT-PMP opcodes
ALL_HOSTS, ALL_HOSTS_MAC = "224.0.0.1", "01:00:5e:00:00:01"
ANNOUNCEMENTS = 10                 # RFC 6886 s3.2.1: ten, 250 ms apart at first, doubling

HostSeen = Callable[[str, str, int, float], "list | None"]
Log = Callable[[str], None]


class Answer(Exception):
    """A PCP result other than SUCCESS for a parsed request."""

    def __init__(self, result: int, why: str) -> None:
        super().__init__(why)
        self.result, self.why = result, why


_REFUSED_PCP = {
    RefuseReason.FORWARDED: R.NOT_AUTHORIZED,
    RefuseReason.PORT_IN_USE: R.CANNOT_PROVIDE_EXTERNAL,
    RefuseReason.PORT_RESERVED: R.CANNOT_PROVIDE_EXTERNAL,
    RefuseReason.HOST_QUOTA: R.USER_EX_QUOTA,
    RefuseReason.BLOCK_QUOTA: R.USER_EX_QUOTA,
}


class PortControl:
    """The PCP/NAT-PMP server of one switch."""

    def __init__(self, ct: ConnTrack, probes: MappingProbes, uplink: Uplink,
                 config: PortControlConfig, inside: ipaddress.IPv4Network,
                 gateway_ip: str, gateway_mac: str, host_seen: HostSeen,
                 log: Log | None = None, started: float | None = None) -> None:
        self.ct, self.probes, self.uplink, self.config = ct, probes, uplink, config
        self.inside, self.gateway_ip, self.gateway_mac = inside, gateway_ip, gateway_mac
        self.host_seen, self.log = host_seen, log
        # The epoch counts from the first thing this server sees (the switch's
        # flow dump, at the controller's start) unless told otherwise.
        self.started = started
        self.last_seen: float | None = None      # the latest time this server was told
        self._announce_at: list[float] = []      # when the next restart announcements are due
        self._announce_ports: list[int] = []
        self.leases = LeaseBook()
        self.buckets = (PerKeyBuckets(config.rate, config.burst, max_keys=4096)
                        if config.rate else None)
        self.counts: dict[str, int] = {}      # "pcp map success", "natpmp dropped short"...

    # -- the packet path -----------------------------------------------------------
    def packet(self, in_port: int, eth_src: str, info: PacketInfo, data: bytes,
               now: float) -> list:
        """A UDP datagram to port 5351 of the inside gateway address."""
        src = info.src
        if not self.config.enabled:
            return self._count("dropped off")
        if ipaddress.IPv4Address(src) not in self.inside or src == self.gateway_ip:
            return self._count("dropped source")
        seen = self.host_seen(src, eth_src, in_port, now)
        if seen is None:
            return self._count("dropped spoofed")      # the address is bound elsewhere
        if self.buckets is not None and not self.buckets.take(src, now):
            return seen + self._count("dropped rate")
        payload = _udp_payload(data)
        try:
            request = wire.parse(payload)
        except wire.Silent as silent:
            return seen + self._count(f"dropped {silent.why}")
        except wire.PcpError as err:
            self._count(f"pcp {_op(err.opcode)} {R(err.result).name.lower()}")
            body = wire.pcp_error(err.raw, err.opcode, err.result,
                                  _error_lifetime(err.result), self.epoch(now))
            return seen + [self._reply(in_port, eth_src, info, body)]
        except wire.PmpError as err:
            self._count(f"natpmp {err.opcode} {wire.PmpResult(err.result).name.lower()}")
            body = wire.natpmp_error(err.opcode, err.result, self.epoch(now), raw=err.raw)
            return seen + [self._reply(in_port, eth_src, info, body)]
        if isinstance(request, wire.PmpRequest):
            msgs, body = self._natpmp(request, src, now)
        else:
            msgs, body = self._pcp(request, src, now)
        return seen + msgs + [self._reply(in_port, eth_src, info, body)]

    def epoch(self, now: float) -> int:
        """Seconds since this controller started: a client that sees it go
        back knows the server lost (or may have lost) its mappings."""
        if self.started is None:
            self.started = now
        self.last_seen = now
        return int(now - self.started) & 0xFFFFFFFF

    # -- PCP -------------------------------------------------------------------------
    def _pcp(self, req: wire.PcpRequest, src: str, now: float) -> tuple[list, bytes]:
        op = _op(req.opcode)
        msgs: list = []
        try:
            if wire.ipv4_of(req.client_ip) != ipaddress.IPv4Address(src):
                raise Answer(R.ADDRESS_MISMATCH, f"client address {req.client_ip} from {src}")
            if req.opcode == wire.PcpOpcode.ANNOUNCE:
                self._count("pcp announce success")
                return [], wire.pcp_response(req, R.SUCCESS, 0, self.epoch(now))
            internal = self._internal(req, src)
            msgs, lease = self._pcp_mapping(req, internal, now)
        except Answer as answer:
            self._count(f"pcp {op} {R(answer.result).name.lower()}")
            LOG.debug("PCP %s from %s: %s (%s)", op, src, R(answer.result).name, answer.why)
            return [], wire.pcp_response(req, answer.result, _error_lifetime(answer.result),
                                         self.epoch(now))
        self._count(f"pcp {op} success")
        if lease is None:                    # a delete
            return msgs, wire.pcp_response(req, R.SUCCESS, 0, self.epoch(now))
        return msgs, wire.pcp_response(
            req, R.SUCCESS, lease.lifetime, self.epoch(now), external_port=lease.external_port,
            external_ip=wire.mapped(ipaddress.IPv4Address(lease.external_ip)))

    def _internal(self, req: wire.PcpRequest, src: str) -> str:
        """The inside address the mapping is for: the sender's, or with
        THIRD_PARTY (if allowed) another inside address."""
        if req.third_party is None:
            return src
        other = wire.ipv4_of(req.third_party)
        if other is not None and str(other) == src:
            raise Answer(R.MALFORMED_REQUEST, "THIRD_PARTY names the sender (RFC 6887 s13.1)")
        if not self.config.third_party:
            raise Answer(R.NOT_AUTHORIZED, "THIRD_PARTY is off (port_control_third_party)")
        if other is None or other not in self.inside or str(other) == self.gateway_ip:
            raise Answer(R.NOT_AUTHORIZED, f"THIRD_PARTY {req.third_party} is not inside")
        return str(other)

    def _pcp_mapping(self, req: wire.PcpRequest, ip: str, now: float) -> tuple[list, Lease | None]:
        peer = None
        if req.opcode == wire.PcpOpcode.PEER:
            remote = wire.ipv4_of(req.remote_ip)
            if (remote is None or not int(remote) or not req.remote_port or not req.protocol
                    or not req.internal_port):
                raise Answer(R.MALFORMED_REQUEST, "PEER needs a protocol, the internal port "
                                                  "and an IPv4 remote with its port (s12.1)")
            peer = (str(remote), req.remote_port)
        if req.protocol not in (TCP, UDP):
            raise Answer(R.UNSUPP_PROTOCOL, f"protocol {req.protocol}")
        if any(f.prefix_length for f in req.filters):
            raise Answer(R.UNSUPP_OPTION, "FILTER")
        lease = self.leases.get(req.protocol, ip, req.internal_port, peer)
        if lease is not None and lease.origin == PCP and lease.nonce != req.nonce:
            raise Answer(R.NOT_AUTHORIZED, "nonce does not match the mapping's")
        if req.lifetime == 0 and peer is None:
            return self._delete_pcp(req, ip, lease, now), None
        if not req.internal_port:
            raise Answer(R.UNSUPP_PROTOCOL, "a mapping of all ports")
        # PEER implies PREFER_FAILURE (s12.2): what it suggests, or nothing.
        strict = req.prefer_failure or peer is not None
        suggested_ip = wire.ipv4_of(req.external_ip)
        if strict and suggested_ip and int(suggested_ip) and str(suggested_ip) != self._address_for(ip):
            raise Answer(R.CANNOT_PROVIDE_EXTERNAL, f"{suggested_ip} is not this host's address")
        if lease is not None and lease.origin == NATPMP:
            lease.origin, lease.nonce = PCP, req.nonce     # PCP takes over, with its nonce
        # A PEER's lifetime is never cut, nor the mapping deleted, by a request (s12.1).
        lifetime = self._lifetime(req.lifetime)
        exact = strict and bool(req.external_port)
        msgs, lease = self._grant(PCP, req.protocol, ip, req.internal_port, req.external_port,
                                  exact, lifetime, req.nonce, peer, lease, now)
        return msgs, lease

    def _delete_pcp(self, req: wire.PcpRequest, ip: str, lease: Lease | None,
                    now: float) -> list:
        if lease is not None:
            return self._end(lease, "deleted", now)
        if req.opcode == wire.PcpOpcode.MAP and not req.internal_port:
            # every MAP of this host for the protocol, made with this nonce
            msgs: list = []
            for other in self.leases.of_host(ip):
                if other.protocol == req.protocol and other.peer is None and other.nonce == req.nonce:
                    msgs += self._end(other, "deleted", now)
            return msgs
        if self._forwarded(req.protocol, ip, req.internal_port) is not None:
            raise Answer(R.NOT_AUTHORIZED, "an operator's forward")
        return []                            # nothing to delete is a success (RFC 6887 s15)

    def _forwarded(self, protocol: int, ip: str, port: int) -> Mapping | None:
        """The endpoint's mapping if it is an operator's forward (static, no lease)."""
        mapping = self.ct.mapping(protocol, ip, port)
        if mapping is None or not mapping.static or self.leases.get(protocol, ip, port):
            return None
        return mapping

    # -- NAT-PMP -----------------------------------------------------------------------
    def _natpmp(self, req: wire.PmpRequest, src: str, now: float) -> tuple[list, bytes]:
        epoch = self.epoch(now)
        if req.opcode == 0:
            self._count("natpmp address success")
            return [], wire.natpmp_address(epoch, ipaddress.IPv4Address(self._address_for(src)))
        protocol = PMP_PROTOCOLS[req.opcode]
        name = "udp" if protocol == UDP else "tcp"
        P = wire.PmpResult
        try:
            if req.lifetime == 0:
                msgs, refused = self._delete_natpmp(protocol, src, req.internal_port, now)
                # What could go went; an operator's forward (or a PCP mapping) stays.
                result = P.NOT_AUTHORIZED if refused else P.SUCCESS
                self._count(f"natpmp {name} {result.name.lower()}")
                return msgs, wire.natpmp_map(req, result, epoch, 0, 0)
            if not req.internal_port:
                raise Answer(R.NOT_AUTHORIZED, "internal port 0 with a lifetime")
            lifetime = min(req.lifetime, self.config.max_lifetime, lease_records.MAX_LIFETIME)
            forward = self._forwarded(protocol, src, req.internal_port)
            if forward is not None:          # "should succeed" with its port (RFC 6886 s3.3)
                self._count(f"natpmp {name} success")
                return [], wire.natpmp_map(req, P.SUCCESS, epoch, forward.external_port, lifetime)
            lease = self.leases.get(protocol, src, req.internal_port)
            if lease is not None and lease.origin == PCP:
                raise Answer(R.NOT_AUTHORIZED, "a PCP mapping (its nonce guards it)")
            msgs, granted = self._grant(NATPMP, protocol, src, req.internal_port,
                                        req.external_port, False, lifetime, b"", None, lease, now)
        except Answer as answer:
            result = _PMP_OF_PCP.get(R(answer.result), P.OUT_OF_RESOURCES)
            self._count(f"natpmp {name} {P(result).name.lower()}")
            return [], wire.natpmp_map(req, result, epoch, 0, 0)
        self._count(f"natpmp {name} success")
        return msgs, wire.natpmp_map(req, P.SUCCESS, epoch, granted.external_port,
                                     granted.lifetime)

    def _delete_natpmp(self, protocol: int, ip: str, port: int, now: float) -> tuple[list, bool]:
        """Lifetime 0: that mapping, or with internal port 0 every NAT-PMP
        mapping of the host for the protocol (RFC 6886 s3.4); and whether an
        operator's forward (or a PCP mapping) was asked for, which stays."""
        msgs: list = []
        refused = False
        for lease in self.leases.of_host(ip):
            if lease.protocol == protocol and lease.peer is None and port in (0, lease.internal_port):
                if lease.origin == NATPMP:
                    msgs += self._end(lease, "deleted", now)
                else:
                    refused = True
        if port:
            refused = refused or self._forwarded(protocol, ip, port) is not None
        else:
            refused = refused or any(
                fwd.protocol == protocol and str(fwd.inside_ip) == ip for fwd in self.ct.forwards())
        return msgs, refused

    # -- shared ------------------------------------------------------------------------
    def _grant(self, origin: str, protocol: int, ip: str, port: int, suggested: int,
               exact: bool, lifetime: int, nonce: bytes, peer: tuple[str, int] | None,
               lease: Lease | None, now: float) -> tuple[list, Lease]:
        """Make or renew a lease; Answer when the engine refuses."""
        if lease is None and len(self.leases.of_host(ip)) >= self.config.max_per_host:
            raise Answer(R.USER_EX_QUOTA, f"{self.config.max_per_host} mappings "
                                          "(port_control_max_per_host)")
        companion = self._companion_for(ip, protocol, suggested) if origin == NATPMP else None
        try:
            if peer is None:
                mapping = self.ct.request_mapping(protocol, ip, port, suggested, exact=exact,
                                                  reserved_ok=companion is not None, now=now)
            else:
                mapping = self.ct.hold_peer(protocol, ip, port, peer[0], peer[1], suggested,
                                            exact=exact, now=now)
        except Refused as refused:
            raise Answer(_REFUSED_PCP.get(refused.reason, R.NO_RESOURCES),
                         f"{refused.reason.value}: {refused}") from None
        renewed = lease is not None
        if companion is not None and mapping.external_port == suggested:
            companion.companion = False      # the host took the port kept for it
        if lease is None:
            lease = Lease(self.leases.new_ident(), origin, protocol, ip, port,
                          str(mapping.external_ip), mapping.external_port, now + lifetime,
                          lifetime, nonce, peer, time.time())
            self.leases.add(lease)
        else:
            # A PEER request never shortens its mapping's life (RFC 6887 s12.1).
            expires = max(lease.expires, now + lifetime) if peer is not None else now + lifetime
            lease.expires, lease.lifetime = expires, int(expires - now + 0.5)
        if origin == NATPMP and not renewed:
            self._keep_companion(lease)
        # A renewed record may match differently (a nonce taken over from
        # NAT-PMP, a companion port given up): the old one goes first.
        msgs = [lease_records.delete_record(lease.ident)] if renewed else []
        msgs += self._install(lease, mapping)
        self._note("renewed" if renewed else "created", lease)
        return msgs, lease

    # NAT-PMP (RFC 6886 s3.3): a client that maps TCP port X keeps UDP port X
    # too (and the other way round) while its lease lasts, so no other
    # client can take it.  Not with port blocks: there the other protocol's
    # port X may be inside another host's block.
    def _keep_companion(self, lease: Lease) -> None:
        if self.ct.config.port_block_size:
            return
        other = UDP if lease.protocol == TCP else TCP
        port, address = lease.external_port, lease.external_ip
        if (self.ct.mapping_of_port(other, port, address) is not None
                or self.ct.is_reserved(other, port, address)):
            return                  # the host's own mapping, or someone else's
        try:
            self.ct.reserve(other, port, address)
        except Refused:
            return
        lease.companion = True

    def _companion_for(self, ip: str, protocol: int, port: int) -> Lease | None:
        """The host's NAT-PMP lease that keeps ``protocol``'s ``port`` for it."""
        if not port:
            return None
        return next((lease for lease in self.leases.of_host(ip)
                     if lease.companion and lease.protocol != protocol
                     and lease.external_port == port), None)

    def _install(self, lease: Lease, mapping: Mapping) -> list:
        """The lease's probe (inbound packets reach the engine) and record."""
        address = self.uplink.text_of[mapping.policy.external_ip]
        return self.probes.set(lease.protocol, lease.external_port, add=True, address=address) + [
            lease_records.record_flow(lease.ident, lease.origin == NATPMP, lease.protocol,
                                      lease.internal_ip, lease.internal_port,
                                      self.uplink.pool.index(address), lease.external_port,
                                      lease.nonce, lease.peer, lease.lifetime, lease.companion)]

    def _end(self, lease: Lease, why: str, now: float) -> list:
        """End a lease: the engine lets the mapping go once no session uses it."""
        self.leases.remove(lease)
        if lease.peer is None:
            mapping = self.ct.end_request(lease.protocol, lease.internal_ip, lease.internal_port,
                                          now)
        else:
            mapping = self.ct.release_peer(lease.protocol, lease.internal_ip,
                                           lease.internal_port, *lease.peer, now=now)
        if lease.companion:
            other = UDP if lease.protocol == TCP else TCP
            self.ct.release(other, lease.external_port, now, lease.external_ip)
        self._note(why, lease)
        msgs = [lease_records.delete_record(lease.ident)]
        if mapping is not None and not mapping.count and not self.ct.held_peers(mapping) \
                and not mapping.static:
            msgs += self.probes.set(lease.protocol, lease.external_port, add=False,
                                    address=lease.external_ip)
        return msgs

    def revoke(self, protocol: int, ip: str, port: int, peer: tuple[str, int] | None,
               now: float) -> list | None:
        """An operator ends a host's mapping (its sessions finish as usual);
        None if there is no such lease."""
        lease = self.leases.get(protocol, ip, port, peer)
        return None if lease is None else self._end(lease, "revoked", now)

    def tick(self, now: float) -> list:
        """Leases whose lifetime ran out end (RFC 6887 s15); the next
        restart announcement, when one is due."""
        self.last_seen = now
        msgs: list = []
        if self._announce_at and self._announce_at[0] <= now:
            self._announce_at = [t for t in self._announce_at if t > now]
            msgs += self._announcement(now)
        for lease in self.leases.due(now):
            msgs += self._end(lease, "expired", now)
        return msgs

    def _address_for(self, ip: str) -> str:
        """The NAT address the host's mappings are on (its paired one; the
        first pool address while it has none)."""
        address = self.ct.host_address(ip)
        return str(address) if address is not None else self.uplink.pool[0]

    def _lifetime(self, asked: int) -> int:
        return max(self.config.min_lifetime, min(asked, self.config.max_lifetime,
                                                 lease_records.MAX_LIFETIME))

    def _reply(self, in_port: int, eth_src: str, info: PacketInfo, body: bytes) -> object:
        frame = replies.udp_datagram(eth_src, self.gateway_mac, self.gateway_ip,
                                     wire.SERVER_PORT, info.src, info.sport, body)
        return flows.packet_out(in_port, frame)

    def _count(self, what: str) -> list:
        self.counts[what] = self.counts.get(what, 0) + 1
        return []

    def _note(self, what: str, lease: Lease) -> None:
        if self.log is None:
            return
        proto = "tcp" if lease.protocol == TCP else "udp"
        peer = f" peer {lease.peer[0]}:{lease.peer[1]}" if lease.peer else ""
        self.log(f"port mapping {what}: {proto} {lease.internal_ip}:{lease.internal_port} -> "
                 f"{lease.external_ip}:{lease.external_port}{peer} lifetime {lease.lifetime} "
                 f"({lease.origin})")

    def announce(self, ports: list[int], now: float) -> list:
        """After a restart, to every inside host (224.0.0.1:5350): a PCP
        unsolicited ANNOUNCE (RFC 6887 s14.1.3) and, with one NAT address,
        NAT-PMP's address announcement (RFC 6886 s3.2.1); clients see the
        new epoch and renew their mappings at once.  Sent now and nine times
        more, 250 ms apart at first and doubling (at the tick's pace), each
        with the epoch of its moment."""
        if not self.config.enabled or not ports:
            return []
        self._announce_ports = list(ports)
        self._announce_at = [now + 0.25 * (2 ** n - 1) for n in range(1, ANNOUNCEMENTS)]
        return self._announcement(now)

    def _announcement(self, now: float) -> list:
        ports = self._announce_ports
        epoch = self.epoch(now)
        bodies = [wire.pcp_announce(epoch)]
        if len(self.uplink.pool) == 1:
            bodies.append(wire.natpmp_address(epoch, ipaddress.IPv4Address(self.uplink.pool[0])))
        return [flows.packet_out_ports(ports, replies.udp_datagram(
                    ALL_HOSTS_MAC, self.gateway_mac, self.gateway_ip, wire.SERVER_PORT,
                    ALL_HOSTS, wire.CLIENT_PORT, body)) for body in bodies]

    # -- after a restart: the switch's records ----------------------------------------
    def adopt(self, records: list[lease_records.RecordedLease], now: float) -> list:
        """Leases back from their record flows (their mappings back in the
        engine, with the same port); a record that cannot be honoured goes."""
        msgs: list = []
        for rec in records:
            address = (self.uplink.pool[rec.pool_index]
                       if rec.pool_index < len(self.uplink.pool) else None)
            try:
                if address is None or rec.remaining <= 0:
                    raise ValueError("expired or not on this bridge's pool")
                if rec.peer is None:
                    mapping = self.ct.request_mapping(rec.protocol, rec.internal_ip,
                                                      rec.internal_port, rec.external_port,
                                                      exact=True, now=now)
                else:
                    mapping = self.ct.hold_peer(rec.protocol, rec.internal_ip, rec.internal_port,
                                                rec.peer[0], rec.peer[1], rec.external_port,
                                                exact=True, now=now)
                if str(mapping.external_ip) != address:
                    raise ValueError(f"the host is on {mapping.external_ip}, not {address}")
            except (Refused, ValueError) as why:
                LOG.warning("PCP/NAT-PMP mapping %s:%d on the switch not adopted: %s",
                            rec.internal_ip, rec.internal_port, why)
                msgs.append(lease_records.delete_record(rec.ident))
                continue
            lease = Lease(rec.ident, NATPMP if rec.natpmp else PCP, rec.protocol,
                          rec.internal_ip, rec.internal_port, address, rec.external_port,
                          now + rec.remaining, rec.lifetime, rec.nonce, rec.peer,
                          time.time() - (rec.lifetime - rec.remaining))
            self.leases.add(lease)
            if rec.companion:
                self._keep_companion(lease)
            self._note("restored", lease)
            msgs += self.probes.set(rec.protocol, rec.external_port, add=True, address=address)
        if records:
            LOG.info("adopted %d PCP/NAT-PMP mappings from the switch", len(self.leases))
        return msgs

    def records(self) -> list:
        """Every lease's record, with the lifetime it has left (a switch
        that comes back may have lost its table)."""
        now = self.last_seen
        return [lease_records.record_flow(
                    lease.ident, lease.origin == NATPMP, lease.protocol, lease.internal_ip,
                    lease.internal_port, self.uplink.pool.index(lease.external_ip),
                    lease.external_port, lease.nonce, lease.peer,
                    max(1, lease.remaining(now) if now is not None else lease.lifetime),
                    lease.companion)
                for lease in self.leases]

    def view(self, now: float) -> list[dict]:
        """The leases for REST and snatctl."""
        return [{"protocol": "tcp" if lease.protocol == TCP else "udp",
                 "internal_ip": lease.internal_ip, "internal_port": lease.internal_port,
                 "external_ip": lease.external_ip, "external_port": lease.external_port,
                 "peer": (None if lease.peer is None
                          else {"ip": lease.peer[0], "port": lease.peer[1]}),
                 "origin": lease.origin, "lifetime": lease.lifetime,
                 "expires_in": lease.remaining(now), "created": round(lease.created, 3)}
                for lease in sorted(self.leases, key=lambda x: x.ident)]


_PMP_OF_PCP = {R.NOT_AUTHORIZED: wire.PmpResult.NOT_AUTHORIZED,
               R.NETWORK_FAILURE: wire.PmpResult.NETWORK_FAILURE,
               R.USER_EX_QUOTA: wire.PmpResult.OUT_OF_RESOURCES,
               R.NO_RESOURCES: wire.PmpResult.OUT_OF_RESOURCES,
               R.CANNOT_PROVIDE_EXTERNAL: wire.PmpResult.OUT_OF_RESOURCES}


def _op(opcode: int) -> str:
    try:
        return wire.PcpOpcode(opcode).name.lower()
    except ValueError:
        return str(opcode)


def _error_lifetime(result: int) -> int:
    return SHORT_ERROR_LIFETIME if result in _SHORT else LONG_ERROR_LIFETIME


def _udp_payload(data: bytes) -> bytes:
    """The UDP payload of an Ethernet/IPv4/UDP frame (checked by quick_classify)."""
    ip = data[14:]
    header = (ip[0] & 0x0F) * 4
    total = int.from_bytes(ip[2:4], "big")
    return bytes(ip[header + 8:total])
