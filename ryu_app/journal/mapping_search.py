"""Read the mapping log back: who held an external address and port, when.

The question behind every abuse report ("198.51.100.1:40000 at 14:02 UTC")
is answered from the log file and its rotated backups (``FILE``, ``FILE.1``
... ``FILE.N``, newest first), so nobody needs shell access to the gateway.
A line is what :mod:`ryu_app.journal.mapping_log` writes::

    2026-12-07T19:35:48.123Z mapping created: tcp 10.0.0.11:40000 -> 198.51.100.1:40000 (session 5)
    2026-12-07T19:37:02.001Z mapping expired (idle): tcp 10.0.0.11:40000 -> ... (session 5, out ...)

With ``port_block_size`` the log has a line per port block instead, and a
block answers for every port in it::

    2026-12-07T19:35:48.123Z port block allocated: tcp 10.0.0.11 -> 198.51.100.2:40448-40959
    2026-12-07T19:41:10.500Z port block released: tcp 10.0.0.11 -> 198.51.100.2:40448-40959

A mapping a host asked for over PCP or NAT-PMP has its own lines (a
renewal changes nothing here)::

    2026-12-07T19:35:48.123Z port mapping created: tcp 10.0.0.11:80 -> 198.51.100.1:8080 lifetime 3600 (natpmp)
    2026-12-07T20:35:48.500Z port mapping expired: tcp 10.0.0.11:80 -> 198.51.100.1:8080 lifetime 3600 (natpmp)

Lines from before timestamps carried an offset are read as local time, as
they were written.  Lines that are not mapping records are skipped.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterator

PAUSE_EVERY = 20000     # lines read between two pauses (the caller's green thread yields)

_LINE = re.compile(
    r"^(?P<time>\S+) mapping (?P<kind>created|restored|expired|removed)"
    r"(?: \((?P<reason>.+?)\))?: (?P<proto>tcp|udp|icmp) "
    r"(?P<iip>[0-9.]+):(?P<iport>[0-9]+) -> (?P<eip>[0-9.]+):(?P<eport>[0-9]+) "
    r"\(session (?P<sid>[0-9]+)")
_BLOCK = re.compile(
    r"^(?P<time>\S+) port block (?P<kind>allocated|restored|released): (?P<proto>tcp|udp|icmp) "
    r"(?P<iip>[0-9.]+) -> (?P<eip>[0-9.]+):(?P<first>[0-9]+)-(?P<last>[0-9]+)$")
_PORT_MAPPING = re.compile(
    r"^(?P<time>\S+) port mapping (?P<kind>created|restored|deleted|expired|revoked): "
    r"(?P<proto>tcp|udp) (?P<iip>[0-9.]+):(?P<iport>[0-9]+) -> (?P<eip>[0-9.]+):(?P<eport>[0-9]+)"
    r"(?: peer [0-9.:]+)? lifetime [0-9]+ \((?P<origin>pcp|natpmp)\)$")
_OPENS = ("created", "restored", "allocated")


@dataclass(frozen=True)
class Record:
    """One parsed line of the mapping log."""

    time: float                 # Unix time
    kind: str                   # created, restored, expired, removed
    reason: str | None
    protocol: str
    internal_ip: str
    internal_port: int
    external_ip: str
    external_port: int
    session: int                # 0 for a port block
    last_port: int | None = None    # a port block: external_port..last_port


@dataclass
class Holding:
    """An inside endpoint holding an external address and port from
    ``since`` to ``until`` (None: not in the log, or still held)."""

    protocol: str
    internal_ip: str
    internal_port: int
    external_ip: str
    external_port: int
    session: int
    since: float | None
    until: float | None
    ended: str | None = None    # expired (idle), removed (operator), ...
    last_port: int | None = None    # a port block: external_port..last_port

    def covers(self, at: float) -> bool:
        return (self.since is None or self.since <= at) and (self.until is None or at <= self.until)


def parse_time(text: str) -> float:
    """RFC 3339 (``Z`` or an offset) to Unix time; no offset: local time."""
    return datetime.fromisoformat(text).timestamp()


def parse(line: str) -> Record | None:
    """The record of one log line, or None for anything else."""
    line = line.rstrip("\n")
    if (m := _LINE.match(line)) is not None:
        fields: tuple = (m["kind"], m["reason"], m["proto"], m["iip"], int(m["iport"]),
                         m["eip"], int(m["eport"]), int(m["sid"]))
    elif " port mapping " in line and (m := _PORT_MAPPING.match(line)) is not None:
        fields = (m["kind"], m["origin"], m["proto"], m["iip"], int(m["iport"]),
                  m["eip"], int(m["eport"]), 0)
    elif (m := _BLOCK.match(line)) is not None:
        fields = (m["kind"], None, m["proto"], m["iip"], 0, m["eip"], int(m["first"]), 0,
                  int(m["last"]))
    else:
        return None
    try:
        return Record(parse_time(m["time"]), *fields)
    except ValueError:
        return None


def log_files(path: str, backups: int) -> list[str]:
    """The log and its rotated backups that exist, newest first."""
    names = [path] + [f"{path}.{n}" for n in range(1, backups + 1)]
    return [name for name in names if os.path.isfile(name)]


def records(files: list[str], external_ip: str, external_port: int,
            protocol: str | None = None,
            pause: Callable[[], None] | None = None) -> Iterator[Record]:
    """The records of one external address and port in ``files``; a cheap
    substring test skips every other line before it is parsed.  ``pause``
    is called every PAUSE_EVERY lines, so that reading a few hundred MB of
    log does not hold up the controller's other work."""
    needle = f" -> {external_ip}:{external_port} ("
    asked = f" -> {external_ip}:{external_port} "         # PCP / NAT-PMP lines
    block_needle = f" -> {external_ip}:"
    for name in files:
        try:
            with open(name, encoding="utf-8", errors="replace") as fh:
                for n, line in enumerate(fh):
                    if pause is not None and n % PAUSE_EVERY == PAUSE_EVERY - 1:
                        pause()
                    if needle in line or (asked in line and " port mapping " in line):
                        rec = parse(line)
                    elif " port block " in line and block_needle in line:
                        rec = parse(line)      # a block: does it hold the port?
                        if rec is not None and not (
                                rec.external_port <= external_port <= (rec.last_port or -1)):
                            rec = None
                    else:
                        continue
                    if rec is not None and (protocol is None or rec.protocol == protocol):
                        yield rec
        except OSError:
            continue            # rotated away while we read: the others still answer


