"""The mapping log of RFC 6888 section 4: each creation and deletion.

One line per event on the ``ryu_snat.mappings`` logger: protocol, inside
ip:port, external ip:port and the session id (the remote is left out, as
the RFC suggests by default); deletions add why and the final counters.
Route that logger to its own file with Ryu's ``--log-config-file``.
"""
from __future__ import annotations

import logging

from conntrack import Event, EventKind

MAPPING_LOG = logging.getLogger("ryu_snat.mappings")


def log_event(event: Event) -> None:
    s = event.session
    if event.kind in (EventKind.CREATED, EventKind.RESTORED):
        MAPPING_LOG.info("mapping %s: %s %s:%d -> %s:%d (session %d)", event.kind.value,
                         s.protocol_name, s.inside_ip, s.inside_port, s.external_ip,
                         s.external_port, s.id)
    else:
        MAPPING_LOG.info("mapping %s (%s): %s %s:%d -> %s:%d (session %d, out %d/%d in %d/%d)",
                         event.kind.value, event.reason, s.protocol_name, s.inside_ip,
                         s.inside_port, s.external_ip, s.external_port, s.id, s.packets_out,
                         s.bytes_out, s.packets_in, s.bytes_in)
