"""PCP (RFC 6887) and NAT-PMP (RFC 6886) through the gateway on a fake
switch: requests built here byte by byte from the RFCs, answers read back
field by field, and the mapping judged by where an outside packet goes."""
from __future__ import annotations

import ipaddress
import struct

from ryu.lib.packet import packet, udp

from helpers.fake_switch import Wire
from helpers.nat_config import make_config
from helpers.nat_lab import (
    H1, H2, NAT_IP, PORTS, S1, S2, SYN, TCP, UDP, UPLINK, arp_reply, in_frame, ip_frame,
    is_arp_request_for, make_lab, nat,
)
from ryu_app.nat.gateway import Gateway
from ryu_app.openflow.flows import CookieKind, parse_cookie

GW_IP = "10.0.0.1"
NONCE = bytes(range(1, 13))


def v4mapped(ip: str) -> bytes:
    return ipaddress.IPv6Address(f"::ffff:{ip}").packed


def pcp_map(client: str, proto: int, iport: int, eport: int = 0, lifetime: int = 3600,
            nonce: bytes = NONCE, opcode: int = 1, options: bytes = b"",
            remote: tuple[str, int] | None = None, version: int = 2) -> bytes:
    head = struct.pack("!BBHI16s", version, opcode, 0, lifetime, v4mapped(client))
    body = nonce + struct.pack("!B3xHH16s", proto, iport, eport, bytes(16))
    if remote is not None:
        body += struct.pack("!H2x16s", remote[1], v4mapped(remote[0]))
    return head + body + options


def natpmp_map(op: int, iport: int, eport: int, lifetime: int) -> bytes:
    return struct.pack("!BBHHHI", 0, op, 0, iport, eport, lifetime)


def ask(lab: Wire, host, payload: bytes, sport: int = 5350) -> bytes | None:
    """Send a request from ``host``; the UDP payload of the answer, if any."""
    out = lab.send(host.port, ip_frame(host.mac, host.ip, sport, GW_IP, 5351, proto=UDP,
                                       payload=payload))
    answers = [data for port, data in out if port == host.port]
    if not answers:
        return None
    pkt = packet.Packet(answers[-1])
    dgram = pkt.get_protocol(udp.udp)
    assert dgram.src_port == 5351 and dgram.dst_port == sport
    return bytes(pkt.protocols[-1])


def pcp_answer(reply: bytes) -> dict:
    version, op, _, result, lifetime, epoch = struct.unpack_from("!BBBBII", reply)
    fields = {"version": version, "op": op, "result": result, "lifetime": lifetime,
              "epoch": epoch, "size": len(reply)}
    if len(reply) >= 60:
        nonce = reply[24:36]
        proto, iport, eport, ext = struct.unpack_from("!B3xHH16s", reply, 36)
        fields.update(nonce=nonce, proto=proto, iport=iport, eport=eport,
                      ext=str(ipaddress.IPv6Address(ext).ipv4_mapped))
    return fields


def inbound(lab: Wire, server, sport: int, eport: int, proto: int = UDP) -> list[int]:
    """Where a packet from ``server`` to the NAT address goes (the gateway's
    ARP for the server answered, as the server would)."""
    out = lab.send(UPLINK, in_frame(server, sport, eport, proto=proto, bits=SYN))
    if out and is_arp_request_for(out[0][1], server.ip):
        out = lab.send(UPLINK, arp_reply(server))
    return [port for port, _ in out]


def records(lab: Wire) -> list:
    return [f for f in lab.switch.flows
            if (parsed := parse_cookie(f.cookie)) and parsed[0] == CookieKind.LEASE]


def test_a_pcp_map_gives_the_suggested_port_and_an_outsider_reaches_the_host():
    lab = make_lab()
    reply = pcp_answer(ask(lab, H1, pcp_map(H1.ip, TCP, 80, 8080)))
    assert reply == {"version": 2, "op": 0x81, "result": 0, "lifetime": 3600,
                     "epoch": reply["epoch"], "size": 60, "nonce": NONCE, "proto": TCP,
                     "iport": 80, "eport": 8080, "ext": NAT_IP}
    assert len(records(lab)) == 1
    assert inbound(lab, S1, 40000, 8080, TCP) == [H1.port]
    [session] = [s for s in nat(lab).ct.sessions() if s.inside_port == 80]
    assert session.inbound_initiated and session.external_port == 8080


