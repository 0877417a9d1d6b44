"""TCP filtering by mode (RFC 5382 REQ-3, RFC 7857 s5), with real connections.

h1 opens a mapping with a SYN to o1 (refused there: its RST goes back to h1),
then listens on that very port.  Who may now connect to NAT:that port depends
on the configured TCP filtering, judged by whether the connection opens and
echoes from the outside host's side: under address-and-port-dependent
filtering (the default) not even o1, from another port than h1 used.  (UDP's
modes are measured with coturn in test_nat_discovery.)
"""
from __future__ import annotations

import pytest

from helpers.peers import Server, client
from helpers.system import assert_left_nothing
from lab import Lab

NAT_IP = "198.51.100.1"
O1 = "198.51.100.10"
PORT = 44400

LABS = [("endpoint-independent", {"o1": True, "o2": True}),
        ("address-dependent", {"o1": True, "o2": False}),
        ("address-and-port-dependent", {"o1": False, "o2": False})]


@pytest.fixture(scope="module", params=LABS, ids=[mode for mode, _ in LABS])
def lab(request):
    mode, admitted = request.param
    with Lab(inside=1, outside=2, nat_options={"tcp_filtering": mode}) as running:
        running.admitted = admitted
        yield running
    assert_left_nothing(running)


def test_who_may_connect_to_a_tcp_mapping(lab):
    h1 = lab.host("h1")
    refused = client(h1, "tcp-client", f"--to {O1}:7400", f"--sport {PORT}")
    assert not refused["connected"], "o1 has no listener: the SYN opens the mapping only"
    [conn] = [c for c in lab.controller.get("/nat/connections?protocol=tcp")
              if c["internal_port"] == PORT]
    assert conn["external_port"] == PORT
    with Server(h1, "tcp-server", PORT) as server:
        for name, expect in sorted(lab.admitted.items()):
            got = client(lab.host(name), "tcp-client", f"--to {NAT_IP}:{PORT}", "--send 500")
            assert got["connected"] is expect and got["echoed"] == (500 if expect else 0), \
                (name, got)
        peers = {ip for ip, _ in server.peers()}
    outside = {"o1": O1, "o2": "198.51.100.11"}
    assert peers == {outside[n] for n, ok in lab.admitted.items() if ok}, \
        "the server sees the remotes' own addresses, and only the admitted ones"
