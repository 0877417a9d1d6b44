"""The gateway's configuration, as the rest of ``ryu_app`` imports it.

One import for consumers (``from ryu_app.settings import config``); the work
is done by the modules named below, one job each:

* :mod:`~ryu_app.settings.options`: the oslo.config declarations and bounds;
* :mod:`~ryu_app.settings.validate`: addresses, MACs, ranges, names, files;
* :mod:`~ryu_app.settings.files`: the config files' own keys and sections;
* :mod:`~ryu_app.settings.model`: the frozen :class:`BridgeConfig` and
  :class:`ControllerConfig`;
* :mod:`~ryu_app.settings.load`: building them, once, at start.
"""
from __future__ import annotations

from ryu_app.settings.errors import GROUP, PROFILE_PREFIX, ConfigError
from ryu_app.settings.files import profile_names
from ryu_app.settings.load import load, load_controller, load_profiles
from ryu_app.settings.model import (DEFAULT_GATEWAY_MAC, AdmissionConfig, BridgeConfig,
                                    ControllerConfig, HaConfig, IpfixConfig, MappingLogConfig,
                                    TimerConfig)
from ryu_app.settings.options import (OPTS, PROCESS_WIDE, REQUIRED, RFC_FLOORS, list_opts,
                                      register)

__all__ = ["GROUP", "PROFILE_PREFIX", "ConfigError", "profile_names", "load",
           "load_controller", "load_profiles", "DEFAULT_GATEWAY_MAC", "AdmissionConfig",
           "BridgeConfig", "ControllerConfig", "HaConfig", "IpfixConfig", "MappingLogConfig",
           "TimerConfig",
           "OPTS", "PROCESS_WIDE", "REQUIRED", "RFC_FLOORS", "list_opts", "register"]
