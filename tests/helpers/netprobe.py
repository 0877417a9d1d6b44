#!/usr/bin/env python3
"""Bounded traffic peers for the integration tests, run inside Mininet hosts.

Servers log one JSON line per peer event to a file (what the far side saw);
clients print JSON results.  Every loop is bounded in count and time.

  netprobe.py udp-server PORT LOG [--seconds S]
  netprobe.py tcp-server PORT LOG [--seconds S]
  netprobe.py udp-client --sport P --to HOST:PORT [--to ...] [--count N] [--interval S]
  netprobe.py tcp-client --to HOST:PORT [--sport P] [--send N] [--hold S]
  netprobe.py tcp-echo-loop --to HOST:PORT --sport P --seconds S [--interval S] [--patience S]
  netprobe.py tcp-connect-loop --to HOST:PORT --seconds S [--max N]
  netprobe.py udp-reflector PORT LOG [--seconds S]   (answers "ip:port" it saw)
  netprobe.py udp-many --first-sport P --sockets N --to HOST:PORT   (N new flows)
  netprobe.py udp-sweep --first-sport P --count N --to HOST:PORT --seconds S LOG
                        (new flows one after another, each logged with its times)
  netprobe.py udp-learn --sport P --to HOST:PORT      (my external ip:port)
  netprobe.py udp-punch --sport P --to HOST:PORT [--count N] [--interval S]
  netprobe.py flood --iface IF --gateway-mac MAC --to HOST --seconds S [--max N]
                    (scapy, raw frames: needs root)
  netprobe.py echo --to HOST --ident ID [--count N]   (raw socket: needs root)
  netprobe.py frag-udp --to HOST:PORT --sport P --size N [--reverse]   (raw: root)
  netprobe.py frag-flood --to HOST --count N [--seconds S]              (raw: root)
  netprobe.py udp-probe --to HOST:PORT --sport P [--tries N]  (was it refused by ICMP?)
  netprobe.py icmp-error --to NAT --quote-src IP:PORT [--quote-dst IP] --quote-dport P
                         [--bad-checksum]
"""
from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import time


def log_line(path: str, **event) -> None:
    with open(path, "a") as out:
        out.write(json.dumps(event) + "\n")


def udp_server(port: int, log: str, seconds: float, reflect: bool = False) -> None:
    """Echo every datagram back (``reflect``: answer with the ip:port it came
    from instead, as a STUN server tells); log who sent it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    log_line(log, event="ready")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            data, peer = sock.recvfrom(65535)
            log_line(log, proto="udp", peer_ip=peer[0], peer_port=peer[1], size=len(data))
            sock.sendto(f"{peer[0]}:{peer[1]}".encode() if reflect else data, peer)


def _udp_socket(sport: int) -> socket.socket:
    """A UDP socket bound to ``sport`` (again, if a peer just let it go)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", sport))
    return sock


def udp_many(first_sport: int, sockets: int, target: str) -> None:
    """One datagram from each of ``sockets`` sockets (ports first_sport...):
    that many new UDP flows at once; counts the echoes that came back
    within 2 s."""
    host, port = target.rsplit(":", 1)
    socks = []
    for i in range(sockets):
        sock = _udp_socket(first_sport + i)
        sock.setblocking(False)
        socks.append(sock)
    for sock in socks:
        sock.sendto(b"soak", (host, int(port)))
    answered: set = set()
    deadline = time.monotonic() + 2
    while len(answered) < len(socks) and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([s for s in socks if s not in answered], [], [], left)
        for sock in ready:
            try:
                sock.recv(64)
                answered.add(sock)
            except OSError:
                pass
    for sock in socks:
        sock.close()
    print(json.dumps({"sent": len(socks), "answered": len(answered)}))


