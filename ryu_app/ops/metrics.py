"""``GET /metrics``: the gateway in Prometheus' text exposition format.

Everything is read at scrape time from what the gateway already keeps (the
``/nat/stats`` snapshot, the sessions, the last stats-poll round trips), by
a ``prometheus_client`` collector: no second set of counters to drift.
Counters are monotonic since the controller started.  Labelled counters
whose label values are known up front (drop and refusal reasons, the
switch's drop rules) show every series from the start, at 0 until the first
event, so ``rate()`` and alerts see them.  Beside the gateway: this process
(``process_*``, ``python_info``), the build (``ryu_snat_build_info``) and the
HA role (``ryu_snat_ha_leader``, ``ryu_snat_switch_role``).
"""
from __future__ import annotations

import functools
import platform
from importlib import metadata
from typing import Any, Iterator

from prometheus_client import (CollectorRegistry, PlatformCollector, ProcessCollector,
                               generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from conntrack import RefuseReason
from ryu_app.ha.roles import Role
from ryu_app.nat.counters import DROP_REASONS
from ryu_app.ops.views import SWITCH_DROP_NAMES

PREFIX = "ryu_snat"
TOP_HOSTS = 10
#: The switch's drop rules as /nat/stats names them (and the source guard's).
SWITCH_DROP_RULES = (*SWITCH_DROP_NAMES.values(), "source_guard")

__all__ = ["CONTENT_TYPE_LATEST", "GatewayCollector", "exposition"]


def _labelled(cls: type, name: str, doc: str, label: str, values: dict,
              known: Any = ()) -> Any:
    """One family, a series per key of ``values``; each of ``known`` at 0 if absent."""
    family = cls(f"{PREFIX}_{name}", doc, labels=[label])
    for key, value in sorted({**dict.fromkeys(known, 0), **values}.items()):
        family.add_metric([str(key)], value)
    return family


class GatewayCollector:
    """Collects from an object with ``stats_snapshot()``, ``view`` (a
    :class:`ryu_app.ops.views.ConnectionsView`), ``port_pool_sizes()`` and
    ``stats_poll_seconds`` (dpid -> seconds); :class:`ryu_app.snat.SnatApp`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self) -> Iterator[Any]:
        app = self.app
        st = app.stats_snapshot()
        counter, gauge = CounterMetricFamily, GaugeMetricFamily
        yield gauge(f"{PREFIX}_switches_connected", "switches connected", value=st["switches_connected"])
        by_state = gauge(f"{PREFIX}_sessions", "live sessions", labels=["protocol", "state"])
        for (protocol, state), n in sorted(app.view.session_counts().items()):
            by_state.add_metric([protocol, state], n)
        yield by_state
        for name, doc in (("created", "sessions created"), ("expired", "sessions that idled out"),
                          ("removed", "sessions ended otherwise (RST/FIN, operator, ...)"),
                          ("adopted", "sessions rebuilt from the switch's flows")):
            key = "sessions_adopted" if name == "adopted" else name
            yield counter(f"{PREFIX}_sessions_{name}", doc, value=st[key])
        yield _labelled(counter, "sessions_refused", "sessions refused, by reason", "reason",
                        st["refused"], (r.value for r in RefuseReason))
        yield _labelled(gauge, "ports_in_use", "external ports held by mappings", "protocol",
                        st["ports_in_use"])
        yield _labelled(gauge, "ports_quarantined", "freed ports not yet reusable", "protocol",
                        st["ports_quarantined"])
        yield _labelled(gauge, "port_pool_size", "external ports in the pool", "protocol",
                        app.port_pool_sizes())
        yield from _addresses(st["addresses"])
        yield _labelled(gauge, "port_blocks", "port blocks inside hosts hold (port_block_size)",
                        "protocol", st["port_blocks"])
        yield _labelled(gauge, "port_control_mappings", "mappings inside hosts hold over "
                        "PCP and NAT-PMP", "origin", st["port_control"]["mappings"])
        yield _labelled(counter, "port_control_requests", "PCP and NAT-PMP requests, by "
                        "protocol, opcode and result (or why one was dropped)", "what",
                        st["port_control"]["requests"])
        yield counter(f"{PREFIX}_packet_ins", "packet-ins handled", value=st["packet_ins"])
        yield _labelled(counter, "drops", "packets the controller dropped, by reason", "reason",
                        st["drops"], DROP_REASONS)
        yield _labelled(counter, "switch_drops", "packets the switch's drop rules counted",
                        "rule", st["switch_drops"], SWITCH_DROP_RULES)
        yield _labelled(counter, "packet_ins_metered", "packet-ins a port's meter dropped "
                        "(last poll)", "port", st["packet_ins_metered"])
        yield _labelled(gauge, "host_sessions", f"sessions of the {TOP_HOSTS} busiest inside "
                        "hosts", "internal_ip", dict(app.view.top_hosts(TOP_HOSTS)))
        yield counter(f"{PREFIX}_openflow_errors", "OpenFlow error messages from switches "
                      "(refused flow-mods and others)", value=st["openflow_errors"])
        yield counter(f"{PREFIX}_hosts_moved", "inside addresses re-bound to a new port and "
                      "MAC after a move check (source guard)", value=st["hosts_moved"])
        yield counter(f"{PREFIX}_move_checks", "claims to a bound inside address from "
                      "another port or MAC, checked by ARP", value=st["move_checks"])
        yield counter(f"{PREFIX}_handler_errors", "our bugs caught in event handlers",
                      value=st["handler_errors"])
        yield counter(f"{PREFIX}_rest_errors", "our bugs caught in REST requests",
                      value=st["rest_errors"])
        if "ipfix" in st:
            yield _labelled(counter, "ipfix", "IPFIX NAT logging (ipfix_collector): records "
                            "and messages sent, template sets, send errors, records dropped, "
                            "refusals not sent as repeats",
                            "what", st["ipfix"])
        yield from _per_switch(app.view.per_switch())
        yield from _roles(app.ha_status())
        yield InfoMetricFamily(f"{PREFIX}_build", "the running build: ryu-snat, Python and "
                               "Ryu versions", value=build_info())
        yield _labelled(gauge, "stats_poll_seconds", "last flow-stats round trip", "dpid",
                        {f"{dpid:016x}": s for dpid, s in app.stats_poll_seconds.items()})


def _addresses(addresses: dict[str, dict]) -> Iterator[Any]:
    """Each NAT address (external_pool): inside hosts paired with it and the
    ports its mappings hold, so a full address shows before its hosts are
    refused."""
    hosts = GaugeMetricFamily(f"{PREFIX}_address_hosts", "inside hosts paired with one NAT "
                              "address", labels=["address"])
    ports = GaugeMetricFamily(f"{PREFIX}_address_ports_in_use", "external ports of one NAT "
                              "address held by mappings", labels=["address", "protocol"])
    for address, row in addresses.items():
        hosts.add_metric([address], row["hosts"])
        for protocol, n in sorted(row["ports_in_use"].items()):
            ports.add_metric([address, protocol], n)
    yield from (hosts, ports)


def _per_switch(rows: list[dict]) -> Iterator[Any]:
    """The NAT bridges one by one (labels: profile name, dpid in hex)."""
    labels = ["bridge", "dpid"]
    active = GaugeMetricFamily(f"{PREFIX}_bridge_sessions", "live sessions of one NAT bridge",
                               labels=labels)
    created = CounterMetricFamily(f"{PREFIX}_bridge_sessions_created",
                                  "sessions one NAT bridge created", labels=labels)
    ports = GaugeMetricFamily(f"{PREFIX}_bridge_ports_in_use",
                              "external ports one NAT bridge's mappings hold",
                              labels=labels + ["protocol"])
    for row in rows:
        key = [row["bridge"], f"{row['dpid']:016x}"]
        active.add_metric(key, row["active"])
        created.add_metric(key, row["created"])
        for protocol, n in sorted(row["ports_in_use"].items()):
            ports.add_metric(key + [protocol], n)
    yield from (active, created, ports)


def _roles(ha: dict) -> Iterator[Any]:
    """Whether this controller leads (always 1 without a pair), and its
    OpenFlow role at each switch: one series per role, 1 for the current."""
    yield GaugeMetricFamily(f"{PREFIX}_ha_leader", "1 if this controller leads (MASTER at "
                            "its switches; always 1 without an HA pair)",
                            value=1 if ha["leader"] else 0)
    roles = GaugeMetricFamily(f"{PREFIX}_switch_role", "this controller's OpenFlow role at "
                              "each switch (1 for the current role)", labels=["dpid", "role"])
    for dpid, st in ha["switches"].items():
        for role in Role:
            roles.add_metric([dpid, role.name.lower()], 1 if st["role"] == role.name else 0)
    yield roles


@functools.cache
def build_info() -> dict[str, str]:
    """Versions from the installed packages' metadata (read once)."""
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"
    return {"version": version("ryu-snat"), "ryu": version("ryu"),
            "python": platform.python_version()}


def exposition(app: Any) -> bytes:
    """One scrape: the text format of every metric, the process's too."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(app))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return generate_latest(registry)
