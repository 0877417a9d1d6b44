"""Deterministic NAT (``deterministic = true``, RFC 7422) for real: the stock
ryu-manager, OVS and Mininet hosts.  Each inside host shows up at the server
on the pool address and in the port block the formula gives, for TCP, UDP
and ICMP; ``snatctl who`` names the owner of any external port from the
configuration alone, sessions or not; and nothing is logged per mapping.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.peers import Capture, Server, client
from helpers.system import assert_left_nothing
from lab import Lab

O1 = "198.51.100.10"
A, B = "198.51.100.2", "198.51.100.3"
SIZE = 252                  # 10.0.0.0/24: 256 addresses; 2 x 256 blocks of 252 in 1024-65535
SNATCTL = str(Path(sys.executable).parent / "snatctl")


def expected(k: int) -> tuple[str, range]:
    """The formula of docs/operations.md: pool[k mod 2], block k div 2."""
    first = 1024 + (k // 2) * SIZE
    return (A, B)[k % 2], range(first, first + SIZE)


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=2, outside=1, nat_options={
            "external_pool": f"{A}-{B}", "port_block_size": SIZE,
            "deterministic": "true"}) as running:
        yield running
    assert_left_nothing(running)


def snatctl(lab, *args: str) -> str:
    env = {**os.environ, "SNATCTL_URL": f"http://127.0.0.1:{lab.controller.rest_port}"}
    done = subprocess.run([SNATCTL, *args], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_each_host_at_its_formulas_address_and_block(lab):
    o1 = lab.host("o1")
    with Server(o1, "udp-server", 9400) as udp, Server(o1, "tcp-server", 7500) as tcp:
        for name, k in (("h1", 11), ("h2", 12)):
            host = lab.host(name)
            address, ports = expected(k)
            before = (udp.peers(), tcp.peers())
            assert client(host, "udp-client", "--sport 5001", f"--to {O1}:9400",
                          "--count 1")["replies"] == {f"{O1}:9400": 1}
            assert client(host, "tcp-client", f"--to {O1}:7500", "--sport 43000")["connected"]
            with Capture(o1, "icmp[icmptype] == 8", seconds=4) as pings:
                assert " 0% packet loss" in host.cmd(f"ping -c 1 -W 2 {O1}")
            [(u_ip, u_port)] = udp.peers() - before[0]
            [(t_ip, t_port)] = tcp.peers() - before[1]
            [echo] = pings.lines
            assert (u_ip, t_ip) == (address, address) and u_port in ports and t_port in ports
            assert re.search(rf"IP {re.escape(address)} > .* id (\d+)", echo), echo
            ident = int(re.search(r" id (\d+)", echo).group(1))
            assert ident in ports, (ident, ports)


def test_snatctl_who_names_the_owner_of_any_port_without_a_log(lab):
    address, ports = expected(11)
    out = snatctl(lab, "who", f"{address}:{ports[-1]}")
    assert "10.0.0.11" in out and "deterministic" in out, out
    # A host that never sent a packet: known all the same.
    address, ports = expected(200)
    got = lab.controller.get(f"/nat/who?external={address}:{ports[0]}")
    assert [(h["source"], h["internal_ip"], h["block"]) for h in got["holders"]] == [
        ("deterministic", "10.0.0.200", f"{ports[0]}-{ports[-1]}")]
    assert "mapping created" not in lab.controller.log()
