"""Inside hosts map their own ports (RFC 6888 REQ-9): NAT-PMP with Debian's
``natpmpc`` (libnatpmp), PCP MAP and PEER with a client written from RFC
6887 (``helpers/pcp_client.py``), real servers reached from outside, and
hostile requests; against the real ryu-manager, OVS and Mininet."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.peers import Capture, Server, client
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

NAT_IP, GW = "198.51.100.1", "10.0.0.1"
O1, O2 = "198.51.100.10", "198.51.100.11"
H1, H2, H3 = "10.0.0.11", "10.0.0.12", "10.0.0.13"
PCP = str(Path(__file__).parents[1] / "helpers" / "pcp_client.py")
SNATCTL = str(Path(sys.executable).parent / "snatctl")
NONCE = "0102030405060708090a0b0c"


@pytest.fixture(scope="module")
def lab():
    options = {"stats_interval": 2, "port_control_min_lifetime": 2, "port_control_rate": 5}
    with Lab(inside=3, outside=2, nat_options=options) as running:
        yield running
    assert_left_nothing(running)


def pcp(host, *args: str) -> dict:
    out = host.cmd(f"timeout 20 {sys.executable} {PCP} --server {GW} " + " ".join(args))
    return json.loads(out.strip().splitlines()[-1])


def snatctl(lab, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SNATCTL_URL": f"http://127.0.0.1:{lab.controller.rest_port}"}
    return subprocess.run([SNATCTL, *args], capture_output=True, text=True, env=env, timeout=30)


def mappings(lab) -> list[dict]:
    return lab.controller.get("/nat/port-mappings")


def reaches(lab, outside: str, port: int, inside: str, inside_port: int) -> bool:
    """A TCP connection from ``outside`` to the NAT address ``port`` ends at
    the inside host's server (and echoes)."""
    with Server(lab.host(inside), "tcp-server", inside_port) as server:
        result = client(lab.host(outside), "tcp-client", f"--to {NAT_IP}:{port}", "--send 2000")
        peers = server.peers()
    return bool(result["connected"] and result["echoed"] == 2000 and peers)


def test_natpmpc_maps_a_port_and_an_outside_host_reaches_the_server(lab):
    h1 = lab.host("h1")
    out = h1.cmd(f"timeout 20 natpmpc -g {GW} -a 8080 80 tcp 3600")
    assert f"Public IP address : {NAT_IP}" in out, out
    assert "Mapped public port 8080 protocol TCP to local port 80" in out, out   # natpmpc: "liftime"
    [row] = [m for m in mappings(lab) if m["internal_ip"] == H1]
    assert (row["protocol"], row["internal_port"], row["external_ip"], row["external_port"],
            row["origin"], row["lifetime"]) == ("tcp", 80, NAT_IP, 8080, "natpmp", 3600)
    assert reaches(lab, "o1", 8080, "h1", 80)
    sessions = lab.controller.get(f"/nat/connections?internal_ip={H1}&protocol=tcp")
    assert any(c["inbound_initiated"] and c["remote_ip"] == O1 and c["external_port"] == 8080
               for c in sessions), sessions
    wait_for(lambda: re.search(r"port mapping created: tcp 10\.0\.0\.11:80 -> 198\.51\.100\.1"
                               r":8080 lifetime 3600 \(natpmp\)", lab.controller.log()), 5,
             what="the mapping in the mapping log")

    # UDP 8080 is kept for h1 while it holds TCP 8080 (RFC 6886 s3.3).
    h2 = lab.host("h2")
    other = h2.cmd(f"timeout 20 natpmpc -g {GW} -a 8080 53 udp 600")
    found = re.search(r"Mapped public port (\d+) protocol UDP to local port 53", other)
    assert found and int(found.group(1)) != 8080, other
    h2.cmd(f"timeout 20 natpmpc -g {GW} -a 0 53 udp 0")

    out = h1.cmd(f"timeout 20 natpmpc -g {GW} -a 8080 80 tcp 0")
    assert "Mapped public port 0 protocol TCP to local port 80" in out, out   # deleted
    assert not [m for m in mappings(lab) if m["internal_ip"] == H1]
    assert not reaches(lab, "o2", 8080, "h1", 80)


