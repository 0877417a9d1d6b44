"""Port forwards (DNAT) and refused sessions, with real hosts."""
from __future__ import annotations

import sys
import time

import pytest

from helpers.peers import Capture, Server, client
from helpers.system import assert_left_nothing
from lab import Lab

NAT_IP = "198.51.100.1"
O1, O2 = "198.51.100.10", "198.51.100.11"


@pytest.fixture(scope="module")
def lab():
    options = {"stats_interval": 2, "max_connections_per_host": 3,
               "forwards": "tcp:8080=10.0.0.13:80"}
    with Lab(inside=3, outside=2, nat_options=options) as running:
        yield running
    assert_left_nothing(running)


def forget_sessions(lab, inside_ip: str) -> None:
    """End an inside host's sessions (operator DELETE): tests here count quotas."""
    for c in lab.controller.get(f"/nat/connections?internal_ip={inside_ip}"):
        lab.controller.request("DELETE", f"/nat/connections/{c['id']}")


def test_configured_forward_reaches_an_inside_host_that_never_spoke(lab):
    with Server(lab.host("h3"), "tcp-server", 80) as server:
        result = client(lab.host("o1"), "tcp-client", f"--to {NAT_IP}:8080", "--send 3000")
        peers = server.peers()
    assert result["connected"] and result["echoed"] == 3000, result
    assert peers == {(O1, peers and next(iter(peers))[1])}, "DNAT keeps the remote's address"
    conns = [c for c in lab.controller.get("/nat/connections?internal_ip=10.0.0.13")]
    assert any(c["inbound_initiated"] and c["external_port"] == 8080 and c["internal_port"] == 80
               and c["remote_ip"] == O1 for c in conns), conns


def test_forwards_over_rest(lab):
    ctl = lab.controller
    body = {"protocol": "udp", "external_port": 5300, "internal_ip": "10.0.0.12",
            "internal_port": 53}
    status, created = ctl.request("POST", "/nat/forwards", body)
    assert status == 200 and created == body
    listed = ctl.get("/nat/forwards")
    assert body in listed and {"protocol": "tcp", "external_port": 8080,
                               "internal_ip": "10.0.0.13", "internal_port": 80} in listed
    with Server(lab.host("h2"), "udp-server", 53) as server:
        result = client(lab.host("o2"), "udp-client", "--sport 45000", f"--to {NAT_IP}:5300",
                        "--count 3")
        assert result["replies"] == {f"{NAT_IP}:5300": 3}, result
        assert server.peers() == {(O2, 45000)}
        status, _ = ctl.request("DELETE", "/nat/forwards/udp/5300")
        assert status == 200
        # New remotes can no longer use it (the live session from o2 may finish).
        after = client(lab.host("o1"), "udp-client", "--sport 45001", f"--to {NAT_IP}:5300",
                       "--count 2")
    assert after["replies"] == {f"{NAT_IP}:5300": 0}, after
    status, body404 = ctl.request("DELETE", "/nat/forwards/udp/5300")
    assert status == 404 and "no forward" in body404["error"]


