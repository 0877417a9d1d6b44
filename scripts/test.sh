#!/usr/bin/env bash
# The whole test suite: set up (idempotent), then pytest over tests/ (unit and
# integration; the integration tests need root and run real OVS and Mininet).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
