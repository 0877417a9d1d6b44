"""The RFC 6888 mapping log, on the logger or in its own file."""
from __future__ import annotations

import logging
import time
import re

from helpers.fake_switch import Wire
from helpers.nat_config import make_configs
from helpers.nat_lab import H1, PORTS, S1, make_lab, nat, open_flow
from ryu_app.nat.gateway import Gateway

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} mapping created: udp 10\.0\.0\.11:5000 "
                  r"-> 198\.51\.100\.1:(\d+) \(session (\d+)\)$")
LINE_ANY_PORT = re.compile(r"^\S+ mapping created: udp 10\.0\.0\.11:(\d+) "
                           r"-> 198\.51\.100\.1:(\d+) \(session \d+\)$")


def test_mappings_go_to_their_file_each_second(tmp_path):
    path = tmp_path / "mappings.log"
    lab = make_lab(mapping_log_file=str(path))
    session, _ = open_flow(lab, H1, 5000, S1, 53)
    assert path.read_text() == "", "written in batches, not per session"
    lab.advance(1, poll=None)
    [line] = path.read_text().splitlines()
    port, sid = LINE.match(line).groups()
    assert (int(port), int(sid)) == (session.external_port, session.id)
    lab.run(nat(lab).delete(session.id, lab.now))
    lab.advance(1, poll=None)
    ended = path.read_text().splitlines()[1]
    assert f"mapping removed (operator): udp 10.0.0.11:5000 -> 198.51.100.1:{port} " \
           f"(session {sid}, out " in ended


def test_without_a_file_mappings_go_to_the_logger(caplog):
    """Within the second (the gateway's tick), each with its event's time."""
    lab = make_lab()
    with caplog.at_level(logging.INFO, logger="ryu_snat.mappings"):
        before = time.time()
        session, _ = open_flow(lab, H1, 5000, S1, 53)
        after = time.time()
        lab.advance(1, poll=None)
    [record] = [r for r in caplog.records if r.name == "ryu_snat.mappings"]
    assert record.getMessage() == (
        f"mapping created: udp 10.0.0.11:5000 -> 198.51.100.1:{session.external_port} "
        f"(session {session.id})")
    assert before <= record.created <= after


def test_the_file_is_rotated_by_size_in_whole_lines(tmp_path):
    path = tmp_path / "mappings.log"
    lab = make_lab(mapping_log_file=str(path), mapping_log_max_bytes=400, mapping_log_backups=2)
    ports = []
    for sport in range(5000, 5012):                 # one mapping a second, ~86 bytes each
        session, _ = open_flow(lab, H1, sport, S1, 53)
        ports.append(session.external_port)
        lab.advance(1, poll=None)
    files = [path, tmp_path / "mappings.log.1", tmp_path / "mappings.log.2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files), \
        "two backups kept, the oldest dropped"
    lines = [line for p in reversed(files) for line in p.read_text().splitlines()]
    assert all(p.stat().st_size <= 400 for p in files)
    assert all(LINE_ANY_PORT.match(line) for line in lines), lines
    kept = [int(LINE_ANY_PORT.match(line).group(2)) for line in lines]
    assert kept == ports[-len(kept):], "the newest mappings, in order, none split or lost"
    assert len(kept) >= 8


def test_a_restart_logs_adopted_mappings_as_restored_not_created(tmp_path):
    path = tmp_path / "mappings.log"
    lab = make_lab(mapping_log_file=str(path))
    session, _ = open_flow(lab, H1, 5000, S1, 53)
    lab.advance(1, poll=None)
    again = Wire(Gateway(*make_configs(mapping_log_file=str(path))), lab.switch,
                 now=lab.now + 5)
    again.switch.now = again.now
    again.connect(PORTS)
    again.advance(1, poll=None)
    lines = path.read_text().splitlines()
    head = f"udp 10.0.0.11:5000 -> 198.51.100.1:{session.external_port} (session {session.id})"
    assert [line.split(" ", 1)[1] for line in lines] == [
        f"mapping created: {head}", f"mapping restored: {head}"]
