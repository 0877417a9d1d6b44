"""The one exception a bad option raises: its message is the whole report.

The app prints ``str(err)`` as one log line and exits 2, so the message must
name the section and the option and say what is wrong, without a traceback.
"""
from __future__ import annotations

GROUP = "nat"                # the oslo.config group every option lives in
PROFILE_PREFIX = "nat:"      # [nat:NAME]: one NAT bridge's profile


class ConfigError(ValueError):
    """An invalid ``[nat]`` option; ``str()`` is one line naming it."""

    def __init__(self, option: str, value: object, problem: str,
                 section: str = GROUP) -> None:
        super().__init__(f"invalid [{section}] {option}={value!r}: {problem}")
        self.option, self.value, self.problem = option, value, problem
        self.section = section

    def in_section(self, section: str) -> "ConfigError":
        """The same error, naming the bridge profile it was found in."""
        return ConfigError(self.option, self.value, self.problem, section)
