"""The mapping log of RFC 6888 section 4: each creation and deletion.

One line per event: protocol, inside ip:port, external ip:port and the
session id (the remote is left out, as the RFC suggests by default);
deletions add why and the final counters.

Two destinations.  By default the ``ryu_snat.mappings`` logger (Ryu's log,
or wherever ``--log-config-file`` routes it).  With ``[nat]
mapping_log_file`` the lines go straight to that file, time-stamped,
through a buffer written out every second (:meth:`MappingLog.flush`, from
the gateway's tick): a log record, a ``stat`` and a flush per new session
cost more than the rest of its set-up (a profile of the set-up path showed
a fifth of the controller's time in ``logging``).  A crash loses at most
the last second of lines.  The file is rotated by size by the standard
library's :class:`~logging.handlers.RotatingFileHandler`, one whole batch
at a time, so no line is ever split across two files.

A restarted controller logs the sessions it rebuilt from the switch's
flows as ``mapping restored`` (conntrack's RESTORED event), not as new
mappings: the file then holds one creation per mapping, across restarts.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from functools import lru_cache
from logging.handlers import RotatingFileHandler

from conntrack import Event, EventKind

MAPPING_LOG = logging.getLogger("ryu_snat.mappings")
LOG = logging.getLogger(__name__)


@lru_cache(maxsize=65536)
def _text(addr: ipaddress.IPv4Address) -> str:
    return str(addr)


@lru_cache(maxsize=4)
def _stamp(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))


def describe(event: Event) -> str:
    """The log line of one event (without time stamp)."""
    s = event.session
    head = (f"{s.protocol_name} {_text(s.inside_ip)}:{s.inside_port} -> "
            f"{_text(s.external_ip)}:{s.external_port}")
    if event.kind in (EventKind.CREATED, EventKind.RESTORED):
        return f"mapping {event.kind.value}: {head} (session {s.id})"
    return (f"mapping {event.kind.value} ({event.reason}): {head} (session {s.id}, "
            f"out {s.packets_out}/{s.bytes_out} in {s.packets_in}/{s.bytes_in})")


def log_event(event: Event) -> None:
    """Log one event on the ``ryu_snat.mappings`` logger."""
    if MAPPING_LOG.isEnabledFor(logging.INFO):
        MAPPING_LOG.info("%s", describe(event))


class _BatchFile(RotatingFileHandler):
    """A rotating file that takes whole batches of lines as one record."""

    terminator = ""                     # each batch ends with its own newline

    def handleError(self, record: logging.LogRecord) -> None:
        # The stdlib prints a traceback to stderr; one line in the log instead.
        LOG.error("mapping log %s: %d lines not written", self.baseFilename,
                  record.msg.count("\n"))


class MappingLog:
    """Where mapping events go: the logger, or a file written in batches.

    ``max_bytes`` (0: never) rotates the file to ``path.1`` ... ``path.N``
    (``backups`` of them, the oldest dropped) before a batch would take it
    past that size.
    """

    def __init__(self, path: str | None = None, max_bytes: int = 0, backups: int = 5) -> None:
        self.path = path
        self._file: _BatchFile | None = None
        self._pending: list[tuple[float, str]] = []
        if path:
            self._file = _BatchFile(path, maxBytes=max_bytes, backupCount=backups,
                                    encoding="utf-8")

    def __call__(self, event: Event) -> None:
        if event.kind is EventKind.UPDATED:     # a state change is no mapping event
            return
        if self._file is None:
            log_event(event)
            return
        self._pending.append((time.time(), describe(event)))
        if len(self._pending) >= 4096:
            self.flush()

    def flush(self) -> None:
        """Write what is pending, each line stamped with its event's time."""
        if self._file is None or not self._pending:
            return
        lines, self._pending = self._pending, []
        batch = "".join(f"{_stamp(int(t))}.{int(t * 1000) % 1000:03d} {line}\n"
                        for t, line in lines)
        # A record without args: its text is never %-formatted.
        self._file.handle(logging.makeLogRecord({"msg": batch, "levelno": logging.INFO}))
