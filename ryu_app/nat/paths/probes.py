"""Mapping probes: where endpoint-independent or address-dependent filtering
must see inbound packets from remotes a mapping has not talked to.

Under address-and-port-dependent filtering (the default) nothing new may
come in, and the switch's drop rule takes it all.  Under EIF/ADF each live
dynamic mapping, and every port forward, has one probe flow that sends such
packets to the controller, where the engine decides.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from conntrack import Session
from ryu_app.openflow import flows
from ryu_app.packets.packet_info import ICMP

if TYPE_CHECKING:
    from ryu_app.nat.service import NatService


class MappingProbes:
    """The probe flows one NatService wants in its switch."""

    def __init__(self, nat: "NatService") -> None:
        self.nat = nat
        self._ports: set[tuple[int, int]] = set()

    def for_session(self, session: Session, add: bool) -> list:
        """A dynamic mapping's probe: with its first session under EIF/ADF,
        gone with its last."""
        if session.protocol == ICMP or session.mapping.static:
            return []
        if add and self.nat.config.filtering_for(session.protocol) != "address-and-port-dependent":
            return self.set(session.protocol, session.external_port, add=True)
        if not add and session.mapping.count == 0:
            return self.set(session.protocol, session.external_port, add=False)
        return []

    def set(self, protocol: int, port: int, add: bool) -> list:
        """Add or remove the probe flow of an external port (idempotent)."""
        key = (protocol, port)
        if add == (key in self._ports):
            return []
        (self._ports.add if add else self._ports.discard)(key)
        return [flows.mapping_probe(self.nat.uplink, self.nat._external, protocol, port, add=add)]

    def all(self) -> list:
        """The probe flows that should be in the switch (after a connect)."""
        return [flows.mapping_probe(self.nat.uplink, self.nat._external, p, port)
                for p, port in sorted(self._ports)]
