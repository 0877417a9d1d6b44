#!/usr/bin/env bash
# The main job: set up (idempotent), then run the demo in mininet/demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python mininet/demo.py "$@"
