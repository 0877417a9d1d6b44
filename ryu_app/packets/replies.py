"""Frames the gateway answers with itself: ARP and ICMP echo replies, PCP answers.

Pure functions from a parsed request to the bytes of the answer, built with
``ryu.lib.packet``; the caller decides whether the request deserves one.
"""
from __future__ import annotations

from ryu.lib.packet import arp, ethernet, icmp, ipv4, packet, udp
from ryu.ofproto import ether

from conntrack.keys import ICMP, UDP

DEFAULT_TTL = 64


def arp_reply(request_eth: ethernet.ethernet, request: arp.arp, our_mac: str) -> bytes:
    """The ARP reply telling the asker that ``request.dst_ip`` is at ``our_mac``."""
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(ethertype=ether.ETH_TYPE_ARP,
                                       dst=request_eth.src, src=our_mac))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=our_mac, src_ip=request.dst_ip,
                             dst_mac=request.src_mac, dst_ip=request.src_ip))
    pkt.serialize()
    return bytes(pkt.data)


def arp_request(our_mac: str, our_ip: str, target_ip: str,
                eth_dst: str = "ff:ff:ff:ff:ff:ff") -> bytes:
    """An ARP request from the gateway for ``target_ip``: broadcast, or
    unicast to ``eth_dst`` (a probe of one place, ``ryu_app.nat.source_guard``)."""
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(ethertype=ether.ETH_TYPE_ARP,
                                       dst=eth_dst, src=our_mac))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=our_mac, src_ip=our_ip,
                             dst_mac="00:00:00:00:00:00", dst_ip=target_ip))
    pkt.serialize()
    return bytes(pkt.data)


def echo_reply(request_eth: ethernet.ethernet, request_ip: ipv4.ipv4,
               request: icmp.icmp, our_mac: str) -> bytes:
    """The ICMP echo reply to an echo request addressed to the gateway."""
    echo = request.data
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(ethertype=ether.ETH_TYPE_IP,
                                       dst=request_eth.src, src=our_mac))
    pkt.add_protocol(ipv4.ipv4(src=request_ip.dst, dst=request_ip.src, ttl=DEFAULT_TTL,
                               proto=ICMP, tos=request_ip.tos))
    pkt.add_protocol(icmp.icmp(type_=icmp.ICMP_ECHO_REPLY, code=0, csum=0,
                               data=icmp.echo(id_=echo.id, seq=echo.seq, data=echo.data)))
    pkt.serialize()
    return bytes(pkt.data)


def dest_unreachable(request_eth: ethernet.ethernet, ip_bytes: bytes, code: int,
                     our_mac: str, our_ip: str) -> bytes:
    """ICMP Destination Unreachable (type 3) from the gateway about the IP
    packet ``ip_bytes`` (its header and first 8 payload bytes are quoted)."""
    header_len = (ip_bytes[0] & 0x0F) * 4
    quoted = ip_bytes[:header_len + 8]
    src = ipv4.ipv4.parser(ip_bytes)[0].src
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(ethertype=ether.ETH_TYPE_IP,
                                       dst=request_eth.src, src=our_mac))
    pkt.add_protocol(ipv4.ipv4(src=our_ip, dst=src, ttl=DEFAULT_TTL, proto=ICMP))
    pkt.add_protocol(icmp.icmp(type_=icmp.ICMP_DEST_UNREACH, code=code, csum=0,
                               data=icmp.dest_unreach(data=quoted)))
    pkt.serialize()
    return bytes(pkt.data)


def time_exceeded(request_eth: ethernet.ethernet, ip_bytes: bytes, our_mac: str,
                  our_ip: str) -> bytes:
    """ICMP Time Exceeded in transit (11/0) from the gateway about the IP packet
    ``ip_bytes`` whose TTL ran out here, so traceroute from inside sees its first
    hop.  Quotes the IP header and first 8 payload bytes (never Ethernet padding)."""
    header_len = (ip_bytes[0] & 0x0F) * 4
    total_len = int.from_bytes(ip_bytes[2:4], "big")
    quoted = ip_bytes[:min(header_len + 8, max(total_len, header_len))]
    src = ipv4.ipv4.parser(ip_bytes)[0].src
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(ethertype=ether.ETH_TYPE_IP,
                                       dst=request_eth.src, src=our_mac))
    pkt.add_protocol(ipv4.ipv4(src=our_ip, dst=src, ttl=DEFAULT_TTL, proto=ICMP))
    pkt.add_protocol(icmp.icmp(type_=icmp.ICMP_TIME_EXCEEDED, code=0, csum=0,
                               data=icmp.TimeExceeded(data=quoted)))
    pkt.serialize()
    return bytes(pkt.data)


def udp_datagram(eth_dst: str, our_mac: str, src_ip: str, src_port: int,
                 dst_ip: str, dst_port: int, payload: bytes) -> bytes:
    """A UDP datagram from the gateway (a PCP or NAT-PMP response)."""
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(ethertype=ether.ETH_TYPE_IP, dst=eth_dst, src=our_mac))
    pkt.add_protocol(ipv4.ipv4(src=src_ip, dst=dst_ip, ttl=DEFAULT_TTL, proto=UDP))
    pkt.add_protocol(udp.udp(src_port=src_port, dst_port=dst_port))
    pkt.add_protocol(payload)
    pkt.serialize()
    return bytes(pkt.data)
