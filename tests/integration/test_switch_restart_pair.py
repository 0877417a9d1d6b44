"""A controller pair through an ovs-vswitchd crash: the MASTER puts its
sessions back into the switch, with their ports, while h1's TCP connection
echoes (real ryu-manager x2, redis-server, OVS, hosts)."""
from __future__ import annotations

from helpers.system import assert_left_nothing
from lab import Lab, wait_for
from helpers.ovs_restart import crash_vswitchd, echo_through


def test_a_controller_pairs_master_puts_the_sessions_back():
    """The switch reconnects to both; the leader is MASTER again and puts back."""
    with Lab(inside=2, outside=1, pair=True, nat_options={"stats_interval": 1}) as pair:
        pair.set_reconnect_backoff(1000)
        master, standby = pair.controllers
        wait_for(lambda: standby.get("/nat/ha")["switches"].get("0000000000000001", {})
                 .get("role") == "SLAVE", 15, what="the second controller SLAVE at s1")
        echo_through(pair, master, 43702, crash_vswitchd)
        assert master.get("/nat/ha")["switches"]["0000000000000001"]["role"] == "MASTER"
    assert_left_nothing(pair)
