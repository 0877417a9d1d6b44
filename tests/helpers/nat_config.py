"""Build a checked NatConfig for unit tests the way the app does: oslo -> load()."""
from __future__ import annotations

from oslo_config import cfg

from ryu_app.settings import config

LAB = {"external_ip": "198.51.100.1/24", "external_port": "s1-eth1",
       "internal_subnet": "10.0.0.0/24"}


def make_config(**overrides: object) -> config.NatConfig:
    conf = cfg.ConfigOpts()
    config.register(conf)
    conf(args=[], default_config_files=[])
    for name, value in {**LAB, **overrides}.items():
        conf.set_override(name, value, group=config.GROUP)
    return config.load(conf, warn=lambda message: None)
