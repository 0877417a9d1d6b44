"""``snatctl``: the operator's command line, over the REST API.

    snatctl [--url URL] [--token TOKEN] connections [--protocol P] [--host IP] [--state S] [--json]
    snatctl watch [--count N] [--timeout S] [--json]
    snatctl stats [--json]
    snatctl forwards list | add PROTO EXT_PORT INSIDE_IP INSIDE_PORT | del PROTO EXT_PORT
    snatctl flush [--yes]

URL and token also come from ``SNATCTL_URL`` and ``SNATCTL_TOKEN``.  Exit
codes: 0 done; 1 the controller refused the request (its error is printed);
2 the controller cannot be reached; 3 the token is missing or wrong (401);
4 a bad command line (click's usage error).
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Iterator

import click
import requests
from rich.console import Console
from rich.table import Table

from conntrack import State

EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_TOKEN, EXIT_USAGE = 1, 2, 3, 4
DEFAULT_URL = "http://127.0.0.1:8080"
STATES = tuple(state.value for state in State)     # the engine's own names


class Fail(click.ClickException):
    """One line on stderr and a documented exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        # click types exit_code as a ClassVar; an instance's own code shadows it.
        self.exit_code = code  # type: ignore[misc]

    def show(self, file: Any = None) -> None:
        click.echo(f"snatctl: {self.message}", err=True)


class Api:
    """The controller's REST API: JSON in, JSON out, failures as :class:`Fail`."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0) -> None:
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def call(self, method: str, path: str, body: Any = None, params: dict | None = None,
             timeout: float | None = None, busy_ok: bool = False) -> requests.Response:
        """One request; ``busy_ok``: a 503 with Retry-After (the controller
        has its fill of long polls) is returned, not failed."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            resp = requests.request(method, self.url + path, json=body, params=params,
                                    headers=headers, timeout=timeout or self.timeout)
        except requests.RequestException as err:
            raise Fail(f"cannot reach the controller at {self.url}: "
                       f"{type(err).__name__}", EXIT_UNREACHABLE) from None
        if resp.status_code == 401:
            raise Fail("the controller refused the token (set --token or SNATCTL_TOKEN)",
                       EXIT_TOKEN)
        if busy_ok and resp.status_code == 503 and "Retry-After" in resp.headers:
            return resp
        if resp.status_code >= 400:
            try:
                error = resp.json().get("error", resp.text)
            except ValueError:
                error = resp.text.strip()
            raise Fail(f"{method} {path}: {resp.status_code} {error}", EXIT_REFUSED)
        return resp

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None}
                         ).json()

    def connections(self, protocol: str | None, host: str | None) -> Iterator[dict]:
        """Every session, page after page (``X-Next-After``)."""
        after = None
        while True:
            resp = self.call("GET", "/nat/connections", params={
                k: v for k, v in (("protocol", protocol), ("internal_ip", host),
                                  ("after", after)) if v is not None})
            yield from resp.json()
            after = resp.headers.get("X-Next-After")
            if after is None:
                return


def _console() -> Console:
    """A terminal's own width; piped, wide enough that no address is cut."""
    return Console(highlight=False) if sys.stdout.isatty() else Console(width=200,
                                                                         highlight=False)


def _endpoint(ip: str, port: int) -> str:
    return f"{ip}:{port}"


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for name in columns:
        table.add_column(name, justify="right" if name in ("id", "packets", "bytes") else "left",
                         no_wrap=True)
    return table


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="SNATCTL_URL", default=DEFAULT_URL, show_default=True,
              help="the controller's REST API")
@click.option("--token", envvar="SNATCTL_TOKEN", default=None,
              help="bearer token ([nat] rest_token) for changes")
@click.pass_context
def cli(ctx: click.Context, url: str, token: str | None) -> None:
    """Inspect and steer a ryu-snat gateway (like conntrack -L / -E)."""
    ctx.obj = Api(url, token)


@cli.command()
@click.option("--protocol", type=click.Choice(["tcp", "udp", "icmp"]))
@click.option("--host", "host", metavar="IP", help="inside host address")
@click.option("--state", type=click.Choice(STATES, case_sensitive=False))
@click.option("--json", "as_json", is_flag=True, help="JSON, one list")
@click.pass_obj
def connections(api: Api, protocol: str | None, host: str | None, state: str | None,
                as_json: bool) -> None:
    """The NAT table: one line per session, as conntrack -L shows it."""
    rows = [c for c in api.connections(protocol, host)
            if state is None or c["state"] == state.upper()]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    table = _table(f"{len(rows)} connections", ["id", "proto", "state", "inside", "outside",
                                                 "remote", "timeout", "packets", "bytes"])
    for c in rows:
        table.add_row(str(c["id"]), c["protocol"], c["state"],
                      _endpoint(c["internal_ip"], c["internal_port"]),
                      _endpoint(c["external_ip"], c["external_port"]),
                      _endpoint(c["remote_ip"], c["remote_port"]),
                      f"{c['expires_in']:.0f}s",
                      f"{c['packets_out']}/{c['packets_in']}",
                      f"{c['bytes_out']}/{c['bytes_in']}")
    _console().print(table)


