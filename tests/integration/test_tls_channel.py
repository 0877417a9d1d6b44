"""OpenFlow over TLS: certificates made here, OVS's set-ssl, Ryu's
--ctl-privkey/--ctl-cert/--ca-certs; a plain-TCP switch is refused."""
from __future__ import annotations

import time

import pytest

from helpers.system import assert_left_nothing
from lab import Lab, run, wait_for


@pytest.fixture(scope="module")
def tls_lab():
    with Lab(inside=2, outside=1, tls=True) as running:
        yield running
    assert_left_nothing(running)
    assert run("ovs-vsctl", "get-ssl").stdout.strip() == "", "set-ssl left behind"


def test_the_switch_reaches_the_controller_over_tls(tls_lab):
    target = run("ovs-vsctl", "get-controller", "s1").stdout.split()
    assert target == [f"ssl:127.0.0.1:{tls_lab.controller.of_port}"], target
    uuid = tls_lab._controller_records("s1")[0]
    # OVS refreshes its Controller table's status every few seconds.
    wait_for(lambda: run("ovs-vsctl", "get", "Controller", uuid,
                         "is_connected").stdout.strip() == "true", 15,
             what="OVS to show the controller connected")
    assert tls_lab.controller.get("/nat/stats")["switches_connected"] == 1


def test_a_connection_through_the_gateway_over_the_tls_channel(tls_lab):
    """The first packet of each session is a packet-in over TLS."""
    out = tls_lab.host("h1").cmd("ping -c 3 -i 0.2 -W 2 198.51.100.10")
    assert "3 received" in out, out
    sessions = tls_lab.controller.get("/nat/connections")
    assert any(s.get("internal_ip") == "10.0.0.11" for s in _entries(sessions)), sessions


def test_a_plain_tcp_switch_is_refused_and_the_tls_one_still_served(tls_lab):
    port = tls_lab.controller.of_port
    failed = tls_lab.controller.log().count("TLS handshake with")   # the lab's own probes
    run("ovs-vsctl", "--timeout=5", "add-br", "s3", "--", "set", "Bridge", "s3",
        "datapath_type=netdev", "other-config:datapath-id=00000000000000ee",
        "protocols=OpenFlow13",
        "fail-mode=secure", "--", "set-controller", "s3", f"tcp:127.0.0.1:{port}")
    try:
        wait_for(lambda: tls_lab.controller.log().count("TLS handshake with") > failed, 10,
                 what="the plain-TCP switch's handshake to fail")
        time.sleep(1)
        uuid = run("ovs-vsctl", "get", "Bridge", "s3", "controller").stdout.strip("[]\n ")
        assert run("ovs-vsctl", "get", "Controller", uuid,
                   "is_connected").stdout.strip() == "false"
        assert tls_lab.controller.get("/nat/stats")["switches_connected"] == 1
    finally:
        run("ovs-vsctl", "--timeout=5", "--if-exists", "del-br", "s3", check=False)
    # Later TLS connections still work (Ryu 4.34's own listener broke after
    # its first one): h2's first packet is a packet-in, answered.
    out = tls_lab.host("h2").cmd("ping -c 2 -i 0.2 -W 2 198.51.100.10")
    assert "2 received" in out, out
    assert "Traceback" not in tls_lab.controller.log()


def _entries(body):
    return body.get("connections", body) if isinstance(body, dict) else body
