"""docs/grafana/ryu-snat.json: every query names only metrics that a real
scrape of ``GET /metrics`` (the real SnatApp over a fake switch) exposes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from webob import Request

from helpers.nat_lab import H1, S1, open_flow
from helpers.ryu_shell import wired_app

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana" / "ryu-snat.json"
#: PromQL's own words, and Grafana's variables, that look like metric names.
PROMQL = {"sum", "by", "without", "rate", "irate", "increase", "avg", "max", "min", "count",
          "topk", "bottomk", "label_values", "on", "ignoring", "group_left", "group_right",
          "and", "or", "unless", "offset", "histogram_quantile", "instance"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')           # label values, formats
_BRACES = re.compile(r"\{[^}]*\}|\[[^\]]*\]")          # matchers, ranges
_WORD = re.compile(r"(?<![\w$])[a-zA-Z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    bare = _BRACES.sub(" ", _STRINGS.sub('""', expr))
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", bare)
    return {w for w in _WORD.findall(bare) if w not in PROMQL}


def queries(node) -> list[str]:
    """Every ``expr`` (panel targets) and variable ``query`` in the dashboard."""
    if isinstance(node, list):
        return [q for item in node for q in queries(item)]
    if not isinstance(node, dict):
        return []
    found = [node["expr"]] if isinstance(node.get("expr"), str) else []
    inner = node.get("query")
    if isinstance(inner, dict) and isinstance(inner.get("query"), str):
        found.append(re.sub(r"^label_values\((\w+),.*", r"\1", inner["query"]))
    return found + [q for key, v in node.items() if key != "query" for q in queries(v)]


@pytest.fixture(scope="module")
def scraped() -> set[str]:
    """Metric names of one scrape, after a session exists: every sample's,
    and every family's the scrape declares (a role per switch has no series
    without a controller pair, but the family is there)."""
    with wired_app() as (app, wsgi, wire):
        open_flow(wire, H1, 5000, S1, 53)
        resp = Request.blank("/metrics").get_response(wsgi)
        assert resp.status_int == 200
        families = list(text_string_to_metric_families(resp.body.decode()))
        return ({s.name for family in families for s in family.samples}
                | {f.name for f in families if f.type in ("gauge", "untyped")})


def test_the_dashboard_has_the_panels_an_operator_looks_for():
    dash = json.loads(DASHBOARD.read_text())
    assert [v["name"] for v in dash["templating"]["list"]][0] == "datasource"
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for word in ("sessions", "setup rate", "drops by reason", "packet-ins", "role", "cpu", "rss"):
        assert word in titles
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dash["panels"])


def test_every_query_names_a_metric_that_exists(scraped):
    exprs = queries(json.loads(DASHBOARD.read_text()))
    assert len(exprs) >= 15
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= scraped, f"{expr}: no such metric {sorted(names - scraped)}"


def test_the_check_catches_a_typo(scraped):
    assert metric_names('sum by (reason) (rate(ryu_snat_drop_total{instance=~"$x"}[5m]))') \
        == {"ryu_snat_drop_total"}
    assert "ryu_snat_drop_total" not in scraped
    assert metric_names("rate(process_cpu_seconds_total[$__rate_interval]) > 0") \
        == {"process_cpu_seconds_total"}
