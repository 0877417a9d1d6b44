"""The ``[nat]`` options as a Markdown reference, generated from the
registered oslo.config options (``ryu_app.settings.config.OPTS``) so it cannot drift:
``tests/unit/test_config_reference.py`` fails when the committed
``docs/configuration.md`` differs from what this prints.

    .venv/bin/python -m ryu_app.settings.reference > docs/configuration.md
"""
from __future__ import annotations

from oslo_config import cfg

from ryu_app.settings.config import GROUP, OPTS, PROCESS_WIDE, REQUIRED, RFC_FLOORS

_TYPES = {cfg.StrOpt: "string", cfg.IntOpt: "integer", cfg.BoolOpt: "boolean",
          cfg.ListOpt: "list", cfg.FloatOpt: "number"}


def _default(opt: cfg.Opt) -> str:
    if opt.dest in REQUIRED:
        return "**required**"
    if opt.secret:
        return "(unset; secret)"
    if opt.default is None:
        return "(unset)"
    if isinstance(opt.default, bool):
        return f"`{str(opt.default).lower()}`"
    if isinstance(opt.default, list):
        return f"`{', '.join(opt.default)}`" if opt.default else "(empty)"
    return f"`{opt.default}`"


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the registered options by `python -m ryu_app.settings.reference`;",
        "do not edit by hand (`tests/unit/test_config_reference.py` checks it).",
        "",
        f"Every option lives in the `[{GROUP}]` group of the file given to "
        "`ryu-manager --config-file`.",
        "An unknown key, a value of the wrong type or out of range stops the start with one",
        "line naming the option (exit status 2). `etc/ryu-snat.conf` has them all, commented.",
        "Ryu's own options (`[DEFAULT]`: `wsapi_host`, `wsapi_port`, `ofp_tcp_listen_port`, ...)",
        "are Ryu's; ryu-snat makes `wsapi_host` and `ofp_listen_host` default to 127.0.0.1.",
        "",
        "Several NAT bridges: each `[nat:NAME]` section is one bridge's profile. Its `dpid` is",
        "required; an option the section does not set takes its value from `[nat]`. These",
        "options have one value for the whole controller and are only read from `[nat]`: "
        + ", ".join(f"`{name}`" for name in PROCESS_WIDE) + ".",
        "",
        "| option | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for opt in OPTS:
        meaning = " ".join(opt.help.split()).replace("|", "\\|")
        if opt.dest in RFC_FLOORS:
            meaning += f" (below {RFC_FLOORS[opt.dest]} s: accepted with a warning)"
        lines.append(f"| `{opt.dest}` | {_TYPES.get(type(opt), type(opt).__name__)} | "
                     f"{_default(opt)} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
