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
the last second of lines.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from functools import lru_cache
from typing import IO

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


class MappingLog:
    """Where mapping events go: the logger, or a file written in batches."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._pending: list[tuple[float, str]] = []
        if path:
            # Opened once, line buffering off: flush() writes each batch.
            self._file = open(path, "a", buffering=1 << 16, encoding="utf-8")

    def __call__(self, event: Event) -> None:
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
        try:
            self._file.write("".join(f"{_stamp(int(t))}.{int(t * 1000) % 1000:03d} {line}\n"
                                     for t, line in lines))
            self._file.flush()
        except OSError as err:
            LOG.error("mapping log %s: %s (%d lines lost)", self.path, err, len(lines))
