"""Two ryu-snat controllers on one bridge, the MASTER elected through Redis
(tooz): the SLAVE keeps a warm table from the switch's flows, and when the
MASTER is killed it takes over within 3 s, adopting every mapping, while a
TCP connection keeps echoing (real ryu-manager x2, redis-server, OVS, hosts)."""
from __future__ import annotations

import time

import pytest

from helpers.peers import Server, client
from helpers.system import assert_left_nothing
from lab import Lab, run, wait_for
from helpers.echo import EchoLoop, assert_echoed_throughout

O1 = "198.51.100.10"
FAILOVER_LIMIT = 3.0


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=2, outside=1, pair=True, nat_options={"stats_interval": 1}) as running:
        running.set_reconnect_backoff(1000)
        yield running
    assert_left_nothing(running)


def ovs_roles() -> dict[str, str]:
    """Each controller target of s1 and the role OVS gives it."""
    out = run("ovs-vsctl", "--timeout=5", "--columns=target,role", "--format=csv",
              "--data=bare", "--no-headings", "list", "Controller").stdout
    return dict(line.split(",", 1) for line in out.split() if "," in line)


def mappings(ctl) -> set[tuple]:
    return {(c["protocol"], c["internal_ip"], c["internal_port"], c["external_port"],
             c["remote_ip"], c["remote_port"], c["id"])
            for c in ctl.get("/nat/connections") if c["protocol"] != "icmp"}


def test_the_standby_takes_over_a_killed_master_and_loses_no_mapping(lab):
    master, standby = lab.controllers
    wait_for(lambda: standby.get("/nat/ha")["switches"].get("0000000000000001", {})
             .get("role") == "SLAVE", 15, what="the second controller SLAVE at s1")
    assert master.get("/nat/ha")["switches"]["0000000000000001"]["role"] == "MASTER"
    # OVS's own view (its Controller table is refreshed every few seconds).
    expected = {f"tcp:127.0.0.1:{master.of_port}": "master",
                f"tcp:127.0.0.1:{standby.of_port}": "slave"}
    wait_for(lambda: ovs_roles() == expected, 15, what=f"OVS to show {expected}")
    # The standby changes nothing: its REST writes are refused.
    status, body = standby.request("POST", "/nat/forwards", {
        "protocol": "udp", "external_port": 5300, "internal_ip": "10.0.0.12",
        "internal_port": 53})
    assert status == 503 and "standby" in body["error"], (status, body)

    with Server(lab.host("o1"), "udp-server", 9500):
        for sport in (46600, 46601, 46602):
            got = client(lab.host("h2"), "udp-client", f"--sport {sport}",
                         f"--to {O1}:9500", "--count 1")
            assert got["replies"] == {f"{O1}:9500": 1}, got
    with Server(lab.host("o1"), "tcp-server", 7500) as server:
        loop = EchoLoop(lab, 7500, 43700, seconds=12)
        wait_for(lambda: any(c["state"] == "ESTABLISHED" and c["internal_port"] == 43700
                             for c in master.get("/nat/connections?protocol=tcp")), 5,
                 what="the echo connection ESTABLISHED")
        before = mappings(master)
        assert len(before) == 4, before
        # The warm table: the standby lists the same mappings, read off the switch.
        wait_for(lambda: mappings(standby) == before, 10, what="the standby's warm table")

        master.proc.kill()                    # no goodbye: the lock must run out
        killed = time.time()
        wait_for(lambda: standby.get("/nat/ha")["takeovers"], 10, interval=0.05,
                 what="the standby to take s1 over")
        took = time.time() - killed
        after = mappings(standby)
        new = client(lab.host("h2"), "tcp-client", f"--to {O1}:7500", "--sport 43701")
        result = loop.result()
        peers = server.peers()

    assert took < FAILOVER_LIMIT, f"failover took {took:.2f} s"
    assert_echoed_throughout(result, killed, killed + took)
    assert before <= after, f"mappings lost: {before - after}"
    [takeover] = standby.get("/nat/ha")["takeovers"]
    assert takeover["adopted"] >= len(before) and takeover["warm_sessions"] == len(before)
    wait_for(lambda: ovs_roles().get(f"tcp:127.0.0.1:{standby.of_port}") == "master", 15,
             what="OVS to show the standby as master")
    assert new["connected"] and new["echoed"] == 1024, new
    ext_port = next(m[3] for m in before if m[2] == 43700)
    assert ("198.51.100.1", ext_port) in peers and len(peers) == 2, peers
    assert "taken over" in standby.log()