def test_a_renewal_keeps_the_port_and_another_nonce_is_not_authorized():
    lab = make_lab()
    first = pcp_answer(ask(lab, H1, pcp_map(H1.ip, UDP, 5000, 0)))
    again = pcp_answer(ask(lab, H1, pcp_map(H1.ip, UDP, 5000, 0, lifetime=7200)))
    assert again["result"] == 0 and again["eport"] == first["eport"]
    other = pcp_answer(ask(lab, H1, pcp_map(H1.ip, UDP, 5000, 0, nonce=b"x" * 12)))
    assert other["result"] == 2                                  # NOT_AUTHORIZED


def test_delete_ends_the_mapping_and_the_outsider_is_dropped():
    lab = make_lab()
    ask(lab, H1, pcp_map(H1.ip, TCP, 80, 8080))
    gone = pcp_answer(ask(lab, H1, pcp_map(H1.ip, TCP, 80, 8080, lifetime=0)))
    assert gone["result"] == 0 and gone["lifetime"] == 0
    assert not records(lab)
    assert lab.send(UPLINK, in_frame(S1, 40000, 8080, proto=TCP, bits=SYN)) == []


def test_the_lifetime_runs_out():
    lab = make_lab()
    reply = pcp_answer(ask(lab, H1, pcp_map(H1.ip, UDP, 6000, 6000, lifetime=130)))
    assert reply["lifetime"] == 130
    lab.advance(131, poll=None)
    assert not records(lab) and not nat(lab).port_control.leases
    assert lab.send(UPLINK, in_frame(S1, 40000, 6000)) == []


def test_a_short_lifetime_is_raised_and_a_long_one_cut():
    lab = make_lab()
    assert pcp_answer(ask(lab, H1, pcp_map(H1.ip, UDP, 1, lifetime=5)))["lifetime"] == 120
    assert pcp_answer(ask(lab, H1, pcp_map(H1.ip, UDP, 2, lifetime=10**6)))["lifetime"] == 7200


def test_the_client_address_must_be_the_senders():
    lab = make_lab()
    reply = pcp_answer(ask(lab, H1, pcp_map(H2.ip, TCP, 80, 8080)))
    assert reply["result"] == 12 and not records(lab)            # ADDRESS_MISMATCH


def test_third_party_is_not_authorized_unless_configured():
    option = struct.pack("!BBH16s", 1, 0, 16, v4mapped(H2.ip))
    lab = make_lab()
    assert pcp_answer(ask(lab, H1, pcp_map(H1.ip, TCP, 80, options=option)))["result"] == 2
    lab = make_lab(port_control_third_party=True)
    reply = pcp_answer(ask(lab, H1, pcp_map(H1.ip, TCP, 80, 8080, options=option)))
    assert reply["result"] == 0
    [lease] = nat(lab).port_control.view(lab.now)
    assert lease["internal_ip"] == H2.ip


def test_prefer_failure_refuses_a_taken_port():
    option = struct.pack("!BBH", 2, 0, 0)
    lab = make_lab()
    ask(lab, H1, pcp_map(H1.ip, TCP, 80, 8080))
    reply = pcp_answer(ask(lab, H2, pcp_map(H2.ip, TCP, 80, 8080, options=option)))
    assert reply["result"] == 11                                 # CANNOT_PROVIDE_EXTERNAL
    plain = pcp_answer(ask(lab, H2, pcp_map(H2.ip, TCP, 80, 8080)))
    assert plain["result"] == 0 and plain["eport"] != 8080


def test_peer_holds_the_outbound_mapping_and_lets_that_remote_in():
    lab = make_lab()
    reply = pcp_answer(ask(lab, H1, pcp_map(H1.ip, UDP, 4000, remote=(S1.ip, 3478), opcode=2)))
    assert reply["result"] == 0 and reply["size"] == 80
    eport = reply["eport"]
    assert inbound(lab, S2, 3478, eport) == []                    # another remote: filtered
    assert inbound(lab, S1, 3478, eport) == [H1.port]


def test_quota_and_bad_requests():
    lab = make_lab(port_control_max_per_host=2)
    for port in (1, 2):
        assert pcp_answer(ask(lab, H1, pcp_map(H1.ip, UDP, port)))["result"] == 0
    quota = pcp_answer(ask(lab, H1, pcp_map(H1.ip, UDP, 3)))
    assert (quota["result"], quota["lifetime"]) == (10, 30)   # USER_EX_QUOTA: may clear soon
    assert pcp_answer(ask(lab, H2, pcp_map(H2.ip, 1, 3)))["result"] == 9      # UNSUPP_PROTOCOL
    bad_version = pcp_answer(ask(lab, H2, pcp_map(H2.ip, UDP, 3, version=1)))
    assert (bad_version["version"], bad_version["result"]) == (2, 1)          # UNSUPP_VERSION
    assert bad_version["lifetime"] == 1800                    # will not clear: 30 minutes
    assert pcp_answer(ask(lab, H2, pcp_map(H2.ip, UDP, 3, opcode=9)))["result"] == 4
    assert pcp_answer(ask(lab, H2, pcp_map(H2.ip, UDP, 3) + b"\0\0"))["result"] == 3
    assert ask(lab, H2, b"\x02") is None                                      # too short: silence
    counts = nat(lab).port_control.counts
    assert counts["pcp map user_ex_quota"] == 1 and counts["dropped pcp_short"] == 1


