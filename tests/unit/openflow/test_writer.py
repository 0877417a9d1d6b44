"""Answers leave at once when the switch connection is idle, and never
interleave with what Ryu's own send loop has queued or is half way through.

A real TCP connection on loopback stands for the switch's; the datapath is
what ``writer`` needs of Ryu's (its green socket's plain socket, the send
queue, ``send``, the state).
"""
from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from ryu.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER
from ryu.lib import hub

from ryu_app.openflow import writer


class QueueingDatapath:
    """Ryu's Datapath as far as writes go: ``send`` queues for its send loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = SimpleNamespace(fd=sock)
        self.send_q = hub.Queue(16)
        self.state = MAIN_DISPATCHER

    def send(self, buf: bytes) -> bool:
        if self.send_q is None:
            return False
        self.send_q.put((buf, False))
        return True

    def queued(self) -> list[bytes]:
        out = []
        while self.send_q.qsize():
            out.append(self.send_q.get()[0])
        return out


@pytest.fixture
def link():
    """(datapath on the controller's end, the switch's end)."""
    listener = socket.create_server(("127.0.0.1", 0))
    switch = socket.create_connection(listener.getsockname())
    controller, _ = listener.accept()
    listener.close()
    controller.setblocking(False)                 # as eventlet leaves it
    switch.settimeout(2)
    yield QueueingDatapath(controller), switch
    controller.close()
    switch.close()


def received(switch: socket.socket, size: int) -> bytes:
    got = b""
    while len(got) < size:
        chunk = switch.recv(size - len(got))
        if not chunk:
            break
        got += chunk
    return got


def test_an_idle_connection_is_written_at_once(link):
    dp, switch = link
    assert writer.write(dp, b"flow-mods and a packet-out")
    assert received(switch, 26) == b"flow-mods and a packet-out"
    assert dp.queued() == []


def test_behind_what_ryu_has_queued(link):
    dp, switch = link
    dp.send(b"echo reply")
    assert writer.write(dp, b"answer")
    assert dp.queued() == [b"echo reply", b"answer"]      # in order, none written past it
    switch.setblocking(False)
    with pytest.raises(BlockingIOError):
        switch.recv(64)


def test_not_while_ryus_send_loop_is_half_way_through_a_write(link):
    dp, switch = link
    setattr(dp, writer.WRITING, True)
    assert writer.write(dp, b"answer")
    assert dp.queued() == [b"answer"]


def test_what_a_full_socket_leaves_is_queued_in_order(link):
    dp, switch = link
    dp.socket.fd.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 8192                       # 2 MiB: more than both buffers hold
    assert writer.write(dp, big)
    [rest] = dp.queued()
    assert 0 < len(rest) < len(big) and big.endswith(rest)
    written = len(big) - len(rest)
    assert received(switch, written) == big[:written]


def test_a_closing_connection_takes_ryus_answer(link):
    dp, _switch = link
    dp.state, dp.send_q = DEAD_DISPATCHER, None
    assert writer.write(dp, b"answer") is False


def test_a_connection_without_a_plain_socket_goes_through_ryus_queue(link):
    dp, switch = link
    dp.socket = SimpleNamespace()                        # TLS: Ryu's green SSL socket has no fd
    assert writer.write(dp, b"answer")
    assert dp.queued() == [b"answer"]


def test_the_send_loop_marks_the_datapath_while_it_writes():
    seen = []

    class Loop:
        def __init__(self) -> None:
            self.state = MAIN_DISPATCHER
            self.send_q = hub.Queue(4)
            self._send_q_sem = hub.BoundedSemaphore(4)
            self.address = ("127.0.0.1", 1)
            self.closed = False
            self.socket = SimpleNamespace(
                sendall=lambda buf: seen.append((buf, getattr(self, writer.WRITING))))

        def _close_write(self) -> None:
            self.closed = True

    loop = Loop()
    for buf, close in ((b"one", False), (b"two", True)):
        loop._send_q_sem.acquire()
        loop.send_q.put((buf, close))
    writer._send_loop(loop)
    assert seen == [(b"one", True), (b"two", True)]
    assert getattr(loop, writer.WRITING) is False and loop.closed and loop.send_q is None
