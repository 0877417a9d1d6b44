#!/usr/bin/env bash
# The whole test suite: set up (idempotent), check the house plan, then pytest
# over tests/ (unit and integration; the integration tests need root and run
# real OVS and Mininet).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The layering (docs/architecture.md): import-linter's contracts in
# pyproject.toml ([tool.importlinter]), and the types ([tool.mypy]).
echo "[test] lint-imports: the house plan" >&2
.venv/bin/lint-imports --no-cache
echo "[test] mypy: ryu_app and conntrack" >&2
.venv/bin/mypy
# The unit suite on Python 3.12 and 3.13 too (.venv is 3.11); cached venvs.
echo "[test] unit suite on Python 3.12 and 3.13" >&2
bash scripts/other-pythons.sh
exec .venv/bin/python -m pytest "$@"
