"""SIGTERM and SIGINT stop ryu-manager the way Ctrl-C is meant to.

``ryu-manager`` closes its apps (``app_mgr.close()``, in a ``finally``)
only when ``KeyboardInterrupt`` reaches its main greenlet; SIGTERM, what
every service manager sends, has no handler and kills the process before
any close runs: the mapping log's pending batch is lost and the HA lock
waits out its lease.  :func:`install` gives both signals one handler: it
tells the app at once (``begin(name)``: stop admitting, said in the log),
then raises ``KeyboardInterrupt`` in the main greenlet at a safe point, so
the close path is ryu-manager's own.

Under eventlet a Python signal handler runs in whichever greenlet was
running.  In the hub (idle, waiting in ``epoll``: every greenlet parked at
a switch) or in the main greenlet, raising is safe.  In a worker greenlet
(halfway through a packet-in or a Redis call) raising would kill it
mid-work, so a fresh greenlet raises instead, as soon as that one yields.
A second signal while stopping ends the process at once.
"""
from __future__ import annotations

import logging
import os
import signal
from types import FrameType
from typing import Callable

from eventlet import greenthread, hubs
from ryu.lib import hub

LOG = logging.getLogger("ryu_app.snat")
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _interrupt() -> None:
    raise KeyboardInterrupt


def _at_safe_point() -> bool:
    """True in the hub or the main greenlet; False in a worker greenlet."""
    current = greenthread.getcurrent()
    return current.parent is None or current is hubs.get_hub().greenlet


def install(begin: Callable[[str], None],
            signals: tuple[signal.Signals, ...] = SIGNALS) -> None:
    """Handle ``signals``: ``begin(name)`` once, then ryu-manager's close path."""
    stopping: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stopping:
            LOG.warning("ryu-snat: %s again while stopping on %s: exiting now", name,
                        stopping[0])
            os._exit(128 + signum)
            return
        stopping.append(name)
        LOG.info("ryu-snat: stopping on %s", name)
        begin(name)
        if _at_safe_point():
            raise KeyboardInterrupt
        hub.spawn(_interrupt, raise_error=True)

    for sig in signals:
        signal.signal(sig, handler)
