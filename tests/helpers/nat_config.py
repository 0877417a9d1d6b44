"""Build checked configs for unit tests the way the app does: oslo -> load().

``make_config`` gives a bridge's :class:`BridgeConfig`, ``make_controller``
the process's :class:`ControllerConfig`, ``make_configs`` both (in the order
``Gateway`` takes them), each from ``[nat]`` options by their names.
"""
from __future__ import annotations

from oslo_config import cfg

from ryu_app.settings import config, options

LAB = {"external_ip": "198.51.100.1/24", "external_port": "s1-eth1",
       "internal_subnet": "10.0.0.0/24"}


def _parsed(overrides: dict[str, object]) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    config.register(conf)
    conf(args=[], default_config_files=[])
    for name, value in {**LAB, **overrides}.items():
        try:
            conf.set_override(name, value, group=config.GROUP)
        except ValueError:
            # oslo checks an override at once (a file's value: when read);
            # the app's words for it, as for a bad value in a file.
            raise config.ConfigError(name, value, options.problem(name, value)) from None
    return conf


def make_configs(**overrides: object) -> tuple[config.BridgeConfig, config.ControllerConfig]:
    conf = _parsed(overrides)
    return config.load(conf, warn=lambda message: None), config.load_controller(conf)


def make_config(**overrides: object) -> config.BridgeConfig:
    wide = sorted(set(overrides) & set(config.PROCESS_WIDE))
    if wide:
        raise TypeError(f"{wide} are controller options: use make_configs or make_controller")
    return config.load(_parsed(overrides), warn=lambda message: None)


def make_controller(**overrides: object) -> config.ControllerConfig:
    return config.load_controller(_parsed(overrides))
