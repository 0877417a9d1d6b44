"""Are the addresses ryu-manager is about to listen on free?

eventlet's ``listen()`` sets ``SO_REUSEPORT``, so a second ryu-manager on the
same OpenFlow and REST ports binds without error and the kernel splits the
connections between the two.  The app checks before the listeners start (its
constructor runs before ``ryu-manager`` starts any server): a plain bind with
``SO_REUSEADDR`` but without ``SO_REUSEPORT`` fails while anyone listens there.
"""
from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Any

OFP_PORT = 6653        # ryu's OpenFlow port when neither listen port is set
OFP_PORT_OLD = 6633    # ... and the old one it listens on as well then


@dataclass(frozen=True)
class Listener:
    """One address a server of ryu-manager will listen on."""

    what: str           # "OpenFlow", "OpenFlow (TLS)", "REST"
    option: str         # the option that sets the port
    host: str
    port: int


def planned(conf: Any) -> list[Listener]:
    """The listeners ryu-manager starts for ``conf`` (ryu.cfg.CONF), as
    ``ryu.controller.controller.OpenFlowController`` and ``ryu.app.wsgi``
    choose them.  Port 0 (a free port from the kernel) is never checked."""
    host = str(conf.ofp_listen_host or "")
    tcp, ssl = conf.ofp_tcp_listen_port, conf.ofp_ssl_listen_port
    tls = conf.ctl_privkey is not None and conf.ctl_cert is not None
    found = []
    if not tcp and not ssl:
        kind = "OpenFlow (TLS)" if tls else "OpenFlow"
        found += [Listener(kind, "ofp_tcp_listen_port", host, OFP_PORT),
                  Listener(kind, "ofp_tcp_listen_port", host, OFP_PORT_OLD)]
    elif tls and ssl:
        found.append(Listener("OpenFlow (TLS)", "ofp_ssl_listen_port", host, int(ssl)))
    elif not tls and tcp:
        found.append(Listener("OpenFlow", "ofp_tcp_listen_port", host, int(tcp)))
    wsapi_port = getattr(conf, "wsapi_port", None)
    if wsapi_port:
        found.append(Listener("REST", "wsapi_port", str(getattr(conf, "wsapi_host", "") or ""),
                              int(wsapi_port)))
    return [lst for lst in found if lst.port]


def problem(listener: Listener) -> str | None:
    """Why ``listener`` cannot listen (one line), or None when it can."""
    host = listener.host or "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, listener.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        return f"cannot listen on {host}:{listener.port}: {err.strerror}"
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            where = f"{host}:{listener.port}"
            if err.errno == errno.EADDRINUSE:
                return (f"the {listener.what} port {where} is already in use "
                        f"({listener.option}): is another controller running?")
            return f"cannot listen on {where} ({listener.option}): {err.strerror}"
    return None


def first_problem(conf: Any) -> str | None:
    """The first listener of ``conf`` that cannot listen, as one line."""
    for listener in planned(conf):
        found = problem(listener)
        if found:
            return found
    return None
