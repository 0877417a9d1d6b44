"""docs/configuration.md is generated from the registered options: it must
be what the generator prints now (regenerate with the command it names)."""
from __future__ import annotations

from pathlib import Path

from ryu_app.settings import config

from ryu_app.settings import reference

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_the_committed_reference_is_up_to_date():
    assert DOC.read_text() == reference.render(), (
        "docs/configuration.md is stale: run "
        ".venv/bin/python -m ryu_app.settings.reference > docs/configuration.md")


def test_every_option_is_in_it():
    text = DOC.read_text()
    assert all(f"| `{opt.dest}` |" in text for opt in config.OPTS)
