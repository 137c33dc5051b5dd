#!/usr/bin/env bash
# The whole test suite: installs what is missing, then runs every test (Azurite is started and
# stopped by the test fixtures themselves). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # the files and options are in pyproject.toml
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
