"""ryu.app.ofctl_rest can dump a table whose TCP session flows carry fin_timeout."""
from __future__ import annotations

from types import SimpleNamespace

from ryu.lib import ofctl_v1_3
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_app.openflow import flow_encoding

from ryu_app.openflow import ofctl_compat
from ryu_app.openflow.flows import CookieKind, SessionFlowSpec

DATAPATH = SimpleNamespace(ofproto=ofp, ofproto_parser=parser)


def test_a_tcp_session_flow_dumps_as_ofctl_rest_shows_it():
    ofctl_compat.install()
    ofctl_compat.install()                      # idempotent
    path = SessionFlowSpec(3, 6, "10.0.0.11", 40000, "198.51.100.1", 40000, "198.51.100.10", 80,
                       "00:00:00:00:00:01", 2, "00:00:00:00:00:10", 1, "02:53:4e:41:54:01",
                       7440, closing_timeout=240)
    mod = flow_encoding.session_flow(path, CookieKind.SESSION_OUT).decode()
    stats = parser.OFPFlowStats(table_id=0, duration_sec=1, duration_nsec=0, priority=1000,
                                idle_timeout=7440, hard_timeout=0, flags=1, cookie=mod.cookie,
                                packet_count=3, byte_count=200, match=mod.match,
                                instructions=mod.instructions)
    actions = ofctl_v1_3.actions_to_str(stats.instructions)
    assert actions[0] == "NX_FIN_TIMEOUT: {fin_idle_timeout: 240, fin_hard_timeout: 0}"
    assert "OUTPUT:1" in actions and "GOTO_TABLE:1" in actions