def test_a_flood_from_one_host_is_cut_and_the_other_is_answered():
    lab = make_lab()
    answered = sum(ask(lab, H1, b"\x00\x00") is not None for _ in range(100))
    assert answered == 20                                        # the burst: twice the rate
    assert ask(lab, H2, b"\x00\x00") is not None
    assert nat(lab).port_control.counts["dropped rate"] == 80


def test_natpmp_address_and_map():
    lab = make_lab()
    version, op, result, epoch, ext = struct.unpack("!BBHI4s", ask(lab, H1, b"\x00\x00"))
    assert (version, op, result, str(ipaddress.IPv4Address(ext))) == (0, 128, 0, NAT_IP)
    reply = ask(lab, H1, natpmp_map(2, 80, 8080, 3600))
    assert struct.unpack("!BBHIHHI", reply)[:2] == (0, 130)
    _, _, result, _, iport, eport, lifetime = struct.unpack("!BBHIHHI", reply)
    assert (result, iport, eport, lifetime) == (0, 80, 8080, 3600)
    assert inbound(lab, S1, 40000, 8080, TCP) == [H1.port]
    reply = ask(lab, H1, natpmp_map(2, 0, 0, 0))                  # delete all of the host's
    assert struct.unpack("!BBHIHHI", reply)[2] == 0 and not records(lab)


def test_a_restarted_controller_has_the_mappings_from_the_switch():
    lab = make_lab()
    ask(lab, H1, pcp_map(H1.ip, TCP, 80, 8080, lifetime=600))
    ask(lab, H2, natpmp_map(1, 5000, 5000, 600))
    again = Wire(Gateway(make_config()), lab.switch, now=lab.now + 100)
    again.switch.now = again.now
    again.connect(PORTS)
    leases = {(m["protocol"], m["internal_ip"], m["internal_port"], m["external_port"],
               m["origin"]) for m in nat(again).port_control.view(again.now)}
    assert leases == {("tcp", H1.ip, 80, 8080, "pcp"), ("udp", H2.ip, 5000, 5000, "natpmp")}
    assert all(m["expires_in"] <= 500 for m in nat(again).port_control.view(again.now))
    renewed = pcp_answer(ask(again, H1, pcp_map(H1.ip, TCP, 80, 0)))
    assert renewed["result"] == 0 and renewed["eport"] == 8080   # the nonce came back too
    assert inbound(again, S1, 40000, 8080, TCP) == [H1.port]


def test_a_starting_controller_announces_itself_to_every_inside_port():
    lab = make_lab()
    sent = [(port, packet.Packet(frame)) for port, frame in lab.switch.packet_outs()]
    announced = [(port, bytes(pkt.protocols[-1])) for port, pkt in sent
                 if (d := pkt.get_protocol(udp.udp)) is not None and d.dst_port == 5350]
    assert {port for port, _ in announced} == {H1.port, H2.port}
    bodies = {body for _, body in announced}
    pcp = [b for b in bodies if b[0] == 2]
    natpmp = [b for b in bodies if b[0] == 0]
    assert len(pcp) == 1 and pcp_answer(pcp[0])["op"] == 0x80 and pcp_answer(pcp[0])["result"] == 0
    assert len(natpmp) == 1 and natpmp[0][:2] == b"\x00\x80" and natpmp[0][8:] == bytes([198, 51, 100, 1])


def test_a_switch_that_lost_its_table_gets_the_records_and_probes_back():
    lab = make_lab()
    ask(lab, H1, pcp_map(H1.ip, TCP, 80, 8080, lifetime=600))
    lab.gateway.switch_disconnected(lab.switch.dpid, lab.now)
    lab.advance(30, poll=None)
    lab.switch.flows = []                         # ovs-vswitchd restarted
    lab.connect(PORTS)
    [record] = records(lab)
    assert 560 <= record.hard_timeout <= 570      # what the lease has left
    assert inbound(lab, S1, 40000, 8080, TCP) == [H1.port]