def udp_sweep(first_sport: int, count: int, target: str, seconds: float, interval: float,
              log: str) -> None:
    """New UDP flows one after another: one datagram from each port
    first_sport..., each waiting at most 0.5 s for its echo; one log line per
    port with when it was sent and answered (wall clock, so a test can set
    them against another event's time; null: no answer)."""
    host, port = target.rsplit(":", 1)
    deadline = time.monotonic() + seconds
    flows = answers = 0
    for sport in range(first_sport, first_sport + count):
        if time.monotonic() > deadline:
            break
        flows += 1
        with _udp_socket(sport) as sock:
            sock.settimeout(0.5)
            sent, answered = time.time(), None
            sock.sendto(b"sweep", (host, int(port)))
            try:
                sock.recv(64)
                answered = time.time()
                answers += 1
            except socket.timeout:
                pass
        log_line(log, sport=sport, sent=sent, answered=answered)
        time.sleep(interval)
    print(json.dumps({"sent": flows, "answered": answers}))


def udp_learn(sport: int, target: str) -> None:
    """Ask a reflector which external ip:port this socket has (3 tries)."""
    host, port = target.rsplit(":", 1)
    sock = _udp_socket(sport)
    sock.settimeout(1)
    seen = None
    for _ in range(3):
        sock.sendto(b"who am i", (host, int(port)))
        try:
            seen = sock.recv(100).decode()
            break
        except socket.timeout:
            continue
    print(json.dumps({"external": seen}))


