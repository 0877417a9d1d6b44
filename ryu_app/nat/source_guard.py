"""IP source guard: an inside address belongs to the (switch port, MAC) where
it was first seen, as OVN's port security and a switch's DHCP snooping bind it.

Learning where a host is from any packet that names it lets one inside host
take over another's return traffic with a single forged datagram or ARP.
Here the first sight binds; a packet naming a bound address from anywhere
else is refused (the switch drops it: ``flows.binding_rules``), and never
learned.  A host that really moved gets its address back after a check the
claimant cannot fake alone: the old place, asked by ARP twice, stays silent
while the new place answers.  A link that goes down, or a binding idle with
no session for ``idle`` seconds, frees the address.

Pure bookkeeping with the time passed in, so tests need no switch or clock.
"""
from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping


@dataclass(frozen=True)
class InsideHost:
    mac: str
    port: int


class Claim(enum.Enum):
    SAME = "same"            # from where the address is bound
    NEW = "new"              # unbound until now: bound here
    ELSEWHERE = "elsewhere"  # bound to another port or MAC: refused
    FULL = "full"            # this port and MAC already hold max_per_mac addresses


@dataclass
class _Check:
    """A claim to a bound address, being checked by ARP."""
    claimant: InsideHost
    asked_at: float
    tries: int = 1
    old_answered: bool = False
    claimant_answered: bool = False


@dataclass(frozen=True)
class CheckOutcome:
    """What the periodic look at pending checks found."""
    probe: list[tuple[str, InsideHost]]      # ask again: (address, place to ask)
    moved: list[tuple[str, InsideHost]]      # re-bound: (address, new place)
    refused: list[tuple[str, InsideHost]]    # the claim failed: (address, claimant)


class Bindings:
    """Inside addresses and the (port, MAC) each is bound to."""

    def __init__(self, max_hosts: int = 65536, max_per_mac: int = 0,
                 static: Mapping[str, InsideHost] | None = None, idle: float = 300.0,
                 retry: float = 1.0, tries: int = 2) -> None:
        self.max_hosts, self.max_per_mac, self.idle = max_hosts, max_per_mac, idle
        self.retry, self.tries = retry, tries
        self.static = dict(static or {})
        self._hosts: OrderedDict[str, InsideHost] = OrderedDict(self.static)
        self._seen: dict[str, float] = {}
        self._by_place: dict[InsideHost, set[str]] = {}
        for ip, host in self.static.items():
            self._by_place.setdefault(host, set()).add(ip)
        self._checks: dict[str, _Check] = {}
        self.moves = 0
        self.evicted: list[str] = []     # unbound to make room, rules not yet deleted

    # -- claims -------------------------------------------------------------------
    def claim(self, ip: str, mac: str, port: int, now: float) -> Claim:
        """A packet from (port, mac) names ``ip`` as its source."""
        old = self._hosts.get(ip)
        if old is not None:
            if old.mac == mac and old.port == port:
                self._seen[ip] = now
                return Claim.SAME
            return Claim.ELSEWHERE
        place = InsideHost(mac, port)
        if self.max_per_mac and len(self._by_place.get(place, ())) >= self.max_per_mac:
            return Claim.FULL
        self._bind(ip, place, now)
        return Claim.NEW

    def _bind(self, ip: str, place: InsideHost, now: float) -> None:
        self._hosts[ip] = place
        self._seen[ip] = now
        self._by_place.setdefault(place, set()).add(ip)
        while len(self._hosts) > self.max_hosts:
            oldest = next(ip for ip in self._hosts if ip not in self.static)
            self.unbind(oldest)
            self.evicted.append(oldest)      # its rules go too (``ryu_app.nat.guard``)

    def restore(self, ip: str, mac: str, port: int, now: float) -> bool:
        """Rebuild a binding after a restart (from the switch's flows);
        False when the address is bound elsewhere already."""
        old = self._hosts.get(ip)
        if old is not None:
            return old == InsideHost(mac, port)
        self._bind(ip, InsideHost(mac, port), now)
        return True

    def unbind(self, ip: str) -> InsideHost | None:
        """Free ``ip`` (static bindings stay)."""
        if ip in self.static:
            return None
        host = self._hosts.pop(ip, None)
        self._seen.pop(ip, None)
        self._checks.pop(ip, None)
        if host is not None:
            left = self._by_place.get(host)
            if left is not None:
                left.discard(ip)
                if not left:
                    del self._by_place[host]
        return host

    def get(self, ip: str) -> InsideHost | None:
        return self._hosts.get(ip)

    def siblings(self, ip: str) -> set[str]:
        """Every address bound where ``ip`` is (itself included)."""
        host = self._hosts.get(ip)
        return self._by_place.get(host, set()) if host is not None else set()

    def on_ports(self, ports: Iterable[int]) -> list[str]:
        """Addresses bound to any of these ports (gone or down)."""
        ports = set(ports)
        return [ip for ip, h in self._hosts.items() if h.port in ports and ip not in self.static]

    def idle_ones(self, now: float, has_sessions: Callable[[str], bool]) -> list[str]:
        """Bindings neither seen for ``idle`` seconds nor holding a session."""
        return [ip for ip, seen in list(self._seen.items())
                if now - seen > self.idle and ip not in self.static and not has_sessions(ip)]

    # -- moves --------------------------------------------------------------------
    def start_check(self, ip: str, mac: str, port: int, now: float) -> bool:
        """A claim to a bound address from elsewhere (an ARP): True when a
        check starts (the caller asks both places), False if one runs."""
        if ip in self.static or ip not in self._hosts or ip in self._checks:
            return False
        self._checks[ip] = _Check(InsideHost(mac, port), now)
        return True

    def checking(self, ip: str) -> InsideHost | None:
        check = self._checks.get(ip)
        return check.claimant if check is not None else None

    def answered(self, ip: str, mac: str, port: int) -> None:
        """An ARP naming ``ip`` came from (port, mac) while a check runs."""
        check = self._checks.get(ip)
        if check is None:
            return
        place = InsideHost(mac, port)
        if place == self._hosts.get(ip):
            check.old_answered = True
        elif place == check.claimant:
            check.claimant_answered = True

    def due(self, now: float) -> CheckOutcome:
        """Checks whose time has come: ask again, re-bind, or refuse."""
        probe, moved, refused = [], [], []
        for ip, check in list(self._checks.items()):
            if now - check.asked_at < self.retry:
                continue
            old = self._hosts[ip]
            if check.old_answered:
                refused.append((ip, check.claimant))
            elif check.tries < self.tries:
                check.tries += 1
                check.asked_at = now
                probe += [(ip, old), (ip, check.claimant)]
                continue
            elif check.claimant_answered:
                self.unbind(ip)
                self._bind(ip, check.claimant, now)
                self.moves += 1
                moved.append((ip, check.claimant))
            else:
                refused.append((ip, check.claimant))
            self._checks.pop(ip, None)
        return CheckOutcome(probe, moved, refused)

    def as_dict(self) -> dict[str, dict]:
        return {ip: {"mac": h.mac, "port": h.port, "static": ip in self.static}
                for ip, h in self._hosts.items()}

    def __len__(self) -> int:
        return len(self._hosts)
