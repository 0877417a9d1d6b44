"""Which of two ryu-snat controllers is MASTER, decided by a coordination engine.

The decision is a lock with a lease, held through ``tooz`` in Redis (or any
tooz backend with expiring locks: etcd3gw, ZooKeeper, ...): the controller
holding ``ryu-snat-master:<group>`` is the leader, renews the lease on every
:meth:`Election.step`, and if it dies the lease runs out and the standby's
next step takes the lock.  Nothing is decided here without the engine; this
module never speaks OpenFlow (:mod:`ryu_app.ha.roles` turns leadership into
role requests).

tooz runs its calls on an executor thread by default; under Ryu's eventlet
hub (sockets green, threads not) the calls must run inline on the hub, so the
coordinator is always built with ``executor=synchronous``.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import Any

from tooz import NotImplemented as NotImplementedInDriver
from tooz import ToozError, coordination

LOG = logging.getLogger(__name__)


class Election:
    """Leadership of ``group`` among the controllers that share ``url``."""

    def __init__(self, url: str, group: str, lease: int, member: str | None = None,
                 coordinator: Any = None) -> None:
        self.url, self.group, self.lease = url, group, lease
        self.member = member or f"{socket.gethostname()}-{os.getpid()}"
        self.leader = False
        self.engine_errors = 0        # steps the engine did not answer
        self.engine_reachable = False
        self._coord = coordinator
        self._lock: Any = None

    @property
    def started(self) -> bool:
        return self._lock is not None

    def start(self) -> None:
        """Connect to the engine (raises tooz.ToozError when it cannot)."""
        if self._coord is None:
            # A call may block the hub for at most a quarter lease: an engine
            # that does not answer must not stall the MASTER's renewals.
            wait = str(max(0.05, self.lease / 4))
            self._coord = coordination.get_coordinator(
                self.url, self.member.encode(), executor="synchronous",
                lock_timeout=str(self.lease), membership_timeout=str(self.lease),
                socket_timeout=wait, socket_connect_timeout=wait)
        self._coord.start(start_heart=False)
        self._lock = self._coord.get_lock(f"ryu-snat-master:{self.group}".encode())
        self.engine_reachable = True

    def try_start(self) -> bool:
        """:meth:`start`, counting and logging (once, then every 40th) a failure."""
        try:
            self.start()
            return True
        except Exception as why:      # tooz's own errors and its driver's
            self.engine_errors += 1
            if self.engine_errors % 40 == 1:
                LOG.error("ha: coordination engine unreachable (%s): standing by", why)
            return False

    def step(self) -> bool:
        """Renew or try for the lock; True when leadership changed.

        When the engine does not answer, leadership stays as it was: the
        other controller cannot take the lock either, and the switch's
        generation ids keep a late claim from winning over a newer one.
        """
        was = self.leader
        try:
            if self.leader and not self._still_ours():
                self.leader = False
                self._forget_lock()
            self._coord.heartbeat()                  # extends the lease of a lock held
            if not self.leader:
                self.leader = bool(self._lock.acquire(blocking=False))
            self.engine_reachable = True
        except ToozError as why:
            self.engine_errors += 1
            if self.engine_reachable:
                LOG.warning("coordination engine %s not answering (%s); staying %s",
                            self.url, why, "MASTER" if self.leader else "SLAVE")
            self.engine_reachable = False
        if self.leader != was:
            LOG.info("ha: %s %s leadership of %r", self.member,
                     "won" if self.leader else "lost", self.group)
        return self.leader != was

    def _forget_lock(self) -> None:
        """Stop renewing a lock the engine gave to another (its lease ran out)."""
        try:
            self._lock.release()      # not ours: tooz logs it, and drops it from its heartbeat
        except ToozError:
            pass

    def _still_ours(self) -> bool:
        try:
            return bool(self._lock.is_still_owner())
        except NotImplementedInDriver:        # etcd3gw: a refreshed lease is ours
            return bool(self._lock.heartbeat())

    def stop(self) -> None:
        """Give the lock back (the standby need not wait out the lease)."""
        try:
            if self.leader and self._lock is not None:
                self._lock.release()
            if self._coord is not None:
                self._coord.stop()
        except ToozError as why:
            LOG.warning("coordination engine: leaving failed: %s", why)
        self.leader = False
