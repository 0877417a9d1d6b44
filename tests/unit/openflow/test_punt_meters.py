"""The ports' packet-in meters follow the controller's load: untouched
while it keeps up; behind, a port sending far more than the busiest other
inside port is cut to that port's rate and stays there while it floods and
others are busy; released once it sends less or is alone."""
from __future__ import annotations

from ryu_app.openflow.punt_meters import PuntMeters

UPLINK, H1, H2, H3, H4 = (1, 1), (1, 2), (1, 3), (1, 4), (1, 5)


def interval(meters: PuntMeters, sent: dict, handled: int, queued: int = 0,
             dropped: int = 0) -> dict:
    """Half a second: packet-ins per port (capped by each port's rate, as
    its meter would), what the controller handled, queued and dropped."""
    for port, n in sent.items():
        for _ in range(min(n, meters.rate(port) // 2 + 1)):
            meters.seen(port)
    return meters.tick(handled, queued, dropped, 0.5, uplinks={UPLINK})


def test_nothing_changes_while_the_controller_keeps_up():
    """Work-conserving: a port alone, or a port far busier than the rest,
    is not throttled as long as every packet-in is handled as it comes."""
    m = PuntMeters(5000)
    for _ in range(10):
        assert interval(m, {H1: 2000}, handled=2000) == {}
        assert interval(m, {H1: 2000, H2: 10}, handled=2010) == {}
    assert m.rate(H1) == 5000


def test_a_port_alone_is_cut_only_when_packet_ins_are_dropped():
    m = PuntMeters(5000)
    assert interval(m, {H1: 1500, UPLINK: 300}, handled=1500, queued=900) == {}, \
        "the uplink's packet-ins are no other host to share with"
    assert interval(m, {H1: 1500}, handled=1000, queued=900, dropped=400) == {H1: 1800}


def test_a_port_alone_is_not_cut_for_drops_it_did_not_cause():
    """A flooder stopped and its backlog ages out of the queue (drops):
    the host still opening connections, alone now and sending less than
    the controller handles, keeps its rate."""
    m = PuntMeters(3000)
    interval(m, {H1: 150, H2: 1400}, handled=1000, queued=800)
    assert interval(m, {H1: 150}, handled=1000, queued=700, dropped=500) == {}
    assert m.rate(H1) == 3000


def flood(m: PuntMeters, sent: dict, **load) -> dict:
    """Two intervals alike: a port is cut once it dominated two running."""
    assert interval(m, sent, **load) == {}, "one interval is not enough"
    return interval(m, sent, **load)


def test_behind_a_flooding_port_is_cut_to_the_busiest_other_inside_ports_rate():
    m = PuntMeters(3000)
    changes = flood(m, {H1: 300, H2: 1400, H3: 100, UPLINK: 450}, handled=1000, queued=800)
    assert changes == {H2: 600} and m.rate(H1) == 3000


def test_the_tail_of_a_shared_burst_cuts_nobody():
    """Four hosts opening connections together finish at different
    moments: the last one sends far more than the others for an interval,
    then is alone.  It is not cut."""
    m = PuntMeters(3000)
    interval(m, {H1: 400, H2: 420, H3: 390, H4: 410}, handled=1000, queued=600)
    assert interval(m, {H1: 400, H2: 60, H3: 30}, handled=500, queued=200) == {}
    assert interval(m, {H1: 400}, handled=400, queued=100) == {}
    assert m.rate(H1) == 3000


def test_a_port_held_to_anothers_rate_is_released_at_once_when_that_one_is_done():
    m = PuntMeters(3000)
    flood(m, {H1: 300, H2: 1400}, handled=1000, queued=800)
    assert interval(m, {H2: 300}, handled=300) == {H2: 3000}, \
        "nobody else wants the controller and it keeps up"


def test_the_cut_holds_while_it_floods_and_others_are_busy_and_never_turns_on_them():
    m = PuntMeters(3000)
    flood(m, {H1: 300, H2: 1400}, handled=1000, queued=800)
    for _ in range(10):
        assert interval(m, {H1: 300, H2: 5000}, handled=600, queued=300) == {}
    assert (m.rate(H1), m.rate(H2)) == (3000, 600), "h1 is never held to h2's cut rate"


def test_the_cut_port_climbs_back_once_alone_or_quiet():
    m = PuntMeters(3000)
    flood(m, {H1: 300, H2: 1400}, handled=1000, queued=800)
    rates = [m.rate(H2)]
    for _ in range(12):
        interval(m, {H2: 5000}, handled=1000, queued=500)     # h1 is done: h2 alone
        rates.append(m.rate(H2))
    assert rates == sorted(rates) and rates[-1] == 3000 and H2 not in m.rates, \
        "step by step while the controller is behind"
    flood(m, {H1: 300, H2: 1400}, handled=1000, queued=800)
    assert interval(m, {H1: 300, H2: 50}, handled=350) == {H2: 750}, "it stopped flooding"


def test_ports_sending_alike_share_without_cuts():
    m = PuntMeters(3000)
    assert interval(m, {H1: 400, H2: 420, H3: 390, H4: 410}, handled=1000, queued=600,
                    dropped=620) == {}


def test_no_meters_no_rates():
    assert interval(PuntMeters(0), {H1: 10_000, H2: 1}, handled=10, queued=9_000,
                    dropped=5000) == {}


def test_nobody_climbs_back_while_packet_ins_are_dropped():
    m = PuntMeters(3000)
    interval(m, {H2: 5000}, handled=1000, queued=900, dropped=600)
    assert m.rate(H2) == 1800
    assert interval(m, {H2: 5000}, handled=800, queued=900, dropped=300) == {H2: 1440}


def test_a_port_that_overloaded_the_controller_alone_climbs_back_step_by_step():
    m = PuntMeters(3000)
    interval(m, {H2: 5000}, handled=1000, queued=900, dropped=600)
    assert interval(m, {H2: 5000}, handled=900) == {H2: 2250}
