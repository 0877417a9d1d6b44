"""Let ``ryu.app.ofctl_rest`` show flows that carry Open vSwitch's fin_timeout.

Ryu 4.34 renders the Nicira actions it knows (``ryu.lib.ofctl_nicira_ext``);
fin_timeout, on every TCP session flow, is not among them, and the fallback
for an unknown experimenter action reads an attribute Ryu's parsed Nicira
actions do not have: ``GET /stats/flow/<dpid>`` then answers 500 for any
switch with a TCP session.  ``install()`` wraps the renderer so fin_timeout
reads as ``NX_FIN_TIMEOUT: {fin_idle_timeout: 240, fin_hard_timeout: 0}``,
in the style of its neighbours; every other action is rendered as before.
"""
from __future__ import annotations

from typing import Any, Callable

from ryu.lib import ofctl_nicira_ext
from ryu.ofproto import nicira_ext

_MARK = "_ryu_snat_fin_timeout"


def fin_timeout_to_str(act: Any) -> str:
    return (f"NX_FIN_TIMEOUT: {{fin_idle_timeout: {act.fin_idle_timeout}, "
            f"fin_hard_timeout: {act.fin_hard_timeout}}}")


def install() -> None:
    """Teach ofctl's Nicira renderer fin_timeout; idempotent."""
    original: Callable[..., str] = ofctl_nicira_ext.action_to_str
    if getattr(original, _MARK, False):
        return

    def action_to_str(act: Any, ofctl_action_to_str: Callable[..., str]) -> str:
        if getattr(act, "subtype", None) == nicira_ext.NXAST_FIN_TIMEOUT:
            return fin_timeout_to_str(act)
        return original(act, ofctl_action_to_str)

    setattr(action_to_str, _MARK, True)
    ofctl_nicira_ext.action_to_str = action_to_str
