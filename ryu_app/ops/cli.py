"""``snatctl``: the operator's command line, over the REST API.

    snatctl [--url URL] [--token TOKEN] [--version] COMMAND
    snatctl connections [FILTERS] [--output table|json|conntrack]
    snatctl delete ID [--dpid N] | delete FILTERS
    snatctl flush [FILTERS] [--yes]
    snatctl watch [--event new|update|destroy|restored]... [--count N] [--timeout S]
                  [--output text|json|conntrack] [--retries N]
    snatctl who IP:PORT [--at TIME] [--protocol P]
    snatctl stats | ha [--json]
    snatctl forwards list | add PROTO EXT_PORT INSIDE_IP INSIDE_PORT | del PROTO EXT_PORT [--dpid N]
    snatctl completion bash|zsh|fish

FILTERS (applied by the controller): ``--protocol``, ``--host`` (inside
address), ``--port`` (inside port), ``--remote``, ``--remote-port``,
``--external``, ``--external-port``, ``--state``, ``--dpid``.

URL and token also come from ``SNATCTL_URL`` and ``SNATCTL_TOKEN``.  Exit
codes: 0 done; 1 the controller refused the request (its error is printed);
2 the controller cannot be reached; 3 the token is missing or wrong (401);
4 a bad command line (click's usage error).
"""
from __future__ import annotations

import functools
import json
import sys
import time
from datetime import datetime
from typing import Any, Callable, Iterator

import click
import requests
from rich.console import Console
from rich.table import Table

from click.shell_completion import get_completion_class

from conntrack import State
from ryu_app.ops import ctformat

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

    def connections(self, filters: dict[str, Any]) -> Iterator[dict]:
        """Every session the filters match, page after page (``X-Next-After``)."""
        after = None
        while True:
            resp = self.call("GET", "/nat/connections",
                             params={**filters, **({"after": after} if after else {})})
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
@click.version_option(package_name="ryu-snat", prog_name="snatctl")
@click.pass_context
def cli(ctx: click.Context, url: str, token: str | None) -> None:
    """Inspect and steer a ryu-snat gateway (like conntrack -L / -E)."""
    ctx.obj = Api(url, token)


