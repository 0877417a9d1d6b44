"""Nothing lost when Open vSwitch restarts: ovs-vswitchd goes (a crash, or
``ovs-ctl restart`` as an upgrade does) while h1's TCP connection echoes
through the gateway; the controller puts the session's flows back with the
same external port, and the echoes resume within 2 s of the switch's
return (real ryu-manager, OVS, hosts; a controller pair too)."""
from __future__ import annotations

import pytest

from helpers.ovs_restart import crash_vswitchd, echo_through, restart_vswitchd
from helpers.system import assert_left_nothing
from lab import Lab


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=2, outside=1, nat_options={"stats_interval": 1}) as running:
        running.set_reconnect_backoff(1000)
        yield running
    assert_left_nothing(running)


def test_a_crashed_switch_gets_its_sessions_back_with_their_ports(lab):
    echo_through(lab, lab.controller, 43700, crash_vswitchd)
    assert lab.controller.get("/nat/stats")["sessions_put_back"] >= 1


def test_an_ovs_restart_keeps_every_session_and_its_port(lab):
    echo_through(lab, lab.controller, 43701, restart_vswitchd)

