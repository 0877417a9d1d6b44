"""Shared test set-up: make ``tests/`` helpers and ``mininet/`` scripts importable.

``mininet/`` has no ``__init__.py`` (it must never shadow the real mininet
package), so its modules (``lab``, ``nat_topo``) are imported by adding the
directory itself to ``sys.path``.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "tests", ROOT / "mininet"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
