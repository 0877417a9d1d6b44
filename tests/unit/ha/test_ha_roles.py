"""A controller pair's parts without Mininet: the OpenFlow role decisions
(Ryu's own message classes) and the election through a real redis-server."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_app.openflow import flows

from ryu_app.ha import roles
from ryu_app.ha.election import Election

MASTER, SLAVE, EQUAL = ofp.OFPCR_ROLE_MASTER, ofp.OFPCR_ROLE_SLAVE, ofp.OFPCR_ROLE_EQUAL


def claims(msgs) -> list[tuple[int, int]]:
    return [(m.role, m.generation_id) for m in msgs]


def test_the_leader_claims_master_with_the_next_generation():
    r = roles.SwitchRoles()
    r.lead(True, 0.0)
    assert claims(r.connected(1, 0.0)) == [(ofp.OFPCR_ROLE_NOCHANGE, 0)]
    change = r.reply(1, EQUAL, 41, 0.1)
    assert claims(change.msgs) == [(MASTER, 42)] and change.became is None
    change = r.reply(1, MASTER, 42, 0.2)
    assert change.msgs == [] and change.became is roles.Role.MASTER and r.is_master(1)
    assert r.reply(1, MASTER, 42, 0.3).became is None     # no second takeover


def test_the_generation_wraps_and_a_standby_claims_slave_without_a_new_one():
    r = roles.SwitchRoles()
    r.connected(1, 0.0)
    assert claims(r.reply(1, EQUAL, 2 ** 64 - 1, 0.1).msgs) == [(SLAVE, 2 ** 64 - 1)]
    r.lead(True, 0.2)
    assert claims(r.reply(1, SLAVE, 2 ** 64 - 1, 0.3).msgs) == [(MASTER, 0)]


def test_losing_leadership_asks_at_once_then_steps_down():
    r = roles.SwitchRoles(retry=1.0)
    r.lead(True, 0.0)
    r.connected(1, 0.0)
    r.reply(1, EQUAL, 0, 0.0)
    r.reply(1, MASTER, 1, 0.0)
    asked = r.lead(False, 0.1)                  # changed: no waiting for the retry
    assert list(asked) == [1] and claims(asked[1]) == [(ofp.OFPCR_ROLE_NOCHANGE, 0)]
    assert r.lead(False, 0.5) == {}             # asked 0.4 s ago
    change = r.reply(1, MASTER, 1, 0.6)
    assert claims(change.msgs) == [(SLAVE, 1)]
    assert r.reply(1, SLAVE, 1, 0.7).became is roles.Role.SLAVE and not r.is_master(1)


def test_a_refused_claim_or_a_slave_error_means_asking_again():
    r = roles.SwitchRoles()
    r.lead(True, 0.0)
    r.connected(1, 0.0)
    assert claims(r.refused(1, 1.0)) == [(ofp.OFPCR_ROLE_NOCHANGE, 0)]
    r.reply(1, MASTER, 5, 1.1)
    assert claims(r.demoted(1, 2.0)) == [(ofp.OFPCR_ROLE_NOCHANGE, 0)]
    assert not r.is_master(1)
    assert r.refused(9, 2.0) == [] and r.demoted(9, 2.0) == []


def test_only_reads_and_role_claims_leave_a_controller_that_is_not_master():
    msgs = [flows.table_miss(), flows.flow_stats_request(), flows.port_desc_request(),
            roles.query(), flows.barrier(), flows.meter_stats_request(),
            parser.OFPPacketOut(None, 0xffffffff, ofp.OFPP_CONTROLLER, [], b"")]
    kept = roles.writable(msgs, master=False)
    assert [type(m).__name__ for m in kept] == [
        "OFPFlowStatsRequest", "OFPPortDescStatsRequest", "OFPRoleRequest",
        "OFPBarrierRequest", "OFPMeterStatsRequest"]
    assert roles.writable(msgs, master=True) == msgs


# -- the election, through a real Redis --------------------------------------------
@pytest.fixture
def redis_url():
    from localports import free_tcp_port, port_open
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server missing: run scripts/setup.sh")
    port = free_tcp_port()
    proc = subprocess.Popen([exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not port_open(port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_one_leader_and_the_other_takes_over_when_its_lease_runs_out(redis_url):
    redis_url, _proc = redis_url
    a, b = (Election(redis_url, "unit", 1, member) for member in ("a", "b"))
    a.start(), b.start()
    assert a.step() and a.leader
    for _ in range(6):                   # renewed: the lease never runs out
        time.sleep(0.25)
        a.step(), b.step()
        assert a.leader and not b.leader
    silent = time.monotonic()            # a stops renewing (a dead process)
    while not b.step():
        assert time.monotonic() - silent < 3, "b never took the lock"
        time.sleep(0.05)
    assert b.leader and 0.5 < time.monotonic() - silent < 2.0
    assert a.step() and not a.leader     # a sees it lost, and stays down
    b.stop()                             # a clean stop hands over at once
    assert a.step() and a.leader
    a.stop()


def test_an_unreachable_engine_keeps_the_role_and_counts(redis_url):
    url, proc = redis_url
    began = time.monotonic()
    with pytest.raises(Exception):        # nothing listens on port 1
        Election(url.rsplit(":", 1)[0] + ":1", "unit", 1, "a").start()
    assert time.monotonic() - began < 2, "a refused engine must fail fast"
    b = Election(url, "unit", 1, "b")
    b.start()
    b.step()
    proc.terminate()
    proc.wait(timeout=10)                 # the engine goes away
    began = time.monotonic()
    assert not b.step() and b.leader and b.engine_errors == 1 and not b.engine_reachable
    assert time.monotonic() - began < 1, "a step must not block the hub"
