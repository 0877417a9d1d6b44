"""A small PCP client (RFC 6887) written from the RFC, for Mininet hosts.

It builds the request from the RFC's field layout (section 7.1 header, 11.1
MAP, 12.1 PEER, 7.3 options), sends it to UDP 5351 of the server, and prints
the response as one JSON line, every field decoded (``answered`` false when
nothing came back).  ``--raw HEX`` sends those bytes instead (hostile
input).  It shares no code with the gateway.

    pcp_client.py --server 10.0.0.1 map --proto 6 --iport 80 --eport 8080 --lifetime 3600
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import struct
import sys


def v4mapped(ip: str) -> bytes:
    return ipaddress.IPv6Address(f"::ffff:{ip}").packed


def own_address(server: str) -> str:
    """The address this host sends to ``server`` from (the PCP client field)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((server, 5351))
        return s.getsockname()[0]


def request(args: argparse.Namespace) -> bytes:
    if args.raw is not None:
        return bytes.fromhex(args.raw)
    opcode = {"announce": 0, "map": 1, "peer": 2}[args.op]
    client = args.client_ip or own_address(args.server)
    msg = struct.pack("!BBHI16s", args.version, opcode, 0, args.lifetime, v4mapped(client))
    if opcode:
        msg += bytes.fromhex(args.nonce)
        msg += struct.pack("!B3xHH16s", args.proto, args.iport, args.eport,
                           v4mapped(args.ext_ip) if args.ext_ip else bytes(16))
    if opcode == 2:
        ip, port = args.remote.rsplit(":", 1)
        msg += struct.pack("!H2x16s", int(port), v4mapped(ip))
    if args.third_party:
        msg += struct.pack("!BBH16s", 1, 0, 16, v4mapped(args.third_party))
    if args.prefer_failure:
        msg += struct.pack("!BBH", 2, 0, 0)
    return msg


def decode(reply: bytes) -> dict:
    out: dict = {"answered": True, "size": len(reply)}
    if len(reply) < 24:
        out["raw"] = reply.hex()
        return out
    version, r_op, _, result, lifetime, epoch = struct.unpack_from("!BBBBII", reply)
    out.update(version=version, response=bool(r_op & 0x80), opcode=r_op & 0x7F,
               result=result, lifetime=lifetime, epoch=epoch)
    if out["opcode"] in (1, 2) and len(reply) >= 60:
        proto, iport, eport, ext = struct.unpack_from("!B3xHH16s", reply, 36)
        out.update(nonce=reply[24:36].hex(), protocol=proto, internal_port=iport,
                   external_port=eport, external_ip=str(ipaddress.IPv6Address(ext).ipv4_mapped))
    if out["opcode"] == 2 and len(reply) >= 80:
        rport, rip = struct.unpack_from("!H2x16s", reply, 60)
        out.update(remote_port=rport, remote_ip=str(ipaddress.IPv6Address(rip).ipv4_mapped))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--sport", type=int, default=0, help="client UDP port (0: any)")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--version", type=int, default=2)
    p.add_argument("--raw", help="send these bytes (hex) instead of a request")
    p.add_argument("--repeat", type=int, default=1, help="send this many, count the answers")
    p.add_argument("op", choices=["announce", "map", "peer"], nargs="?", default="map")
    p.add_argument("--proto", type=int, default=6)
    p.add_argument("--iport", type=int, default=0)
    p.add_argument("--eport", type=int, default=0)
    p.add_argument("--ext-ip", default=None)
    p.add_argument("--lifetime", type=int, default=3600)
    p.add_argument("--nonce", default=os.urandom(12).hex())
    p.add_argument("--remote", default="0.0.0.0:0", help="PEER: remote IP:PORT")
    p.add_argument("--client-ip", default=None, help="the client field (default: our address)")
    p.add_argument("--third-party", default=None)
    p.add_argument("--prefer-failure", action="store_true")
    args = p.parse_args()
    msg = request(args)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", args.sport))
        s.settimeout(args.timeout)
        answers, last = 0, None
        for _ in range(args.repeat):
            s.sendto(msg, (args.server, 5351))
        while answers < args.repeat:          # until all came, or none for --timeout
            try:
                last, _ = s.recvfrom(2048)
            except socket.timeout:
                break
            answers += 1
    result = decode(last) if last is not None else {"answered": False}
    result["answers"] = answers
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
