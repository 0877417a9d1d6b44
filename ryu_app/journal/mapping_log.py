"""The mapping log of RFC 6888 section 4: each creation and deletion.

One line per event: protocol, inside ip:port, external ip:port and the
session id (the remote is left out, as the RFC suggests by default);
deletions add why and the final counters.

Events are kept as they come and written out every second
(:meth:`MappingLog.flush`, from the gateway's tick), off the packet path:
formatting a line and a log record (a ``stat`` and a flush each) per new
session cost more than the rest of its set-up (a profile of the set-up path
showed a fifth of the controller's time in ``logging``).  A crash loses at
most the last second of lines.  Two destinations.  By default the
``ryu_snat.mappings`` logger (Ryu's log, or wherever ``--log-config-file``
routes it), one record per event carrying the event's own time; when every
handler it reaches writes bare messages to a stream (Ryu's own log set-up),
one record of the second's lines, which writes the same bytes (records one
by one were a fifth of the set-up rate on the fake switch).  With
``[nat] mapping_log_file`` the lines go straight to that file, time-stamped
(RFC 3339 in UTC, ``2026-12-07T19:35:48.123Z``),
one write per batch.  The file is rotated by size by the standard
library's :class:`~logging.handlers.RotatingFileHandler`, one whole batch
at a time, so no line is ever split across two files.  With
``mapping_log_syslog`` every line also goes to a syslog server.
:mod:`ryu_app.journal.mapping_search` reads the files back.

A restarted controller logs the sessions it rebuilt from the switch's
flows as ``mapping restored`` (conntrack's RESTORED event), not as new
mappings: the file then holds one creation per mapping, across restarts.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from functools import lru_cache
from logging.handlers import RotatingFileHandler, SysLogHandler, WatchedFileHandler

from conntrack import BlockEvent, Event, EventKind
from conntrack.keys import PROTOCOL_NAMES

MAPPING_LOG = logging.getLogger("ryu_snat.mappings")
LOG = logging.getLogger(__name__)


@lru_cache(maxsize=65536)
def _text(addr: ipaddress.IPv4Address) -> str:
    return str(addr)


@lru_cache(maxsize=4)
def _stamp(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def stamp(t: float) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-12-07T19:35:48.123Z``."""
    return f"{_stamp(int(t))}.{int(t * 1000) % 1000:03d}Z"


def describe_block(event: BlockEvent) -> str:
    """The log line of a port block given, taken back or rebuilt (without
    time stamp): one line stands for every session of the block."""
    return (f"port block {event.kind}: {PROTOCOL_NAMES[event.protocol]} "
            f"{_int_text(event.inside_ip)} -> {_int_text(event.external_ip)}:"
            f"{event.first_port}-{event.last_port}")


@lru_cache(maxsize=65536)
def _int_text(addr: int) -> str:
    return str(ipaddress.IPv4Address(addr))


def describe(event: Event | BlockEvent | str, counts: tuple[int, int, int, int] | None = None) -> str:
    """The log line of one event (without time stamp); ``counts`` are the
    session's packets and bytes out and in when it happened (default: now)."""
    if isinstance(event, str):
        return event
    if isinstance(event, BlockEvent):
        return describe_block(event)
    s = event.session
    head = (f"{s.protocol_name} {_text(s.inside_ip)}:{s.inside_port} -> "
            f"{_text(s.external_ip)}:{s.external_port}")
    if event.kind in (EventKind.CREATED, EventKind.RESTORED):
        return f"mapping {event.kind.value}: {head} (session {s.id})"
    out_p, out_b, in_p, in_b = counts or (s.packets_out, s.bytes_out, s.packets_in, s.bytes_in)
    return (f"mapping {event.kind.value} ({event.reason}): {head} (session {s.id}, "
            f"out {out_p}/{out_b} in {in_p}/{in_b})")


def plain_text_destinations(logger: logging.Logger) -> bool:
    """Whether every handler a record of ``logger`` reaches writes only its
    message and a newline to a stream (a file, stderr): no format with the
    record's time or name, no filter, no rotation or syslog that counts
    records.  Then one record of N lines writes the bytes N records would."""
    found = False
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return False
        for handler in current.handlers:
            if (type(handler) not in _PLAIN_STREAMS or handler.filters
                    or getattr(handler, "terminator", "\n") != "\n"
                    or handler.format(_PROBE) != _PROBE.msg):
                return False
            found = True
        current = current.parent if current.propagate else None
    return found


_PLAIN_STREAMS = (logging.StreamHandler, logging.FileHandler, WatchedFileHandler)
# What a plain handler's format leaves of a record: its message alone.
_PROBE = logging.makeLogRecord({"msg": "mapping created: probe", "name": "ryu_snat.mappings",
                                "levelno": logging.INFO, "levelname": "INFO"})


