"""The README is the front door and docs/ the rest: the site builds with MkDocs
in strict mode (a broken link or a page missing from the nav fails it), the
README stays short and opens with the two commands, and every docs page it
links to exists."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_the_docs_site_builds_in_strict_mode(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--site-dir", str(tmp_path / "site"), "--config-file", str(ROOT / "mkdocs.yml")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"mkdocs build --strict failed:\n{res.stderr[-4000:]}"


def test_the_readme_is_short_and_opens_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move sections to docs/"
    assert lines[0] == "# ryu-snat"
    assert lines[3].startswith("bash scripts/demo.sh"), lines[3]
    assert lines[4].startswith("bash scripts/test.sh"), lines[4]


def test_every_docs_page_the_readme_links_to_exists():
    targets = re.findall(r"\]\((docs/[^)#\s]+\.md)(?:#[^)]*)?\)", README.read_text())
    assert targets, "README.md links to no docs page"
    missing = sorted({t for t in targets if not (ROOT / t).is_file()})
    assert not missing, f"README.md links to missing pages: {missing}"
