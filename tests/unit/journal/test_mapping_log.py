"""The RFC 6888 mapping log, on the logger or in its own file."""
from __future__ import annotations

import io
import logging
import logging.handlers
import re
import time

from helpers.fake_switch import Wire
from helpers.nat_config import make_configs
from helpers.nat_lab import H1, PORTS, S1, make_lab, nat, open_flow
from ryu_app.nat.gateway import Gateway

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z mapping created: udp 10\.0\.0\.11:5000 "
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


def test_lines_carry_rfc3339_utc_and_read_back(tmp_path):
    """The stamp is UTC with its offset (Z), whatever the host's zone."""
    from datetime import datetime
    from ryu_app.journal import mapping_search
    path = tmp_path / "mappings.log"
    lab = make_lab(mapping_log_file=str(path))
    before = time.time()
    session, _ = open_flow(lab, H1, 5000, S1, 53)
    lab.advance(1, poll=None)
    [line] = path.read_text().splitlines()
    stamp = line.split(" ", 1)[0]
    assert stamp.endswith("Z") and abs(datetime.fromisoformat(stamp).timestamp() - before) < 5
    rec = mapping_search.parse(line)
    assert (rec.kind, rec.protocol, rec.internal_ip, rec.external_port, rec.session) == \
        ("created", "udp", H1.ip, session.external_port, session.id)


def test_syslog_gets_every_line(tmp_path):
    """mapping_log_syslog: a UDP syslog server on loopback receives each line."""
    import socket
    from ryu_app.journal.mapping_log import MappingLog
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5)
    try:
        session, _ = open_flow(make_lab(), H1, 5000, S1, 53)
        log = MappingLog(str(tmp_path / "m.log"), 0, 5,
                         syslog=f"127.0.0.1:{server.getsockname()[1]}")
        log(_created(session))
        log.flush()
        data = server.recv(4096).decode()
    finally:
        server.close()
    assert data.startswith("<30>ryu-snat: ")            # daemon.info
    assert f"mapping created: udp 10.0.0.11:5000 -> 198.51.100.1:{session.external_port} " \
           f"(session {session.id})" in data and "Z mapping" in data


def _created(session):
    from conntrack import Event, EventKind
    return Event(EventKind.CREATED, session, 0.0, "")


def _logged_with(handler: logging.Handler, count: int = 3, logger_filter=None) -> list:
    """``count`` sessions made and flushed to the logger, ``handler`` on it
    alone; (records the handler was given, the sessions)."""
    seen: list[logging.LogRecord] = []
    logger = logging.getLogger("ryu_snat.mappings")
    keep = (logger.handlers[:], logger.propagate, logger.level, logger.filters[:])
    logger.handlers[:] = [handler]
    logger.propagate, logger.filters[:] = False, [logger_filter] if logger_filter else []
    logger.setLevel(logging.INFO)
    original = handler.handle
    handler.handle = lambda record: seen.append(record) or original(record)
    try:
        lab = make_lab()                  # no mapping_log_file: the logger
        sessions = [open_flow(lab, H1, 5000 + n, S1, 53)[0] for n in range(count)]
        lab.gateway.mapping_log.flush()
    finally:
        logger.handlers[:], logger.propagate, logger.level, logger.filters[:] = keep
    return seen, sessions


def test_plain_stream_handlers_get_the_seconds_lines_in_one_record_with_the_same_bytes():
    out = io.StringIO()
    records, sessions = _logged_with(logging.StreamHandler(out))
    assert len(records) == 1
    assert out.getvalue() == "".join(
        f"mapping created: udp 10.0.0.11:{5000 + n} -> 198.51.100.1:{s.external_port} "
        f"(session {s.id})\n" for n, s in enumerate(sessions))


def test_a_format_with_time_or_a_syslog_or_a_filter_gets_a_record_per_line():
    stamped = logging.StreamHandler(io.StringIO())
    stamped.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    assert len(_logged_with(stamped)[0]) == 3
    syslog = logging.handlers.SysLogHandler(address=("127.0.0.1", 9))
    try:
        assert len(_logged_with(syslog)[0]) == 3
    finally:
        syslog.close()
    assert len(_logged_with(logging.StreamHandler(io.StringIO()),
                            logger_filter=logging.Filter("ryu_snat"))[0]) == 3
