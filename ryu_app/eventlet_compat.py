"""Let the stock ``ryu-manager`` of ryu 4.34 start on a modern eventlet.

``ryu.app.wsgi`` (imported by ``ryu-manager`` itself) does
``from eventlet.wsgi import ALREADY_HANDLED``.  Eventlet >= 0.30.3 dropped that
sentinel, and eventlet <= 0.32 cannot import on Python >= 3.10, so no eventlet
release satisfies both.  Modern eventlet marks a response as already handled
with ``WSGI_LOCAL.already_handled``, which ``eventlet.websocket`` sets itself;
ryu only returns the sentinel as the body of a websocket response.  An empty
iterable is therefore the faithful value: eventlet writes nothing more and
sees the flag.

``install()`` runs from ``ryu_snat_eventlet_compat.pth`` (shipped in our wheel)
at interpreter start.  It adds a meta-path hook that patches ``eventlet.wsgi``
right after that module executes, so nothing is imported eagerly and no file
in site-packages is edited.  Uninstalling ryu-snat removes the hook.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any, Sequence

TARGET = "eventlet.wsgi"
ALREADY_HANDLED: tuple[()] = ()


def patch(module: ModuleType) -> None:
    """Give ``module`` (eventlet.wsgi) the name ryu imports, if it lacks it."""
    if not hasattr(module, "ALREADY_HANDLED"):
        module.ALREADY_HANDLED = ALREADY_HANDLED  # type: ignore[attr-defined]


class _PatchingLoader(importlib.abc.Loader):
    """Wraps eventlet.wsgi's real loader and patches the module after exec."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        patch(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ...
        return getattr(self._loader, name)


class _EventletWsgiFinder(importlib.abc.MetaPathFinder):
    """Finds eventlet.wsgi through the normal path finder, with our loader."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader)
        return spec


def install() -> None:
    """Arrange for eventlet.wsgi to carry ALREADY_HANDLED; idempotent."""
    if TARGET in sys.modules:
        patch(sys.modules[TARGET])
        return
    if not any(isinstance(f, _EventletWsgiFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _EventletWsgiFinder())
