"""Port blocks per inside host (``port_block_size``) for real: the stock
ryu-manager, OVS and Mininet hosts.  The server sees each host's ports come
from the host's own block; a host over its blocks gets ICMP 3/13 and is
counted while another host goes on; the mapping log has one line per block,
none per session (RFC 6888 REQ-4, RFC 7422).
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from helpers.peers import Capture, Server, client
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

O1, NAT = "198.51.100.10", "198.51.100.1"
H1, H2 = "10.0.0.11", "10.0.0.12"
BLOCK = 8


@pytest.fixture(scope="module")
def log_file():
    with tempfile.TemporaryDirectory(prefix="ryu-snat-blocks-") as d:
        yield Path(d) / "mappings.log"


@pytest.fixture(scope="module")
def lab(log_file):
    with Lab(inside=2, outside=1, nat_options={
            "port_range": "40000-40031", "port_block_size": BLOCK, "port_blocks_per_host": 1,
            "mapping_log_file": str(log_file)}) as running:
        yield running
    assert_left_nothing(running)


def test_a_hosts_ports_come_from_its_block_and_the_log_has_one_line_per_block(lab, log_file):
    h1, h2 = lab.host("h1"), lab.host("h2")
    with Server(lab.host("o1"), "udp-server", 9400) as udp:
        for n in range(BLOCK):
            assert client(h1, "udp-client", f"--sport {5100 + n}", f"--to {O1}:9400",
                          "--count 1")["replies"] == {f"{O1}:9400": 1}
        h1_ports = {port for addr, port in udp.peers()}
        assert len(h1_ports) == BLOCK
        first = min(h1_ports)
        assert (first - 40000) % BLOCK == 0 and h1_ports == set(range(first, first + BLOCK)), \
            f"not one block: {sorted(h1_ports)}"
        # Its one block is full: the ninth mapping is refused and h1 is told.
        refused_before = lab.controller.get("/nat/stats")["refused"].get("block_quota", 0)
        with Capture(h1, "icmp[icmptype] == 3 and icmp[icmpcode] == 13", seconds=4) as cap:
            out = client(h1, "udp-client", "--sport 5200", f"--to {O1}:9400", "--count 1")
        assert not any(out["replies"].values()), out
        assert cap.lines, "ICMP 3/13 to the refused host"
        assert lab.controller.get("/nat/stats")["refused"]["block_quota"] > refused_before
        # h2 has its own block.
        assert client(h2, "udp-client", "--sport 5300", f"--to {O1}:9400",
                      "--count 1")["replies"] == {f"{O1}:9400": 1}
        [h2_port] = {port for _, port in udp.peers()} - h1_ports
        assert not first <= h2_port < first + BLOCK

    def block_lines() -> list[str]:
        text = log_file.read_text() if log_file.exists() else ""
        return [line.split(" ", 1)[1] for line in text.splitlines()]

    wait_for(lambda: len(block_lines()) >= 2, 5, what="the block lines")
    lines = block_lines()
    h2_first = 40000 + (h2_port - 40000) // BLOCK * BLOCK
    assert lines == [
        f"port block allocated: udp {H1} -> {NAT}:{first}-{first + BLOCK - 1}",
        f"port block allocated: udp {H2} -> {NAT}:{h2_first}-{h2_first + BLOCK - 1}"], lines
    assert not any(re.match(r"mapping ", line) for line in lines)
