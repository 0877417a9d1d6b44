"""The ALREADY_HANDLED shim that lets stock ryu-manager import on modern eventlet."""
from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

from ryu_app import eventlet_compat


def fresh_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter of this venv (so the .pth applies)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)


def test_pth_is_installed_in_the_venv():
    import sysconfig
    pth = Path(sysconfig.get_paths()["purelib"]) / "ryu_snat_eventlet_compat.pth"
    assert pth.is_file(), "the wheel must install ryu_snat_eventlet_compat.pth"
    assert "eventlet_compat" in pth.read_text()


def test_ryu_wsgi_imports_in_a_fresh_interpreter():
    res = fresh_python("import ryu.app.wsgi, eventlet.wsgi as w; print(repr(w.ALREADY_HANDLED))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "()"


def test_stock_ryu_manager_starts():
    exe = Path(sys.executable).parent / "ryu-manager"
    res = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "4.34" in res.stdout + res.stderr


def test_hook_is_lazy_and_idempotent():
    res = fresh_python(
        "import sys, ryu_app.eventlet_compat as c\n"
        "assert 'eventlet' not in sys.modules, 'the hook must not import eventlet eagerly'\n"
        "c.install(); c.install()\n"
        "assert sum(isinstance(f, c._EventletWsgiFinder) for f in sys.meta_path) == 1\n"
        "print('ok')")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_patch_keeps_an_existing_name():
    module = types.ModuleType("eventlet.wsgi")
    module.ALREADY_HANDLED = sentinel = object()
    eventlet_compat.patch(module)
    assert module.ALREADY_HANDLED is sentinel
    bare = types.ModuleType("eventlet.wsgi")
    eventlet_compat.patch(bare)
    assert bare.ALREADY_HANDLED == () and list(bare.ALREADY_HANDLED) == []
