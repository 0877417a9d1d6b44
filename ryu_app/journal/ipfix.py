"""NAT events as IPFIX (RFC 7011) with RFC 8158's information elements.

An abuse report names an external address, a port and a time; a collector
that keeps these records answers it without a search through text logs.
What is sent, per NAT bridge (its observation domain is the low 32 bits of
the bridge's dpid):

* **NAT44 session create / delete** (``natEvent`` 4 and 5): time, protocol,
  the inside source address and port, the external ones, and, only when
  ``ipfix_log_destination`` is on, the remote address and port (RFC 6888
  REQ-12: a carrier-grade NAT should not log destinations unless it must).
  ICMP echo sessions carry their identifiers in the port fields.
* **Quota exceeded** (``natEvent`` 13): a host over
  ``max_connections_per_host`` (``natQuotaExceededEvent`` 3, with
  ``maxEntriesPerUser`` and the host's address), or the table full
  (``natQuotaExceededEvent`` 1, with ``maxSessionEntries``).
* **NAT ports exhausted** (``natEvent`` 12): no free port of the protocol
  on the external address.
* **Port block allocation / de-allocation** (``natEvent`` 16 and 17, with
  ``port_block_size``): protocol, the inside address, the external one and
  the block's ``portRangeStart``/``portRangeEnd`` (step 1).  A block rebuilt
  after a restart is announced again as an allocation.

A refusal is sent once a second at most per host (quota) or per protocol
(ports) and bridge: a host flooding over its quota costs the collector one
record a second, and the repeats are counted.

Events are only noted on the packet path (a tuple each); the records are
encoded and sent at ``flush``, once a second, off it, in messages of at
most :data:`MAX_MESSAGE` bytes.  The templates go first, then again every
``template_interval`` seconds (RFC 7011 section 8.4: over UDP a collector
that starts later learns them from the next refresh).  Send errors and
records beyond :data:`MAX_PENDING` are counted, never raised.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import time
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Callable

from conntrack import BlockEvent, Event, EventKind, RefuseReason
from conntrack.keys import unpack_okey

LOG = logging.getLogger(__name__)

VERSION = 10
MAX_MESSAGE = 1400                 # bytes: one datagram on any usual path MTU
MAX_PENDING = 65536                # records noted between two flushes, at most
REPEAT_AFTER = 1.0                 # seconds: one refusal record per host (or table, or
                                   # protocol) in this long, however many are refused
TEMPLATE_SET, FIRST_DATA_SET = 2, 256

# natEvent values (RFC 8158 section 4.1, IANA "NAT Event Type").
NAT44_SESSION_CREATE = 4
NAT44_SESSION_DELETE = 5
NAT_PORTS_EXHAUSTED = 12
QUOTA_EXCEEDED = 13
PORT_BLOCK_ALLOCATION = 16
PORT_BLOCK_DEALLOCATION = 17
# natQuotaExceededEvent values (RFC 8158 section 4.1.13).
MAX_SESSION_ENTRIES = 1
MAX_ENTRIES_PER_USER = 3

# Information elements: (IANA id, length in bytes).
OBSERVATION_TIME_MS = (323, 8)     # observationTimeMilliseconds
NAT_EVENT = (230, 1)               # natEvent
PROTOCOL = (4, 1)                  # protocolIdentifier
SOURCE_IPV4 = (8, 4)               # sourceIPv4Address
SOURCE_PORT = (7, 2)               # sourceTransportPort
POST_NAT_SOURCE_IPV4 = (225, 4)    # postNATSourceIPv4Address
POST_NAPT_SOURCE_PORT = (227, 2)   # postNAPTSourceTransportPort
DESTINATION_IPV4 = (12, 4)         # destinationIPv4Address
DESTINATION_PORT = (11, 2)         # destinationTransportPort
POST_NAT_DESTINATION_IPV4 = (226, 4)   # postNATDestinationIPv4Address
POST_NAPT_DESTINATION_PORT = (228, 2)  # postNAPTDestinationTransportPort
QUOTA_EVENT = (466, 4)             # natQuotaExceededEvent
MAX_SESSIONS = (471, 4)            # maxSessionEntries
MAX_PER_USER = (473, 4)            # maxEntriesPerUser
PORT_RANGE_START = (361, 2)        # portRangeStart
PORT_RANGE_END = (362, 2)          # portRangeEnd
PORT_RANGE_STEP = (363, 2)         # portRangeStepSize
PORT_RANGE_PORTS = (364, 2)        # portRangeNumPorts


@dataclass(frozen=True)
class Template:
    """One template: its id, its fields and how a record of it is packed."""

    template_id: int
    fields: tuple[tuple[int, int], ...]
    layout: struct.Struct

    @classmethod
    def of(cls, template_id: int, *fields: tuple[int, int]) -> "Template":
        codes = {1: "B", 2: "H", 4: "I", 8: "Q"}
        return cls(template_id, fields,
                   struct.Struct("!" + "".join(codes[length] for _, length in fields)))

    def record(self) -> bytes:
        """The template record (RFC 7011 section 3.4.1)."""
        return struct.pack("!HH", self.template_id, len(self.fields)) + b"".join(
            struct.pack("!HH", ident, length) for ident, length in self.fields)


SESSION = Template.of(256, OBSERVATION_TIME_MS, NAT_EVENT, PROTOCOL, SOURCE_IPV4, SOURCE_PORT,
                      POST_NAT_SOURCE_IPV4, POST_NAPT_SOURCE_PORT)
SESSION_WITH_DESTINATION = Template.of(
    257, *SESSION.fields, DESTINATION_IPV4, DESTINATION_PORT, POST_NAT_DESTINATION_IPV4,
    POST_NAPT_DESTINATION_PORT)
HOST_QUOTA = Template.of(258, OBSERVATION_TIME_MS, NAT_EVENT, QUOTA_EVENT, MAX_PER_USER,
                         SOURCE_IPV4)
TABLE_QUOTA = Template.of(259, OBSERVATION_TIME_MS, NAT_EVENT, QUOTA_EVENT, MAX_SESSIONS)
PORTS_EXHAUSTED = Template.of(260, OBSERVATION_TIME_MS, NAT_EVENT, PROTOCOL,
                              POST_NAT_SOURCE_IPV4)
PORT_BLOCK = Template.of(261, OBSERVATION_TIME_MS, NAT_EVENT, PROTOCOL, SOURCE_IPV4,
                         POST_NAT_SOURCE_IPV4, PORT_RANGE_START, PORT_RANGE_END,
                         PORT_RANGE_STEP, PORT_RANGE_PORTS)
TEMPLATES = (SESSION, SESSION_WITH_DESTINATION, HOST_QUOTA, TABLE_QUOTA, PORTS_EXHAUSTED,
             PORT_BLOCK)

_HEADER = struct.Struct("!HHIII")  # version, length, export time, sequence, domain
_SET = struct.Struct("!HH")        # set id, length


def _data_set(template: Template, records: list[bytes]) -> bytes:
    data = b"".join(records)
    return _SET.pack(template.template_id, _SET.size + len(data)) + data


@dataclass
class IpfixCounters:
    records: int = 0          # data records sent
    messages: int = 0         # datagrams sent
    templates: int = 0        # template sets sent
    send_errors: int = 0      # datagrams the socket refused
    dropped: int = 0          # records noted beyond MAX_PENDING, never sent
    repeats: int = 0          # refusals of the same kind within REPEAT_AFTER, not sent

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


Send = Callable[[bytes], None]


class IpfixExporter:
    """Notes NAT events per observation domain; sends them at ``flush``."""

    def __init__(self, collector: tuple[str, int], log_destination: bool = False,
                 template_interval: float = 60.0, send: Send | None = None,
                 clocks: tuple[Callable[[], float], Callable[[], float]] = (time.time,
                                                                            time.monotonic)
                 ) -> None:
        """``clocks``: the wall clock and the one events are timed by (the
        gateway's monotonic clock); records carry wall-clock milliseconds."""
        self.collector = collector
        self.log_destination = log_destination
        self.template_interval = template_interval
        self.counters = IpfixCounters()
        self._session = SESSION_WITH_DESTINATION if log_destination else SESSION
        self._pending: list[tuple] = []
        self._sequence: dict[int, int] = {}            # domain -> records sent before
        self._templates_sent: dict[int, float] = {}    # domain -> when
        self._socket: socket.socket | None = None
        self._send = send or self._sendto
        self._wall, self._clock = clocks
        self._last_error_log = 0.0
        self._last_refusal: dict[tuple[int, int, int], float] = {}   # key -> when noted

    # -- noting (packet path) ------------------------------------------------------
    def bridge(self, dpid: int, max_connections: int, max_connections_per_host: int,
               max_ports_per_host: int = 0) -> "BridgeReports":
        """What the NAT bridge ``dpid`` reports, with its limits
        (``max_ports_per_host``: its port blocks' ports, 0 without blocks)."""
        return BridgeReports(self, dpid, max_connections, max_connections_per_host,
                             max_ports_per_host)

    def domain(self, dpid: int) -> Callable[[Event], None]:
        """The engine's event hook for the NAT bridge ``dpid``."""
        domain = dpid & 0xFFFFFFFF
        pending = self._pending

        def hook(event: Event) -> None:
            if event.kind is EventKind.UPDATED:
                return
            s = event.session
            if event.kind is EventKind.CREATED or event.kind is EventKind.RESTORED:
                # A session rebuilt after a restart is announced again as
                # made when it was made: the same record, for a collector
                # that missed it (or a duplicate it can drop).
                nat_event, when = NAT44_SESSION_CREATE, s.created_at
            else:
                nat_event, when = NAT44_SESSION_DELETE, event.time
            if len(pending) >= MAX_PENDING:
                self.counters.dropped += 1
                return
            pending.append((domain, self._session, (
                when, nat_event, s.okey, s.mapping.policy.external_ip,
                s.mapping.external_port)))
        return hook

    def port_block(self, dpid: int, event: BlockEvent) -> None:
        """A port block given to a host or taken back (``port_block_size``)."""
        if len(self._pending) >= MAX_PENDING:
            self.counters.dropped += 1
            return
        nat_event = PORT_BLOCK_DEALLOCATION if event.kind == "released" else PORT_BLOCK_ALLOCATION
        self._pending.append((dpid & 0xFFFFFFFF, PORT_BLOCK, (
            event.time, nat_event, event.protocol, event.inside_ip, event.external_ip,
            event.first_port, event.last_port, 1, event.last_port - event.first_port + 1)))

    def host_quota(self, dpid: int, inside_ip: int, limit: int, now: float) -> None:
        """A host was refused a session: over ``max_connections_per_host``."""
        self._note(dpid, HOST_QUOTA, (now, QUOTA_EXCEEDED, MAX_ENTRIES_PER_USER,
                                      limit, inside_ip), inside_ip)

    def table_full(self, dpid: int, limit: int, now: float) -> None:
        """A session was refused: ``max_connections`` live already."""
        self._note(dpid, TABLE_QUOTA, (now, QUOTA_EXCEEDED, MAX_SESSION_ENTRIES,
                                       limit))

    def ports_exhausted(self, dpid: int, protocol: int, external_ip: int, now: float) -> None:
        """A session was refused: no free port of ``protocol`` on the address."""
        self._note(dpid, PORTS_EXHAUSTED, (now, NAT_PORTS_EXHAUSTED, protocol,
                                           external_ip), protocol)

    def _note(self, dpid: int, template: Template, values: tuple, who: int = 0) -> None:
        """A refusal, unless the same one (bridge, kind, host or protocol)
        was noted less than REPEAT_AFTER ago: a host that keeps trying over
        its quota (a flood) makes one record a second, not one a packet."""
        key, now = (dpid, template.template_id, who), values[0]
        if now - self._last_refusal.get(key, -REPEAT_AFTER) < REPEAT_AFTER:
            self.counters.repeats += 1
            return
        if len(self._pending) >= MAX_PENDING:
            self.counters.dropped += 1
            return
        self._last_refusal[key] = now
        self._pending.append((dpid & 0xFFFFFFFF, template, values))

    # -- sending (once a second) ---------------------------------------------------
    def flush(self, now: float | None = None) -> None:
        """Encode what was noted and send it, templates first when due
        (``now`` on the events' clock)."""
        now = self._clock() if now is None else now
        self._last_refusal = {key: when for key, when in self._last_refusal.items()
                              if now - when < REPEAT_AFTER}
        to_wall = self._wall() - self._clock()
        pending = self._pending[:]
        self._pending.clear()              # the same list: the hooks hold it
        by_domain: dict[int, list[tuple[Template, bytes]]] = {}
        for domain, template, values in pending:
            millis = int((values[0] + to_wall) * 1000)
            by_domain.setdefault(domain, []).append(
                (template, self._pack(template, (millis,) + values[1:])))
        now += to_wall                     # from here on: wall-clock seconds
        for domain in set(by_domain) | set(self._templates_sent):
            if now - self._templates_sent.get(domain, -1e18) >= self.template_interval:
                self._send_templates(domain, now)
            records = by_domain.get(domain, [])
            if records:
                self._send_records(domain, records, now)

    def _pack(self, template: Template, values: tuple) -> bytes:
        if template in (SESSION, SESSION_WITH_DESTINATION):
            millis, nat_event, okey, external_ip, external_port = values
            protocol, inside, inside_port, remote, remote_port = unpack_okey(okey)
            fields: tuple[int, ...] = (millis, nat_event, protocol, inside, inside_port,
                                       external_ip, external_port)
            if template is SESSION_WITH_DESTINATION:
                # SNAT leaves the destination as it was: post-NAT = pre-NAT.
                fields += (remote, remote_port, remote, remote_port)
            return template.layout.pack(*fields)
        return template.layout.pack(*values)

    def _send_templates(self, domain: int, now: float) -> None:
        body = b"".join(t.record() for t in TEMPLATES)
        if self._message(domain, [_SET.pack(TEMPLATE_SET, _SET.size + len(body)) + body], now):
            self._templates_sent[domain] = now
            self.counters.templates += 1

    def _send_records(self, domain: int, records: list[tuple[Template, bytes]],
                      now: float) -> None:
        """Data sets, one per run of records of one template, in datagrams
        of at most MAX_MESSAGE bytes."""
        room = MAX_MESSAGE - _HEADER.size
        sets: list[bytes] = []
        size = count = 0                 # bytes and records of ``sets``

        def send() -> None:
            nonlocal sets, size, count
            if sets and self._message(domain, sets, now, count):
                self.counters.records += count
            sets, size, count = [], 0, 0

        for template, group in groupby(records, key=itemgetter(0)):
            body: list[bytes] = []
            used = _SET.size
            for _, packed in group:
                if size + used + len(packed) > room:
                    if body:
                        sets.append(_data_set(template, body))
                        count += len(body)
                    send()
                    body, used = [], _SET.size
                body.append(packed)
                used += len(packed)
            sets.append(_data_set(template, body))
            size += used
            count += len(body)
        send()

    def _message(self, domain: int, sets: list[bytes], now: float, records: int = 0) -> bool:
        """One IPFIX message; the domain's sequence counts data records
        sent before it (RFC 7011 section 3.1), lost ones included."""
        body = b"".join(sets)
        sequence = self._sequence.get(domain, 0)
        self._sequence[domain] = (sequence + records) & 0xFFFFFFFF
        header = _HEADER.pack(VERSION, _HEADER.size + len(body), int(now) & 0xFFFFFFFF,
                              sequence, domain)
        try:
            self._send(header + body)
        except OSError as err:
            self.counters.send_errors += 1
            if now - self._last_error_log >= 60:
                self._last_error_log = now
                LOG.warning("IPFIX to %s:%d: %s (counted in ipfix.send_errors)",
                            self.collector[0], self.collector[1], err)
            return False
        self.counters.messages += 1
        return True

    def _sendto(self, datagram: bytes) -> None:
        if self._socket is None:
            family = (socket.AF_INET6 if ipaddress.ip_address(self.collector[0]).version == 6
                      else socket.AF_INET)
            self._socket = socket.socket(family, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        self._socket.sendto(datagram, self.collector)

    def close(self) -> None:
        """On the controller's stop: what is noted sent, the socket closed."""
        self.flush()
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class BridgeReports:
    """One NAT bridge's side of the exporter: its engine's event hook and
    the refusals its outbound path meets."""

    def __init__(self, exporter: IpfixExporter, dpid: int, max_connections: int,
                 max_connections_per_host: int, max_ports_per_host: int = 0) -> None:
        self.exporter, self.dpid = exporter, dpid
        self.max_connections, self.max_per_host = max_connections, max_connections_per_host
        self.max_ports_per_host = max_ports_per_host
        self.event = exporter.domain(dpid)

    def block(self, event: BlockEvent) -> None:
        """The engine's port-block hook."""
        self.exporter.port_block(self.dpid, event)

    def refused(self, reason: RefuseReason, inside_ip: int, protocol: int, external_ip: int,
                now: float) -> None:
        """A new session was refused: quota exceeded or ports exhausted."""
        if reason is RefuseReason.HOST_QUOTA:
            self.exporter.host_quota(self.dpid, inside_ip, self.max_per_host, now)
        elif reason is RefuseReason.BLOCK_QUOTA:
            # Its blocks full: over its entries (mappings a protocol) as blocks allow.
            self.exporter.host_quota(self.dpid, inside_ip, self.max_ports_per_host, now)
        elif reason is RefuseReason.TABLE_FULL:
            self.exporter.table_full(self.dpid, self.max_connections, now)
        elif reason is RefuseReason.POOL_EXHAUSTED:
            self.exporter.ports_exhausted(self.dpid, protocol, external_ip, now)
