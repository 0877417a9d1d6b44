"""GET /metrics after known traffic on the fake switch: the text format
parses, and each value is what the traffic made."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from helpers.nat_lab import H1, H2, S1, TCP, UDP, make_lab, open_flow, out_frame
from ryu_app.nat.counters import DROP_REASONS
from ryu_app.ops import metrics
from ryu_app.ops.views import ConnectionsView


class App:
    """What the collector reads from SnatApp, over a fake-switch lab."""

    def __init__(self, lab) -> None:
        self.gateway = lab.gateway
        self.view = ConnectionsView(lab.gateway)
        self.stats_poll_seconds = {1: 0.004}
        self.ha = {"leader": True, "switches": {}}

    def ha_status(self) -> dict:
        return self.ha

    def stats_snapshot(self) -> dict:
        return self.view.stats()

    @staticmethod
    def port_pool_sizes() -> dict[str, int]:
        return {"tcp": 64512, "udp": 64512, "icmp": 64512}


def scrape(app) -> dict[tuple, float]:
    text = metrics.exposition(app).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_after_known_traffic():
    lab = make_lab()
    open_flow(lab, H1, 5000, S1, 53)
    open_flow(lab, H1, 5001, S1, 53)
    open_flow(lab, H2, 40000, S1, 80, TCP)
    got = scrape(App(lab))
    assert got[("ryu_snat_sessions", (("protocol", "udp"), ("state", "UNREPLIED")))] == 2
    assert got[("ryu_snat_sessions", (("protocol", "tcp"), ("state", "SYN_SENT")))] == 1
    assert got[("ryu_snat_sessions_created_total", ())] == 3
    assert got[("ryu_snat_ports_in_use", (("protocol", "udp"),))] == 2
    assert got[("ryu_snat_port_pool_size", (("protocol", "tcp"),))] == 64512
    assert got[("ryu_snat_host_sessions", (("internal_ip", H1.ip),))] == 2
    assert got[("ryu_snat_host_sessions", (("internal_ip", H2.ip),))] == 1
    assert got[("ryu_snat_packet_ins_total", ())] >= 3
    assert got[("ryu_snat_switches_connected", ())] == 1
    assert got[("ryu_snat_stats_poll_seconds", (("dpid", "0000000000000001"),))] == 0.004
    assert got[("ryu_snat_openflow_errors_total", ())] == 0


def test_drops_and_refusals_are_labelled_by_reason():
    lab = make_lab(max_connections_per_host=1)
    open_flow(lab, H1, 5000, S1, 53)
    lab.send(H1.port, out_frame(H1, 5001, S1, 53, proto=UDP))
    got = scrape(App(lab))
    assert got[("ryu_snat_sessions_refused_total", (("reason", "host_quota"),))] == 1


def test_labelled_counters_exist_at_zero_before_their_first_event():
    got = scrape(App(make_lab()))
    for reason in ("malformed", "spoofed_source", "inbound_filtered", "packet_in_queue_full"):
        assert got[("ryu_snat_drops_total", (("reason", reason),))] == 0
    assert {labels[0][1] for name, labels in got if name == "ryu_snat_drops_total"} \
        == DROP_REASONS
    assert got[("ryu_snat_sessions_refused_total", (("reason", "table_full"),))] == 0
    assert got[("ryu_snat_switch_drops_total", (("rule", "unsolicited_inbound"),))] == 0
    assert got[("ryu_snat_switch_drops_total", (("rule", "source_guard"),))] == 0


def test_process_metrics_and_build_info():
    got = scrape(App(make_lab()))
    assert got[("process_resident_memory_bytes", ())] > 0
    assert ("process_cpu_seconds_total", ()) in got
    assert ("process_open_fds", ()) in got
    assert any(name == "python_info" for name, _ in got)
    build = [dict(labels) for name, labels in got if name == "ryu_snat_build_info"]
    assert len(build) == 1 and build[0]["version"] == metrics.build_info()["version"] != ""
    assert build[0]["ryu"].startswith("4.34") and build[0]["python"].count(".") == 2


def test_role_gauges():
    app = App(make_lab())
    got = scrape(app)
    assert got[("ryu_snat_ha_leader", ())] == 1
    app.ha = {"leader": False, "switches": {"0000000000000001": {"role": "SLAVE"}}}
    got = scrape(app)
    assert got[("ryu_snat_ha_leader", ())] == 0
    dpid = ("dpid", "0000000000000001")
    assert got[("ryu_snat_switch_role", (dpid, ("role", "slave")))] == 1
    assert got[("ryu_snat_switch_role", (dpid, ("role", "master")))] == 0
