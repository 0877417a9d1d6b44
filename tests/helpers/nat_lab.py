"""The NAT lab for packet-fate unit tests: a Gateway on a fake switch.

Uplink s1-eth1 = port 1; h1 10.0.0.11 on port 2, h2 10.0.0.12 on port 3;
NAT address 198.51.100.1/24; servers S1 198.51.100.10 and S2 198.51.100.20,
router 198.51.100.254.  Frame builders send what those hosts would; ``look``
is what a far host sees (with checksums verified).
"""
from __future__ import annotations

from types import SimpleNamespace

from ryu.lib.packet import arp, ethernet, ipv4, packet, packet_utils, tcp, udp
from ryu.ofproto import ether, inet

from helpers import frames
from helpers.fake_switch import Wire
from helpers.nat_config import make_configs
from ryu_app.openflow import flows
from ryu_app.settings.config import DEFAULT_GATEWAY_MAC as GW_MAC
from ryu_app.openflow.flows import CookieKind
from ryu_app.nat.gateway import Gateway

TCP, UDP = inet.IPPROTO_TCP, inet.IPPROTO_UDP
SYN, ACK = tcp.TCP_SYN, tcp.TCP_ACK
UPLINK, H1_PORT, H2_PORT = 1, 2, 3
PORTS = {"s1-eth1": UPLINK, "s1-eth2": H1_PORT, "s1-eth3": H2_PORT}
NAT_IP = "198.51.100.1"
H1 = SimpleNamespace(mac="00:00:00:00:00:01", ip="10.0.0.11", port=H1_PORT)
H2 = SimpleNamespace(mac="00:00:00:00:00:02", ip="10.0.0.12", port=H2_PORT)
S1 = SimpleNamespace(mac="00:00:00:00:00:10", ip="198.51.100.10")
S2 = SimpleNamespace(mac="00:00:00:00:00:20", ip="198.51.100.20")
ROUTER = SimpleNamespace(mac="00:00:00:00:00:fe", ip="198.51.100.254")


# -- frames the hosts send -------------------------------------------------------
def ip_frame(eth_src: str, src: str, sport: int, dst: str, dport: int, proto: int = UDP,
             payload: bytes = b"payload", eth_dst: str = GW_MAC, ttl: int = 64,
             bits: int = SYN, flags: int = 0, offset: int = 0) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=eth_dst, src=eth_src, ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=src, dst=dst, proto=proto, ttl=ttl, flags=flags,
                               offset=offset))
    if proto == TCP:
        pkt.add_protocol(tcp.tcp(src_port=sport, dst_port=dport, seq=1000, ack=0, bits=bits,
                                 window_size=65535))
    else:
        pkt.add_protocol(udp.udp(src_port=sport, dst_port=dport))
    if payload:
        pkt.add_protocol(payload)
    pkt.serialize()
    return bytes(pkt.data)


def out_frame(host, sport: int, server, dport: int, **kw) -> bytes:
    """From an inside host to a remote, through the gateway."""
    return ip_frame(host.mac, host.ip, sport, server.ip, dport, **kw)


def in_frame(server, sport: int, dport: int, **kw) -> bytes:
    """From a remote to the NAT address."""
    return ip_frame(server.mac, server.ip, sport, NAT_IP, dport, **kw)


def arp_reply(peer) -> bytes:
    """``peer`` tells the gateway where it is."""
    return frames.arp_reply(peer.mac, peer.ip, GW_MAC, NAT_IP)


def look(frame: bytes) -> SimpleNamespace:
    """What the far host sees; IPv4 and L4 checksums must verify."""
    pkt = packet.Packet(frame)
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4)
    assert ip is not None, f"not IPv4: {pkt}"
    start = 14 + ip.header_length * 4
    assert packet_utils.checksum(frame[14:start]) == 0, "IPv4 header checksum"
    l4 = frame[start:14 + ip.total_length]
    seg = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
    assert seg is not None
    assert packet_utils.checksum_ip(ip, len(l4), l4) == 0, "TCP/UDP checksum"
    payload = pkt.protocols[-1] if isinstance(pkt.protocols[-1], (bytes, bytearray)) else b""
    return SimpleNamespace(eth=(eth.src, eth.dst), flow=(ip.src, seg.src_port, ip.dst, seg.dst_port),
                           ttl=ip.ttl, payload=bytes(payload))


def is_arp_request_for(frame: bytes, target: str) -> bool:
    pkt = packet.Packet(frame)
    eth, req = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(arp.arp)
    return (req is not None and req.opcode == arp.ARP_REQUEST and eth.dst == "ff:ff:ff:ff:ff:ff"
            and (req.src_mac, req.src_ip, req.dst_ip) == (GW_MAC, NAT_IP, target))


# -- the lab -------------------------------------------------------------------------
def make_lab(**overrides) -> Wire:
    lab = Wire(Gateway(*make_configs(**overrides)))
    lab.connect(PORTS)
    return lab


def nat(lab: Wire):
    return lab.gateway.switches[lab.switch.dpid].nat


def session_kind(cookie: int) -> CookieKind | None:
    parsed = flows.parse_cookie(cookie)
    if parsed and parsed[0] in (CookieKind.SESSION_OUT, CookieKind.SESSION_IN):
        return parsed[0]
    return None


def session_flows(lab: Wire) -> list:
    """Every session flow in the switch."""
    return [f for f in lab.switch.flows if session_kind(f.cookie)]


def flows_of(lab: Wire, sid: int) -> dict[CookieKind, object]:
    """The flows of session ``sid`` in the switch, by kind."""
    return {session_kind(f.cookie): f for f in session_flows(lab)
            if f.cookie & flows.ID_MASK == sid}


def open_flow(lab: Wire, host, sport: int, server, dport: int, proto: int = UDP):
    """The first packet of a flow, answering the gateway's ARP if it asks;
    returns (session, the translated first packet as the server sees it)."""
    frame = out_frame(host, sport, server, dport, proto=proto, payload=b"first")
    out = lab.send(host.port, frame)
    if out and is_arp_request_for(out[0][1], server.ip):
        out = lab.send(UPLINK, arp_reply(server))
    [(port, sent)] = out
    assert port == UPLINK
    session = nat(lab).ct.lookup_outbound(proto, host.ip, sport, server.ip, dport)
    assert session is not None
    return session, look(sent)
