"""REST endpoints under ``/nat`` on Ryu's WSGI server.

Controllers stay thin: validate the request, call one app method, return JSON.
Every error, including unknown paths and methods under ``/nat``, is JSON with
an ``error`` key, via :func:`json_endpoint`.
"""
from __future__ import annotations

import functools
import hmac
import json
import ipaddress
import logging
import re
import time
from typing import Any, Callable
from urllib.parse import urlencode

from ryu.app.wsgi import ControllerBase, Response, route
from ryu.lib import hub

from ryu_app.ops import metrics
from ryu_app.ha.roles import NotMaster

from ryu_app.ops import who
from ryu_app.ops.filters import NAMES as FILTERS, ConnectionFilter, FilterError, split_endpoint
from ryu_app.ops.views import DEFAULT_LIMIT, MAX_LIMIT, LookupError_

LOG = logging.getLogger(__name__)
APP_KEY = "ryu_snat_app"
MAX_BODY = 64 * 1024        # a forward is under 200 bytes
_DIGITS = re.compile(r"[0-9]{1,10}")   # ASCII only: "²".isdigit() is True
ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
READ_METHODS = {"GET", "HEAD", "OPTIONS"}


class RestError(Exception):
    """An error answer: HTTP ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_response(body: Any, status: int = 200) -> Response:
    return Response(status=status, content_type="application/json", charset="utf-8",
                    body=json.dumps(body, indent=1, sort_keys=True).encode() + b"\n")


def json_endpoint(func: Callable[..., Any]) -> Callable[..., Response]:
    """Turn a handler's return value or RestError into a JSON response
    (a handler that needs headers returns its own ``json_response``).

    Anything else a handler raises is our bug, not the caller's: it is
    logged with its traceback, counted, and answered with a JSON 500, so
    the REST server and the gateway carry on.
    """
    @functools.wraps(func)
    def wrapper(self: ControllerBase, req: Any, **kwargs: Any) -> Response:
        try:
            if req.method not in READ_METHODS:
                _authorize(req, getattr(getattr(self, "app", None), "rest_token", None))
            result = func(self, req, **kwargs)
            return result if isinstance(result, Response) else json_response(result)
        except (RestError, LookupError_) as err:
            resp = json_response({"error": err.message}, err.status)
            resp.headers.update(getattr(err, "headers", {}))
            return resp
        except FilterError as err:        # a bad filter or time value
            return json_response({"error": str(err)}, 400)
        except NotMaster as err:          # the standby of an HA pair changes nothing
            return json_response({"error": str(err)}, 503)
        except Exception:
            app = getattr(self, "app", None)
            if app is not None:
                app.count_rest_error()
            LOG.exception("REST %s %s failed", req.method, req.path)
            return json_response({"error": "internal error (logged by the controller)"}, 500)
    return wrapper


def _body(req: Any) -> bytes:
    """The request's body, at most MAX_BODY bytes: a larger Content-Length
    is refused before anything is read, and a chunked body is read no
    further than that."""
    length = req.content_length
    if length is not None and length > MAX_BODY:
        raise RestError(413, f"body larger than {MAX_BODY} bytes (Content-Length {length})")
    if length is None:
        if "chunked" not in req.headers.get("Transfer-Encoding", "").lower():
            return b""
        raw = req.body_file_raw.read(MAX_BODY + 1)
    else:
        raw = req.body_file_raw.read(length)
    if len(raw) > MAX_BODY:
        raise RestError(413, f"body larger than {MAX_BODY} bytes")
    return raw


class NatRestController(ControllerBase):
    """``/nat/*``: the operator's view of the gateway."""

    def __init__(self, req: Any, link: Any, data: dict, **config: Any) -> None:
        super().__init__(req, link, data, **config)
        self.app = data[APP_KEY]

    @route("nat", "/nat/stats", methods=["GET"])
    @json_endpoint
    def stats(self, req: Any, **_: Any) -> dict:
        _query(req, set())
        return self.app.stats_snapshot()

    @route("nat", "/metrics", methods=["GET"])
    @json_endpoint
    def metrics(self, req: Any, **_: Any) -> Response:
        """Prometheus' text exposition format (``prometheus_client``)."""
        _query(req, set())
        return Response(status=200, body=metrics.exposition(self.app),
                        content_type=metrics.CONTENT_TYPE_LATEST.split(";")[0],
                        charset="utf-8")

    @route("nat", "/nat/events", methods=["GET"])
    @json_endpoint
    def events(self, req: Any, **_: Any) -> dict:
        """Session events numbered above ``after``, waiting up to ``wait``
        seconds (at most 30) for the first; without ``after``, none, and the
        number of the last one (where a watcher starts)."""
        query = _query(req, {"after", "wait"})
        feed = self.app.event_feed
        if "after" not in query:
            return {"events": [], "last": feed.last, "missed": 0, "boot": feed.boot}
        after = _integer("after", query["after"], 0, 0, 2 ** 63)
        wait = _seconds("wait", query.get("wait"), 0.0, 30.0)
        deadline = time.monotonic() + wait
        events, missed = feed.since(after)
        if events or wait <= 0:
            return {"events": events, "last": feed.last, "missed": missed, "boot": feed.boot}
        if feed.waiters >= feed.max_waiters:
            raise RestError(503, f"{feed.waiters} clients wait for events already "
                                 f"(at most {feed.max_waiters}): ask again, or with wait=0",
                            {"Retry-After": "1"})
        feed.waiters += 1
        try:
            while not events and time.monotonic() < deadline:
                hub.sleep(0.1)       # a green thread: the controller goes on meanwhile
                events, missed = feed.since(after)
        finally:
            feed.waiters -= 1
        return {"events": events, "last": feed.last, "missed": missed, "boot": feed.boot}

    @route("nat", "/nat/connections", methods=["GET"])
    @json_endpoint
    def connections(self, req: Any, **_: Any) -> Response:
        """One page, ascending by id: ``limit`` (default 1000, at most 10000)
        sessions with an id above ``after``.  When more may follow, the
        ``Link`` (rel="next") and ``X-Next-After`` headers say where."""
        query = _query(req, {*FILTERS, "limit", "after"})
        limit = _integer("limit", query.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT)
        after = _integer("after", query.get("after"), 0, 0, 2 ** 32 - 1)
        match = ConnectionFilter.from_query(query)
        page = self.app.view.connections(limit=limit, after=after,
                                         match=None if match.empty else match)
        resp = json_response(page.items)
        if page.next_after is not None:
            rest = {k: v for k, v in query.items() if k != "after"}
            link = f"{req.path}?{urlencode({**rest, 'after': page.next_after})}"
            resp.headers["Link"] = f'<{link}>; rel="next"'
            resp.headers["X-Next-After"] = str(page.next_after)
        return resp

    @route("nat", "/nat/connections", methods=["DELETE"])
    @json_endpoint
    def delete_connections(self, req: Any, **_: Any) -> dict:
        """End every session the filters match, in one request (``snatctl
        flush``); with no filter, only when ``all=true`` says so."""
        query = _query(req, {*FILTERS, "all"})
        everything = query.get("all", "false")
        if everything not in ("true", "false"):
            raise RestError(400, f"all must be true or false, got {everything!r}")
        match = ConnectionFilter.from_query(query)
        if match.empty and everything != "true":
            raise RestError(400, "no filter: add one, or all=true to end every session")
        self.app.writable()
        ended = []
        after = 0
        while True:
            page = self.app.view.connections(limit=MAX_LIMIT, after=after, match=match)
            ended += [(c["dpid"], c["id"]) for c in page.items]
            if page.next_after is None:
                break
            after = page.next_after
        deleted = [{"id": sid, "dpid": dpid} for dpid, sid in ended
                   if self.app.delete_connection(dpid, sid)]
        return {"deleted": len(deleted), "connections": deleted}

    @route("nat", "/nat/who", methods=["GET"])
    @json_endpoint
    def who(self, req: Any, **_: Any) -> dict:
        """Who held ``external=IP:PORT`` (at ``at``): live table and mapping log."""
        query = _query(req, {"external", "at", "protocol"})
        if "external" not in query:
            raise RestError(400, "external=IP:PORT is required")
        ip, port = split_endpoint(query["external"])
        protocol = query.get("protocol")
        if protocol is not None and protocol not in ("tcp", "udp", "icmp"):
            raise RestError(400, "protocol must be one of tcp, udp, icmp")
        at = who.parse_at(query["at"]) if "at" in query else None
        maps = [m for c in self.app.configs if (m := c.deterministic_map()) is not None]
        return who.answer(self.app.view, self.app.gateway.mapping_log, ip, port, protocol, at,
                          pause=lambda: hub.sleep(0), deterministic=maps)

    @route("nat", "/nat/connections/{sid}", methods=["GET"])
    @json_endpoint
    def connection(self, req: Any, sid: str, **_: Any) -> dict:
        query = _query(req, {"dpid"})
        sid_, dpid = _session_id(sid), _dpid(query.get("dpid"))
        return self.app.view.connection(sid_, dpid)

    @route("nat", "/nat/connections/{sid}", methods=["DELETE"])
    @json_endpoint
    def delete_connection(self, req: Any, sid: str, **_: Any) -> dict:
        query = _query(req, {"dpid"})
        sid_, dpid_ = _session_id(sid), _dpid(query.get("dpid"))
        dpid, _nat, session = self.app.view.find(sid_, dpid_)
        self.app.delete_connection(dpid, session.id)
        return {"deleted": session.id, "dpid": dpid}

    @route("nat", "/nat/ha", methods=["GET"])
    @json_endpoint
    def ha(self, req: Any, **_: Any) -> dict:
        """This controller's part in an HA pair (leader, role at each switch)."""
        _query(req, set())
        return self.app.ha_status()

    @route("nat", "/nat/bridges", methods=["GET"])
    @json_endpoint
    def bridges(self, req: Any, **_: Any) -> list:
        """Each NAT bridge profile: dpid, NAT address, its connected switches."""
        _query(req, set())
        return self.app.view.bridges()

    @route("nat", "/nat/port-mappings", methods=["GET"])
    @json_endpoint
    def port_mappings(self, req: Any, **_: Any) -> list:
        """Mappings inside hosts made over PCP and NAT-PMP (``?dpid=``)."""
        query = _query(req, {"dpid"})
        return self.app.view.port_mappings(_dpid(query.get("dpid")))

    @route("nat", "/nat/port-mappings/{protocol}/{ip}/{port}", methods=["DELETE"])
    @json_endpoint
    def revoke_port_mapping(self, req: Any, protocol: str, ip: str, port: str,
                            **_: Any) -> dict:
        """End a mapping a host made (``?peer=IP:PORT`` for a PCP PEER)."""
        query = _query(req, {"dpid", "peer"})
        number = {"tcp": 6, "udp": 17}.get(protocol.lower())
        if number is None:
            raise RestError(400, f"protocol must be tcp or udp, got {protocol!r}")
        inside = _address("internal_ip", ip)
        inside_port = _integer("port", port, 0, 1, 65535)
        peer = None
        if "peer" in query:
            peer_ip, _sep, peer_port = query["peer"].rpartition(":")
            peer = (_address("peer", peer_ip), _integer("peer port", peer_port, 0, 1, 65535))
        done = self.app.revoke_port_mapping(number, inside, inside_port, peer,
                                            _dpid(query.get("dpid")))
        if not done:
            raise RestError(404, f"no PCP/NAT-PMP mapping of {protocol.lower()} "
                                 f"{inside}:{inside_port}" + (f" with peer {query['peer']}"
                                                              if peer else ""))
        return {"revoked": {"protocol": protocol.lower(), "internal_ip": inside,
                            "internal_port": inside_port,
                            "peer": None if peer is None else {"ip": peer[0], "port": peer[1]}},
                "dpids": [f"{d:016x}" for d in done]}

    @route("nat", "/nat/forwards", methods=["GET"])
    @json_endpoint
    def forwards(self, req: Any, **_: Any) -> list:
        _query(req, set())
        return self.app.list_forwards()

    @route("nat", "/nat/forwards", methods=["POST"])
    @json_endpoint
    def add_forward(self, req: Any, **_: Any) -> dict:
        dpid = _dpid(_query(req, {"dpid"}).get("dpid"))
        raw = _body(req) or b"null"
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise RestError(400, f"body is not JSON: {exc}") from None
        try:
            return self.app.add_forward(body, dpid)
        except ValueError as exc:
            raise RestError(400, str(exc)) from None

    @route("nat", "/nat/forwards/{protocol}/{port}", methods=["DELETE"])
    @json_endpoint
    def delete_forward(self, req: Any, protocol: str, port: str, **_: Any) -> dict:
        dpid = _dpid(_query(req, {"dpid"}).get("dpid"))
        if protocol not in ("tcp", "udp") or not _DIGITS.fullmatch(port):
            raise RestError(400, "expected /nat/forwards/{tcp|udp}/{external_port}")
        try:
            removed = self.app.remove_forward(protocol, int(port), dpid)
        except ValueError as exc:
            raise RestError(400, str(exc)) from None
        if not removed:
            raise RestError(404, f"no forward of {protocol} port {port}")
        return {"deleted": {"protocol": protocol, "external_port": int(port)}}


def _authorize(req: Any, token: str | None) -> None:
    """A request that changes state must carry the configured bearer token
    (none configured: the API relies on listening on 127.0.0.1 only)."""
    if token is None:
        return
    given = req.headers.get("Authorization", "")
    scheme, _, credential = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode(), token.encode()):
        raise RestError(401, f"{req.method} needs the header 'Authorization: Bearer "
                        "<rest_token>'" + (" (this token is wrong)" if given else ""),
                        {"WWW-Authenticate": 'Bearer realm="ryu-snat"'})


def _query(req: Any, allowed: set[str]) -> dict[str, str]:
    """The query string as a dict; unknown or repeated parameters are a 400."""
    unknown = sorted(set(req.GET) - allowed)
    if unknown:
        raise RestError(400, f"unknown query parameter(s): {', '.join(unknown)}")
    query = {}
    for key in req.GET:
        values = req.GET.getall(key)
        if len(values) != 1:
            raise RestError(400, f"query parameter {key} given {len(values)} times")
        query[key] = values[0]
    return query


def _session_id(raw: str) -> int:
    if not _DIGITS.fullmatch(raw) or not 0 < int(raw) < 2 ** 32:
        raise RestError(400, f"connection id must be an integer 1..4294967295, got {raw!r}")
    return int(raw)


def _integer(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    """A query parameter that must be a decimal integer in low..high."""
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise RestError(400, f"{name} must be an integer {low}..{high}, got {raw!r}")
    return int(raw)


def _seconds(name: str, raw: str | None, default: float, high: float) -> float:
    """A query parameter that must be a number of seconds in 0..high."""
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= high:
        raise RestError(400, f"{name} must be 0..{high:g} seconds, got {raw!r}")
    return value


def _address(name: str, raw: str) -> str:
    try:
        return str(ipaddress.IPv4Address(raw))
    except ValueError:
        raise RestError(400, f"{name} must be an IPv4 address, got {raw!r}") from None


def _dpid(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw, 0)
    except ValueError:
        raise RestError(400, f"dpid must be an integer, got {raw!r}") from None


class NatFallbackController(ControllerBase):
    """Registered last, so it only sees /nat requests nothing else matched."""

    @route("nat_fallback", "/nat{path:(/.*)?}", methods=ALL_METHODS)
    @json_endpoint
    def not_found(self, req: Any, **_: Any) -> None:
        raise RestError(404, f"no such resource: {req.method} {req.path}")
