"""The SNAT gateway with real hosts: judged from the far side of the NAT."""
from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time

import pytest

from helpers.peers import NETPROBE, Capture, Server, client
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

NAT_IP = "198.51.100.1"
O1, O2 = "198.51.100.10", "198.51.100.11"
STATS_INTERVAL = 2
UDP_TIMEOUT = 8


@pytest.fixture(scope="module")
def lab():
    options = {"stats_interval": STATS_INTERVAL, "udp_timeout": UDP_TIMEOUT}
    with Lab(inside=3, outside=2, nat_options=options) as running:
        yield running
    assert_left_nothing(running)


def connections(lab, **query) -> list[dict]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return lab.controller.get("/nat/connections" + (f"?{qs}" if qs else ""))


def test_http_request_leaves_with_the_nat_address(lab):
    o1, h1 = lab.host("o1"), lab.host("h1")
    server = o1.popen(["python3", "-m", "http.server", "8000", "--bind", O1],
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        out = h1.cmd(f"curl -s -m 5 -o /dev/null -w '%{{http_code}} %{{size_download}}' http://{O1}:8000/")
        assert out.split()[0] == "200", out
        assert int(out.split()[1]) > 0
    finally:
        server.terminate()
        _, err = server.communicate(timeout=5)
    assert re.search(rf"^{re.escape(NAT_IP)} .*\"GET / HTTP", err, re.M), err
    assert "10.0.0." not in err, "the server must never see an inside address"


def test_same_source_port_from_two_hosts_gets_two_external_ports(lab):
    with Server(lab.host("o1"), "tcp-server", 7001) as server:
        for name in ("h1", "h2"):
            result = client(lab.host(name), "tcp-client", f"--to {O1}:7001", "--sport 40000",
                            "--send 2048")
            assert result["connected"] and result["echoed"] == 2048, result
        peers = {p for p in server.peers()}
    assert {ip for ip, _ in peers} == {NAT_IP}
    assert len({port for _, port in peers}) == 2, f"port overloading: {peers}"


def test_one_udp_socket_keeps_one_external_port_for_every_remote(lab):
    with Server(lab.host("o1"), "udp-server", 5353) as s1, \
            Server(lab.host("o2"), "udp-server", 5353) as s2:
        result = client(lab.host("h1"), "udp-client", "--sport 41000", f"--to {O1}:5353",
                        f"--to {O2}:5353", "--count 3")
        seen1, seen2 = s1.peers(), s2.peers()
    assert result["replies"].get(f"{O1}:5353") == 3 and result["replies"].get(f"{O2}:5353") == 3
    assert len(seen1) == 1 and seen1 == seen2, f"EIM broken: {seen1} vs {seen2}"
    assert next(iter(seen1))[0] == NAT_IP
    mapped = connections(lab, protocol="udp", internal_ip="10.0.0.11")
    assert {c["external_port"] for c in mapped if c["internal_port"] == 41000} == {next(iter(seen1))[1]}


def test_two_hosts_ping_the_same_server_at_once(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    procs = [h.popen(f"ping -c 8 -i 0.2 -W 2 {O2}", shell=True, stdout=subprocess.PIPE, text=True)
             for h in (h1, h2)]
    outs = [p.communicate(timeout=30)[0] for p in procs]
    for out in outs:
        assert re.search(r"8 packets transmitted, 8 received", out), out
    sessions = connections(lab, protocol="icmp")
    assert {c["internal_ip"] for c in sessions if c["remote_ip"] == O2} >= {"10.0.0.11", "10.0.0.12"}


def test_two_hosts_ping_with_the_same_identifier(lab):
    """OpenFlow cannot rewrite echo identifiers: the controller translates."""
    o1 = lab.host("o1")
    with Capture(o1, "icmp[icmptype] == icmp-echo", seconds=8) as cap:
        procs = [lab.host(h).popen(f"{sys.executable} {NETPROBE} echo --to {O1} --ident 4242 "
                                   "--count 5", shell=True, stdout=subprocess.PIPE, text=True)
                 for h in ("h2", "h3")]
        results = [json.loads(p.communicate(timeout=30)[0].strip().splitlines()[-1])
                   for p in procs]
    assert results == [{"sent": 5, "received": 5}] * 2, results
    ids = set(re.findall(r"id (\d+), seq", cap.text))
    assert len(ids) == 2 and "4242" in ids, f"the server must see two identifiers: {cap.text}"
    assert set(re.findall(r"IP (\S+) >", cap.text)) == {NAT_IP}


def test_unsolicited_tcp_and_udp_from_outside_reach_nobody(lab):
    """Address-and-port-dependent filtering (the default): o1 has talked to
    nobody inside.  Neither to unmapped ports nor to h1's live UDP and TCP
    mappings (made towards o2) does anything of o1's get in; no RST either."""
    h1, o1, o2 = lab.host("h1"), lab.host("o1"), lab.host("o2")
    with Server(o2, "udp-server", 9900):
        client(h1, "udp-client", "--sport 41500", f"--to {O2}:9900", "--count 1")
    client(h1, "tcp-client", f"--to {O2}:9901", "--sport 41600")   # refused: mapping only
    mapped = {c["protocol"]: c["external_port"] for c in connections(lab, internal_ip="10.0.0.11")
              if c["internal_port"] in (41500, 41600)}
    assert set(mapped) == {"udp", "tcp"}, mapped
    before = lab.controller.get("/nat/stats")
    with contextlib.ExitStack() as stack:
        caps = [stack.enter_context(Capture(lab.host(h), f"ip src {O1} and (tcp or udp)",
                                            seconds=12)) for h in ("h1", "h2", "h3")]
        started = time.monotonic()
        tcp = o1.cmd(f"timeout 8 nc -z -w 7 {NAT_IP} {mapped['tcp']}; echo rc=$?")
        waited = time.monotonic() - started
        o1.cmd(f"for p in 22 80 {mapped['udp']}; do echo hi | timeout 1 nc -u -w 0 {NAT_IP} $p;"
               " done")
        o1.cmd(f"timeout 3 nc -z -w 2 {NAT_IP} 22")
    assert [cap.lines for cap in caps] == [[], [], []], [cap.lines for cap in caps]
    # RFC 5382 REQ-4: no answer at all (no RST), so nc waits out its timeout.
    assert "rc=0" not in tcp and waited >= 6, (tcp, waited)
    time.sleep(STATS_INTERVAL + 1)
    after = lab.controller.get("/nat/stats")
    assert after["switch_drops"]["unsolicited_inbound"] >= \
        before["switch_drops"].get("unsolicited_inbound", 0) + 5
    assert after["packet_ins"] - before["packet_ins"] < 5, "drops must stay in the switch"


def test_iperf3_bytes_show_up_in_connection_counters(lab):
    o2, h3 = lab.host("o2"), lab.host("h3")
    server = o2.popen("iperf3 -s -1 -p 5201", shell=True, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = h3.cmd(f"iperf3 -c {O2} -p 5201 -n 20M -J")
        report = json.loads(out[out.index("{"):])
    finally:
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:      # the client failed: stop the server
            server.terminate()
            server.wait(timeout=5)
    sent = report["end"]["sum_sent"]["bytes"]
    assert sent >= 20 * 1024 * 1024

    def data_conn():
        conns = [c for c in connections(lab, protocol="tcp", internal_ip="10.0.0.13")
                 if c["remote_port"] == 5201]
        big = [c for c in conns if c["bytes_out"] >= 0.9 * sent]
        return big[0] if big else None

    # The next flow-stats poll, at most one interval later, brings the counts
    # (two more intervals of slack for a loaded machine, whose switch may
    # take longer than an interval to answer a poll).
    try:
        conn = wait_for(data_conn, 3 * STATS_INTERVAL + 2, what="iperf3 bytes in /nat/connections")
    except TimeoutError:
        seen = connections(lab, protocol="tcp", internal_ip="10.0.0.13")
        polls = [line for line in lab.controller.get("/metrics").splitlines()
                 if line.startswith("ryu_snat_stats_poll_seconds")]
        raise AssertionError(f"sent {sent} bytes; sessions {seen}; {polls}") from None
    # bytes_out counts IP+TCP headers too: within 10% of the payload.
    assert 0.9 * sent <= conn["bytes_out"] <= 1.1 * sent, (conn, sent)
    assert conn["packets_in"] > 0 and conn["state"] in ("ESTABLISHED", "FIN_WAIT", "CLOSING")
    # Both flows carry the idle timeout of the session's state: established
    # (7440 s) while open, transitory (240 s) once iperf3 closed it with FINs.
    now = lab.controller.get(f"/nat/connections/{conn['id']}")
    own = [f for f in lab.flows() if f["cookie"] & 0xFFFFFFFF == conn["id"]
           and (f["cookie"] >> 40) & 0xFF in (0x10, 0x11)]
    expected = 240 if now["state"] == "CLOSING" else 7440
    assert len(own) == 2 and {f["idle_timeout"] for f in own} == {now["timeout"]} == {expected}, own


def test_short_udp_timeout_removes_flows_and_entry(lab):
    h2, o1 = lab.host("h2"), lab.host("o1")
    before = lab.controller.get("/nat/stats")
    with Server(o1, "udp-server", 6000) as server:
        client(h2, "udp-client", "--sport 42000", f"--to {O1}:6000", "--count 1")
        last_packet = time.monotonic()
        assert server.peers()

    def ours():
        return [c for c in connections(lab, protocol="udp", internal_ip="10.0.0.12")
                if c["internal_port"] == 42000]

    conn = ours()
    assert conn and conn[0]["timeout"] == UDP_TIMEOUT
    port = conn[0]["external_port"]
    flows = [f for f in lab.flows() if f["match"].get("nw_proto") == 17 and (
             f["match"].get("tp_src") == 42000 or f["match"].get("tp_dst") == port)]
    assert len(flows) == 2 and all(f["idle_timeout"] == UDP_TIMEOUT for f in flows), flows
    # The switch idles the flows out and its flow-removed ends the session:
    # on time, not at the engine's backstop (timeout + 2 polls + 2 s, plus
    # a tick: 7 s later here).
    wait_for(lambda: not ours(), UDP_TIMEOUT + 5, interval=0.25, what="UDP session expiry")
    lived = time.monotonic() - last_packet
    assert UDP_TIMEOUT - 0.5 <= lived <= UDP_TIMEOUT + 5, lived
    cookies = {f["cookie"] for f in flows}
    assert not [f for f in lab.flows() if f["cookie"] in cookies], "flows outlived the session"
    after = lab.controller.get("/nat/stats")
    assert after["expired"] >= before["expired"] + 1 and after["removed"] == before["removed"]
    # From the far side: the old mapping leads nowhere now.
    with Capture(h2, "udp", seconds=3) as cap:
        o1.cmd(f"echo late | timeout 1 nc -u -w 0 -p 6000 {NAT_IP} {port}")
    assert cap.lines == [], f"a packet reached h2 after expiry: {cap.lines}"


def test_delete_cuts_a_session(lab):
    h1 = lab.host("h1")
    with Server(lab.host("o2"), "tcp-server", 7002) as server:
        proc = h1.popen(f"python3 -c \"import socket,time\n"
                        f"s=socket.create_connection(('{O2}',7002),timeout=3)\n"
                        f"s.sendall(b'before')\n"
                        f"time.sleep(4)\n"
                        f"s.sendall(b'after!')\n"
                        f"time.sleep(1)\"", shell=True, stderr=subprocess.DEVNULL)
        conn = wait_for(lambda: [c for c in connections(lab, protocol="tcp", internal_ip="10.0.0.11")
                                 if c["remote_port"] == 7002], 5, what="the TCP session")[0]
        status, body = lab.controller.request("DELETE", f"/nat/connections/{conn['id']}")
        assert status == 200 and body["deleted"] == conn["id"]
        proc.wait(timeout=15)
        time.sleep(0.5)
        data = [e for e in server.events() if e.get("event") == "data"]
    assert [e["size"] for e in data] == [6], f"data after DELETE reached the server: {data}"
    status, _ = lab.controller.request("GET", f"/nat/connections/{conn['id']}")
    assert status == 404
    assert not [f for f in lab.flows() if f["cookie"] & 0xFFFFFFFF == conn["id"]
                and (f["cookie"] >> 40) & 0xFF in (0x10, 0x11)]


def test_rest_errors_are_json(lab):
    for method, path, status in [("GET", "/nat/connections/0", 400),
                                 ("GET", "/nat/connections/abc", 400),
                                 ("GET", "/nat/connections/99999", 404),
                                 ("DELETE", "/nat/connections/99999", 404),
                                 ("GET", "/nat/connections?protocol=sctp", 400),
                                 ("GET", "/nat/connections?internal_ip=10.0.0", 400),
                                 ("GET", "/nat/connections?bogus=1", 400)]:
        got, body = lab.controller.request(method, path)
        assert got == status and "error" in body, (method, path, got, body)


def test_low_source_port_stays_low_and_free_ports_are_kept(lab):
    """RFC 4787 REQ-3a: 0-1023 map into 0-1023; RFC 7857 s9: keep the inside port when free."""
    with Server(lab.host("o2"), "udp-server", 5400) as server:
        client(lab.host("h3"), "udp-client", "--sport 500", f"--to {O2}:5400", "--count 1")
        client(lab.host("h3"), "udp-client", "--sport 43210", f"--to {O2}:5400", "--count 1")
        ports = sorted(port for _, port in server.peers())
    assert ports == [500, 43210], ports
