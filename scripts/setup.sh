#!/usr/bin/env bash
# Idempotent set-up for ryu-snat on Debian 12 as root: apt packages, the venv
# at .venv with the project (editable) and its test extra, and Debian's
# Mininet made importable from that venv.  Safe to run again: each step
# checks first and does nothing when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv

log() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "[setup] must run as root (Open vSwitch and Mininet need it)" >&2
    exit 1
fi

# 1. Debian packages: OVS, Mininet, the traffic tools the tests use, systemd
#    (systemd-analyze verify checks the shipped unit; systemd need not run),
#    redis-server (the coordination engine of a controller pair) and headless
#    Chromium with its WebDriver (the status page test).
APT_PKGS=(openvswitch-switch mininet iperf3 tcpdump iputils-ping netcat-openbsd
          curl ethtool iproute2 traceroute iputils-tracepath python3 python3-venv python3-dev gcc coturn iptables
          redis-server systemd chromium chromium-driver natpmpc)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# 2. The interpreter for the venv: $PYTHON if given, else python3 on PATH
#    (pyenv's on the CI image, Debian's on a bare machine), if it is >= 3.11.
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY=/usr/bin/python3
fi

# 3. The venv, with ryu-snat installed editable (scripts/venv.sh).
# shellcheck source=scripts/venv.sh
. "$ROOT/scripts/venv.sh"
ensure_venv "$VENV" "$PY" "test,bench,docs,lint"

# 4. Debian's Mininet is a pure-Python package in /usr/lib/python3/dist-packages,
#    which the venv does not see.  Link just that package into the venv, not the
#    whole dist-packages (whose other packages would shadow the pinned ones).
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mn_pkg=$(/usr/bin/python3 -c 'import mininet, os; print(os.path.dirname(mininet.__file__))')
if [ "$(readlink "$site/mininet" 2>/dev/null)" != "$mn_pkg" ]; then
    log "linking Debian's Mininet ($mn_pkg) into the venv"
    ln -sfn "$mn_pkg" "$site/mininet"
fi

# 5. Open vSwitch running, with the one setting ryu-snat's install makes
#    (other_config:max-idle; why: scripts/ovs.sh).
bash scripts/ovs.sh
