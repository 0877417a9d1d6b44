"""TLS to the switches that keeps working past the first connection.

Ryu 4.34's ``hub.StreamServer`` builds its TLS wrapper from a dict it empties
on the first accepted connection (``ssl_args.pop``): every later switch,
including a switch reconnecting after ovs-vswitchd restarts, falls through to
``ssl.wrap_socket`` without a certificate and fails (and ``ssl.wrap_socket``
is gone in Python 3.12).  A client that fails its handshake also prints a
traceback.  ``install()`` gives ``ryu.controller.controller`` a server that
builds one ``SSLContext`` at start (TLS 1.2 or newer, the switch's
certificate checked against ``ca_certs`` when given) and reports a failed
handshake in one line.
"""
from __future__ import annotations

import logging
import ssl
from typing import Any, Callable

from ryu.controller import controller
from ryu.lib import hub

LOG = logging.getLogger("ryu_app.openflow.tls")
HANDSHAKE_TIMEOUT = 10.0      # seconds a client gets to finish its handshake


def server_context(certfile: str, keyfile: str, ca_certs: str | None = None,
                   cert_reqs: int = ssl.CERT_NONE) -> ssl.SSLContext:
    """The controller's side of the switch connection."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    if ca_certs:
        ctx.load_verify_locations(ca_certs)
    ctx.verify_mode = ssl.VerifyMode(cert_reqs)
    return ctx


def tls_handler(ctx: ssl.SSLContext, handle: Callable[[Any, Any], None]
                ) -> Callable[[Any, Any], None]:
    """Wrap each accepted socket in TLS, then hand it to ``handle``."""
    def wrap_and_handle(sock: Any, addr: Any) -> None:
        try:
            sock.settimeout(HANDSHAKE_TIMEOUT)
            tls = ctx.wrap_socket(sock, server_side=True)
            tls.settimeout(None)
        except (ssl.SSLError, OSError) as err:
            LOG.warning("ryu-snat: TLS handshake with %s failed: %s",
                        ":".join(str(a) for a in addr[:2]), err)
            sock.close()
            return
        handle(tls, addr)
    return wrap_and_handle


class StreamServer(hub.StreamServer):
    """ryu's StreamServer with one TLS context for every connection."""

    def __init__(self, listen_info: Any, handle: Any = None, backlog: Any = None,
                 spawn: str = "default", **ssl_args: Any) -> None:
        super().__init__(listen_info, handle, backlog, spawn)
        if ssl_args:
            ctx = server_context(ssl_args["certfile"], ssl_args["keyfile"],
                                 ssl_args.get("ca_certs"),
                                 ssl_args.get("cert_reqs", ssl.CERT_NONE))
            self.handle = tls_handler(ctx, handle)


def install() -> None:
    """Have ryu's OpenFlow listener use :class:`StreamServer`; idempotent."""
    controller.StreamServer = StreamServer
