#!/usr/bin/env bash
# The unit suite on the other supported Pythons (3.12 and 3.13; .venv is 3.11):
# one venv each, .venv-3.12 and .venv-3.13, with the same constraints as
# scripts/setup.sh, created and refreshed idempotently (a stamp, as setup.sh
# does), then `pytest tests/unit -m "not integration"` in each.  Run by
# scripts/test.sh.  PYTHON_VERSIONS="3.12" narrows it; an interpreter that is
# missing fails the run (CI must test what the README promises).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
log() { printf '[other-pythons] %s\n' "$*" >&2; }

interpreter() {   # the newest pyenv build of $1, or python$1 on PATH
    local found
    found=$(ls -d /root/.pyenv/versions/"$1".*/bin/python 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$found" ] || found=$(command -v "python$1" || true)
    [ -n "$found" ] || { log "no Python $1 (pyenv or python$1 on PATH)"; exit 1; }
    echo "$found"
}

# shellcheck source=scripts/venv.sh
. "$ROOT/scripts/venv.sh"
for version in ${PYTHON_VERSIONS:-3.12 3.13}; do
    venv=$ROOT/.venv-$version
    py=$venv/bin/python
    [ -x "$py" ] || py=$(interpreter "$version")
    ensure_venv "$venv" "$py" "test,docs"
    log "unit suite on $("$venv/bin/python" --version)"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit -m "not integration"
done
