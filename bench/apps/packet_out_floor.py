"""The framework floor: a Ryu app that answers each PACKET_IN with one
PACKET_OUT of the same frame, and does nothing else.

Why: no controller app can set up a session faster than Ryu can deliver a
packet-in to it and send one message back.  ``bench/setup_rate.py`` runs it
under the same stock ``ryu-manager`` as ryu-snat, so ryu-snat's rate reads
as a share of what the framework allows.  Built with Ryu's own parser, as a
stock app would be.

    ryu-manager bench/apps/packet_out_floor.py
"""
from __future__ import annotations

from typing import Any

from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import MAIN_DISPATCHER, set_ev_cls
from ryu.ofproto import ofproto_v1_3

UPLINK = 1


class PacketOutFloor(app_manager.RyuApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        parser, ofp = dp.ofproto_parser, dp.ofproto
        dp.send_msg(parser.OFPPacketOut(
            dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=msg.match["in_port"],
            actions=[parser.OFPActionOutput(UPLINK, 0)], data=msg.data))