def test_pcp_map_answer_field_by_field_renewal_and_delete(lab):
    h2 = lab.host("h2")
    first = pcp(h2, "map", "--proto 17 --iport 5000 --eport 15000 --lifetime 600",
                f"--nonce {NONCE}")
    assert {k: first[k] for k in ("version", "response", "opcode", "result", "lifetime",
                                  "nonce", "protocol", "internal_port", "external_port",
                                  "external_ip", "size")} == {
        "version": 2, "response": True, "opcode": 1, "result": 0, "lifetime": 600,
        "nonce": NONCE, "protocol": 17, "internal_port": 5000, "external_port": 15000,
        "external_ip": NAT_IP, "size": 60}
    with Server(h2, "udp-server", 5000) as server:
        got = client(lab.host("o1"), "udp-client", "--sport 46000", f"--to {NAT_IP}:15000",
                     "--count 2")
        assert got["replies"] == {f"{NAT_IP}:15000": 2}, got
        assert server.peers() == {(O1, 46000)}

    renewed = pcp(h2, "map", "--proto 17 --iport 5000 --lifetime 1200", f"--nonce {NONCE}")
    assert (renewed["result"], renewed["external_port"], renewed["lifetime"]) == (0, 15000, 1200)
    assert renewed["epoch"] >= first["epoch"]
    stolen = pcp(h2, "map", "--proto 17 --iport 5000 --lifetime 1200",
                 "--nonce ffffffffffffffffffffffff")
    assert stolen["result"] == 2                                    # NOT_AUTHORIZED
    taken = pcp(lab.host("h3"), "map", "--proto 17 --iport 5000 --eport 15000",
                "--prefer-failure")
    assert taken["result"] == 11                                    # CANNOT_PROVIDE_EXTERNAL

    gone = pcp(h2, "map", "--proto 17 --iport 5000 --lifetime 0", f"--nonce {NONCE}")
    assert (gone["result"], gone["lifetime"]) == (0, 0)
    assert not [m for m in mappings(lab) if m["internal_ip"] == H2 and m["internal_port"] == 5000]
    with Server(h2, "udp-server", 5000) as server:
        got = client(lab.host("o1"), "udp-client", "--sport 46001", f"--to {NAT_IP}:15000",
                     "--count 2")
        assert got["replies"] == {f"{NAT_IP}:15000": 0} and not server.peers()


def test_pcp_peer_opens_the_mapping_to_that_remote_only(lab):
    h3 = lab.host("h3")
    answer = pcp(h3, "peer", "--proto 17 --iport 6000 --lifetime 300", f"--remote {O1}:3478")
    assert (answer["result"], answer["opcode"], answer["size"]) == (0, 2, 80)
    assert (answer["remote_ip"], answer["remote_port"], answer["external_ip"]) == (O1, 3478, NAT_IP)
    port = answer["external_port"]
    with Server(h3, "udp-server", 6000) as server:
        other = client(lab.host("o2"), "udp-client", "--sport 3478", f"--to {NAT_IP}:{port}",
                       "--count 2")
        peer = client(lab.host("o1"), "udp-client", "--sport 3478", f"--to {NAT_IP}:{port}",
                      "--count 2")
        peers = server.peers()
    assert other["replies"] == {f"{NAT_IP}:{port}": 0}, other   # filtered: not the peer
    assert peer["replies"] == {f"{NAT_IP}:{port}": 2}, peer
    assert peers == {(O1, 3478)}
    [row] = [m for m in mappings(lab) if m["peer"]]
    assert row["peer"] == {"ip": O1, "port": 3478} and row["external_port"] == port

    # The operator sees it and takes it back with snatctl.
    listed = snatctl(lab, "mappings")
    assert listed.returncode == 0 and f"{O1}:3478" in listed.stdout, listed
    revoked = snatctl(lab, "mappings", "del", "udp", H3, "6000", "--peer", f"{O1}:3478")
    assert revoked.returncode == 0, revoked
    assert not [m for m in mappings(lab) if m["peer"]]
    wait_for(lambda: f"port mapping revoked: udp {H3}:6000" in lab.controller.log(), 5,
             what="the revocation in the mapping log")


def test_a_mapping_ends_at_its_lifetime(lab):
    h1 = lab.host("h1")
    answer = pcp(h1, "map", "--proto 6 --iport 81 --eport 8081 --lifetime 3")
    assert (answer["result"], answer["lifetime"], answer["external_port"]) == (0, 3, 8081)
    made = time.monotonic()
    wait_for(lambda: not [m for m in mappings(lab) if m["internal_port"] == 81], 8,
             interval=0.25, what="the mapping to expire")
    assert time.monotonic() - made >= 2.0
    assert not reaches(lab, "o1", 8081, "h1", 81)
    wait_for(lambda: "port mapping expired: tcp 10.0.0.11:81" in lab.controller.log(), 5,
             what="the expiry in the mapping log")