@pytest.mark.parametrize("body,problem", [
    ({"protocol": "tcp", "external_port": 8080, "internal_ip": "10.0.0.12",
      "internal_port": 80}, "already forwarded"),
    ({"protocol": "icmp", "external_port": 1, "internal_ip": "10.0.0.12",
      "internal_port": 1}, "protocol must be tcp or udp"),
    ({"protocol": "tcp", "external_port": 0, "internal_ip": "10.0.0.12",
      "internal_port": 80}, "external_port must be an integer"),
    ({"protocol": "tcp", "external_port": 9000, "internal_ip": "203.0.113.5",
      "internal_port": 80}, "not an inside host"),
    ({"protocol": "tcp", "external_port": 9000, "internal_ip": "10.0.0.12"}, "missing field"),
    ({"protocol": "tcp", "external_port": "9000", "internal_ip": "10.0.0.12",
      "internal_port": 80}, "external_port must be an integer"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_forwards_are_refused_with_a_json_400(lab, body, problem):
    status, answer = lab.controller.request("POST", "/nat/forwards", body)
    assert status == 400 and problem in answer["error"], answer


def test_forward_onto_a_port_in_use_is_refused(lab):
    with Server(lab.host("o1"), "udp-server", 9100):
        client(lab.host("h1"), "udp-client", "--sport 46000", f"--to {O1}:9100", "--count 1")
    mapped = [c for c in lab.controller.get("/nat/connections?protocol=udp&internal_ip=10.0.0.11")
              if c["internal_port"] == 46000][0]["external_port"]
    status, answer = lab.controller.request("POST", "/nat/forwards", {
        "protocol": "udp", "external_port": mapped, "internal_ip": "10.0.0.12",
        "internal_port": 5060})
    assert status == 400 and "port_in_use" in answer["error"], answer


def test_quota_refusal_is_told_to_the_host_and_evicts_nothing(lab):
    """RFC 6888 REQ-4/5 and RFC 5508 REQ-8: quota 3 per host; the 4th fails fast."""
    h1 = lab.host("h1")
    forget_sessions(lab, "10.0.0.11")        # start from none
    with Server(lab.host("o2"), "udp-server", 9200):
        for port in (47000, 47001, 47002):
            client(h1, "udp-client", f"--sport {port}", f"--to {O2}:9200", "--count 1")
    held = lab.controller.get("/nat/connections?internal_ip=10.0.0.11")
    assert len(held) == 3, held
    started = time.monotonic()
    out = h1.cmd(f"curl -s -m 10 -o /dev/null -w '%{{http_code}}' http://{O1}:80/; echo \" rc=$?\"")
    elapsed = time.monotonic() - started
    assert "rc=7" in out and elapsed < 5, (out, elapsed)   # "No route to host", at once
    after = lab.controller.get("/nat/connections?internal_ip=10.0.0.11")
    assert {c["id"] for c in after} == {c["id"] for c in held}, "nothing evicted"
    with Server(lab.host("o2"), "udp-server", 9200) as server:   # and they still carry traffic
        again = client(h1, "udp-client", "--sport 47000", f"--to {O2}:9200", "--count 2")
        peers = server.peers()
    assert again["replies"] == {f"{O2}:9200": 2}, again
    mapped = [c["external_port"] for c in after if c["internal_port"] == 47000]
    assert peers == {(NAT_IP, mapped[0])}, (peers, mapped)
    stats = lab.controller.get("/nat/stats")
    assert stats["refused"].get("host_quota", 0) >= 1


def test_an_inside_servers_port_unreachable_reaches_the_remote(lab):
    """RFC 5508 REQ-5: o1's datagram to a forward with no socket behind it
    is refused by h2's kernel; the error leaves as the NAT address's, about
    o1's own datagram, so o1's kernel refuses o1's socket."""
    ctl = lab.controller
    forget_sessions(lab, "10.0.0.12")        # h2's quota must not be what refuses o1
    body = {"protocol": "udp", "external_port": 5400, "internal_ip": "10.0.0.12",
            "internal_port": 5400}
    assert ctl.request("POST", "/nat/forwards", body)[0] == 200
    before = ctl.get("/nat/stats")["icmp_errors_translated"]
    try:
        result = client(lab.host("o1"), "udp-probe", f"--to {NAT_IP}:5400", "--sport 45500",
                        "--tries 3")
    finally:
        ctl.request("DELETE", "/nat/forwards/udp/5400")
    assert result["refused"], result
    assert ctl.get("/nat/stats")["icmp_errors_translated"] > before


def test_refusal_notices_are_rate_limited_per_host(lab):
    """RFC 5508 REQ-8 without becoming a flood: a host at its quota that
    tries 40 new flows at once hears 3/13 about 20 of them (the burst)."""
    h2 = lab.host("h2")
    forget_sessions(lab, "10.0.0.12")
    with Server(lab.host("o2"), "udp-server", 9300):
        for port in range(47300, 47303):               # h2 reaches its quota of 3
            client(h2, "udp-client", f"--sport {port}", f"--to {O2}:9300", "--count 1")
    limited = lab.controller.get("/nat/stats")["drops"].get("icmp_error_rate_limited", 0)
    with Capture(h2, "icmp[icmptype] == 3 and icmp[icmpcode] == 13", seconds=5) as cap:
        h2.cmd(f"{sys.executable} -c \"import socket\n"
               f"for p in range(47400, 47440):\n"
               f"    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', p))\n"
               f"    s.sendto(b'x', ('{O2}', 9301)); s.close()\"")
    limited = lab.controller.get("/nat/stats")["drops"].get("icmp_error_rate_limited", 0) - limited
    forget_sessions(lab, "10.0.0.12")
    # The burst of 20, plus what refilled (10/s) while the controller worked.
    assert 20 <= len(cap.lines) <= 36, cap.lines
    assert len(cap.lines) + limited == 40, (len(cap.lines), limited)
