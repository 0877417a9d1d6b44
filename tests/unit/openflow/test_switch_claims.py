"""Which connection may speak for a datapath id: a dpid no profile names is
refused, and so is a second connection for a served switch while the first
answers an echo; a first one that stays silent is closed, and the claimant
gets in at its next try.  Judged through the Ryu shell with Ryu's own
message classes (only the datapath is fake)."""
from __future__ import annotations

import time

from ryu.controller import ofp_event
from ryu.ofproto import ofproto_v1_3_parser as parser

from helpers.ryu_shell import RecordingDatapath, snat_app
from ryu_app.openflow.switch_claims import Claim, SwitchClaims


def connect(app, dp: RecordingDatapath) -> None:
    assert app._switch_claim(dp, dp.id)
    app._switch_features(ofp_event.EventOFPSwitchFeatures(parser.OFPSwitchFeatures(dp)))


def echo_requests(dp: RecordingDatapath) -> list:
    return [m for m in dp.sent if isinstance(m, parser.OFPEchoRequest)]


def test_a_second_connection_is_refused_while_the_first_answers():
    with snat_app(external_port="1") as (app, _):
        real, rogue = RecordingDatapath(1), RecordingDatapath(1)
        connect(app, real)
        assert app._switch_claim(rogue, 1) is False
        assert len(echo_requests(real)) == 1, "the served connection is asked"
        assert app._switch_claim(rogue, 1) is False and len(echo_requests(real)) == 1
        app._echo_reply(ofp_event.EventOFPEchoReply(parser.OFPEchoReply(real)))
        app._close_silent(time.monotonic() + 10)
        assert real.is_active and app.datapaths[1] is real
        assert app.gateway.counters.drops["switch_duplicate"] == 2


def test_a_silent_first_connection_is_closed_and_the_claimant_gets_in():
    with snat_app(external_port="1") as (app, _):
        old, new = RecordingDatapath(1), RecordingDatapath(1)
        connect(app, old)
        assert app._switch_claim(new, 1) is False
        app._close_silent(time.monotonic() + 10)
        assert not old.is_active, "no answer: closed"
        assert app._switch_claim(new, 1) is True


def test_a_switch_no_profile_names_is_refused():
    with snat_app(external_port="1", dpid="0x1") as (app, _):
        assert app._switch_claim(RecordingDatapath(2), 2) is False
        assert app.gateway.counters.drops["switch_unnamed"] == 1


def test_without_a_dpid_the_first_switch_is_the_one_served():
    with snat_app(external_port="1") as (app, _):
        connect(app, RecordingDatapath(5))
        assert app._switch_claim(RecordingDatapath(1), 1) is False
        assert app.gateway.counters.drops["switch_unnamed"] == 1


def test_claims_bookkeeping():
    claims = SwitchClaims(lambda dpid: dpid == 1, grace=3)
    assert claims.claim(2, False, 0) == (Claim.UNNAMED, False)
    assert claims.claim(1, False, 0) == (Claim.ACCEPT, False)
    assert claims.claim(1, True, 0) == (Claim.DUPLICATE, True)
    assert claims.claim(1, True, 1) == (Claim.DUPLICATE, False), "asked once"
    assert claims.overdue(2) == [] and claims.overdue(4) == [1] and claims.overdue(9) == []
    claims.claim(1, True, 10)
    claims.answered(1)
    assert claims.overdue(20) == []
