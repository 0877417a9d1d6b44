"""Integration tests drive real OVS, the real ryu-manager and Mininet hosts.

They need root and Debian's openvswitch-switch and mininet (the README's test
command installs them).  Missing prerequisites fail loudly: CI runs these.
"""
from __future__ import annotations

import os
import shutil

import pytest

from helpers.system import assert_left_nothing
from lab import Lab


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _prerequisites():
    missing = [tool for tool in ("ovs-vsctl", "mnexec", "ping", "ethtool")
               if shutil.which(tool) is None]
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (run the README's test command as root)")
    if missing:
        pytest.fail(f"missing tools: {missing}; run scripts/setup.sh")


@pytest.fixture(scope="module")
def lab():
    """One lab per test module; torn down and checked for leftovers after it."""
    with Lab() as running:
        yield running
    assert_left_nothing(running)