def udp_punch(sport: int, target: str, count: int, interval: float, at: float) -> None:
    """Send ``count`` numbered datagrams to ``target``, ``interval`` apart,
    from one socket, and report every datagram that socket received
    meanwhile and for one more interval: who sent it and what it said.
    The socket is bound at once; sending starts at wall-clock time ``at``
    (0: now), so two peers started together are both listening first."""
    host, port = target.rsplit(":", 1)
    sock = _udp_socket(sport)
    got: list = []
    time.sleep(max(0.0, min(at - time.time(), 10.0)))
    start = time.monotonic()
    for i in range(count + 1):
        if i < count:
            sock.sendto(f"punch {i}".encode(), (host, int(port)))
        until = start + (i + 1) * interval
        while (left := until - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if ready:
                data, peer = sock.recvfrom(65535)
                got.append([f"{peer[0]}:{peer[1]}", data.decode(errors="replace")])
    print(json.dumps({"sent": count, "received": got}))


def tcp_server(port: int, log: str, seconds: float) -> None:
    """Accept connections; log the peer and every chunk it sends."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", port))
    lsock.listen(64)
    log_line(log, event="ready")
    conns: dict[socket.socket, tuple] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([lsock, *conns], [], [], 0.2)
        for sock in ready:
            if sock is lsock:
                conn, peer = lsock.accept()
                conns[conn] = peer
                log_line(log, proto="tcp", event="accept", peer_ip=peer[0], peer_port=peer[1])
                continue
            peer = conns[sock]
            try:
                data = sock.recv(65535)
            except ConnectionResetError:        # the peer's (translated) RST
                log_line(log, proto="tcp", event="reset", peer_ip=peer[0], peer_port=peer[1])
                del conns[sock]
                sock.close()
                continue
            except OSError:
                data = b""
            if not data:
                log_line(log, proto="tcp", event="close", peer_ip=peer[0], peer_port=peer[1])
                del conns[sock]
                sock.close()
                continue
            log_line(log, proto="tcp", event="data", peer_ip=peer[0], peer_port=peer[1],
                     size=len(data))
            sock.sendall(data)


def udp_client(sport: int, targets: list[str], count: int, interval: float,
               size: int = 0, linger: float = 0) -> None:
    """From ONE socket, send ``count`` datagrams to each target; report replies.
    A reply later than 0.5 s still counts at the next receive; ``linger``
    gives the last ones the same grace (for paths through the controller)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", sport))
    sock.settimeout(0.5)
    replies: dict[str, int] = {t: 0 for t in targets}
    for i in range(count):
        for target in targets:
            host, port = target.rsplit(":", 1)
            message = f"probe {i}".encode()
            sock.sendto(message.ljust(size, b"."), (host, int(port)))
            try:
                data, peer = sock.recvfrom(65535)
                if size and len(data) != size:
                    continue
                replies[f"{peer[0]}:{peer[1]}"] = replies.get(f"{peer[0]}:{peer[1]}", 0) + 1
            except socket.timeout:
                pass
        time.sleep(interval)
    deadline = time.monotonic() + linger
    while sum(replies.values()) < count * len(targets) and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, peer = sock.recvfrom(65535)
        except socket.timeout:
            break
        if not size or len(data) == size:
            replies[f"{peer[0]}:{peer[1]}"] = replies.get(f"{peer[0]}:{peer[1]}", 0) + 1
    print(json.dumps({"sent_per_target": count, "replies": replies}))


def tcp_client(target: str, sport: int, send: int, hold: float) -> None:
    """Connect, send ``send`` bytes in 1 KiB chunks, read echoes, hold, close."""
    host, port = target.rsplit(":", 1)
    sock = socket.socket()
    if sport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", sport))
    sock.settimeout(5)
    result = {"connected": False, "echoed": 0}
    try:
        sock.connect((host, int(port)))
        result["connected"] = True
        sent = 0
        while sent < send:
            chunk = b"x" * min(1024, send - sent)
            sock.sendall(chunk)
            sent += len(chunk)
            result["echoed"] += len(sock.recv(65535))
        time.sleep(hold)
    except OSError as err:
        result["error"] = str(err)
    finally:
        sock.close()
    print(json.dumps(result))


def tcp_echo_loop(target: str, sport: int, seconds: float, interval: float,
                  patience: float = 2.0) -> None:
    """One connection that keeps talking: every ``interval`` a numbered
    32-byte line goes out and must come back within ``patience`` s (2).  Reports the wall
    clock time of every echo that came back (the caller compares them with
    what it did meanwhile) and the first failure, which ends the loop."""
    host, port = target.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", sport))
    sock.settimeout(patience)
    result: dict = {"connected": False, "echoes": [], "error": None}
    deadline = time.monotonic() + seconds
    try:
        sock.connect((host, int(port)))
        result["connected"] = True
        seq = 0
        while time.monotonic() < deadline:
            line = f"echo {seq}".ljust(31).encode() + b"\n"
            sock.sendall(line)
            got = b""
            while len(got) < len(line):
                chunk = sock.recv(len(line) - len(got))
                if not chunk:
                    raise ConnectionError("closed by the peer")
                got += chunk
            if got != line:
                raise ValueError(f"echo {seq} came back as {got!r}")
            result["echoes"].append(round(time.time(), 3))
            seq += 1
            time.sleep(interval)
    except (OSError, ValueError) as err:
        result["error"] = f"{type(err).__name__}: {err}"
    finally:
        sock.close()
    print(json.dumps(result))


def tcp_connect_loop(target: str, seconds: float, most: int) -> None:
    """New connections one after another for ``seconds`` (at most ``most``):
    connect, send a line, read its echo, close.  Each has 3 s; a SYN the
    gateway lost costs the kernel's 1 s retransmission, so the connect times
    show starvation.  Reports successes, failures and connect-time quantiles."""
    host, port = target.rsplit(":", 1)
    ok, failed, times, errors = 0, 0, [], []
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline and ok + failed < most:
        began = time.monotonic()
        stage = "connect"
        try:
            with socket.create_connection((host, int(port)), timeout=3) as sock:
                times.append(time.monotonic() - began)
                stage = "echo"
                sock.sendall(b"hello\n")
                if not sock.recv(64):
                    raise ConnectionError("closed before the echo")
            ok += 1
        except OSError as err:
            failed += 1
            if len(errors) < 5:     # what went wrong, when and where (the first few)
                errors.append(f"{began - start:.2f}s {stage}: {err}")
    elapsed = time.monotonic() - start
    times.sort()
    quantile = (lambda q: round(times[min(len(times) - 1, int(q * len(times)))] * 1000, 1)
                if times else None)
    print(json.dumps({"ok": ok, "failed": failed, "seconds": round(elapsed, 2),
                      "rate": round(ok / elapsed, 1) if elapsed else 0.0,
                      "connect_ms_p50": quantile(0.5), "connect_ms_p99": quantile(0.99),
                      "slow_connects": sum(1 for t in times if t > 0.9),
                      "errors": errors}))


def flood(iface: str, gateway_mac: str, target: str, seconds: float, most: int) -> None:
    """What a hostile inside host sends, built with scapy and sent as raw
    frames as fast as they go, for ``seconds`` (at most ``most`` frames):
    TCP SYNs to new 5-tuples (each one a new session to set up), later
    fragments of no datagram, and pings of the gateway, in turn."""
    from scapy.layers.inet import ICMP, IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.arch.linux import L2Socket
    from scapy.arch import get_if_addr, get_if_hwaddr

    src, mac = get_if_addr(iface), get_if_hwaddr(iface)
    gateway = ".".join(src.split(".")[:3] + ["1"])
    eth = Ether(src=mac, dst=gateway_mac)
    junk = bytes(eth / IP(src=src, dst=target, id=7, frag=100, flags="MF", proto=17)
                 / (b"z" * 64))
    ping = bytes(eth / IP(src=src, dst=gateway) / ICMP(id=0x4242) / (b"p" * 32))
    syn = eth / IP(src=src, dst=target) / TCP(dport=80, flags="S", seq=1)
    sent = {"syn": 0, "fragment": 0, "ping": 0}
    error = None
    start = time.monotonic()
    deadline = start + seconds
    i = 0
    sock = L2Socket(iface=iface)
    try:
        while i < most and (i % 256 or time.monotonic() < deadline):
            kind = ("syn", "fragment", "ping")[i % 3]
            if kind == "syn":
                syn[TCP].sport = 1024 + (i // 3) % 64000
                syn[TCP].dport = 80 + (i // 3) // 64000
                frame = bytes(syn)
            else:
                frame = junk if kind == "fragment" else ping
            try:
                sock.outs.send(frame)
                sent[kind] += 1
            except OSError:       # the host's queue is full: a flood does not care
                pass
            i += 1
    except Exception as err:      # reported, so the test says why the flood stopped
        error = f"{type(err).__name__}: {err}"
    finally:
        sock.close()
    elapsed = time.monotonic() - start
    print(json.dumps({"sent": sent, "seconds": round(elapsed, 2), "error": error,
                      "pps": round(sum(sent.values()) / elapsed) if elapsed else 0}))


def forge(iface: str, kind: str, src: str, src_mac: str | None, to: str, dst_mac: str,
          sport: int, count: int, interval: float, seconds: float = 30, pps: int = 0) -> None:
    """Frames in another's name, built with scapy: a UDP datagram, a TCP RST
    or an ARP request/reply with source ``src`` (and ``src_mac``, else the
    interface's own), ``count`` of them, ``interval`` apart; UDP and RST go
    to ``to`` (HOST:PORT; the port counts up for UDP unless ``--same-port``)."""
    from scapy.arch import get_if_hwaddr
    from scapy.arch.linux import L2Socket
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import ARP, Ether

    from scapy.layers.inet import ICMP

    mac = src_mac or get_if_hwaddr(iface)
    host, _, port = to.partition(":")
    sock = L2Socket(iface=iface)
    sent = 0
    constant = {   # the same frame, as fast as it goes
        "ping": Ether(src=mac, dst=dst_mac) / IP(src=src, dst=host) / ICMP(id=0x4243)
        / (b"p" * 32),
        "rst-flood": Ether(src=mac, dst=dst_mac) / IP(src=src, dst=host) / TCP(
            sport=sport, dport=int(port or 0), flags="R", seq=12345),
        "udp-flood": Ether(src=mac, dst=dst_mac) / IP(src=src, dst=host) / UDP(
            sport=sport, dport=int(port or 0)) / b"flood",
    }.get(kind)
    frame_bytes = bytes(constant) if constant is not None else b""
    deadline = time.monotonic() + seconds
    try:
        for i in range(count):
            if time.monotonic() > deadline:
                break
            if constant is not None:
                if pps and i % 100 == 0:         # paced: ``pps`` frames a second
                    ahead = deadline - seconds + i / pps - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                try:
                    sock.outs.send(frame_bytes)
                    sent += 1
                except OSError:
                    pass
                continue
            if kind == "arp-request":
                frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
                    op=1, hwsrc=mac, psrc=src, pdst=host)
            elif kind == "arp-reply":
                frame = Ether(src=mac, dst=dst_mac) / ARP(op=2, hwsrc=mac, psrc=src,
                                                          hwdst=dst_mac, pdst=host)
            elif kind == "rst":
                frame = Ether(src=mac, dst=dst_mac) / IP(src=src, dst=host) / TCP(
                    sport=sport, dport=int(port), flags="R", seq=1000 + i)
            else:
                frame = Ether(src=mac, dst=dst_mac) / IP(src=src, dst=host) / UDP(
                    sport=sport, dport=int(port) + i) / b"forged"
            sock.outs.send(bytes(frame))
            sent += 1
            time.sleep(interval)
    finally:
        sock.close()
    print(json.dumps({"sent": sent}))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo(target: str, ident: int, count: int) -> None:
    """Ping with a chosen identifier; count replies carrying that identifier."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.settimeout(1.0)
    got = 0
    for seq in range(1, count + 1):
        body = b"netprobe-echo-payload"
        header = bytes([8, 0, 0, 0]) + ident.to_bytes(2, "big") + seq.to_bytes(2, "big")
        csum = _checksum(header + body)
        sock.sendto(header[:2] + csum.to_bytes(2, "big") + header[4:] + body, (target, 0))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                packet, peer = sock.recvfrom(65535)
            except socket.timeout:
                break
            icmp = packet[(packet[0] & 0x0F) * 4:]
            if peer[0] == target and icmp[0] == 0 and int.from_bytes(icmp[4:6], "big") == ident \
                    and int.from_bytes(icmp[6:8], "big") == seq:
                got += 1
                break
        time.sleep(0.1)
    print(json.dumps({"sent": count, "received": got}))


def _ip_header(src: str, dst: str, ident: int, offset: int, more: bool, length: int) -> bytes:
    frag = (0x2000 if more else 0) | (offset // 8)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, ident, frag, 64, 17, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return hdr[:10] + _checksum(hdr).to_bytes(2, "big") + hdr[12:]


def frag_udp(target: str, sport: int, size: int, reverse: bool) -> None:
    """One UDP datagram of ``size`` bytes sent as two IP fragments, the second
    first if ``reverse``; wait for the echo on an ordinary socket."""
    host, port = target.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", sport))
    sock.settimeout(3)
    sock.connect((host, int(port)))
    src = sock.getsockname()[0]
    payload = bytes(i % 251 for i in range(size))
    udp_len = 8 + size
    pseudo = socket.inet_aton(src) + socket.inet_aton(host) + struct.pack("!BBH", 0, 17, udp_len)
    head = struct.pack("!HHHH", sport, int(port), udp_len, 0)
    csum = _checksum(pseudo + head + payload) or 0xFFFF
    datagram = head[:6] + csum.to_bytes(2, "big") + payload
    cut = (len(datagram) // 2) // 8 * 8
    ident = int(time.time() * 1000) & 0xFFFF
    frags = [_ip_header(src, host, ident, 0, True, cut) + datagram[:cut],
             _ip_header(src, host, ident, cut, False, len(datagram) - cut) + datagram[cut:]]
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for frag in (frags[::-1] if reverse else frags):
        raw.sendto(frag, (host, 0))
        time.sleep(0.05)
    try:
        echoed = sock.recv(65535) == payload
    except socket.timeout:
        echoed = False
    print(json.dumps({"sent": size, "echoed": echoed}))


def frag_flood(target: str, count: int, seconds: float) -> None:
    """Later fragments that belong to no datagram: ``count`` of them, spread
    over ``seconds`` (0: as fast as they go)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    src = "0.0.0.0"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((target, 9))
        src = probe.getsockname()[0]
    gap = seconds / count if seconds else 0.0
    start = time.monotonic()
    for i in range(count):
        raw.sendto(_ip_header(src, target, i & 0xFFFF, 800, True, 64) + b"z" * 64, (target, 0))
        if gap:
            time.sleep(max(0.0, start + (i + 1) * gap - time.monotonic()))
    print(json.dumps({"sent": count, "seconds": round(time.monotonic() - start, 2)}))


def udp_probe(target: str, sport: int, tries: int) -> None:
    """Send from a connected UDP socket until an ICMP error makes the kernel
    refuse it (it matched the error to this very socket), or ``tries`` run out."""
    host, port = target.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", sport))
    sock.connect((host, int(port)))
    sock.settimeout(1.0)
    result = {"refused": False, "replies": 0, "tries": 0}
    for _ in range(tries):
        result["tries"] += 1
        try:
            sock.send(b"are you there?")
            sock.recv(65535)
            result["replies"] += 1
        except ConnectionRefusedError:
            result["refused"] = True
            break
        except socket.timeout:
            pass
    print(json.dumps(result))


def icmp_error(target: str, quote_src: str, quote_dst: str, quote_dport: int,
               bad_checksum: bool) -> None:
    """Port unreachable from this host to ``target`` (the NAT address), about
    the UDP datagram ``quote_src`` -> ``quote_dst``:``quote_dport`` (default:
    this host) that it claims to have seen, as a router or host quotes it."""
    qhost, qport = quote_src.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((target, 9))
        me = quote_dst or probe.getsockname()[0]
    body = b"quoted!!"
    udp = struct.pack("!HHHH", int(qport), quote_dport, 8 + len(body), 0)
    pseudo = socket.inet_aton(qhost) + socket.inet_aton(me) + struct.pack("!BBH", 0, 17, 8 + len(body))
    udp = udp[:6] + (_checksum(pseudo + udp + body) or 0xFFFF).to_bytes(2, "big")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(body), 4242, 0, 63, 17, 0,
                     socket.inet_aton(qhost), socket.inet_aton(me))
    ip = ip[:10] + _checksum(ip).to_bytes(2, "big") + ip[12:]
    message = bytes([3, 3, 0, 0, 0, 0, 0, 0]) + ip + udp + body
    csum = _checksum(message) ^ (0x5A5A if bad_checksum else 0)
    message = message[:2] + csum.to_bytes(2, "big") + message[4:]
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    raw.sendto(message, (target, 0))
    print(json.dumps({"sent": True, "bad_checksum": bad_checksum}))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    for mode in ("udp-server", "tcp-server", "udp-reflector"):
        p = sub.add_parser(mode)
        p.add_argument("port", type=int)
        p.add_argument("log")
        p.add_argument("--seconds", type=float, default=60)
    p = sub.add_parser("udp-client")
    p.add_argument("--sport", type=int, required=True)
    p.add_argument("--to", action="append", required=True)
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--size", type=int, default=0, help="pad each datagram to this size")
    p.add_argument("--linger", type=float, default=0, help="seconds to wait for late replies")
    p = sub.add_parser("tcp-client")
    p.add_argument("--to", required=True)
    p.add_argument("--sport", type=int, default=0)
    p.add_argument("--send", type=int, default=1024)
    p.add_argument("--hold", type=float, default=0)
    p = sub.add_parser("tcp-echo-loop")
    p.add_argument("--to", required=True)
    p.add_argument("--sport", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--patience", type=float, default=2.0)
    p = sub.add_parser("tcp-connect-loop")
    p.add_argument("--to", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--max", type=int, default=100000)
    p = sub.add_parser("udp-many")
    p.add_argument("--first-sport", type=int, required=True)
    p.add_argument("--sockets", type=int, default=100)
    p.add_argument("--to", required=True)
    p = sub.add_parser("udp-sweep")
    p.add_argument("--first-sport", type=int, required=True)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--to", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("log")
    p = sub.add_parser("udp-learn")
    p.add_argument("--sport", type=int, required=True)
    p.add_argument("--to", required=True)
    p = sub.add_parser("udp-punch")
    p.add_argument("--sport", type=int, required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--interval", type=float, default=0.3)
    p.add_argument("--at", type=float, default=0.0)
    p = sub.add_parser("flood")
    p.add_argument("--iface", required=True)
    p.add_argument("--gateway-mac", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--max", type=int, default=2_000_000)
    p = sub.add_parser("forge")
    p.add_argument("--iface", required=True)
    p.add_argument("--kind", choices=["udp", "rst", "arp-request", "arp-reply", "ping",
                                      "rst-flood", "udp-flood"],
                   required=True)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--pps", type=int, default=0, help="pace the flood kinds (0: flat out)")
    p.add_argument("--src", required=True)
    p.add_argument("--src-mac")
    p.add_argument("--to", required=True)
    p.add_argument("--dst-mac", required=True)
    p.add_argument("--sport", type=int, default=40000)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.01)
    p = sub.add_parser("frag-udp")
    p.add_argument("--to", required=True)
    p.add_argument("--sport", type=int, required=True)
    p.add_argument("--size", type=int, default=2000)
    p.add_argument("--reverse", action="store_true")
    p = sub.add_parser("frag-flood")
    p.add_argument("--to", required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=0)
    p = sub.add_parser("udp-probe")
    p.add_argument("--to", required=True)
    p.add_argument("--sport", type=int, required=True)
    p.add_argument("--tries", type=int, default=3)
    p = sub.add_parser("icmp-error")
    p.add_argument("--to", required=True)
    p.add_argument("--quote-src", required=True)
    p.add_argument("--quote-dst", default="")
    p.add_argument("--quote-dport", type=int, required=True)
    p.add_argument("--bad-checksum", action="store_true")
    p = sub.add_parser("echo")
    p.add_argument("--to", required=True)
    p.add_argument("--ident", type=int, required=True)
    p.add_argument("--count", type=int, default=3)
    a = ap.parse_args()
    if a.mode == "udp-server":
        udp_server(a.port, a.log, a.seconds)
    elif a.mode == "tcp-server":
        tcp_server(a.port, a.log, a.seconds)
    elif a.mode == "udp-reflector":
        udp_server(a.port, a.log, a.seconds, reflect=True)
    elif a.mode == "udp-many":
        udp_many(a.first_sport, max(1, min(a.sockets, 1000)), a.to)
    elif a.mode == "udp-sweep":
        udp_sweep(a.first_sport, max(1, min(a.count, 5000)), a.to, min(a.seconds, 60),
                  max(a.interval, 0.0), a.log)
    elif a.mode == "udp-learn":
        udp_learn(a.sport, a.to)
    elif a.mode == "udp-punch":
        udp_punch(a.sport, a.to, min(a.count, 1000), min(max(a.interval, 0.01), 5), a.at)
    elif a.mode == "udp-client":
        udp_client(a.sport, a.to, min(a.count, 1000), a.interval, min(a.size, 65000),
                   min(a.linger, 10))
    elif a.mode == "tcp-echo-loop":
        tcp_echo_loop(a.to, a.sport, min(a.seconds, 120), max(a.interval, 0.01),
                      min(max(a.patience, 0.1), 30))
    elif a.mode == "tcp-connect-loop":
        tcp_connect_loop(a.to, min(a.seconds, 120), min(a.max, 100000))
    elif a.mode == "flood":
        flood(a.iface, a.gateway_mac, a.to, min(a.seconds, 60), min(a.max, 2_000_000))
    elif a.mode == "forge":
        forge(a.iface, a.kind, a.src, a.src_mac, a.to, a.dst_mac, a.sport,
              min(a.count, 5_000_000), min(max(a.interval, 0.0), 1.0), min(a.seconds, 60),
              max(0, a.pps))
    elif a.mode == "frag-udp":
        frag_udp(a.to, a.sport, min(a.size, 60000), a.reverse)
    elif a.mode == "frag-flood":
        frag_flood(a.to, min(a.count, 20000), min(a.seconds, 30))
    elif a.mode == "udp-probe":
        udp_probe(a.to, a.sport, min(a.tries, 20))
    elif a.mode == "icmp-error":
        icmp_error(a.to, a.quote_src, a.quote_dst, a.quote_dport, a.bad_checksum)
    elif a.mode == "echo":
        echo(a.to, a.ident, min(a.count, 100))
    else:
        tcp_client(a.to, a.sport, min(a.send, 100_000_000), min(a.hold, 60))


if __name__ == "__main__":
    sys.exit(main())
