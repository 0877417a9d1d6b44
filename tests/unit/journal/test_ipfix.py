"""IPFIX NAT events, read back by an independent decoder (scapy's IPFIX
layer with its template cache), field by field against the sessions made.
"""
from __future__ import annotations

import ipaddress
import socket

from helpers import ipfix_decode
from conntrack import ConnTrack, ConntrackConfig
from conntrack.keys import TCP, UDP
from ryu_app.journal import ipfix

NAT = "198.51.100.1"
H1, H2, S1 = "10.0.0.11", "10.0.0.12", "198.51.100.10"
DPID = 0x1_0000_0001
WALL0 = 1_796_000_000.0          # the wall clock when the monotonic one read 0


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


class Rig:
    """An exporter fed by a real engine; what it sends is kept."""

    def __init__(self, **options) -> None:
        self.sent: list[bytes] = []
        self.mono = 100.0
        self.exporter = ipfix.IpfixExporter(("127.0.0.1", 4739), send=self.sent.append,
                                            clocks=(lambda: WALL0 + self.mono,
                                                    lambda: self.mono), **options)
        self.ct = ConnTrack(ConntrackConfig(external_ip=ipaddress.IPv4Address(NAT),
                                            max_connections_per_host=3),
                            on_event=self.exporter.domain(DPID))

    def records(self) -> list[dict]:
        return ipfix_decode.records(self.sent)


def test_sessions_made_and_ended_are_decoded_field_by_field():
    rig = Rig(log_destination=True)
    tcp = rig.ct.create_outbound(TCP, ip(H1), 40000, ip(S1), 80, now=100.0)
    udp = rig.ct.create_outbound(UDP, ip(H2), 5353, ip(S1), 53, now=100.25)
    rig.mono = 101.0
    rig.exporter.flush()
    rig.ct.remove(udp, now=101.5, reason="closed")
    rig.mono = 102.0
    rig.exporter.flush()
    got = rig.records()
    assert [(r["natEvent"], r["protocolIdentifier"], r["sourceIPv4Address"],
             r["sourceTransportPort"], r["postNATSourceIPv4Address"],
             r["postNAPTSourceTransportPort"], r["destinationIPv4Address"],
             r["destinationTransportPort"], r["observationTimeMilliseconds"]) for r in got] == [
        (4, TCP, H1, 40000, NAT, tcp.external_port, S1, 80, int((WALL0 + 100.0) * 1000)),
        (4, UDP, H2, 5353, NAT, udp.external_port, S1, 53, int((WALL0 + 100.25) * 1000)),
        (5, UDP, H2, 5353, NAT, udp.external_port, S1, 53, int((WALL0 + 101.5) * 1000)),
    ]


def test_destinations_are_left_out_unless_asked_for():
    rig = Rig()
    rig.ct.create_outbound(TCP, ip(H1), 40000, ip(S1), 80, now=100.0)
    rig.exporter.flush()
    [record] = rig.records()
    assert record["sourceIPv4Address"] == H1
    assert not {"destinationIPv4Address", "destinationTransportPort",
                "postNATDestinationIPv4Address"} & set(record)


def test_refusals_are_quota_and_port_events():
    rig = Rig()
    rig.exporter.host_quota(DPID, ip(H1), 3, now=100.5)
    rig.exporter.table_full(DPID, 4096, now=100.75)
    rig.exporter.ports_exhausted(DPID, UDP, ip(NAT), now=101.0)
    rig.exporter.flush()
    host, table, ports = rig.records()
    assert (host["natEvent"], host["natQuotaExceededEvent"], host["maxEntriesPerUser"],
            host["sourceIPv4Address"]) == (13, 3, 3, H1)
    assert (table["natEvent"], table["natQuotaExceededEvent"],
            table["maxSessionEntries"]) == (13, 1, 4096)
    assert (ports["natEvent"], ports["protocolIdentifier"],
            ports["postNATSourceIPv4Address"]) == (12, UDP, NAT)
    assert ports["observationTimeMilliseconds"] == int((WALL0 + 101.0) * 1000)


def test_a_collector_started_later_learns_the_templates_from_the_next_refresh():
    rig = Rig(template_interval=30)
    rig.ct.create_outbound(TCP, ip(H1), 40000, ip(S1), 80, now=100.0)
    rig.exporter.flush()                            # templates, then the record
    late = len(rig.sent)                            # a collector listening from here
    for second in range(1, 36):
        rig.mono = 100.0 + second
        rig.ct.create_outbound(UDP, ip(H1) + second, 6000, ip(S1), 53, now=rig.mono)
        rig.exporter.flush()
    seen = ipfix_decode.records(rig.sent[late:])
    # From the refresh 30 s after the first templates on, every record decodes.
    assert [ipaddress.IPv4Address(r["sourceIPv4Address"]) for r in seen] == [
        ipaddress.IPv4Address(ip(H1) + second) for second in range(30, 36)]
    assert set(ipfix_decode.templates(rig.sent)) == {256, 257, 258, 259, 260, 261}


