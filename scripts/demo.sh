#!/usr/bin/env bash
# Installs everything, then runs a real sync end to end on the local stack (see scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python scripts/demo.py
