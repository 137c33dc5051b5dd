#!/usr/bin/env bash
# The whole test suite: installs what is missing, then runs every test (Azurite is started and
# stopped by the test fixtures themselves). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# mypy after the tests, so a type error never hides their results; either failure fails the run
status=0
.venv/bin/python -m pytest -n 2 --dist loadfile "$@" || status=$?
.venv/bin/mypy || status=$((status == 0 ? 1 : status))  # files and options: pyproject.toml
exit "$status"