@cli.command()
@click.option("--count", type=click.IntRange(min=1), help="stop after this many events")
@click.option("--timeout", type=click.FloatRange(min=0), help="stop after this many seconds")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.pass_obj
def watch(api: Api, count: int | None, timeout: float | None, as_json: bool) -> None:
    """Session events as they happen (new, update, destroy), like conntrack -E."""
    last = api.get("/nat/events")["last"]          # from now on
    seen, end = 0, None if timeout is None else time.monotonic() + timeout
    console = _console()
    while end is None or time.monotonic() < end:
        wait = 10.0 if end is None else max(0.0, min(10.0, end - time.monotonic()))
        resp = api.call("GET", "/nat/events", params={"after": last, "wait": f"{wait:.1f}"},
                        timeout=wait + 10, busy_ok=True)
        if resp.status_code == 503:         # enough watchers wait already: in a moment
            time.sleep(min(float(resp.headers["Retry-After"]), 5.0))
            continue
        page = resp.json()
        if page.get("missed"):
            click.echo(f"snatctl: {page['missed']} events were missed (too slow)", err=True)
        for e in page["events"]:
            last = e["seq"]
            if as_json:
                click.echo(json.dumps(e))
            else:
                why = f" ({e['reason']})" if e["reason"] else ""
                console.print(f"[{e['event'].upper()}] {e['protocol']} {e['state']} "
                              f"{_endpoint(e['internal_ip'], e['internal_port'])} -> "
                              f"{_endpoint(e['external_ip'], e['external_port'])} -> "
                              f"{_endpoint(e['remote_ip'], e['remote_port'])} "
                              f"id={e['id']}{why}")
            seen += 1
            if count is not None and seen >= count:
                return


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def stats(api: Api, as_json: bool) -> None:
    """Counters: sessions, refusals, drops, ports, packet-ins."""
    st = api.get("/nat/stats")
    if as_json:
        click.echo(json.dumps(st, indent=1, sort_keys=True))
        return
    table = _table("ryu-snat", ["counter", "value"])
    for key, value in sorted(st.items()):
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
        table.add_row(key, str(value))
    _console().print(table)


@cli.group()
def forwards() -> None:
    """Static port forwards (DNAT)."""


@forwards.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def forwards_list(api: Api, as_json: bool) -> None:
    rows = api.get("/nat/forwards")
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    table = _table(f"{len(rows)} forwards", ["proto", "outside port", "inside"])
    for f in rows:
        table.add_row(f["protocol"], str(f["external_port"]),
                      _endpoint(f["internal_ip"], f["internal_port"]))
    _console().print(table)


@forwards.command("add")
@click.argument("protocol", type=click.Choice(["tcp", "udp"]))
@click.argument("external_port", type=click.IntRange(1, 65535))
@click.argument("internal_ip")
@click.argument("internal_port", type=click.IntRange(1, 65535))
@click.pass_obj
def forwards_add(api: Api, protocol: str, external_port: int, internal_ip: str,
                 internal_port: int) -> None:
    body = {"protocol": protocol, "external_port": external_port,
            "internal_ip": internal_ip, "internal_port": internal_port}
    api.call("POST", "/nat/forwards", body)
    click.echo(f"forward {protocol} {external_port} -> {internal_ip}:{internal_port} added")


@forwards.command("del")
@click.argument("protocol", type=click.Choice(["tcp", "udp"]))
@click.argument("external_port", type=click.IntRange(1, 65535))
@click.pass_obj
def forwards_del(api: Api, protocol: str, external_port: int) -> None:
    api.call("DELETE", f"/nat/forwards/{protocol}/{external_port}")
    click.echo(f"forward {protocol} {external_port} removed")


@cli.command()
@click.option("--yes", is_flag=True, help="do not ask")
@click.pass_obj
def flush(api: Api, yes: bool) -> None:
    """End every session now (their flows are deleted, their ports freed)."""
    sessions = list(api.connections(None, None))
    if not sessions:
        click.echo("no connections")
        return
    if not yes:
        click.confirm(f"end all {len(sessions)} connections?", abort=True)
    ended = 0
    for c in sessions:
        try:
            api.call("DELETE", f"/nat/connections/{c['id']}", params={"dpid": c["dpid"]})
            ended += 1
        except Fail as fail:
            if fail.exit_code != EXIT_REFUSED:    # gone already is fine; the rest is not
                raise
    click.echo(f"{ended} connections ended")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except Fail as fail:
        fail.show()
        sys.exit(fail.exit_code)
    except click.exceptions.Abort:
        click.echo("snatctl: not done", err=True)
        sys.exit(EXIT_REFUSED)
    except click.UsageError as err:
        err.show()
        sys.exit(EXIT_USAGE)
    except click.ClickException as err:
        err.show()
        sys.exit(EXIT_REFUSED)
    sys.exit(0)
