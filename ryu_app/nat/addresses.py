"""Address conversions the packet path repeats, cached.

Every packet-in names a few addresses as text (``ryu.lib.packet`` gives
them so) that the gateway compares as :class:`ipaddress.IPv4Address`, and
sessions name them as objects that flows need as text.  The same hosts and
servers come back session after session, and each conversion costs
microseconds, so both directions are cached (bounded).
"""
from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Address


@lru_cache(maxsize=65536)
def ipv4(text: str) -> IPv4Address:
    """``IPv4Address(text)``; ValueError for anything else (not cached)."""
    return IPv4Address(text)


@lru_cache(maxsize=65536)
def text(addr: IPv4Address) -> str:
    """``str(addr)``."""
    return str(addr)


@lru_cache(maxsize=65536)
def int_text(value: int) -> str:
    """An address held as an int (conntrack's keys) as text."""
    return str(IPv4Address(value))
