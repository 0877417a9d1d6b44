"""snatctl and GET /metrics against the real ryu-manager in Mininet, with
values checked against known traffic (3 UDP flows from h1, 1 TCP connection
from h2)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.peers import NETPROBE, Server, client
from helpers.system import assert_left_nothing
from lab import Lab, wait_for

O1 = "198.51.100.10"
TOKEN = "operator-token-0123456789"
SNATCTL = str(Path(sys.executable).parent / "snatctl")


MAPPINGS = Path(tempfile.mkdtemp(prefix="ryu-snat-mappings-")) / "mappings.log"


@pytest.fixture(scope="module")
def lab():
    with Lab(inside=2, outside=1, nat_options={"stats_interval": 1, "rest_token": TOKEN,
                                               "mapping_log_file": str(MAPPINGS)}) as running:
        yield running
    assert_left_nothing(running)


def snatctl(lab, *args: str, token: str | None = TOKEN, timeout: float = 30,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SNATCTL_URL": f"http://127.0.0.1:{lab.controller.rest_port}"}
    env.pop("SNATCTL_TOKEN", None)
    if token is not None:
        env["SNATCTL_TOKEN"] = token
    return subprocess.run([SNATCTL, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, input=stdin)


def scrape(lab) -> dict[tuple, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{lab.controller.rest_port}/metrics") as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_table_stats_metrics_and_watch_after_known_traffic(lab):
    with Server(lab.host("o1"), "udp-server", 9400), Server(lab.host("o1"), "tcp-server", 7500):
        for sport in (5101, 5102, 5103):
            got = client(lab.host("h1"), "udp-client", f"--sport {sport}", f"--to {O1}:9400",
                         "--count 2")
            assert got["replies"] == {f"{O1}:9400": 2}, got
        held = lab.host("h2").popen([sys.executable, NETPROBE, "tcp-client", "--to",
                                     f"{O1}:7500", "--sport", "43700", "--hold", "12"],
                                    stdout=subprocess.PIPE, text=True)
        try:
            check_everything(lab)
        finally:
            held.kill()
            held.communicate(timeout=30)


def check_everything(lab) -> None:
    """What an operator checks while h2's connection is open."""
    wait_for(lambda: any(c["protocol"] == "tcp" and c["state"] == "ESTABLISHED"
                         for c in lab.controller.get("/nat/connections")), 10,
             what="h2's connection ESTABLISHED")
    wait_for(lambda: all(c["state"] == "REPLIED" for c in
                         lab.controller.get("/nat/connections?protocol=udp")), 10,
             what="the UDP flows REPLIED")

    table = snatctl(lab, "connections")
    assert table.returncode == 0, table.stderr
    assert "4 connections" in table.stdout and "10.0.0.11:5101" in table.stdout
    udp = json.loads(snatctl(lab, "connections", "--protocol", "udp", "--json").stdout)
    assert sorted(c["internal_port"] for c in udp) == [5101, 5102, 5103]
    mine = json.loads(snatctl(lab, "connections", "--host", "10.0.0.12", "--state",
                              "established", "--json").stdout)
    assert [(c["internal_port"], c["remote_port"]) for c in mine] == [(43700, 7500)]
    stats = json.loads(snatctl(lab, "stats", "--json").stdout)
    assert stats["active"] == 4 and stats["created"] >= 4

    m = scrape(lab)
    assert m[("ryu_snat_sessions", (("protocol", "udp"), ("state", "REPLIED")))] == 3
    assert m[("ryu_snat_sessions", (("protocol", "tcp"), ("state", "ESTABLISHED")))] == 1
    assert m[("ryu_snat_host_sessions", (("internal_ip", "10.0.0.11"),))] == 3
    assert m[("ryu_snat_ports_in_use", (("protocol", "udp"),))] == 3
    assert m[("ryu_snat_sessions_created_total", ())] == stats["created"]
    assert m[("ryu_snat_packet_ins_total", ())] >= 4
    assert m[("ryu_snat_stats_poll_seconds", (("dpid", "0000000000000001"),))] < 1
    assert m[("ryu_snat_handler_errors_total", ())] == 0

    watch = subprocess.Popen([SNATCTL, "watch", "--count", "1", "--timeout", "15", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "SNATCTL_URL":
                                  f"http://127.0.0.1:{lab.controller.rest_port}"})
    time.sleep(1.5)                         # watching from now on
    client(lab.host("h1"), "udp-client", "--sport 5104", f"--to {O1}:9400", "--count 1")
    out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    [event] = [json.loads(line) for line in out.splitlines()]
    assert (event["event"], event["protocol"], event["internal_port"]) == ("new", "udp", 5104)


def test_forwards_flush_and_errors(lab):
    add = ["forwards", "add", "udp", "5300", "10.0.0.12", "53"]
    refused = snatctl(lab, *add, token=None)
    assert refused.returncode == 3 and "token" in refused.stderr, refused
    assert snatctl(lab, *add, token="wrong-token-0123456789").returncode == 3
    assert snatctl(lab, *add).returncode == 0
    listed = json.loads(snatctl(lab, "forwards", "list", "--json").stdout)
    assert {"protocol": "udp", "external_port": 5300, "internal_ip": "10.0.0.12",
            "internal_port": 53} in listed
    clash = snatctl(lab, "forwards", "add", "udp", "5300", "10.0.0.11", "53")
    assert clash.returncode == 1 and "already forwarded" in clash.stderr, clash
    assert snatctl(lab, "forwards", "del", "udp", "5300").returncode == 0
    assert snatctl(lab, "forwards", "del", "udp", "5300").returncode == 1

    with Server(lab.host("o1"), "udp-server", 9401):
        client(lab.host("h1"), "udp-client", "--sport 5201", f"--to {O1}:9401", "--count 1")
    assert lab.controller.get("/nat/connections")
    no = snatctl(lab, "flush", stdin="n\n")
    assert no.returncode == 1 and lab.controller.get("/nat/connections")
    flushed = snatctl(lab, "flush", "--yes")
    assert flushed.returncode == 0 and "connections ended" in flushed.stdout, flushed
    assert lab.controller.get("/nat/connections") == []

    down = subprocess.run([SNATCTL, "--url", "http://127.0.0.1:1", "stats"],
                          capture_output=True, text=True, timeout=30)
    assert down.returncode == 2 and "cannot reach the controller" in down.stderr
    usage = snatctl(lab, "connections", "--protocol", "sctp")
    assert usage.returncode == 4, usage


