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

want=$(cat pyproject.toml constraints/build.txt constraints/runtime.txt | sha256sum | cut -c1-16)
for version in ${PYTHON_VERSIONS:-3.12 3.13}; do
    venv=$ROOT/.venv-$version
    stamp=$venv/.ryu-snat-installed
    if [ ! -x "$venv/bin/python" ]; then
        py=$(interpreter "$version")
        log "creating $venv with $("$py" --version)"
        "$py" -m venv "$venv"
        rm -f "$stamp"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing ryu-snat and its test and docs extras into $venv"
        PIP_CONSTRAINT=$ROOT/constraints/build.txt PIP_BUILD_CONSTRAINT=$ROOT/constraints/build.txt \
            PIP_DISABLE_PIP_VERSION_CHECK=1 \
            "$venv/bin/pip" install -q -c constraints/runtime.txt -e ".[test,docs]"
        echo "$want" > "$stamp"
    fi
    log "unit suite on $("$venv/bin/python" --version)"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit -m "not integration"
done
