"""Every drop reason the code can count is in the registry
(``ryu_app.nat.counters.DROP_REASONS``), so ``/metrics`` can show each
series at 0 from the start; and the registry names no reason the code lost."""
from __future__ import annotations

import ast
from pathlib import Path

from ryu_app.nat.counters import DROP_REASONS, ENUM_DROPS, NAMED_DROPS

ROOT = Path(__file__).resolve().parents[3] / "ryu_app"
#: Calls whose string argument is counted as a drop reason.
DROP_CALLS = {"drop", "dropped", "_dropped", "_forget"}
#: Modules whose functions return a drop reason as a string (classifiers,
#: admission, ICMP error translation, fragment parsing): every literal they
#: return ends up in a drop call.
REASON_RETURNS = {"nat/admission.py", "packets/icmp_errors.py", "packets/packet_info.py",
                  "nat/paths/fragments.py"}


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _branches(args: list[ast.expr]) -> list[ast.expr]:
    """The arguments, with ``a if c else b`` as both a and b."""
    out: list[ast.expr] = []
    for arg in args:
        out += _branches([arg.body, arg.orelse]) if isinstance(arg, ast.IfExp) else [arg]
    return out


def reasons_in_code() -> tuple[set[str], set[str]]:
    """(literal reasons, f-string prefixes) given to drop functions."""
    literals: set[str] = set()
    prefixes: set[str] = set()
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("limits/"):
            continue        # the fair queue's own reasons, renamed in snat.py's drop call
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in DROP_CALLS:
                for arg in _branches(node.args):
                    if isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Dict):
                        arg = arg.value        # drop({"full": "...", ...}[reason])
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        literals.add(arg.value)
                    elif isinstance(arg, ast.Dict):
                        literals.update(v.value for v in arg.values
                                        if isinstance(v, ast.Constant))
                    elif isinstance(arg, ast.JoinedStr):
                        head = arg.values[0]
                        assert isinstance(head, ast.Constant), ast.unparse(arg)
                        prefixes.add(head.value)
            elif (rel in REASON_RETURNS and isinstance(node, ast.Return)
                  and isinstance(node.value, ast.Constant)
                  and isinstance(node.value.value, str) and node.value.value):
                literals.add(node.value.value)
    return literals, prefixes


def test_every_reason_the_code_drops_for_is_registered():
    literals, prefixes = reasons_in_code()
    assert literals - DROP_REASONS == set()
    assert prefixes - set(ENUM_DROPS) == set()   # an f-string reason: its enum is known


def test_the_registry_names_no_reason_the_code_lost():
    literals, _ = reasons_in_code()
    assert NAMED_DROPS - literals == set()


def test_the_scan_finds_the_drop_calls():
    """The scan itself works: a sample of reasons from several rooms."""
    literals, prefixes = reasons_in_code()
    assert {"malformed", "packet_in_queue_full", "fragment_evicted", "not_unicast",
            "icmp_error_no_session", "tcp_not_syn"} <= literals
    assert {"inbound_", "hairpin_"} <= prefixes
