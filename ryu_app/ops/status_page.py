"""``GET /``: the status page, plain HTML, CSS and JavaScript from
``ryu_app/ops/static`` served by Ryu's WSGI server (no build step).

The page only reads: it polls ``/nat/bridges``, ``/nat/ha``, ``/nat/stats``
and ``/nat/connections`` with GET, which the REST API answers without the
``rest_token`` (the token guards changes only), so the page needs no secret.
Rates over the last minutes are computed in the page from successive polls.
"""
from __future__ import annotations

from importlib import resources
from typing import Any

from ryu.app.wsgi import ControllerBase, Response, route

#: What the page is made of: URL path -> (file, content type).
ASSETS = {"/": ("status.html", "text/html"),
          "/status.js": ("status.js", "text/javascript"),
          "/status.css": ("status.css", "text/css")}
#: The page loads only its own files and talks only to its own origin.
HEADERS = {"Cache-Control": "no-cache",
           "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                      "frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff"}


def asset(path: str) -> Response:
    """One file of the page, read from the installed package."""
    name, content_type = ASSETS[path]
    body = resources.files("ryu_app.ops").joinpath("static", name).read_bytes()
    resp = Response(status=200, body=body, content_type=content_type, charset="utf-8")
    resp.headers.update(HEADERS)
    return resp


class StatusPageController(ControllerBase):
    """The page and its two assets; everything else is the REST API's."""

    @route("status", "/", methods=["GET"])
    def index(self, req: Any, **_: Any) -> Response:
        return asset("/")

    @route("status", "/status.js", methods=["GET"])
    def script(self, req: Any, **_: Any) -> Response:
        return asset("/status.js")

    @route("status", "/status.css", methods=["GET"])
    def style(self, req: Any, **_: Any) -> Response:
        return asset("/status.css")
