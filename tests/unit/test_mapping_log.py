"""The RFC 6888 mapping log, on the logger or in its own file."""
from __future__ import annotations

import logging
import re

from helpers.nat_lab import H1, S1, make_lab, nat, open_flow

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} mapping created: udp 10\.0\.0\.11:5000 "
                  r"-> 198\.51\.100\.1:(\d+) \(session (\d+)\)$")


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
    lab = make_lab()
    with caplog.at_level(logging.INFO, logger="ryu_snat.mappings"):
        session, _ = open_flow(lab, H1, 5000, S1, 53)
    assert [r.getMessage() for r in caplog.records if r.name == "ryu_snat.mappings"] == [
        f"mapping created: udp 10.0.0.11:5000 -> 198.51.100.1:{session.external_port} "
        f"(session {session.id})"]
