"""A failing test body must not leave bridges, namespaces or processes behind."""
from __future__ import annotations

import subprocess

import pytest

from helpers.system import bridges, pid_alive
from lab import Lab


def test_teardown_leaves_nothing_even_when_the_body_fails():
    class Boom(Exception):
        pass

    lab = Lab(inside=1, outside=1)
    with pytest.raises(Boom):
        with lab:
            pids = [lab.controller.proc.pid] + [h.pid for h in lab.net.hosts]
            interfaces = [i.name for n in lab.net.hosts for i in n.intfList()]
            assert {"s1", "s2"} <= bridges()
            raise Boom()
    assert not {"s1", "s2"} & bridges()
    assert not [p for p in pids if pid_alive(p)]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert not [i for i in interfaces + ["s1-eth1"] if f" {i}@" in links or f" {i}:" in links]
