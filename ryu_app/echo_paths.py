"""ICMP echo through the NAT, although OpenFlow 1.3 cannot see echo identifiers.

An echo flow can match addresses and the echo type but not the identifier,
and it cannot rewrite the identifier.  So, per remote address R:

* **switch path**: while every live echo session towards R belongs to one
  inside host and kept its identifier (the engine keeps the inside
  identifier whenever it is free), one forward flow (host -> R requests) and
  one reverse flow (R -> NAT address replies) carry all of them.
* **controller path**: as soon as a second inside host pings R, or a session
  towards R needed a new identifier (two hosts used the same one), the flows
  for R are removed and echo requests and replies towards and from R are
  translated in the controller (:func:`ryu_app.rewrite.rewrite_echo`).

Echo sessions end by the engine's idle timer, not by flow removal, since one
pair of flows may serve several sessions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from conntrack import ICMP, INBOUND, OUTBOUND, Session
from ryu_app import flows
from ryu_app.packet_info import PacketInfo
from ryu_app.rewrite import rewrite_echo

if TYPE_CHECKING:
    from ryu_app.nat_service import FlowRecord, NatService


class EchoPaths:
    """Chooses, per remote, between the switch path and the controller path."""

    def __init__(self, nat: "NatService") -> None:
        self.nat = nat
        self.by_remote: dict[str, set[int]] = {}   # remote -> live echo session ids
        self.owner: dict[str, int] = {}            # remote -> session id on its flows

    def _live(self, remote: str) -> list[Session]:
        sids = self.by_remote.get(remote, set())
        live = [s for s in map(self.nat.ct.get, sids) if s is not None]
        self.by_remote[remote] = {s.id for s in live}
        return live

    def outbound(self, session: Session, next_hop_mac: str, data: bytes, now: float) -> list:
        """An echo request of ``session`` reached the controller: send it on."""
        remote = str(session.remote_ip)
        self.by_remote.setdefault(remote, set()).add(session.id)
        sessions = self._live(remote)
        switch_ok = all(s.port_preserved and s.inside_ip == session.inside_ip for s in sessions)
        msgs: list = []
        if switch_ok:
            if remote not in self.owner:
                msgs += self.nat._ensure_flows(session, next_hop_mac)
                self.owner[remote] = session.id
            path = self.nat.records[self.owner[remote]].path
            msgs.append(flows.packet_out_actions(flows.forward_actions(path), data))
            return msgs
        msgs += self._unseat(remote)
        frame = rewrite_echo(data, eth_src=self.nat.config.gateway_mac, eth_dst=next_hop_mac,
                             ident=session.external_port, ip_src=str(session.external_ip))
        if frame is None:
            return msgs + self.nat._drop("malformed")
        self.nat.ct.touch(session, OUTBOUND, now)
        msgs.append(flows.packet_out(self.nat.uplink, frame))
        return msgs

    def inbound(self, info: PacketInfo, data: bytes, now: float) -> list:
        """An echo reply to the NAT address reached the controller: deliver it."""
        session = self.nat.ct.lookup_inbound(ICMP, info.src, 0, info.dst, info.dport)
        if session is None:
            return self.nat._drop("unsolicited_icmp")
        host = self.nat.hosts.get(str(session.inside_ip))
        if host is None:
            return self.nat._drop("inbound_unresolved")
        frame = rewrite_echo(data, eth_src=self.nat.config.gateway_mac, eth_dst=host.mac,
                             ident=session.inside_port, ip_dst=str(session.inside_ip))
        if frame is None:
            return self.nat._drop("malformed")
        self.nat.ct.touch(session, INBOUND, now)
        return [flows.packet_out(host.port, frame)]

    def flow_gone(self, session: Session, rec: "FlowRecord") -> list:
        """One of the switch-path flows idled out: drop the pair; the next
        request comes to the controller and re-seats them."""
        remote = str(session.remote_ip)
        if self.owner.get(remote) == session.id:
            del self.owner[remote]
        if rec.installed:
            rec.ending = True
            return [flows.delete_session_flows(session.id)]
        self.nat.records.pop(session.id, None)
        return []

    def session_gone(self, session: Session) -> list:
        """An echo session ended (engine timer, operator): forget it."""
        remote = str(session.remote_ip)
        self.by_remote.get(remote, set()).discard(session.id)
        if not self.by_remote.get(remote):
            self.by_remote.pop(remote, None)
        msgs = self._unseat(remote) if self.owner.get(remote) == session.id else []
        rec = self.nat.records.get(session.id)
        if rec is not None and not rec.installed:
            self.nat.records.pop(session.id, None)
        return msgs

    def _unseat(self, remote: str) -> list:
        """Take the switch-path flows of ``remote`` out (controller path)."""
        sid = self.owner.pop(remote, None)
        rec = self.nat.records.get(sid) if sid is not None else None
        if rec is None or not rec.installed:
            if sid is not None:
                self.nat.records.pop(sid, None)
            return []
        rec.ending = True
        return [flows.delete_session_flows(sid)]

    def on_controller_path(self, session: Session) -> bool:
        return self.owner.get(str(session.remote_ip)) != session.id