def test_hostile_requests_get_the_rfc_answer_or_silence(lab):
    h1, h2, h3 = lab.host("h1"), lab.host("h2"), lab.host("h3")
    assert pcp(h1, "--raw 02")["answered"] is False                     # too short
    long = pcp(h1, "--raw " + "0201" + "00" * 1102)                     # over 1100 bytes
    assert (long["result"], long["size"]) == (3, 1100)                  # MALFORMED_REQUEST
    odd = pcp(h1, "map", "--iport 1", f"--raw {'0201' + '00' * 61}")   # not a multiple of 4
    assert odd["result"] == 3
    old = pcp(h1, "map", "--version 1 --iport 1")
    assert (old["version"], old["result"]) == (2, 1)                    # UNSUPP_VERSION
    assert pcp(h1, "--raw " + "0209" + "00" * 58)["result"] == 4        # UNSUPP_OPCODE
    assert pcp(h1, "map", "--iport 1 --proto 1")["result"] == 9         # UNSUPP_PROTOCOL
    other = pcp(h1, "map", f"--iport 1 --client-ip {H2}")
    assert other["result"] == 12                                        # ADDRESS_MISMATCH
    third = pcp(h1, "map", f"--iport 1 --third-party {H2}")
    assert third["result"] == 2                                         # NOT_AUTHORIZED
    assert pcp(h1, "announce")["result"] == 0

    # From outside: the server is not there.
    o1 = lab.host("o1")
    out = o1.cmd(f"timeout 20 {sys.executable} {PCP} --server {NAT_IP} map --iport 1 "
                 f"--client-ip {O1}")
    assert json.loads(out.strip().splitlines()[-1])["answered"] is False

    # A flood from one host: its budget (port_control_rate 5/s, burst 10) is
    # answered, the rest dropped and counted; the other hosts are answered.
    before = lab.controller.get("/nat/stats")["port_control"]["requests"].get("dropped rate", 0)
    flood = pcp(h3, "announce", "--repeat 200 --timeout 1")
    assert 10 <= flood["answers"] <= 20, flood
    after = lab.controller.get("/nat/stats")["port_control"]["requests"]
    assert after["dropped rate"] - before >= 150, after
    assert pcp(h2, "announce")["result"] == 0
    assert lab.controller.get("/nat/stats")["handler_errors"] == 0


def test_a_restarted_controller_keeps_the_mappings(lab):
    h2, ctl = lab.host("h2"), lab.controller
    first = pcp(h2, "map", "--proto 6 --iport 22 --eport 2222 --lifetime 600",
                f"--nonce {NONCE}")
    assert first["result"] == 0 and first["external_port"] == 2222
    asked = time.monotonic()
    time.sleep(2)                          # the epoch has counted up
    with Capture(lab.host("h1"), "udp and dst port 5350", seconds=8, verbose=True) as heard:
        ctl.stop()
        ctl.start()
        wait_for(lambda: [m for m in mappings(lab) if m["internal_port"] == 22], 15,
                 what="the mapping adopted from the switch")
    # Every inside host hears the new epoch: PCP ANNOUNCE and NAT-PMP's
    # address announcement, from the gateway to 224.0.0.1:5350.
    announced = {line.strip() for line in heard.text.splitlines()
                 if f"{GW}.5351 > 224.0.0.1.5350" in line}
    assert announced == {f"{GW}.5351 > 224.0.0.1.5350: [udp sum ok] UDP, length 24",
                         f"{GW}.5351 > 224.0.0.1.5350: [udp sum ok] UDP, length 12"}, heard.text
    [row] = [m for m in mappings(lab) if m["internal_port"] == 22]
    assert (row["external_port"], row["origin"]) == (2222, "pcp") and row["expires_in"] <= 600
    assert reaches(lab, "o2", 2222, "h2", 22)
    again = pcp(h2, "map", "--proto 6 --iport 22 --lifetime 600", f"--nonce {NONCE}")
    assert (again["result"], again["external_port"]) == (0, 2222)   # the nonce came back
    # The client's check that the server lost state (RFC 6887 s8.5): its
    # epoch went back, compared with the time that passed.
    elapsed = time.monotonic() - asked
    assert again["epoch"] < first["epoch"] + elapsed * 7 / 8 - 2, (first, again, elapsed)
    # The mapping log is written each second, off the packet path.
    wait_for(lambda: "port mapping restored: tcp 10.0.0.12:22" in ctl.log(), 5,
             what="the restored mapping in the mapping log")