def sessions_of(lab, query: str) -> list[dict]:
    got = snatctl(lab, "connections", *query.split(), "--json")
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


def test_filters_delete_who_and_watch_across_a_controller_restart(lab):
    """Last in the module: it restarts the controller."""
    with Server(lab.host("o1"), "udp-server", 9402):
        for host, sport in (("h1", 5301), ("h1", 5302), ("h2", 5303)):
            got = client(lab.host(host), "udp-client", f"--sport {sport}", f"--to {O1}:9402",
                         "--count 1")
            assert got["replies"] == {f"{O1}:9402": 1}, got
        wait_for(lambda: len(sessions_of(lab, "--remote-port 9402 --state REPLIED")) == 3, 10,
                 what="the three UDP flows REPLIED (flow stats)")
        mine = sessions_of(lab, "--remote-port 9402 --host 10.0.0.11")
        assert sorted(c["internal_port"] for c in mine) == [5301, 5302]
        assert [c["internal_port"] for c in sessions_of(lab, f"--remote {O1} --dpid 1 "
                                                         "--state replied --port 5303")] == [5303]
        assert sessions_of(lab, "--dpid 2") == []
        first = next(c for c in mine if c["internal_port"] == 5301)
        assert [c["id"] for c in sessions_of(
            lab, f"--external 198.51.100.1 --external-port {first['external_port']}")] \
            == [first["id"]]

        listed = snatctl(lab, "connections", "--remote-port", "9402", "-o", "conntrack")
        lines = listed.stdout.splitlines()
        assert listed.returncode == 0 and len(lines) == 3, listed
        assert any(line.startswith("udp      17 ") and "src=10.0.0.11 dst=198.51.100.10 "
                   "sport=5301 dport=9402 " in line and f"src=198.51.100.10 dst=198.51.100.1 "
                   f"sport=9402 dport={first['external_port']} " in line for line in lines), lines

        one = snatctl(lab, "delete", str(first["id"]))
        assert one.returncode == 0 and f"connection {first['id']} ended" in one.stdout, one
        by_filter = snatctl(lab, "delete", "--port", "5302")
        assert by_filter.returncode == 0 and "1 connections ended" in by_filter.stdout
        assert [c["internal_port"] for c in sessions_of(lab, "--remote-port 9402")] == [5303]

        # The abuse report: who had 198.51.100.1:PORT when 5301's datagram left?
        when = datetime.fromtimestamp(first["created"] + 0.5).astimezone().isoformat()
        who = snatctl(lab, "who", f"198.51.100.1:{first['external_port']}", "--at", when,
                      "--json")
        assert who.returncode == 0, who
        [held] = json.loads(who.stdout)["holders"]
        assert (held["source"], held["internal_ip"], held["internal_port"], held["ended"]) \
            == ("log", "10.0.0.11", 5301, "removed (operator)"), held
        assert held["since"].endswith("Z") and held["until"].endswith("Z")
        table = snatctl(lab, "who", f"198.51.100.1:{first['external_port']}")
        assert "10.0.0.11:5301" in table.stdout, table
        assert all(line.split(" ", 1)[0].endswith("Z") for line in
                   MAPPINGS.read_text().splitlines()), "a mapping-log stamp without offset"

        flushed = snatctl(lab, "flush", "--remote-port", "9402", "--yes")
        assert flushed.returncode == 0 and "1 connections ended" in flushed.stdout, flushed

    # watch outlives a controller restart: it says so and goes on with the new feed.
    with Server(lab.host("o1"), "udp-server", 9403):
        watch = subprocess.Popen(
            [SNATCTL, "watch", "--event", "new", "--output", "conntrack", "--count", "1",
             "--timeout", "90"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "SNATCTL_URL": f"http://127.0.0.1:{lab.controller.rest_port}"})
        try:
            time.sleep(1.5)
            lab.controller.stop()
            time.sleep(2)                   # watch finds nobody there meanwhile
            lab.controller.start()
            wait_for(lambda: lab.controller.get("/nat/stats")["switches_connected"] == 1, 30,
                     what="the switch back at the restarted controller")
            time.sleep(1)
            client(lab.host("h1"), "udp-client", "--sport 5304", f"--to {O1}:9403",
                   "--count 1")
            out, err = watch.communicate(timeout=60)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.communicate(timeout=10)
    assert watch.returncode == 0, err
    assert "lost the controller" in err and "the controller restarted (boot" in err, err
    [line] = out.splitlines()
    assert line.startswith("[") and "]\t    [NEW] udp      17 " in line, line
    assert "src=10.0.0.11 dst=198.51.100.10 sport=5304 dport=9403 [UNREPLIED]" in line, line
