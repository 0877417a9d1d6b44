"""IPFIX NAT logging for real: the stock ryu-manager with ``ipfix_collector``
set, real hosts making TCP, UDP and ICMP sessions through OVS, and what
reached a UDP collector read back by scapy's IPFIX layer, field by field
against the sessions the REST API lists and the external ports the server
saw; a deleted session's record, a host over its quota.
"""
from __future__ import annotations

import socket
import time

import pytest

from helpers import ipfix_decode
from helpers.peers import Server, client
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

O1 = "198.51.100.10"
NAT = "198.51.100.1"
H1, H2 = "10.0.0.11", "10.0.0.12"
DPID = 1
TCP, UDP, ICMP = 6, 17, 1


@pytest.fixture(scope="module")
def collector():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def lab(collector):
    host, port = collector.getsockname()
    with Lab(inside=2, outside=1, nat_options={
            "ipfix_collector": f"{host}:{port}", "ipfix_log_destination": "true",
            "max_connections_per_host": 3, "stats_interval": 1}) as running:
        yield running
    assert_left_nothing(running)


def received(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65535))
        except BlockingIOError:
            return out


def test_sessions_deletes_and_a_quota_reach_the_collector_field_by_field(lab, collector):
    sent: list[bytes] = []
    h1, h2 = lab.host("h1"), lab.host("h2")
    with Server(lab.host("o1"), "udp-server", 9400) as udp, \
            Server(lab.host("o1"), "tcp-server", 7500) as tcp:
        assert client(h1, "udp-client", "--sport 5101", f"--to {O1}:9400",
                      "--count 2")["replies"] == {f"{O1}:9400": 2}
        assert client(h1, "tcp-client", f"--to {O1}:7500", "--sport 43100")["connected"]
        assert " 0% packet loss" in h1.cmd(f"ping -c 1 -W 2 {O1}")
        assert client(h2, "udp-client", "--sport 5201", f"--to {O1}:9400",
                      "--count 2")["replies"] == {f"{O1}:9400": 2}
        # h1 holds its quota of 3: a fourth flow is refused (quota exceeded).
        refused = client(h1, "udp-client", "--sport 5102", f"--to {O1}:9400", "--count 1")
        assert not any(refused["replies"].values()), refused
        seen_by_server = udp.peers() | tcp.peers()

    table = lab.controller.get("/nat/connections")
    assert sorted((c["internal_ip"], c["protocol"]) for c in table) == [
        (H1, "icmp"), (H1, "tcp"), (H1, "udp"), (H2, "udp")]
    for conn in table:
        if conn["protocol"] != "icmp":
            assert (NAT, conn["external_port"]) in seen_by_server
    h2_udp = next(c for c in table if c["internal_ip"] == H2)
    status, _ = lab.controller.request("DELETE", f"/nat/connections/{h2_udp['id']}")
    assert status == 200

    def records() -> list[dict]:
        sent.extend(received(collector))
        return ipfix_decode.records(sent)

    wait_for(lambda: any(r["natEvent"] == 5 for r in records()), 10,
             what="the deleted session's record")
    got = records()
    started = time.time() - 120

    creates = {(r["protocolIdentifier"], r["sourceIPv4Address"], r["sourceTransportPort"],
                r["postNATSourceIPv4Address"], r["postNAPTSourceTransportPort"],
                r["destinationIPv4Address"], r["destinationTransportPort"])
               for r in got if r["natEvent"] == 4}
    protocol = {"tcp": TCP, "udp": UDP, "icmp": ICMP}
    assert creates == {(protocol[c["protocol"]], c["internal_ip"], c["internal_port"],
                        c["external_ip"], c["external_port"], c["remote_ip"], c["remote_port"])
                       for c in table}
    [deleted] = [r for r in got if r["natEvent"] == 5]
    assert (deleted["sourceIPv4Address"], deleted["sourceTransportPort"],
            deleted["postNAPTSourceTransportPort"]) == (H2, 5201, h2_udp["external_port"])
    [quota] = [r for r in got if r["natEvent"] == 13]
    assert (quota["natQuotaExceededEvent"], quota["maxEntriesPerUser"],
            quota["sourceIPv4Address"]) == (3, 3, H1)
    for record in got:
        assert record["domain"] == DPID
        assert started * 1000 < record["observationTimeMilliseconds"] <= time.time() * 1000

    counters = lab.controller.get("/nat/stats")["ipfix"]
    assert counters["records"] == len(got) and counters["send_errors"] == 0
    assert counters["templates"] >= 1
