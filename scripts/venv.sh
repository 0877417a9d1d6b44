# Sourced by scripts/setup.sh and scripts/other-pythons.sh: one way to make a
# venv with ryu-snat installed editable, every package at the version in
# constraints/runtime.txt, and refresh it only when the pins change (a stamp).
# ryu 4.34 only builds with setuptools<67 in pip's build environment:
# constraints/build.txt (PIP_CONSTRAINT reaches the build environment up to
# pip 25.2, PIP_BUILD_CONSTRAINT from pip 25.3 on).  Needs ROOT and log().

ensure_venv() {   # VENV PYTHON EXTRAS   (EXTRAS: "test,docs", ...)
    local venv=$1 py=$2 extras=$3 stamp want
    stamp=$venv/.ryu-snat-installed
    want=$(cat "$ROOT/pyproject.toml" "$ROOT/constraints/build.txt" \
               "$ROOT/constraints/runtime.txt" | sha256sum | cut -c1-16)
    if [ ! -x "$venv/bin/python" ]; then
        log "creating $venv with $("$py" --version) ($py)"
        "$py" -m venv "$venv"
        rm -f "$stamp"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing ryu-snat with its extras [$extras] into $venv"
        (cd "$ROOT" && PIP_CONSTRAINT=$ROOT/constraints/build.txt \
            PIP_BUILD_CONSTRAINT=$ROOT/constraints/build.txt PIP_DISABLE_PIP_VERSION_CHECK=1 \
            "$venv/bin/pip" install -q -c constraints/runtime.txt -e ".[$extras]")
        echo "$want" > "$stamp"
    fi
}