def test_many_records_split_into_datagrams_and_the_sequence_counts_records():
    rig = Rig()
    for n in range(300):
        rig.ct.create_outbound(UDP, ip(H1) + n // 3, 1000 + n, ip(S1), 53, now=100.0)
    rig.exporter.flush()
    assert all(len(d) <= ipfix.MAX_MESSAGE for d in rig.sent) and len(rig.sent) > 2
    got = rig.records()
    assert len(got) == 300 and rig.exporter.counters.records == 300
    assert [r["sourceTransportPort"] for r in got] == [1000 + n for n in range(300)]
    firsts = {}
    for r in got:
        firsts.setdefault(r["sequence"], got.index(r))
    assert list(firsts) == list(firsts.values())    # each message: records sent before it
    assert {r["domain"] for r in got} == {DPID & 0xFFFFFFFF}


def test_a_collector_that_is_not_there_costs_a_counter_and_one_line(caplog):
    def refuse(_datagram: bytes) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    exporter = ipfix.IpfixExporter(("127.0.0.1", 4739), send=refuse)
    exporter.table_full(DPID, 10, now=1.0)
    exporter.flush(2.0)
    exporter.table_full(DPID, 10, now=3.0)
    exporter.flush(4.0)
    assert exporter.counters.send_errors == 4 and exporter.counters.records == 0
    assert sum("IPFIX" in r.message for r in caplog.records) == 1


def test_records_beyond_the_bound_between_flushes_are_counted_not_kept():
    exporter = ipfix.IpfixExporter(("127.0.0.1", 4739), send=lambda d: None)
    for n in range(ipfix.MAX_PENDING + 5):
        exporter.host_quota(DPID, n + 1, 10, now=1.0)      # as many hosts
    assert exporter.counters.dropped == 5
    exporter.flush(2.0)
    assert exporter.counters.records == ipfix.MAX_PENDING


def test_the_real_socket_reaches_a_udp_collector():
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(2)
    exporter = ipfix.IpfixExporter(collector.getsockname())
    exporter.host_quota(DPID, ip(H2), 5, now=1.0)
    exporter.close()
    got = [collector.recv(65535), collector.recv(65535)]
    collector.close()
    [record] = ipfix_decode.records(got)
    assert (record["natEvent"], record["sourceIPv4Address"]) == (13, H2)


def test_the_gateway_reports_its_sessions_and_refusals_when_a_collector_is_set():
    from helpers.nat_lab import H1 as HOST1, S1 as SERVER, make_lab, open_flow
    from helpers.nat_lab import TCP as TCP_, UDP as UDP_, out_frame, UPLINK

    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(2)
    host, port = collector.getsockname()
    lab = make_lab(ipfix_collector=f"{host}:{port}", max_connections_per_host=2)
    session, _ = open_flow(lab, HOST1, 5000, SERVER, 53, proto=UDP_)
    open_flow(lab, HOST1, 5001, SERVER, 80, proto=TCP_)
    out = lab.send(HOST1.port, out_frame(HOST1, 5002, SERVER, 53, proto=UDP_))
    assert all(port != UPLINK for port, _ in out)     # over the quota: refused
    lab.advance(1)                                    # the tick sends
    sent = [collector.recv(65535) for _ in range(lab.gateway.ipfix.counters.messages)]
    collector.close()
    got = ipfix_decode.records(sent)
    assert [(r["natEvent"], r["sourceTransportPort"]) for r in got if r["natEvent"] == 4] == [
        (4, 5000), (4, 5001)]
    assert got[0]["postNAPTSourceTransportPort"] == session.external_port
    [quota] = [r for r in got if r["natEvent"] == 13]
    assert (quota["sourceIPv4Address"], quota["maxEntriesPerUser"]) == (HOST1.ip, 2)
    assert {r["domain"] for r in got} == {lab.switch.dpid}


def test_no_collector_no_exporter():
    from helpers.nat_lab import make_lab

    assert make_lab().gateway.ipfix is None


def test_a_host_refused_again_and_again_makes_one_record_a_second():
    rig = Rig()
    for n in range(100):                              # a flood over the quota, in 0.99 s
        rig.exporter.host_quota(DPID, ip(H1), 3, now=100.0 + n / 100)
    rig.exporter.host_quota(DPID, ip(H2), 3, now=100.5)   # another host: its own record
    rig.mono = 101.0
    rig.exporter.flush()
    rig.exporter.host_quota(DPID, ip(H1), 3, now=101.0)   # a second later: again
    rig.mono = 102.0
    rig.exporter.flush()
    assert [r["sourceIPv4Address"] for r in rig.records()] == [H1, H2, H1]
    assert rig.exporter.counters.repeats == 99


def test_port_blocks_are_allocation_and_deallocation_events():
    sent: list[bytes] = []
    exporter = ipfix.IpfixExporter(("127.0.0.1", 4739), send=sent.append,
                                   clocks=(lambda: WALL0 + 100.0, lambda: 100.0))
    bridge = exporter.bridge(DPID, 100, 10)
    ct = ConnTrack(ConntrackConfig(external_ip=ipaddress.IPv4Address(NAT), port_range=(40000, 40511),
                                   port_block_size=128, quarantine=0),
                   on_block=bridge.block)
    s = ct.create_outbound(TCP, ip(H1), 5000, ip(S1), 80, now=99.0)
    ct.remove(s, now=99.5)
    exporter.flush()
    first = 40000 + (s.external_port - 40000) // 128 * 128     # the block holding its port
    last = first + 127
    got = ipfix_decode.records(sent)
    assert [(r["natEvent"], r["protocolIdentifier"], r["sourceIPv4Address"],
             r["postNATSourceIPv4Address"], r["portRangeStart"], r["portRangeEnd"],
             r["portRangeStepSize"], r["portRangeNumPorts"], r["observationTimeMilliseconds"])
            for r in got] == [
        (16, TCP, H1, NAT, first, last, 1, 128, int((WALL0 + 99.0) * 1000)),
        (17, TCP, H1, NAT, first, last, 1, 128, int((WALL0 + 99.5) * 1000)),
    ]


def test_refusals_on_the_inbound_and_hairpin_paths_and_over_the_blocks_are_reported():
    from helpers.nat_lab import H1 as HOST1, H2 as HOST2, S1 as SERVER, S2 as SERVER2
    from helpers.nat_lab import (NAT_IP, UDP as UDP_, UPLINK, arp_reply, in_frame, ip_frame,
                                 make_lab, open_flow)

    lab = make_lab(ipfix_collector="127.0.0.1:9", max_connections_per_host=1,
                   forwards="udp:5300=10.0.0.11:53", port_block_size=8, port_blocks_per_host=1)
    sent: list[bytes] = []
    lab.gateway.ipfix._send = sent.append
    open_flow(lab, HOST1, 5000, SERVER, 53, proto=UDP_)          # HOST1's quota: full
    # A remote through the forward to HOST1: over its quota (inbound path).
    assert [p for p, _ in lab.send(UPLINK, in_frame(SERVER2, 7, 5300, proto=UDP_))
            if p != UPLINK] == []
    lab.advance(1.1)
    # HOST2 to the forward through the NAT address (hairpin): HOST1's quota again.
    lab.send(HOST2.port, ip_frame(HOST2.mac, HOST2.ip, 6000, NAT_IP, 5300, proto=UDP_))
    lab.advance(1.1)
    hosts = [(r["natEvent"], r["sourceIPv4Address"], r["maxEntriesPerUser"])
             for r in ipfix_decode.records(sent) if r["natEvent"] == 13]
    assert hosts == [(13, HOST1.ip, 1), (13, HOST1.ip, 1)]

    # Over its one block of 8 ports (quota high enough): reported as its 8 entries.
    lab = make_lab(ipfix_collector="127.0.0.1:9", port_block_size=8, port_blocks_per_host=1)
    sent.clear()
    lab.gateway.ipfix._send = sent.append
    for n in range(9):
        lab.send(HOST2.port, ip_frame(HOST2.mac, HOST2.ip, 6000 + n, SERVER.ip, 53,
                                      proto=UDP_))
        if n == 0:
            lab.send(UPLINK, arp_reply(SERVER))     # the next hop, asked by the first
    lab.advance(1.1)
    [quota] = [r for r in ipfix_decode.records(sent) if r["natEvent"] == 13]
    assert (quota["sourceIPv4Address"], quota["maxEntriesPerUser"]) == (HOST2.ip, 8)
    assert lab.gateway.counters.as_dict()["drops"].get("block_quota") == 1
