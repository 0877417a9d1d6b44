"""``GET /metrics``: the gateway in Prometheus' text exposition format.

Everything is read at scrape time from what the gateway already keeps (the
``/nat/stats`` snapshot, the sessions, the last stats-poll round trips), by
a ``prometheus_client`` collector: no second set of counters to drift.
Counters are monotonic since the controller started.
"""
from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "ryu_snat"
TOP_HOSTS = 10

__all__ = ["CONTENT_TYPE_LATEST", "GatewayCollector", "exposition"]


def _labelled(cls: type, name: str, doc: str, label: str, values: dict) -> Any:
    family = cls(f"{PREFIX}_{name}", doc, labels=[label])
    for key, value in sorted(values.items()):
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
                        st["refused"])
        yield _labelled(gauge, "ports_in_use", "external ports held by mappings", "protocol",
                        st["ports_in_use"])
        yield _labelled(gauge, "ports_quarantined", "freed ports not yet reusable", "protocol",
                        st["ports_quarantined"])
        yield _labelled(gauge, "port_pool_size", "external ports in the pool", "protocol",
                        app.port_pool_sizes())
        yield counter(f"{PREFIX}_packet_ins", "packet-ins handled", value=st["packet_ins"])
        yield _labelled(counter, "drops", "packets the controller dropped, by reason", "reason",
                        st["drops"])
        yield _labelled(counter, "switch_drops", "packets the switch's drop rules counted",
                        "rule", st["switch_drops"])
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
        yield from _per_switch(app.view.per_switch())
        yield _labelled(gauge, "stats_poll_seconds", "last flow-stats round trip", "dpid",
                        {f"{dpid:016x}": s for dpid, s in app.stats_poll_seconds.items()})


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


def exposition(app: Any) -> bytes:
    """One scrape: the text format of every metric."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(app))
    return generate_latest(registry)
