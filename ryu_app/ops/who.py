"""``GET /nat/who``: which inside host held an external address and port.

The live table answers for now; the mapping log (the file and its rotated
backups, see :mod:`ryu_app.journal.mapping_search`) for the past.  With
``at`` only the holders at that moment are kept.  Times out are RFC 3339 in
UTC, as in the log.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable

from conntrack.deterministic import DeterministicMap
from ryu_app.journal import mapping_search
from ryu_app.journal.mapping_log import MappingLog, stamp
from ryu_app.ops.filters import ConnectionFilter, FilterError, PROTOCOLS
from ryu_app.ops.views import MAX_LIMIT, ConnectionsView

MAX_ANSWERS = 100       # newest first; an abuse report needs the few around its time


def parse_at(raw: str) -> float:
    """``at``: Unix time, or RFC 3339 with ``Z`` or an offset (a time without
    one would be a guess, so it is refused)."""
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise FilterError(f"at must be RFC 3339 (2026-12-07T19:35:48Z) or Unix time, "
                          f"got {raw!r}") from None
    if when.tzinfo is None:
        raise FilterError(f"at {raw!r} has no UTC offset: add Z or +HH:MM")
    return when.timestamp()


def _live(view: ConnectionsView, ip: str, port: int, protocol: str | None) -> list[dict]:
    match = ConnectionFilter(external_ip=ip, external_port=port,
                             protocol=PROTOCOLS[protocol] if protocol else None)
    out, after = [], 0
    while True:
        page = view.connections(limit=MAX_LIMIT, after=after, match=match)
        out += page.items
        if page.next_after is None:
            return out
        after = page.next_after


def _when(t: float | None) -> str | None:
    return None if t is None else stamp(t)


def _computed(maps: list[DeterministicMap], ip: str, port: int,
              protocol: str | None) -> list[dict[str, Any]]:
    """Deterministic mode: the owner follows from the configuration, for
    any time (RFC 7422), every protocol alike."""
    for m in maps:
        owner = m.owner_of(ip, port)
        if owner is not None:
            _, first, last = m.block_of(owner) or (None, 0, 0)
            return [{"source": "deterministic", "protocol": protocol or "any",
                     "internal_ip": str(owner), "internal_port": 0, "external_ip": ip,
                     "external_port": port, "session": 0, "since": None, "until": None,
                     "ended": None, "block": f"{first}-{last}", "_since": float("inf")}]
    return []


def answer(view: ConnectionsView, log: MappingLog | None, ip: str, port: int,
           protocol: str | None = None, at: float | None = None,
           pause: Callable[[], None] | None = None,
           deterministic: list[DeterministicMap] | None = None) -> dict[str, Any]:
    """Holders of ``ip:port`` (at ``at``, or ever), newest first; ``pause``
    lets the controller work while long files are read; ``deterministic``:
    the maps of the bridges in deterministic mode, which answer first."""
    now = time.time()
    live = _live(view, ip, port, protocol)
    found: list[dict[str, Any]] = [{
        "source": "live", "protocol": c["protocol"], "internal_ip": c["internal_ip"],
        "internal_port": c["internal_port"], "external_ip": ip, "external_port": port,
        "remote_ip": c["remote_ip"], "remote_port": c["remote_port"], "session": c["id"],
        "dpid": c["dpid"], "since": _when(c["created"]), "until": None, "ended": None,
        "_since": c["created"]} for c in live
        if at is None or c["created"] <= at <= now]
    # A port a host mapped itself (PCP, NAT-PMP) is its own while the lease
    # lasts, sessions or not.
    found += [{"source": "live", "protocol": m["protocol"], "internal_ip": m["internal_ip"],
               "internal_port": m["internal_port"], "external_ip": ip, "external_port": port,
               "session": 0, "dpid": m["dpid"], "since": _when(m["created"]), "until": None,
               "ended": None, "port_mapping": m["origin"], "_since": m["created"]}
              for m in view.port_mappings()
              if m["external_ip"] == ip and m["external_port"] == port
              and (protocol is None or m["protocol"] == protocol)
              and (at is None or m["created"] <= at <= now)]
    files: list[str] = []
    if log is not None and log.path:
        log.flush()                     # the last second's lines too
        files = mapping_search.log_files(log.path, log.backups)
        held_now = {(c["protocol"], c["internal_ip"], c["internal_port"], c["id"])
                    for c in live}
        leased = {(f["protocol"], f["internal_ip"], f["internal_port"], 0)
                  for f in found if "port_mapping" in f}
        found_in_log = mapping_search.records(files, ip, port, protocol, pause=pause)
        for h in mapping_search.holdings(found_in_log):
            if h.until is None and (h.protocol, h.internal_ip, h.internal_port,
                                    h.session) in held_now | leased:
                continue                # the live entry says more
            if at is not None and not h.covers(at):
                continue
            found.append({"source": "log", "protocol": h.protocol,
                          "internal_ip": h.internal_ip, "internal_port": h.internal_port,
                          "external_ip": ip, "external_port": port, "session": h.session,
                          "since": _when(h.since), "until": _when(h.until),
                          "ended": h.ended, "_since": h.since or h.until or 0.0,
                          # port_block_size: the host held the whole block
                          **({"block": f"{h.external_port}-{h.last_port}"}
                             if h.last_port is not None else {})})
    found += _computed(deterministic or [], ip, port, protocol)
    found.sort(key=lambda f: f["_since"], reverse=True)
    for f in found:
        del f["_since"]
    return {"external": f"{ip}:{port}", "at": None if at is None else stamp(at),
            "holders": found[:MAX_ANSWERS], "more": max(0, len(found) - MAX_ANSWERS),
            "log_files": files,
            "log": "file" if files else ("none: mapping_log_file is not set"
                                         if log is None or not log.path else "file (empty)")}
