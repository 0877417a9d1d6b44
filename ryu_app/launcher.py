"""``ryu-snat``: the controller as a service starts it.

It builds ryu-manager's command line (the config file, ``ryu_app.snat``,
``ryu.app.ofctl_rest`` unless ``--no-ofctl-rest``) and runs Ryu's own
``ryu.cmd.manager.main`` in this process, so the systemd unit's PID is the
controller's and every other ryu-manager flag passes through unchanged.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

DEFAULT_CONFIG = "/etc/ryu-snat/ryu-snat.conf"
APP = "ryu_app.snat"
OFCTL_REST = "ryu.app.ofctl_rest"


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our options, and the rest for ryu-manager."""
    parser = argparse.ArgumentParser(
        prog="ryu-snat",
        description="Run the ryu-snat controller (ryu-manager with ryu_app.snat). "
                    "Other options are passed to ryu-manager (see ryu-manager --help), "
                    "e.g. --log-file, --ofp-listen-host, --ctl-privkey.")
    parser.add_argument("--config-file", default=DEFAULT_CONFIG,
                        help=f"the configuration file (default {DEFAULT_CONFIG})")
    parser.add_argument("--ofctl-rest", action=argparse.BooleanOptionalAction, default=True,
                        help="also load ryu.app.ofctl_rest (/stats/*; default: on)")
    return parser.parse_known_args(argv)


def manager_args(argv: Sequence[str]) -> list[str]:
    """ryu-manager's arguments for ``ryu-snat argv``."""
    ours, rest = parse(argv)
    apps = [APP] + ([OFCTL_REST] if ours.ofctl_rest else [])
    return ["--config-file", ours.config_file, *rest, *apps]


def main(argv: Sequence[str] | None = None) -> None:
    args = manager_args(sys.argv[1:] if argv is None else argv)
    config_file = args[1]
    if not os.path.isfile(config_file):
        sys.exit(f"ryu-snat: no configuration file {config_file} (--config-file)")
    # The eventlet shim (ryu_app.eventlet_compat) before ryu imports eventlet.wsgi;
    # the .pth of the wheel does it too, an editable or odd install may not.
    from ryu_app import eventlet_compat
    eventlet_compat.install()
    from ryu.cmd import manager     # monkey-patches the process: only now
    manager.main(args=args, prog="ryu-snat")


if __name__ == "__main__":
    main()