def holdings(recs: list[Record] | Iterator[Record]) -> list[Holding]:
    """Pair each creation with its deletion (by protocol, endpoints and
    session id), newest first.  A deletion whose creation rotated out has
    ``since`` None; a creation never deleted (still held, or the controller
    died) has ``until`` None, or the time another inside endpoint got the
    port when one did."""
    ordered = sorted(recs, key=lambda r: r.time)
    open_: dict[tuple, Holding] = {}
    out: list[Holding] = []
    for r in ordered:
        key = (r.protocol, r.internal_ip, r.internal_port, r.external_ip, r.external_port,
               r.session)
        if r.kind in _OPENS:
            open_.setdefault(key, Holding(*key, since=r.time, until=None, last_port=r.last_port))
            continue
        held = open_.pop(key, None) or Holding(*key, since=None, until=None,
                                               last_port=r.last_port)
        held.until, held.ended = r.time, f"{r.kind} ({r.reason})" if r.reason else r.kind
        out.append(held)
    starts = sorted((h.since, (h.internal_ip, h.internal_port)) for h in out + list(open_.values())
                    if h.since is not None)
    for held in open_.values():
        # No end was logged (the controller died): it ended at the latest
        # when another inside endpoint got the port.
        after = [t for t, who in starts if t > (held.since or 0.0)
                 and who != (held.internal_ip, held.internal_port)]
        if after:
            held.until, held.ended = after[0], "end not logged (port taken by another host)"
        out.append(held)
    out.sort(key=lambda h: h.since if h.since is not None else h.until or 0.0, reverse=True)
    return out
