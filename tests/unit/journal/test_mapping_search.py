"""Reading the mapping log back (GET /nat/who): pairs, rotated files, old stamps."""
from __future__ import annotations

import time

from ryu_app.journal import mapping_search

EXT = "198.51.100.1:40000"


def _line(stamp: str, what: str, inside: str, sid: int, tail: str = "") -> str:
    return f"{stamp} mapping {what}: udp {inside} -> {EXT} (session {sid}{tail})\n"


def test_an_unlogged_end_is_bounded_by_the_next_holder(tmp_path):
    """The controller died while h1 held the port (no end logged); h2 got
    it later: h1 cannot have held it after that."""
    log = tmp_path / "m.log"
    (tmp_path / "m.log.2").write_text(_line("2026-01-01T09:00:00.000Z", "created",
                                            "10.0.0.11:5000", 1))
    log.write_text(_line("2026-01-01T10:00:00.000Z", "created", "10.0.0.12:6000", 1)
                   + _line("2026-01-01T10:10:00.000Z", "expired (timeout)", "10.0.0.12:6000", 1,
                           ", out 1/60 in 0/0"))
    files = mapping_search.log_files(str(log), 5)
    assert files == [str(log), f"{log}.2"]
    newest, oldest = mapping_search.holdings(mapping_search.records(files, "198.51.100.1", 40000))
    assert (newest.internal_ip, newest.ended) == ("10.0.0.12", "expired (timeout)")
    assert oldest.internal_ip == "10.0.0.11" and oldest.until == newest.since
    assert "not logged" in oldest.ended
    at = mapping_search.parse_time("2026-01-01T09:30:00Z")
    assert [h.internal_ip for h in (newest, oldest) if h.covers(at)] == ["10.0.0.11"]


def test_lines_without_offset_are_local_time_and_junk_is_skipped(tmp_path):
    log = tmp_path / "m.log"
    log.write_text("garbage\n" + _line("2026-01-01T09:00:00.000", "created", "10.0.0.11:5000", 3)
                   + "2026-01-01T09:00:01.000Z mapping created: udp broken\n")
    [rec] = mapping_search.records([str(log)], "198.51.100.1", 40000)
    assert rec.time == time.mktime((2026, 1, 1, 9, 0, 0, 0, 0, -1))
    assert rec.session == 3


def test_a_port_a_host_mapped_over_pcp_or_natpmp_is_found(tmp_path):
    log = tmp_path / "m.log"
    log.write_text(
        "2026-01-01T09:00:00.000Z port mapping created: tcp 10.0.0.11:80 -> 198.51.100.1:8080 "
        "lifetime 3600 (natpmp)\n"
        "2026-01-01T09:30:00.000Z port mapping renewed: tcp 10.0.0.11:80 -> 198.51.100.1:8080 "
        "lifetime 3600 (natpmp)\n"
        "2026-01-01T10:30:00.000Z port mapping expired: tcp 10.0.0.11:80 -> 198.51.100.1:8080 "
        "lifetime 3600 (natpmp)\n"
        "2026-01-01T11:00:00.000Z port mapping created: tcp 10.0.0.12:81 -> 198.51.100.1:80800 "
        "lifetime 60 (pcp)\n")
    [held] = mapping_search.holdings(mapping_search.records([str(log)], "198.51.100.1", 8080))
    assert (held.internal_ip, held.internal_port, held.ended) == ("10.0.0.11", 80, "expired (natpmp)")
    assert held.covers(mapping_search.parse_time("2026-01-01T10:00:00Z"))
    assert not held.covers(mapping_search.parse_time("2026-01-01T10:31:00Z"))
