"""etc/ryu-snat.conf.sample is what oslo-config-generator prints from the
registered options: it must not drift (regenerate with the command below).

The generator finds the options through the ``oslo.config.opts`` entry point
of the installed package metadata, which is only current after a reinstall;
so the test resolves the entry point that pyproject.toml declares itself and
hands it to the generator, which then does everything else as usual.
"""
from __future__ import annotations

import configparser
import importlib
import tomllib
from pathlib import Path

import pytest
from oslo_config import generator

ROOT = Path(__file__).resolve().parents[3]
GENERATOR_CONF = ROOT / "etc" / "oslo-config-generator" / "ryu-snat.conf"
SAMPLE = ROOT / "etc" / "ryu-snat.conf.sample"
REGENERATE = ("oslo-config-generator --config-file etc/oslo-config-generator/ryu-snat.conf "
              "(from the repository's root, with the project installed: "
              "scripts/setup.sh)")


def _declared_entry_points() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["entry-points"]["oslo.config.opts"]


def _resolve(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def generate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    declared = _declared_entry_points()

    def loaders(namespaces: list[str]) -> list:
        missing = [n for n in namespaces if n not in declared]
        assert not missing, f"namespaces {missing} are not entry points in pyproject.toml"
        return [(n, _resolve(declared[n])) for n in namespaces]

    monkeypatch.setattr(generator, "_get_raw_opts_loaders", loaders)
    out = tmp_path / "ryu-snat.conf.sample"
    generator.main(args=["--config-file", str(GENERATOR_CONF), "--output-file", str(out)])
    return out.read_text()


def test_the_generator_config_names_the_sample_and_the_namespace():
    parser = configparser.ConfigParser()
    parser.read(GENERATOR_CONF)
    assert parser["DEFAULT"]["output_file"] == "etc/ryu-snat.conf.sample"
    assert parser["DEFAULT"]["namespace"] in _declared_entry_points()


def test_the_committed_sample_is_up_to_date(tmp_path, monkeypatch):
    assert SAMPLE.read_text() == generate(tmp_path, monkeypatch), (
        f"etc/ryu-snat.conf.sample is stale: run {REGENERATE}")


def test_every_option_is_in_the_sample_with_its_bounds():
    from ryu_app.settings import options
    text = SAMPLE.read_text()
    assert "[nat]" in text
    for opt in options.OPTS:
        assert f"\n#{opt.dest} =" in text, opt.dest
    assert "# Maximum value: 65535\n#udp_timeout = 300" in text
    assert "# endpoint-independent - " in text
