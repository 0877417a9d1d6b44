"""Subscribers cannot touch each other, from the hosts' side (real
ryu-manager, OVS, Mininet hosts; forged frames built with scapy): h2 forging
h1's address (with its own MAC and with h1's) neither takes h1's return
traffic nor resets its connection nor spends its quota, and an outside host
cannot move the gateway's next hop with gratuitous ARP or forged sources."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.peers import NETPROBE, Capture, Server, client
from helpers.system import assert_left_nothing
from lab import Lab

NAT_IP, O1, O2 = "198.51.100.1", "198.51.100.10", "198.51.100.11"
H1, H2 = "10.0.0.11", "10.0.0.12"
GATEWAY_MAC = "02:53:4e:41:54:01"
QUOTA = 40


@pytest.fixture(scope="module")
def lab():
    options = {"stats_interval": 2, "max_connections_per_host": QUOTA,
               "forwards": "udp:5300=10.0.0.12:5300"}
    with Lab(inside=2, outside=2, nat_options=options) as running:
        for host in ("h1", "h2"):
            for server in (O1, O2):
                running.host(host).cmd(f"ping -c 1 -W 2 {server}")
        yield running
    assert_left_nothing(running)


def forge(host, *args: str) -> dict:
    return client(host, "forge", f"--iface {host.name}-eth0", *args)


def stats_after_a_poll(lab) -> dict:
    time.sleep(2.5)                         # stats_interval 2: the drop rules' counts are in
    return lab.controller.get("/nat/stats")


@pytest.mark.parametrize("as_mac", ["own", "h1s"])
def test_h2_forging_h1s_address_takes_nothing_from_h1(lab, as_mac):
    """h1 keeps an echo conversation with o1; h2 sends UDP and TCP RSTs on
    h1's very 5-tuple with h1's source address, and claims it by ARP.  h1's
    conversation never stalls, h2 sees none of h1's packets, the session
    stays established on h1's port."""
    h1, h2 = lab.host("h1"), lab.host("h2")
    sport = 47100 if as_mac == "own" else 47101
    mac = ["--src-mac", h1.MAC()] if as_mac == "h1s" else []
    before = lab.controller.get("/nat/stats")
    with Server(lab.host("o1"), "tcp-server", 7600, seconds=30):
        talk = h1.popen([sys.executable, NETPROBE, "tcp-echo-loop", "--to", f"{O1}:7600",
                         "--sport", str(sport), "--seconds", "6", "--interval", "0.05"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        with Capture(h2, f"dst host {H1} and tcp port 7600", seconds=4) as seen:
            forge(h2, "--kind udp", f"--src {H1}", *mac, f"--to {O1}:7600",
                  f"--dst-mac {GATEWAY_MAC}", f"--sport {sport}", "--count 5")
            forge(h2, "--kind rst", f"--src {H1}", *mac, f"--to {O1}:7600",
                  f"--dst-mac {GATEWAY_MAC}", f"--sport {sport}", "--count 5")
            forge(h2, "--kind arp-request", f"--src {H1}", *mac, "--to 10.0.0.1",
                  f"--dst-mac {GATEWAY_MAC}", "--count 3", "--interval 0.3")
        out, err = talk.communicate(timeout=30)
    echoed = json.loads(out.strip().splitlines()[-1])
    assert echoed["error"] is None and len(echoed["echoes"]) > 40, (echoed, err)
    gaps = [b - a for a, b in zip(echoed["echoes"], echoed["echoes"][1:])]
    assert max(gaps) < 0.5, f"h1's conversation stalled for {max(gaps):.2f} s"
    assert seen.lines == [], f"h2 received h1's traffic: {seen.lines[:5]}"
    [conn] = [c for c in lab.controller.get(f"/nat/connections?internal_ip={H1}")
              if c["internal_port"] == sport]
    assert conn["state"] == "ESTABLISHED", conn
    after = stats_after_a_poll(lab)
    forged = after["switch_drops"].get("source_guard", 0) - \
        before["switch_drops"].get("source_guard", 0)
    if as_mac == "own":
        assert forged >= 10, after["switch_drops"]
    assert after["drops"].get("source_guard_arp", 0) > before["drops"].get("source_guard_arp", 0)
    assert after["hosts_moved"] == 0


def test_forged_flows_cannot_spend_another_hosts_quota(lab):
    """h2 opens 3x h1's quota of UDP flows in h1's name: none become
    sessions; h1's own new flows all get through."""
    h1, h2 = lab.host("h1"), lab.host("h2")
    forge(h2, "--kind udp", f"--src {H1}", f"--to {O2}:20000", f"--dst-mac {GATEWAY_MAC}",
          "--sport 41000", f"--count {3 * QUOTA}", "--interval 0.002")
    with Server(lab.host("o2"), "udp-server", 9800):
        results = [client(h1, "udp-client", f"--sport {49500 + i}", f"--to {O2}:9800",
                          "--count 1") for i in range(5)]
    assert all(r["replies"] == {f"{O2}:9800": 1} for r in results), results
    mine = lab.controller.get(f"/nat/connections?internal_ip={H1}&limit=1000")
    assert not [c for c in mine if c["internal_port"] == 41000], "no session in h1's name"
    assert lab.controller.get("/nat/stats")["drops"].get("host_quota", 0) == 0


def test_an_outside_host_cannot_move_a_next_hop(lab):
    """o2 claims o1's address: a gratuitous ARP reply, an ARP request, and a
    datagram to a forward with o1's source and o2's MAC.  h1's new flow to
    o1 still reaches o1, and o2 sees none of it."""
    h1, o2 = lab.host("h1"), lab.host("o2")
    before = lab.controller.get("/nat/stats")["drops"].get("arp_unsolicited", 0)
    forge(o2, "--kind arp-reply", f"--src {O1}", f"--to {NAT_IP}", f"--dst-mac {GATEWAY_MAC}",
          "--count 3")
    forge(o2, "--kind arp-request", f"--src {O1}", f"--to {NAT_IP}",
          f"--dst-mac {GATEWAY_MAC}", "--count 3")
    forge(o2, "--kind udp", f"--src {O1}", f"--to {NAT_IP}:5300", f"--dst-mac {GATEWAY_MAC}",
          "--count 1")
    with Server(lab.host("o1"), "udp-server", 9900) as server, \
            Capture(o2, f"dst host {O1} and udp port 9900", seconds=4) as seen:
        result = client(h1, "udp-client", "--sport 49900", f"--to {O1}:9900", "--count 3")
        events = server.events()
    assert result["replies"] == {f"{O1}:9900": 3}, result
    assert len(events) == 3 and seen.lines == [], seen.lines
    after = lab.controller.get("/nat/stats")["drops"].get("arp_unsolicited", 0)
    assert after - before >= 6


def test_an_out_of_window_rst_from_outside_ends_nothing(lab):
    """o2 forges o1's RST (a wrong sequence number) into h1's connection:
    the session may drop to the transitory timeout (RFC 7857 s2.2) but h1's
    kernel ignores the RST, the conversation goes on, and once packets flow
    both ways again the session is established again; it never ends."""
    h1, o2 = lab.host("h1"), lab.host("o2")
    with Server(lab.host("o1"), "tcp-server", 7700, seconds=30):
        talk = h1.popen([sys.executable, NETPROBE, "tcp-echo-loop", "--to", f"{O1}:7700",
                         "--sport", "47200", "--seconds", "9", "--interval", "0.05"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)                        # established, seen by a poll
        [conn] = [c for c in lab.controller.get(f"/nat/connections?internal_ip={H1}")
                  if c["internal_port"] == 47200]
        assert conn["state"] == "ESTABLISHED", conn
        forge(o2, "--kind rst", f"--src {O1}", f"--to {NAT_IP}:{conn['external_port']}",
              f"--dst-mac {GATEWAY_MAC}", "--sport 7700", "--count 3")
        states = []
        while talk.poll() is None:
            states += [c["state"] for c in lab.controller.get(
                f"/nat/connections?internal_ip={H1}") if c["internal_port"] == 47200] or ["gone"]
            time.sleep(0.5)
        out, err = talk.communicate(timeout=30)
    echoed = json.loads(out.strip().splitlines()[-1])
    print(f"session states while the forged RSTs passed: {states}")
    assert echoed["error"] is None and len(echoed["echoes"]) > 60, (echoed, err)
    assert "gone" not in states, states
    assert states[-1] == "ESTABLISHED", f"not established again: {states}"


def test_a_second_connection_claiming_the_switch_is_refused(lab):
    """A process that reaches the OpenFlow listener and says it is s1
    (dpid 1) is closed at its features reply; s1 goes on being served."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import ofswitch
    rogue = ofswitch.FakeSwitch(port=lab.controller.of_port, dpid=1)
    with pytest.raises(ConnectionError):
        rogue.connect(timeout=8)
    rogue.close()
    with Server(lab.host("o1"), "udp-server", 9950):
        result = client(lab.host("h1"), "udp-client", "--sport 49950", f"--to {O1}:9950",
                        "--count 3")
    assert result["replies"] == {f"{O1}:9950": 3}, result
    stats = lab.controller.get("/nat/stats")
    assert stats["drops"].get("switch_duplicate", 0) >= 1 and stats["switches_connected"] == 1


def test_an_address_that_really_moves_follows_its_new_host(lab):
    """Failover: 10.0.0.50 lives on h1, then moves to h2, which announces it
    with a gratuitous ARP.  While h1 still has it, h1 answers the gateway's
    probe and h2's claim is refused (its pings from it go nowhere); once h1
    has let it go, h1's place stays silent, h2 answers, and the address is
    bound to h2's port: h2's pings from it are answered."""
    h1, h2 = lab.host("h1"), lab.host("h2")
    vip = "10.0.0.50"
    before = lab.controller.get("/nat/stats")["hosts_moved"]

    def announce() -> None:
        forge(h2, "--kind arp-request", f"--src {vip}", f"--to {vip}",
              f"--dst-mac {GATEWAY_MAC}", "--count 1")
        time.sleep(3)                    # two probes, a second apart, then the verdict

    h1.cmd(f"ip addr add {vip}/24 dev h1-eth0")
    assert "3 received" in h1.cmd(f"ping -c 3 -i 0.2 -W 2 -I {vip} {O1}")
    h2.cmd(f"ip addr add {vip}/24 dev h2-eth0")
    try:
        announce()
        assert " 0 received" in h2.cmd(f"ping -c 2 -i 0.2 -W 1 -I {vip} {O1}"), \
            "h1 still has it: h2's claim must be refused"
        h1.cmd(f"ip addr del {vip}/24 dev h1-eth0")
        announce()
        out = h2.cmd(f"ping -c 3 -i 0.2 -W 2 -I {vip} {O1}")
        assert "3 received" in out, out
        assert lab.controller.get("/nat/stats")["hosts_moved"] == before + 1
    finally:
        h1.cmd(f"ip addr del {vip}/24 dev h1-eth0 2>/dev/null")
        h2.cmd(f"ip addr del {vip}/24 dev h2-eth0")
