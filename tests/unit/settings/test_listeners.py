"""The start-up check of the listening ports (ryu_app.settings.listeners)."""
from __future__ import annotations

import socket
from types import SimpleNamespace

from localports import free_tcp_port
from ryu_app.settings import listeners


def conf(**over):
    base = dict(ofp_listen_host="127.0.0.1", ofp_tcp_listen_port=None, ofp_ssl_listen_port=None,
                ctl_privkey=None, ctl_cert=None, wsapi_host="127.0.0.1", wsapi_port=8080)
    return SimpleNamespace(**{**base, **over})


def test_the_listeners_are_those_ryu_starts():
    assert [(l.what, l.port) for l in listeners.planned(conf())] == [
        ("OpenFlow", 6653), ("OpenFlow", 6633), ("REST", 8080)]
    assert [(l.what, l.port) for l in listeners.planned(conf(ofp_tcp_listen_port=7000))] == [
        ("OpenFlow", 7000), ("REST", 8080)]
    tls = conf(ofp_tcp_listen_port=7000, ofp_ssl_listen_port=7443, ctl_privkey="k", ctl_cert="c")
    assert [(l.what, l.option, l.port) for l in listeners.planned(tls)] == [
        ("OpenFlow (TLS)", "ofp_ssl_listen_port", 7443), ("REST", "wsapi_port", 8080)]
    assert listeners.planned(conf(ofp_tcp_listen_port=7000, wsapi_port=0))[-1].port == 7000


def test_a_port_another_listener_holds_with_so_reuseport_is_in_use():
    """eventlet's listen() sets SO_REUSEPORT: a second one would bind fine."""
    port = free_tcp_port()
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(("127.0.0.1", port))
        held.listen()
        found = listeners.first_problem(conf(ofp_tcp_listen_port=free_tcp_port(),
                                             wsapi_port=port))
    assert found == (f"the REST port 127.0.0.1:{port} is already in use (wsapi_port): "
                     "is another controller running?")
    assert listeners.first_problem(conf(ofp_tcp_listen_port=free_tcp_port(),
                                        wsapi_port=port)) is None


def test_an_address_not_of_this_host_is_one_line():
    found = listeners.first_problem(conf(ofp_listen_host="192.0.2.1",
                                         ofp_tcp_listen_port=free_tcp_port(), wsapi_port=0))
    assert found is not None and found.startswith("cannot listen on 192.0.2.1:")
    assert "\n" not in found
