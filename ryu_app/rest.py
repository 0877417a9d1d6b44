"""REST endpoints under ``/nat`` on Ryu's WSGI server.

Controllers stay thin: validate the request, call one app method, return JSON.
Every error, including unknown paths and methods under ``/nat``, is JSON with
an ``error`` key, via :func:`json_endpoint`.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Callable

from ryu.app.wsgi import ControllerBase, Response, route

APP_KEY = "ryu_snat_app"
ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


class RestError(Exception):
    """An error answer: HTTP ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(body: Any, status: int = 200) -> Response:
    return Response(status=status, content_type="application/json", charset="utf-8",
                    body=json.dumps(body, indent=1, sort_keys=True).encode() + b"\n")


def json_endpoint(func: Callable[..., Any]) -> Callable[..., Response]:
    """Turn a handler's return value or RestError into a JSON response."""
    @functools.wraps(func)
    def wrapper(self: ControllerBase, req: Any, **kwargs: Any) -> Response:
        try:
            return json_response(func(self, req, **kwargs))
        except RestError as err:
            return json_response({"error": err.message}, err.status)
    return wrapper


class NatRestController(ControllerBase):
    """``/nat/*``: the operator's view of the gateway."""

    def __init__(self, req: Any, link: Any, data: dict, **config: Any) -> None:
        super().__init__(req, link, data, **config)
        self.app = data[APP_KEY]

    @route("nat", "/nat/stats", methods=["GET"])
    @json_endpoint
    def stats(self, req: Any, **_: Any) -> dict:
        if req.GET:
            raise RestError(400, f"unknown query parameter(s): {', '.join(sorted(req.GET))}")
        return self.app.stats_snapshot()


class NatFallbackController(ControllerBase):
    """Registered last, so it only sees /nat requests nothing else matched."""

    @route("nat_fallback", "/nat{path:(/.*)?}", methods=ALL_METHODS)
    @json_endpoint
    def not_found(self, req: Any, **_: Any) -> None:
        raise RestError(404, f"no such resource: {req.method} {req.path}")
