"""Mapping probes: where endpoint-independent or address-dependent filtering
must see inbound packets from remotes a mapping has not talked to.

Under address-and-port-dependent filtering (the default) nothing new may
come in, and the switch's drop rule takes it all.  Under EIF/ADF each live
dynamic mapping, and every port forward, has one probe flow that sends such
packets to the controller, where the engine decides.
"""
from __future__ import annotations

from typing import Callable

from conntrack import ICMP, Mapping, Session
from ryu_app.nat.uplink import Uplink
from ryu_app.openflow import flows


class MappingProbes:
    """The probe flows one switch wants: one per external port that must
    show the controller inbound packets from new remotes."""

    def __init__(self, uplink: Uplink, filtering_for: Callable[[int], str],
                 kept: Callable[[Mapping], bool] | None = None) -> None:
        self.uplink = uplink
        self.filtering_for = filtering_for
        # A mapping kept open for a PCP PEER keeps its probe with no session.
        self.kept = kept or (lambda mapping: False)
        self._ports: set[tuple[int, int, str]] = set()   # (protocol, port, address)

    def for_session(self, session: Session, add: bool) -> list:
        """A dynamic mapping's probe: with its first session under EIF/ADF,
        gone with its last."""
        if session.protocol == ICMP or session.mapping.static:
            return []
        address = self.uplink.text_of[session.mapping.policy.external_ip]
        if add and self.filtering_for(session.protocol) != "address-and-port-dependent":
            return self.set(session.protocol, port=session.external_port, add=True, address=address)
        if not add and session.mapping.count == 0 and not self.kept(session.mapping):
            return self.set(session.protocol, port=session.external_port, add=False, address=address)
        return []

    def set(self, protocol: int, port: int, add: bool, address: str) -> list:
        """Add or remove the probe flow of an external port of ``address``
        (idempotent)."""
        key = (protocol, port, address)
        if add == (key in self._ports):
            return []
        (self._ports.add if add else self._ports.discard)(key)
        return [flows.mapping_probe(self.uplink.port, key[2], protocol, port, add=add,
                                    index=self._index(key[2]))]

    def all(self) -> list:
        """The probe flows that should be in the switch (after a connect)."""
        return [flows.mapping_probe(self.uplink.port, address, p, port, index=self._index(address))
                for p, port, address in sorted(self._ports)]

    def _index(self, address: str) -> int:
        """The address's place in the pool, which keeps its probes' cookies apart."""
        return self.uplink.pool.index(address)
