"""Writes to the switch from the greenlet that has the answer, with no hop.

Ryu's ``Datapath.send`` puts every buffer on a queue that another greenlet
(``Datapath._send_loop``) empties, so an answer to a packet-in left only
after the receive loop had read the socket dry, registered it with the hub
and the hub had switched to the send loop: 36 µs of the 233 µs between
a packet-in and its answer in Mininet (300 sequential connections, tcpdump
on the OpenFlow channel, time stamps in the controller).  :func:`write` sends at once, one non-blocking ``send`` on the
socket, whenever nothing of Ryu's is queued or half written; otherwise, and
for whatever a full socket leaves unsent, it queues on Ryu's queue behind
what is there, so bytes never interleave and messages keep their order.

"Half written" is known because :func:`install` replaces Ryu's send loop
by the same loop that marks the datapath while its ``sendall`` runs
(``sendall`` on a green socket yields when the socket is full).  TLS
connections always take Ryu's way: an SSL socket must retry a write with
the same buffer.
"""
from __future__ import annotations

import _socket
import ssl
from socket import timeout as SocketTimeout
from typing import Any

from ryu.base import app_manager  # noqa: F401  (first, as Ryu imports it: a cycle otherwise)
from ryu.controller import controller as ryu_controller
from ryu.controller.handler import DEAD_DISPATCHER
from ryu.lib import hub

WRITING = "_snat_writing"          # set on a datapath while its send loop writes
# The plain socket under Ryu's green one: its class is the C socket's
# subclass of an unpatched copy of the socket module, so ask the C class.
_PLAIN_SOCKET = _socket.socket


def write(dp: Any, buf: bytes) -> bool:
    """Send ``buf`` to the switch of ``dp``, now if the connection is idle;
    False once the connection is closing (as Ryu's ``Datapath.send``)."""
    sock = getattr(getattr(dp, "socket", None), "fd", None)
    queue = getattr(dp, "send_q", None)
    if (isinstance(sock, _PLAIN_SOCKET) and not isinstance(sock, ssl.SSLSocket)
            and queue is not None and not queue.qsize()
            and not getattr(dp, WRITING, False) and dp.state != DEAD_DISPATCHER):
        try:
            sent = sock.send(buf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0          # Ryu's loops meet the same error and close
        if sent == len(buf):
            return True
        buf = buf[sent:]
    return bool(dp.send(buf))


def _send_loop(self: Any) -> None:
    """Ryu 4.34's ``Datapath._send_loop``, marking the datapath while it writes."""
    try:
        while self.state != DEAD_DISPATCHER:
            buf, close_socket = self.send_q.get()
            self._send_q_sem.release()
            setattr(self, WRITING, True)
            try:
                self.socket.sendall(buf)
            finally:
                setattr(self, WRITING, False)
            if close_socket:
                break
    except SocketTimeout:
        ryu_controller.LOG.debug("Socket timed out while sending data to switch at "
                                 "address %s", self.address)
    except IOError as ioe:
        ryu_controller.LOG.debug("Socket error while sending data to switch at address "
                                 "%s: [%s] %s", self.address, ioe.errno, ioe.strerror)
    finally:
        q = self.send_q
        self.send_q = None
        try:
            while q.get(block=False):
                self._send_q_sem.release()
        except hub.QueueEmpty:
            pass
        self._close_write()


def install() -> None:
    """Use the marking send loop for every switch that connects from now on."""
    if ryu_controller.Datapath._send_loop is not _send_loop:
        ryu_controller.Datapath._send_loop = _send_loop
