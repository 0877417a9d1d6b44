#!/usr/bin/env python3
"""The two ends of ``bench/dataplane.py``'s short connections, run inside
Mininet hosts (standard library only; every loop bounded in count and time).

  dataplane_peer.py server PORT [--seconds S]
      accept, write the peer's address as one line, close; until S seconds have passed
  dataplane_peer.py client --to HOST:PORT --count N [--workers W]
                          [--timeout T] [--deadline S]
      N connections in all, over W forked workers each connecting one at a
      time: connect, read to EOF (the server's line), close.  Prints one JSON
      object: ok, the addresses the server saw, failures (timeouts and other errors, by message), the
      connections/s over the wall time, connect-time percentiles (ms).
"""
from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import time


def server(port: int, seconds: float) -> None:
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", port))
    lsock.listen(4096)
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([lsock], [], [], 0.2)
        if not ready:
            continue
        try:
            conn, _peer = lsock.accept()
        except OSError:
            continue
        try:
            conn.sendall(_peer[0].encode() + b"\n")
        except OSError:
            pass
        conn.close()


def one(host: str, port: int, timeout: float) -> tuple[float | None, str]:
    """(connect seconds, the address the server saw) or (None, what failed)."""
    sock = socket.socket()
    sock.settimeout(timeout)
    try:
        t0 = time.perf_counter()
        sock.connect((host, port))
        took = time.perf_counter() - t0
        got = b""
        while len(got) < 64:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        if not got.endswith(b"\n") or len(got) > 40:
            return None, f"read {len(got)} bytes, not one line"
        return took, got.decode(errors="replace").strip()
    except socket.timeout:
        return None, "timeout"
    except OSError as err:
        return None, type(err).__name__ + (f" {err.errno}" if err.errno else "")
    finally:
        sock.close()


def worker(host: str, port: int, count: int, timeout: float, deadline: float,
           go_fd: int, out_fd: int) -> None:
    os.read(go_fd, 1)                      # start together
    times, errors, seen = [], {}, {}
    for i in range(count):
        if time.monotonic() > deadline:
            errors["not run (deadline)"] = errors.get("not run (deadline)", 0) + count - i
            break
        took, what = one(host, port, timeout)
        if took is not None:
            times.append(took)
            seen[what] = seen.get(what, 0) + 1
        else:
            errors[what] = errors.get(what, 0) + 1
    data = json.dumps({"times": times, "errors": errors, "seen": seen}).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(out_fd, view):]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def client(target: str, count: int, workers: int, timeout: float, seconds: float) -> None:
    host, port = target.rsplit(":", 1)
    workers = max(1, min(workers, 64, count))
    shares = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
    go_r, go_w = os.pipe()
    children = []
    deadline = time.monotonic() + seconds
    for share in shares:
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(out_r)
                worker(host, int(port), share, timeout, deadline, go_r, out_w)
            finally:
                os._exit(0)
        os.close(out_w)
        children.append((pid, out_r))
    started = time.perf_counter()
    os.write(go_w, b"g" * workers)
    times, errors, seen = [], {}, {}
    for pid, out_r in children:
        chunks = []
        while True:
            ready, _, _ = select.select([out_r], [], [], max(0.1, deadline + timeout + 5 - time.monotonic()))
            if not ready:
                errors["worker hung"] = errors.get("worker hung", 0) + 1
                os.kill(pid, 9)
                break
            chunk = os.read(out_r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(out_r)
        os.waitpid(pid, 0)
        if chunks:
            result = json.loads(b"".join(chunks))
            times += result["times"]
            for k, v in result["errors"].items():
                errors[k] = errors.get(k, 0) + v
            for k, v in result["seen"].items():
                seen[k] = seen.get(k, 0) + v
    wall = time.perf_counter() - started
    ms = [t * 1000 for t in times]
    print(json.dumps({
        "count": count, "workers": workers, "ok": len(times),
        "failures": count - len(times), "timeouts": errors.get("timeout", 0),
        "errors": errors, "seen_as": seen, "seconds": wall, "rate": len(times) / wall if wall else 0.0,
        "connect_p50_ms": percentile(ms, 50), "connect_p99_ms": percentile(ms, 99),
        "connect_max_ms": max(ms) if ms else None}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("server")
    p.add_argument("port", type=int)
    p.add_argument("--seconds", type=float, default=120)
    p = sub.add_parser("client")
    p.add_argument("--to", required=True)
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--deadline", type=float, default=60.0)
    a = ap.parse_args()
    if a.mode == "server":
        server(a.port, min(a.seconds, 3600))
    else:
        client(a.to, min(a.count, 100_000), a.workers, min(a.timeout, 30), min(a.deadline, 600))
    return 0


if __name__ == "__main__":
    sys.exit(main())