class _BatchFile(RotatingFileHandler):
    """A rotating file that takes whole batches of lines as one record."""

    terminator = ""                     # each batch ends with its own newline

    def handleError(self, record: logging.LogRecord) -> None:
        # The stdlib prints a traceback to stderr; one line in the log instead.
        LOG.error("mapping log %s: %d lines not written", self.baseFilename,
                  record.msg.count("\n"))


def syslog_handler(address: str) -> SysLogHandler:
    """A handler to syslog at ``host:port`` (UDP) or a Unix socket path
    (``/dev/log``), facility daemon, tagged ``ryu-snat:``."""
    where: str | tuple[str, int]
    if address.startswith("/"):
        where = address
    else:
        host, _, port = address.rpartition(":")
        where = (host or "127.0.0.1", int(port))
    handler = SysLogHandler(address=where, facility=SysLogHandler.LOG_DAEMON)
    handler.setFormatter(logging.Formatter("ryu-snat: %(message)s"))
    return handler


class MappingLog:
    """Where mapping events go: the logger, or a file written in batches.

    ``max_bytes`` (0: never) rotates the file to ``path.1`` ... ``path.N``
    (``backups`` of them, the oldest dropped) before a batch would take it
    past that size.
    """

    def __init__(self, path: str | None = None, max_bytes: int = 0, backups: int = 5,
                 syslog: str | None = None) -> None:
        self.path, self.backups = path, backups
        self._file: _BatchFile | None = None
        # Also to a syslog server (host:port over UDP, or a socket path).
        self._syslog = syslog_handler(syslog) if syslog else None
        self._pending: list[tuple[float, Event | BlockEvent | str, tuple[int, int, int, int] | None]] = []
        if path:
            self._file = _BatchFile(path, maxBytes=max_bytes, backupCount=backups,
                                    encoding="utf-8")

    def __call__(self, event: Event) -> None:
        """Keep the event; it is written (formatted, to the file or the
        logger) at the next ``flush``, each second, off the packet path."""
        if event.kind is EventKind.UPDATED:     # a state change is no mapping event
            return
        s = event.session
        # What the line shows of the session: its counters change later.
        self._pending.append((time.time(), event, (s.packets_out, s.bytes_out, s.packets_in,
                                                   s.bytes_in)))
        if len(self._pending) >= 4096:
            self.flush()

    def block(self, event: BlockEvent) -> None:
        """Keep a port block's event (``port_block_size``): with blocks on,
        the log has these lines instead of one per session."""
        self._pending.append((time.time(), event, None))
        if len(self._pending) >= 4096:
            self.flush()

    def note(self, line: str) -> None:
        """Keep a line of another kind (a PCP or NAT-PMP mapping made,
        renewed, deleted or expired: ``ryu_app.nat.paths.port_control``)."""
        self._pending.append((time.time(), line, None))

    def flush(self) -> None:
        """Write what is pending: to the file, each line stamped with its
        event's time; else a record per event on the logger, carrying the
        event's time as its own."""
        if not self._pending:
            return
        events, self._pending = self._pending, []
        if self._syslog is not None:
            for t, event, counts in events:
                self._syslog.handle(logging.makeLogRecord({
                    "msg": f"{stamp(t)} {describe(event, counts)}", "levelno": logging.INFO,
                    "levelname": "INFO", "created": t}))
        if self._file is None:
            if not MAPPING_LOG.isEnabledFor(logging.INFO):
                return
            if plain_text_destinations(MAPPING_LOG):
                # Every handler writes just the message and a newline: one
                # record of the batch's lines writes the same bytes.
                t = events[-1][0]
                record = MAPPING_LOG.makeRecord(
                    MAPPING_LOG.name, logging.INFO, __file__, 0,
                    "\n".join(describe(event, counts) for _, event, counts in events), (),
                    None)
                record.created, record.msecs = t, (t - int(t)) * 1000
                MAPPING_LOG.handle(record)
                return
            for t, event, counts in events:
                record = MAPPING_LOG.makeRecord(MAPPING_LOG.name, logging.INFO, __file__, 0,
                                                "%s", (describe(event, counts),), None)
                record.created, record.msecs = t, (t - int(t)) * 1000
                MAPPING_LOG.handle(record)
            return
        batch = "".join(f"{stamp(t)} {describe(event, counts)}\n" for t, event, counts in events)
        # A record without args: its text is never %-formatted.
        self._file.handle(logging.makeLogRecord({"msg": batch, "levelno": logging.INFO}))

    def close(self) -> None:
        """On the controller's stop: what is pending written, the file closed."""
        self.flush()
        if self._file is not None:
            self._file.close()
