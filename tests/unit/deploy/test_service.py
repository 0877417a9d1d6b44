"""The shipped systemd unit and the ryu-snat launcher."""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ryu_app import launcher

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "etc" / "systemd" / "ryu-snat.service"
LAUNCHER = Path(sys.executable).parent / "ryu-snat"


def test_the_unit_passes_systemd_analyze_verify_without_a_warning(tmp_path):
    """systemd-analyze checks every directive offline; ExecStart must name an
    existing program, so the copy checked runs this venv's ryu-snat."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/setup.sh installs Debian's systemd"
    text = UNIT.read_text()
    assert "ExecStart=/opt/ryu-snat/bin/ryu-snat " in text
    copy = tmp_path / "ryu-snat.service"
    copy.write_text(text.replace("/opt/ryu-snat/bin/ryu-snat", str(LAUNCHER)))
    res = subprocess.run([analyze, "verify", "--man=no", str(copy)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not res.stderr.strip() and not res.stdout.strip(), \
        res.stderr + res.stdout


def test_the_unit_runs_as_its_own_user_with_no_privilege():
    unit = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    unit.optionxform = str          # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["User"] == "ryu-snat"
    assert service["StateDirectory"] == "ryu-snat" and service["LogsDirectory"] == "ryu-snat"
    assert service["Restart"] == "on-failure"
    assert service["CapabilityBoundingSet"] == ""
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes" and service["PrivateTmp"] == "yes"
    assert service["ExecStart"].split() == [
        "/opt/ryu-snat/bin/ryu-snat", "--config-file", launcher.DEFAULT_CONFIG]


@pytest.mark.parametrize("argv,expected", [
    ([], ["--config-file", "/etc/ryu-snat/ryu-snat.conf", "ryu_app.snat", "ryu.app.ofctl_rest"]),
    (["--no-ofctl-rest"], ["--config-file", "/etc/ryu-snat/ryu-snat.conf", "ryu_app.snat"]),
    (["--config-file", "/tmp/x.conf", "--log-file", "/var/log/ryu-snat/ryu.log",
      "--ofp-listen-host", "192.0.2.1"],
     ["--config-file", "/tmp/x.conf", "--log-file", "/var/log/ryu-snat/ryu.log",
      "--ofp-listen-host", "192.0.2.1", "ryu_app.snat", "ryu.app.ofctl_rest"]),
])
def test_the_launcher_builds_ryu_managers_command_line(argv, expected):
    assert launcher.manager_args(argv) == expected


def test_the_launcher_says_in_one_line_that_the_config_file_is_missing(tmp_path):
    res = subprocess.run([str(LAUNCHER), "--config-file", str(tmp_path / "none.conf")],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert res.stderr.strip() == f"ryu-snat: no configuration file {tmp_path / 'none.conf'} " \
                                 "(--config-file)"


def test_the_launcher_starts_the_app_and_refuses_a_bad_option_in_one_line(tmp_path):
    """Through Ryu's manager, with the app loaded: a bad value stops it as
    it stops ryu-manager (exit 2, one line)."""
    conf = tmp_path / "bad.conf"
    sample = (ROOT / "etc" / "ryu-snat.conf").read_text()
    conf.write_text(re.sub(r"^udp_timeout = .*\n", "", sample, flags=re.M)
                    .replace("[nat]\n", "[nat]\nudp_timeout = five\n", 1))
    res = subprocess.run([str(LAUNCHER), "--config-file", str(conf), "--no-ofctl-rest"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "ryu-snat: invalid [nat] udp_timeout='five': must be an integer" in res.stderr
    assert "Traceback" not in res.stderr
