"""Forwards added over REST, kept in a file so a restarted controller has them.

Forwards from the config file come back by themselves; those an operator
added with ``POST /nat/forwards`` live only in memory unless
``forwards_file`` is set.  The file is JSON (a list of the REST bodies),
rewritten whole on each change through a temporary file and ``os.replace``,
so a crash leaves the old list or the new one, never half of one.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import tempfile
from typing import Iterable

from ryu_app.settings import forwards
from ryu_app.settings.forwards import Forward

LOG = logging.getLogger(__name__)


def load(path: str | None, inside: ipaddress.IPv4Network,
         gateway: ipaddress.IPv4Address) -> list[Forward]:
    """The forwards saved in ``path``; a bad entry is logged and skipped."""
    if not path or not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            bodies = json.load(f)
    except (OSError, ValueError) as why:
        LOG.error("forwards_file %s unreadable, no saved forwards restored: %s", path, why)
        return []
    if not isinstance(bodies, list):
        LOG.error("forwards_file %s: expected a JSON list, no saved forwards restored", path)
        return []
    out = []
    for body in bodies:
        try:
            out.append(forwards.from_json(body, inside, gateway))
        except ValueError as why:
            LOG.error("forwards_file %s: entry %r skipped: %s", path, body, why)
    return out


def save(path: str | None, saved: Iterable[Forward]) -> None:
    """Write ``saved`` to ``path`` atomically (nothing when ``path`` is None)."""
    if not path:
        return
    body = json.dumps([f.as_dict() for f in sorted(saved, key=str)], indent=1) + "\n"
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".forwards-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise
