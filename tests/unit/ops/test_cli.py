"""snatctl's own parts: conntrack -L/-E lines, the watch that outlives a
controller restart, --version and completion."""
from __future__ import annotations

from click.testing import CliRunner

from ryu_app.ops import cli, ctformat

TCP = {"id": 1, "dpid": 1, "protocol": "tcp", "state": "ESTABLISHED",
       "internal_ip": "10.0.0.11", "internal_port": 40000, "external_ip": "198.51.100.1",
       "external_port": 40000, "remote_ip": "198.51.100.10", "remote_port": 80,
       "packets_out": 6, "bytes_out": 412, "packets_in": 5, "bytes_in": 1387,
       "expires_in": 7439.6, "timeout": 7440}
NEW = {"seq": 3, "event": "new", "time": 1796000000.25, "dpid": 1, "id": 7,
       "protocol": "tcp", "state": "SYN_SENT", "internal_ip": "10.0.0.11",
       "internal_port": 40000, "external_ip": "198.51.100.1", "external_port": 1024,
       "remote_ip": "198.51.100.10", "remote_port": 80, "reason": "", "timeout": 120}


def test_connections_in_conntrack_list_format():
    assert ctformat.line(TCP) == (
        "tcp      6 7439 ESTABLISHED src=10.0.0.11 dst=198.51.100.10 sport=40000 dport=80 "
        "packets=6 bytes=412 src=198.51.100.10 dst=198.51.100.1 sport=80 dport=40000 "
        "packets=5 bytes=1387 [ASSURED] id=1")
    udp = {**TCP, "protocol": "udp", "state": "UNREPLIED", "packets_in": 0, "bytes_in": 0,
           "expires_in": 29}
    assert ctformat.line(udp).startswith("udp      17 29 src=10.0.0.11 ")
    assert "bytes=412 [UNREPLIED] src=198.51.100.10" in ctformat.line(udp)
    assert "[ASSURED]" not in ctformat.line(udp)
    icmp = {**TCP, "protocol": "icmp", "state": "REPLIED", "internal_port": 77,
            "external_port": 1025, "remote_port": 0}
    assert "src=10.0.0.11 dst=198.51.100.10 type=8 code=0 id=77 packets=6" in ctformat.line(icmp)
    assert "src=198.51.100.10 dst=198.51.100.1 type=0 code=0 id=1025" in ctformat.line(icmp)


def test_events_in_conntrack_event_format():
    assert ctformat.event_line(NEW) == (
        "    [NEW] tcp      6 120 SYN_SENT src=10.0.0.11 dst=198.51.100.10 sport=40000 "
        "dport=80 [UNREPLIED] src=198.51.100.10 dst=198.51.100.1 sport=80 dport=1024 id=7")
    assert ctformat.event_line(NEW, timestamp=True).startswith(
        "[1796000000.250000]\t    [NEW] tcp")
    gone = {**NEW, "event": "destroy", "state": "ESTABLISHED", "packets_out": 6,
            "bytes_out": 412, "packets_in": 5, "bytes_in": 1387}
    assert ctformat.event_line(gone) == (
        "[DESTROY] tcp      6 src=10.0.0.11 dst=198.51.100.10 sport=40000 dport=80 "
        "packets=6 bytes=412 src=198.51.100.10 dst=198.51.100.1 sport=80 dport=1024 "
        "packets=5 bytes=1387 [ASSURED] id=7")
    assert ctformat.event_line({**NEW, "event": "update", "state": "ESTABLISHED"}
                               ).startswith(" [UPDATE] tcp      6 120 ESTABLISHED ")


class Answer:
    status_code = 200
    headers: dict = {}

    def __init__(self, body):
        self.body = body

    def json(self):
        return self.body


class FlakyApi:
    """A controller that answers, goes away twice, and comes back restarted."""

    timeout = 1.0

    def __init__(self):
        self.script = [
            Answer({"events": [], "last": 5, "missed": 0, "boot": "a"}),
            Answer({"events": [{**NEW, "seq": 6}], "last": 6, "missed": 0, "boot": "a"}),
            "down", "down",
            Answer({"events": [{**NEW, "seq": 7}], "last": 7, "missed": 0, "boot": "b"}),
            Answer({"events": [{**NEW, "seq": 1, "event": "restored"}], "last": 1,
                    "missed": 0, "boot": "b"})]
        self.asked = []

    def call(self, method, path, params=None, timeout=None, busy_ok=False):
        self.asked.append(params)
        step = self.script.pop(0)
        if step == "down":
            raise cli.Fail("cannot reach the controller at x: ConnectionError",
                           cli.EXIT_UNREACHABLE)
        return step


def test_watch_reconnects_and_resyncs_on_a_new_boot(monkeypatch, capsys):
    monkeypatch.setattr(cli.time, "sleep", lambda s: None)
    api = FlakyApi()
    feed = cli.Feed(api, retries=3)
    assert feed.start() and (feed.boot, feed.last) == ("a", 5)
    assert [e["seq"] for e in feed.poll(1)] == [6]
    assert feed.poll(1) == [] and feed.poll(1) == []          # down twice: asked again
    assert feed.poll(1) == [], "events of a new boot read with the old number"
    assert (feed.boot, feed.last) == ("b", 0)
    assert [e["event"] for e in feed.poll(1)] == ["restored"]
    assert [p["after"] for p in api.asked[1:]] == [5, 6, 6, 6, 0]
    err = capsys.readouterr().err
    assert "lost the controller" in err and "(2/3)" in err and "answers again" in err
    assert "restarted (boot a -> b): resynced" in err


def test_watch_gives_up_after_its_retries(monkeypatch):
    monkeypatch.setattr(cli.time, "sleep", lambda s: None)
    api = FlakyApi()
    api.script[2:] = ["down"] * 5
    feed = cli.Feed(api, retries=2)
    feed.start()
    feed.poll(1)
    feed.poll(1), feed.poll(1)
    try:
        feed.poll(1)
    except cli.Fail as fail:
        assert fail.exit_code == cli.EXIT_UNREACHABLE
    else:
        raise AssertionError("watch retried forever")


def test_version_completion_and_usage():
    runner = CliRunner()
    got = runner.invoke(cli.cli, ["--version"])
    assert got.exit_code == 0 and got.output.startswith("snatctl, version ")
    script = runner.invoke(cli.cli, ["completion", "bash"]).output
    assert "_SNATCTL_COMPLETE=bash_complete" in script and "complete " in script
    assert runner.invoke(cli.cli, ["delete"]).exit_code == 2       # an id or a filter
    assert runner.invoke(cli.cli, ["connections", "--dpid", "zz"]).exit_code == 2
    assert runner.invoke(cli.cli, ["watch", "--event", "born"]).exit_code == 2
