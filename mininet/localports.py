"""Loopback TCP ports: find a free one, tell whether one listens.

Kept apart from the Mininet harness so unit tests can use it without Mininet.
"""
from __future__ import annotations

import socket


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