def test_a_peer_is_neither_deleted_nor_shortened_by_a_request():
    lab = make_lab()
    first = pcp_answer(ask(lab, H1, pcp_map(H1.ip, UDP, 4000, lifetime=600, opcode=2,
                                            remote=(S1.ip, 3478))))
    zero = pcp_answer(ask(lab, H1, pcp_map(H1.ip, UDP, 4000, lifetime=0, opcode=2,
                                           remote=(S1.ip, 3478))))
    assert zero["result"] == 0 and zero["eport"] == first["eport"]
    assert 598 <= zero["lifetime"] <= 600                         # not cut to 120
    assert inbound(lab, S1, 3478, first["eport"]) == [H1.port]    # still open


def test_a_peer_that_cannot_have_its_suggested_port_is_told_so():
    lab = make_lab()
    ask(lab, H1, pcp_map(H1.ip, UDP, 5000, 9000))
    reply = pcp_answer(ask(lab, H2, pcp_map(H2.ip, UDP, 5000, 9000, opcode=2,
                                            remote=(S1.ip, 3478))))
    assert reply["result"] == 11                                  # CANNOT_PROVIDE_EXTERNAL


def natpmp_reply(payload: bytes) -> tuple[int, int, int, int]:
    """(opcode, result, external port, lifetime) of a NAT-PMP map answer."""
    _, op, result, _, _, eport, lifetime = struct.unpack("!BBHIHHI", payload)
    return op, result, eport, lifetime


def test_natpmp_keeps_the_companion_port_for_its_client():
    lab = make_lab()
    assert natpmp_reply(ask(lab, H1, natpmp_map(2, 80, 8080, 600)))[1:3] == (0, 8080)
    other = natpmp_reply(ask(lab, H2, natpmp_map(1, 80, 8080, 600)))
    assert other[1] == 0 and other[2] != 8080                     # UDP 8080 is kept for h1
    assert natpmp_reply(ask(lab, H1, natpmp_map(1, 80, 8080, 600)))[1:3] == (0, 8080)


def test_the_companion_port_is_let_go_with_its_lease():
    lab = make_lab()
    ask(lab, H1, natpmp_map(2, 80, 8080, 600))
    ct = nat(lab).ct
    assert ct.is_reserved(UDP, 8080)
    ask(lab, H1, natpmp_map(2, 80, 0, 0))
    assert not ct.is_reserved(UDP, 8080)


def test_natpmp_and_an_operators_forward():
    lab = make_lab(forwards="tcp:8080=10.0.0.11:80")
    op, result, eport, lifetime = natpmp_reply(ask(lab, H1, natpmp_map(2, 80, 9999, 600)))
    assert (op, result, eport, lifetime) == (130, 0, 8080, 600)   # the forward's port
    assert natpmp_reply(ask(lab, H1, natpmp_map(2, 80, 0, 0)))[1] == 2   # NOT_AUTHORIZED
    ask(lab, H1, natpmp_map(2, 81, 0, 600))
    op, result, _, _ = natpmp_reply(ask(lab, H1, natpmp_map(2, 0, 0, 0)))  # all of h1's
    assert result == 2                                            # NOT_AUTHORIZED...
    assert not records(lab) and not nat(lab).port_control.leases  # ...and the rest went
    assert nat(lab).ct.mapping_of_port(TCP, 8080) is not None       # the forward stayed


def test_natpmp_gets_no_longer_than_it_asked():
    lab = make_lab()
    assert natpmp_reply(ask(lab, H1, natpmp_map(1, 5000, 0, 30)))[3] == 30


def test_the_restart_announcement_is_repeated_with_a_growing_epoch():
    lab = make_lab()
    lab.advance(10, poll=None)

    def epochs() -> list[int]:
        out = []
        for _, frame in lab.switch.packet_outs():
            pkt = packet.Packet(frame)
            d = pkt.get_protocol(udp.udp)
            body = bytes(pkt.protocols[-1])
            if d is not None and d.dst_port == 5350 and body[0] == 2:
                out.append(pcp_answer(body)["epoch"])
        return out

    seen = epochs()
    assert len(seen) == 2 * 5          # now, then at ~1, 2, 4 and 8 s: on both inside ports
    assert seen == sorted(seen) and seen[-1] >= 7


def test_a_renewal_leaves_one_record_of_the_mapping():
    lab = make_lab()
    ask(lab, H1, natpmp_map(2, 80, 8080, 600))
    ask(lab, H1, natpmp_map(1, 80, 8080, 600))        # takes the companion port
    ask(lab, H1, natpmp_map(2, 80, 8080, 600))        # renews: no companion any more
    assert pcp_answer(ask(lab, H1, pcp_map(H1.ip, TCP, 80, 8080)))["result"] == 0  # PCP takes over
    assert len(records(lab)) == 2                     # one per mapping
