"""``conntrack -L`` and ``conntrack -E`` lines from the REST JSON, so that
scripts and eyes trained on conntrack-tools read snatctl's output as is.

The original tuple is the inside host's (``src=`` inside, ``dst=`` remote);
the reply tuple is what comes back to the NAT address (``src=`` remote,
``dst=`` external address and port), as the kernel shows a SNAT entry::

    tcp      6 7439 ESTABLISHED src=10.0.0.11 dst=198.51.100.10 sport=40000 dport=80 packets=6 bytes=412 src=198.51.100.10 dst=198.51.100.1 sport=80 dport=40000 packets=5 bytes=1387 [ASSURED] id=1
        [NEW] udp      17 30 src=10.0.0.11 dst=198.51.100.10 sport=5104 dport=9400 [UNREPLIED] src=198.51.100.10 dst=198.51.100.1 sport=9400 dport=5104 id=7

Our state names become conntrack's where they differ (``SYN_RECEIVED`` is
``SYN_RECV``, ``CLOSING`` is ``CLOSE``); UDP and ICMP show none, as
conntrack does.  ``id=`` is the session id (conntrack's ``-o id``).
"""
from __future__ import annotations

from typing import Any

NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}
TCP_STATES = {"SYN_RECEIVED": "SYN_RECV", "CLOSING": "CLOSE"}
EVENT_WORDS = {"new": "[NEW]", "update": "[UPDATE]", "destroy": "[DESTROY]",
               "restored": "[NEW]"}        # conntrack has no word for a restored entry


def _tuple(proto: str, src: str, dst: str, sport: int, dport: int, reply: bool) -> str:
    if proto == "icmp":     # the echo id is the "port"; the reply is an echo reply
        return (f"src={src} dst={dst} type={0 if reply else 8} code=0 "
                f"id={dport if reply else sport}")
    return f"src={src} dst={dst} sport={sport} dport={dport}"


def _counters(c: dict[str, Any], way: str) -> str:
    if f"packets_{way}" not in c:
        return ""
    return f" packets={c[f'packets_{way}']} bytes={c[f'bytes_{way}']}"


def line(c: dict[str, Any], live: bool = True) -> str:
    """One session (a ``/nat/connections`` item or an event) as conntrack prints it."""
    proto = c["protocol"]
    parts = [f"{proto:<8} {NUMBERS.get(proto, 0)}"]
    if live:            # a destroyed entry has neither timeout nor state
        parts.append(str(int(c.get("expires_in", c.get("timeout", 0)))))
    if live and proto == "tcp":
        parts.append(TCP_STATES.get(c["state"], c["state"]))
    parts.append(_tuple(proto, c["internal_ip"], c["remote_ip"], c["internal_port"],
                        c["remote_port"], False) + _counters(c, "out"))
    replied = c["state"] not in ("UNREPLIED", "SYN_SENT") and c.get("packets_in", 1) != 0
    if not replied:
        parts.append("[UNREPLIED]")
    parts.append(_tuple(proto, c["remote_ip"], c["external_ip"], c["remote_port"],
                        c["external_port"], True) + _counters(c, "in"))
    if replied and c["state"] not in ("SYN_RECEIVED",):
        parts.append("[ASSURED]")
    parts.append(f"id={c['id']}")
    return " ".join(parts)


def event_line(e: dict[str, Any], timestamp: bool = False) -> str:
    """One event as ``conntrack -E`` prints it (``-o timestamp``: with the
    Unix time in brackets first); a destroy has no timeout or state, as there."""
    word = EVENT_WORDS.get(e["event"], f"[{e['event'].upper()}]")
    text = f"{word:>9} {line(e, live=e['event'] != 'destroy')}"
    return f"[{e['time']:.6f}]\t{text}" if timestamp else text