def _check_dpid(_ctx: Any, _param: Any, value: str | None) -> str | None:
    """A datapath id, decimal or 0x-hex (checked here: a clear usage error)."""
    if value is None:
        return None
    try:
        int(value, 0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an integer (0x... for hex)") from None
    return value


# conntrack's own filters, by our field names; the controller applies them.
FILTER_OPTIONS = [
    click.option("--protocol", "-p", type=click.Choice(["tcp", "udp", "icmp"])),
    click.option("--host", "internal_ip", metavar="IP", help="inside host address"),
    click.option("--port", "internal_port", type=click.IntRange(0, 65535),
                 help="inside host port"),
    click.option("--remote", "remote_ip", metavar="IP", help="remote (outside) address"),
    click.option("--remote-port", "remote_port", type=click.IntRange(0, 65535)),
    click.option("--external", "external_ip", metavar="IP", help="NAT address"),
    click.option("--external-port", "external_port", type=click.IntRange(0, 65535),
                 help="NAT port"),
    click.option("--state", type=click.Choice(STATES, case_sensitive=False)),
    click.option("--dpid", metavar="N", callback=_check_dpid,
                 help="the NAT bridge's datapath id (0x... for hex)"),
]


def filter_options(func: Callable) -> Callable:
    """Add the filter options; the command gets them as one ``filters`` dict."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        filters = {name: kwargs.pop(name) for name in FILTER_NAMES}
        return func(*args, filters={k: v for k, v in filters.items() if v is not None},
                    **kwargs)
    for option in reversed(FILTER_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


FILTER_NAMES = ("protocol", "internal_ip", "internal_port", "remote_ip", "remote_port",
                "external_ip", "external_port", "state", "dpid")


def _output(default: str, *choices: str) -> Callable:
    return click.option("--output", "-o", type=click.Choice([default, *choices]),
                        default=default, show_default=True)


@cli.command()
@filter_options
@_output("table", "json", "conntrack")
@click.option("--json", "as_json", is_flag=True, help="same as --output json")
@click.pass_obj
def connections(api: Api, filters: dict, output: str, as_json: bool) -> None:
    """The NAT table: one line per session, as conntrack -L shows it."""
    rows = list(api.connections(filters))
    if as_json or output == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    if output == "conntrack":
        for c in rows:
            click.echo(ctformat.line(c))
        click.echo(f"snatctl: {len(rows)} flow entries have been shown.", err=True)
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
@click.argument("sid", metavar="[ID]", required=False, type=click.IntRange(1, 2 ** 32 - 1))
@filter_options
@click.pass_obj
def delete(api: Api, sid: int | None, filters: dict) -> None:
    """End one session by id, or every session the filters match (conntrack -D)."""
    if sid is not None:
        if set(filters) - {"dpid"}:
            raise click.UsageError("give an ID or filters, not both")
        got = api.call("DELETE", f"/nat/connections/{sid}", params=filters).json()
        click.echo(f"connection {got['deleted']} ended (dpid {got['dpid']})")
        return
    if not filters:
        raise click.UsageError("give an ID or a filter (snatctl flush ends every session)")
    got = api.call("DELETE", "/nat/connections", params=filters).json()
    click.echo(f"{got['deleted']} connections ended")


EVENTS = ("new", "update", "destroy", "restored")


def _local_time(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


def _event_text(e: dict, output: str, stamps: bool) -> str:
    if output == "json":
        return json.dumps(e)
    if output == "conntrack":
        return ctformat.event_line(e, timestamp=stamps)
    why = f" ({e['reason']})" if e["reason"] else ""
    when = f"{_local_time(e['time'])} " if stamps else ""
    return (f"{when}[{e['event'].upper()}] {e['protocol']} {e['state']} "
            f"{_endpoint(e['internal_ip'], e['internal_port'])} -> "
            f"{_endpoint(e['external_ip'], e['external_port'])} -> "
            f"{_endpoint(e['remote_ip'], e['remote_port'])} id={e['id']}{why}")


class Feed:
    """``GET /nat/events`` across controller restarts: an unreachable
    controller is asked again (backoff 0.5 s doubling to 5 s, ``retries``
    times in a row), and a new ``boot`` id starts the watch again at the new
    feed's first event, saying so on stderr."""

    def __init__(self, api: Api, retries: int) -> None:
        self.api, self.retries = api, retries
        self.boot: str | None = None
        self.last = 0
        self.failures = 0

    def _ask(self, params: dict | None, timeout: float) -> requests.Response | None:
        try:
            resp = self.api.call("GET", "/nat/events", params=params, timeout=timeout,
                                 busy_ok=True)
        except Fail as fail:
            if fail.exit_code != EXIT_UNREACHABLE or self.failures >= self.retries:
                raise
            self.failures += 1
            pause = min(0.5 * 2 ** (self.failures - 1), 5.0)
            _say(f"lost the controller ({fail.message.rpartition(': ')[2]}); "
                 f"again in {pause:g}s ({self.failures}/{self.retries})")
            time.sleep(pause)
            return None
        if self.failures:
            _say("the controller answers again")
            self.failures = 0
        return resp

    def start(self) -> bool:
        """From now on: the feed's last number and boot id."""
        resp = self._ask(None, self.api.timeout)
        if resp is None or resp.status_code == 503:
            return False
        page = resp.json()
        self.boot, self.last = page.get("boot"), page["last"]
        return True

    def poll(self, wait: float) -> list[dict]:
        resp = self._ask({"after": self.last, "wait": f"{wait:.1f}"}, wait + 10)
        if resp is None:
            return []
        if resp.status_code == 503:         # enough watchers wait already: in a moment
            time.sleep(min(float(resp.headers["Retry-After"]), 5.0))
            return []
        page = resp.json()
        if page.get("boot") != self.boot:
            _say(f"the controller restarted (boot {self.boot} -> {page.get('boot')}): "
                 f"resynced, from its first event")
            self.boot, self.last = page.get("boot"), 0
            return []
        if page.get("missed"):
            _say(f"{page['missed']} events were missed (too slow)")
        if page["events"]:
            self.last = page["events"][-1]["seq"]
        return page["events"]


def _say(message: str) -> None:
    click.echo(f"snatctl: {_local_time(time.time())} {message}", err=True)


@cli.command()
@click.option("--event", "-e", "kinds", multiple=True, type=click.Choice(EVENTS),
              help="only these events (repeatable; default all)")
@click.option("--count", type=click.IntRange(min=1), help="stop after this many events")
@click.option("--timeout", type=click.FloatRange(min=0), help="stop after this many seconds")
@_output("text", "json", "conntrack")
@click.option("--json", "as_json", is_flag=True, help="same as --output json")
@click.option("--timestamps/--no-timestamps", default=True, show_default=True,
              help="each event's time (conntrack format: as conntrack -E -o timestamp)")
@click.option("--retries", type=click.IntRange(min=0), default=30, show_default=True,
              help="times in a row to ask an unreachable controller again")
@click.pass_obj
def watch(api: Api, kinds: tuple[str, ...], count: int | None, timeout: float | None,
          output: str, as_json: bool, timestamps: bool, retries: int) -> None:
    """Session events as they happen (new, update, destroy), like conntrack -E."""
    output = "json" if as_json else output
    feed, seen = Feed(api, retries), 0
    end = None if timeout is None else time.monotonic() + timeout
    started = False
    while end is None or time.monotonic() < end:
        if not started:
            started = feed.start()
            continue
        wait = 10.0 if end is None else max(0.0, min(10.0, end - time.monotonic()))
        for e in feed.poll(wait):
            if kinds and e["event"] not in kinds:
                continue
            click.echo(_event_text(e, output, timestamps))
            seen += 1
            if count is not None and seen >= count:
                return


@cli.command()
@click.argument("external", metavar="IP:PORT")
@click.option("--at", metavar="TIME",
              help="RFC 3339 with offset (2026-12-07T14:02:00Z) or Unix time; default: ever")
@click.option("--protocol", "-p", type=click.Choice(["tcp", "udp", "icmp"]))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def who(api: Api, external: str, at: str | None, protocol: str | None, as_json: bool) -> None:
    """Which inside host held an external address and port (live table and
    mapping log, rotated files too): the question of an abuse report."""
    got = api.get("/nat/who", external=external, at=at, protocol=protocol)
    if as_json:
        click.echo(json.dumps(got, indent=1))
        return
    rows = got["holders"]
    when = f" at {got['at']}" if got["at"] else ""
    table = _table(f"{external}{when}: {len(rows)} holder(s)",
                   ["inside", "proto", "since", "until", "session", "from"])
    for h in rows:
        if h["source"] == "deterministic":     # RFC 7422: the block is the host's, always
            table.add_row(f"{h['internal_ip']} (ports {h['block']})", h["protocol"], "always",
                          "always", "-", "deterministic")
            continue
        table.add_row(_endpoint(h["internal_ip"], h["internal_port"]), h["protocol"],
                      h["since"] or "(before the log)",
                      h["until"] or ("now" if h["source"] == "live" else "(not logged)"),
                      str(h["session"]), h["source"] + (f" {h['ended']}" if h["ended"] else ""))
    _console().print(table)
    if got["log"] != "file":
        click.echo(f"snatctl: mapping log: {got['log']}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def ha(api: Api, as_json: bool) -> None:
    """This controller's part in an HA pair: leader, role at each switch."""
    st = api.get("/nat/ha")
    if as_json:
        click.echo(json.dumps(st, indent=1, sort_keys=True))
        return
    if not st["enabled"]:
        click.echo("ha: off (no coordination_url): this controller is the only one")
    else:
        click.echo(f"ha: {'LEADER' if st['leader'] else 'standby'} member={st['member']} "
                   f"group={st['group']} engine_reachable={st['engine_reachable']}")
    for dpid, sw in st["switches"].items():
        click.echo(f"switch {dpid}: role {sw['role']} generation {sw['generation_id']}")
    for t in st.get("takeovers", []):
        click.echo(f"takeover: {json.dumps(t, sort_keys=True)}")


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
        if key == "addresses":      # each NAT address: its hosts and ports in use
            value = "\n".join(
                f"{addr}: hosts={row['hosts']} "
                + " ".join(f"{p}={n}" for p, n in sorted(row["ports_in_use"].items()))
                for addr, row in value.items()) or "-"
        elif key == "port_control":   # PCP/NAT-PMP: mappings held, requests by outcome
            value = "\n".join(f"{part}: " + (", ".join(f"{k}={v}" for k, v in sorted(
                counts.items())) or "-") for part, counts in sorted(value.items()))
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
        table.add_row(key, str(value))
    _console().print(table)


DPID = click.option("--dpid", metavar="N", callback=_check_dpid,
                    help="the NAT bridge (needed when the controller runs several)")


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def mappings(ctx: click.Context, as_json: bool) -> None:
    """Ports inside hosts mapped themselves (PCP, NAT-PMP); without a
    subcommand, the list."""
    if ctx.invoked_subcommand is not None:
        return
    rows = ctx.obj.get("/nat/port-mappings")
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    table = _table(f"{len(rows)} port mappings",
                   ["proto", "outside", "inside", "peer", "by", "lifetime", "left"])
    for m in rows:
        peer = m["peer"]
        table.add_row(m["protocol"], _endpoint(m["external_ip"], m["external_port"]),
                      _endpoint(m["internal_ip"], m["internal_port"]),
                      _endpoint(peer["ip"], peer["port"]) if peer else "-", m["origin"],
                      str(m["lifetime"]), str(m["expires_in"]))
    _console().print(table)


@mappings.command("del")
@click.argument("protocol", type=click.Choice(["tcp", "udp"]))
@click.argument("internal_ip")
@click.argument("internal_port", type=click.IntRange(1, 65535))
@click.option("--peer", metavar="IP:PORT", help="the remote of a PCP PEER mapping")
@DPID
@click.pass_obj
def mappings_del(api: Api, protocol: str, internal_ip: str, internal_port: int,
                 peer: str | None, dpid: str | None) -> None:
    """End a host's mapping now (its sessions finish as usual)."""
    params = {**_dpid(dpid), **({"peer": peer} if peer else {})}
    api.call("DELETE", f"/nat/port-mappings/{protocol}/{internal_ip}/{internal_port}",
             params=params)
    click.echo(f"port mapping {protocol} {internal_ip}:{internal_port} revoked")


@cli.group()
def forwards() -> None:
    """Static port forwards (DNAT)."""



@forwards.command("list")
@DPID
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def forwards_list(api: Api, dpid: str | None, as_json: bool) -> None:
    rows = api.get("/nat/forwards")
    if dpid is not None:
        want = int(dpid, 0)
        rows = [f for f in rows if "dpid" not in f or f["dpid"] in (None, want)]
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
@DPID
@click.pass_obj
def forwards_add(api: Api, protocol: str, external_port: int, internal_ip: str,
                 internal_port: int, dpid: str | None) -> None:
    body = {"protocol": protocol, "external_port": external_port,
            "internal_ip": internal_ip, "internal_port": internal_port}
    api.call("POST", "/nat/forwards", body, params=_dpid(dpid))
    click.echo(f"forward {protocol} {external_port} -> {internal_ip}:{internal_port} added")


@forwards.command("del")
@click.argument("protocol", type=click.Choice(["tcp", "udp"]))
@click.argument("external_port", type=click.IntRange(1, 65535))
@DPID
@click.pass_obj
def forwards_del(api: Api, protocol: str, external_port: int, dpid: str | None) -> None:
    api.call("DELETE", f"/nat/forwards/{protocol}/{external_port}", params=_dpid(dpid))
    click.echo(f"forward {protocol} {external_port} removed")


def _dpid(dpid: str | None) -> dict[str, str]:
    return {} if dpid is None else {"dpid": dpid}


@cli.command()
@filter_options
@click.option("--yes", is_flag=True, help="do not ask")
@click.pass_obj
def flush(api: Api, filters: dict, yes: bool) -> None:
    """End every session (or those the filters match) in one request
    (conntrack -F); their flows are deleted, their ports freed."""
    if not yes:
        what = " ".join(f"{k}={v}" for k, v in filters.items())
        click.confirm(f"end the connections with {what}?" if what else
                      "end all connections?", abort=True)
    got = api.call("DELETE", "/nat/connections",
                   params=filters or {"all": "true"}).json()
    click.echo(f"{got['deleted']} connections ended")


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script, e.g.
    ``snatctl completion bash > /etc/bash_completion.d/snatctl``."""
    comp_cls = get_completion_class(shell)
    assert comp_cls is not None
    click.echo(comp_cls(cli, {}, "snatctl", "_SNATCTL_COMPLETE").source())


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
