"""Floods from outside at the defaults, from the hosts' side (real
ryu-manager, OVS meters, Mininet hosts; floods sent with scapy): a ping flood
at the NAT address does not starve next-hop ARP (each uplink class has its
own meter), and an RST flood into one mapping does not starve another
host's new connections (every copy for the controller is metered)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from helpers.peers import NETPROBE, Server, client
from helpers.system import assert_left_nothing
from lab import Lab

NAT_IP, O1, O2, O3 = "198.51.100.1", "198.51.100.10", "198.51.100.11", "198.51.100.12"
H1 = "10.0.0.11"
GATEWAY_MAC = "02:53:4e:41:54:01"


@pytest.fixture(scope="module")
def lab():
    # h2's connections stay CLOSING for 240 s and count against its quota:
    # raised, so that a fast machine's measures (several 2 s loops in one
    # module) never meet the quota instead of the flood.
    with Lab(inside=2, outside=3, nat_options={"max_connections_per_host": 60000}) as running:
        for host in ("h1", "h2"):      # o3 stays unknown to the gateway
            for server in (O1, O2):
                running.host(host).cmd(f"ping -c 1 -W 2 {server}")
        yield running
    assert_left_nothing(running)


def test_a_ping_flood_at_the_nat_address_leaves_arp_alone(lab):
    """o2 pings the NAT address as fast as scapy sends (far over the uplink
    port's packet-in rate) while h1 opens its first flow to o3, whose MAC the
    gateway must ask for: ARP has a meter of its own, so o3 is resolved and
    h1's datagrams answered during the flood."""
    h1, o2 = lab.host("h1"), lab.host("o2")
    flood = o2.popen([sys.executable, NETPROBE, "forge", "--iface", "o2-eth0", "--kind", "ping",
                      "--src", O2, "--to", NAT_IP, "--dst-mac", GATEWAY_MAC,
                      "--count", "5000000", "--interval", "0", "--seconds", "6"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    with Server(lab.host("o3"), "udp-server", 9990):
        result = client(h1, "udp-client", "--sport 49990", f"--to {O3}:9990", "--count 3",
                        "--interval 0.3")
    running = flood.poll() is None
    out, err = flood.communicate(timeout=30)
    sent = json.loads(out.strip().splitlines()[-1])["sent"]
    metered = lab.controller.get("/nat/stats")["packet_ins_metered"]
    print(f"o2 sent {sent} pings in 6 s; packet-ins the meters dropped: {metered}; "
          f"h1: {result}")
    assert running, "the flood must still run while h1 asks"
    assert sent > 6 * 3000, f"not a flood: {sent} pings"
    assert result["replies"] == {f"{O3}:9990": 3}, result


RATE = 60_000        # the RST flood: 60,000 a second


def flood(o2, kind: str, to: str) -> subprocess.Popen:
    return o2.popen([sys.executable, NETPROBE, "forge", "--iface", "o2-eth0", "--kind", kind,
                     "--src", O1, "--sport", "7900", "--to", to, "--dst-mac", GATEWAY_MAC,
                     "--count", "5000000", "--interval", "0", "--pps", str(RATE),
                     "--seconds", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)


def connect_rate_during(h2, flooder: subprocess.Popen) -> tuple[dict, int]:
    time.sleep(1)
    during = client(h2, "tcp-connect-loop", f"--to {O1}:7900", "--seconds 2")
    assert flooder.poll() is None, "the flood must still run while h2 connects"
    sent = json.loads(flooder.communicate(timeout=30)[0].strip().splitlines()[-1])["sent"]
    return during, sent


def test_an_rst_flood_from_outside_leaves_another_hosts_connections(lab):
    """o2 sends 60,000 RSTs a second in o1's name into h1's connection (each
    one a copy for the controller, as the switch sees it): every copy passes
    the uplink's meter, so h2 goes on opening connections to o1.  The anchor
    is the same flood of datagrams the switch drops by itself (no session,
    no controller), in the same run: what a flood that size costs this
    machine before any NAT work (the issue's report, before: 0-4% of the
    quiet rate, with 155,000-213,000 packet-ins in 8 s).  Each measure is
    2 s: h2's connections stay CLOSING for 240 s and count against its
    quota (raised for this module: see the fixture)."""
    h1, h2, o2 = lab.host("h1"), lab.host("h2"), lab.host("o2")
    with Server(lab.host("o1"), "tcp-server", 7900, seconds=60):
        quiet = client(h2, "tcp-connect-loop", f"--to {O1}:7900", "--seconds 2")
        talk = h1.popen([sys.executable, NETPROBE, "tcp-echo-loop", "--to", f"{O1}:7900",
                         "--sport", "47300", "--seconds", "16", "--interval", "0.2"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)
        [conn] = [c for c in lab.controller.get(f"/nat/connections?internal_ip={H1}")
                  if c["internal_port"] == 47300]
        before = lab.controller.get("/nat/stats")["packet_ins"]
        rst, rst_sent = connect_rate_during(
            h2, flood(o2, "rst-flood", f"{NAT_IP}:{conn['external_port']}"))
        punted = lab.controller.get("/nat/stats")["packet_ins"] - before
        anchor, anchor_sent = connect_rate_during(h2, flood(o2, "udp-flood", f"{NAT_IP}:9"))
        talk.communicate(timeout=30)
    print(f"h2: {quiet['rate']}/s quiet; {rst['rate']}/s during {rst_sent} RSTs in 5 s "
          f"({rst['rate'] / quiet['rate']:.2f}x, {punted} packet-ins); anchor "
          f"{anchor['rate']}/s during {anchor_sent} datagrams the switch drops "
          f"({anchor['rate'] / quiet['rate']:.2f}x)")
    assert rst_sent > 5 * RATE * 0.8 and anchor_sent > 5 * RATE * 0.8
    assert rst["failed"] == 0 and anchor["failed"] == 0, (rst, anchor)
    assert rst["rate"] >= 0.5 * anchor["rate"], "the copies cost h2 more than the flood itself"
