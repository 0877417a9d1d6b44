"""What oslo.config does not tell: the config files' own keys and sections.

oslo.config ignores a key it has no option for, so a misspelt option
(``udp_timout``) would silently keep its default; it lists sections but
does not register ``[nat:NAME]`` profiles; and its refusal of a value does
not always quote it.  This module reads the files given to ``--config-file``
and ``--config-dir`` again, as plain INI, for those three answers.
"""
from __future__ import annotations

import configparser
import difflib
import os
import re
from pathlib import Path
from typing import Iterable

from oslo_config import cfg

from ryu_app.settings.errors import GROUP, PROFILE_PREFIX, ConfigError


def config_paths(conf: cfg.ConfigOpts) -> list[str]:
    """The files oslo.config parsed, in its order (later ones win)."""
    try:   # both exist only once the command line has been parsed
        paths = list(conf.config_file or [])
        if conf.config_dir:
            paths += sorted(str(p) for p in Path(conf.config_dir).glob("*.conf"))
    except cfg.NoSuchOptError:
        return []
    return paths


def _sections(conf: cfg.ConfigOpts, section: str) -> Iterable[tuple[str, list[tuple[str, str]]]]:
    """(path, its items) for each file that has ``section``."""
    for path in config_paths(conf):
        parser = configparser.RawConfigParser(strict=False, interpolation=None,
                                              default_section="\0none")
        try:
            parser.read(path)
        except configparser.Error:
            continue   # oslo has parsed (or refused) the file already
        if parser.has_section(section):
            yield path, parser.items(section)


def reject_unknown(conf: cfg.ConfigOpts, known: set[str], process_wide: Iterable[str],
                   section: str = GROUP) -> None:
    """Refuse any key of ``section`` that is not in ``known``, and in a
    bridge's profile any option that only ``[nat]`` may set."""
    controller_only = set(process_wide)
    for path, items in _sections(conf, section):
        for key, value in items:
            name = key.replace("-", "_")
            if name in controller_only and section != GROUP:
                raise ConfigError(key, value, f"one value for the whole controller: set it "
                                  f"in [{GROUP}] ({path})", section)
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ConfigError(key, value, f"unknown option in {path}{hint}", section)


def raw_value(conf: cfg.ConfigOpts, section: str, name: str) -> str | None:
    """The text the files give ``name`` in ``section`` (the last file's), or None."""
    found = None
    for _path, items in _sections(conf, section):
        for key, value in items:
            if key.replace("-", "_") == name:
                found = value
    return found


def environment_value(error: str) -> tuple[str, str]:
    """(variable, raw text) behind oslo.config's error for an option set in
    the environment (``OS_<GROUP>__<OPTION>``), read from the error's text."""
    found = re.search(r"detail='([A-Za-z0-9_:.-]+)'", error)
    variable = found.group(1) if found else "OS_NAT__*"
    return variable, os.environ.get(variable, "?")


def profile_names(conf: cfg.ConfigOpts) -> list[str]:
    """NAME of every ``[nat:NAME]`` section of the config files, in file order."""
    try:
        sections = conf.list_all_sections()
    except (AttributeError, cfg.NoSuchOptError):   # not parsed yet
        return []
    return [s[len(PROFILE_PREFIX):] for s in sections if s.startswith(PROFILE_PREFIX)]
