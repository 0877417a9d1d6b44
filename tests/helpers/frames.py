"""Frames that hosts in the lab would send, built with ryu.lib.packet."""
from __future__ import annotations

from ryu.lib.packet import arp, ethernet, icmp, ipv4, packet, packet_utils
from ryu.ofproto import ether, inet

H1_MAC, H1_IP = "00:00:00:00:00:01", "10.0.0.11"
O1_MAC, O1_IP = "00:00:00:00:00:10", "198.51.100.10"


def arp_request(src_mac: str, src_ip: str, target_ip: str) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=src_mac,
                                       ethertype=ether.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=src_mac, src_ip=src_ip,
                             dst_mac="00:00:00:00:00:00", dst_ip=target_ip))
    pkt.serialize()
    return bytes(pkt.data)


def echo_request(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str,
                 ident: int = 0x1234, seq: int = 1, payload: bytes = b"ping-payload",
                 type_: int = icmp.ICMP_ECHO_REQUEST) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=dst_mac, src=src_mac, ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=src_ip, dst=dst_ip, proto=inet.IPPROTO_ICMP, ttl=64))
    pkt.add_protocol(icmp.icmp(type_=type_, code=0, csum=0,
                               data=icmp.echo(id_=ident, seq=seq, data=payload)))
    pkt.serialize()
    return bytes(pkt.data)


def arp_reply(src_mac: str, src_ip: str, dst_mac: str, dst_ip: str) -> bytes:
    """An ARP reply: ``src_ip`` is at ``src_mac`` (e.g. a server answering the gateway)."""
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=dst_mac, src=src_mac, ethertype=ether.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=src_mac, src_ip=src_ip,
                             dst_mac=dst_mac, dst_ip=dst_ip))
    pkt.serialize()
    return bytes(pkt.data)


def icmp_message(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, type_: int,
                 code: int = 0, body: bytes = b"\0" * 16) -> bytes:
    """Any ICMP message, raw: type, code, checksum, then ``body`` as given
    (an error's 4 unused/MTU bytes and its quote are the caller's)."""
    header = bytes([type_, code, 0, 0])
    csum = packet_utils.checksum(header + body)
    message = bytes([type_, code]) + csum.to_bytes(2, "big") + body
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=dst_mac, src=src_mac, ethertype=ether.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=src_ip, dst=dst_ip, proto=inet.IPPROTO_ICMP, ttl=64))
    pkt.add_protocol(message)
    pkt.serialize()
    return bytes(pkt.data)
