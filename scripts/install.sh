#!/usr/bin/env bash
# Installs everything the local run and the tests need, idempotently:
#   .venv            runtime + dev Python packages (requirements-dev.txt)
#   node_modules     Azurite (Table/Queue/Blob emulator) and adaptivecards (card validation)
#   .venv-paconn     paconn 0.0.21 in its own venv (legacy deps clash with the SDKs): contract tests
#   .venv-checkov    checkov in its own venv (pins pycep-parser): Bicep checks
#   Debian packages  chromium + fonts (card screenshots), shellcheck (hook scripts), when root
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
quiet() { "$@" 2>&1 | grep -v "WARNING: Location" || true; }

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

req_hash=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
if ! stamp_ok .venv/.installed "$req_hash"; then
  echo "==> Python packages (.venv)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  quiet .venv/bin/python -m pip install -q --upgrade pip
  quiet .venv/bin/python -m pip install -q -r requirements-dev.txt
  .venv/bin/python -c "import azure.functions, azure.identity, azure.data.tables, httpx, stamina, yaml"
  echo "$req_hash" > .venv/.installed
fi

node_hash=$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
if ! stamp_ok node_modules/.installed "$node_hash"; then
  echo "==> Node packages (Azurite, adaptivecards)"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
  echo "$node_hash" > node_modules/.installed
fi

if [ ! -x .venv-paconn/bin/paconn ]; then
  echo "==> paconn 0.0.21 (own venv, for contract tests and the benchmark)"
  "$PY" -m venv .venv-paconn
  quiet .venv-paconn/bin/python -m pip install -q paconn==0.0.21
fi

if [ ! -x .venv-checkov/bin/checkov ]; then
  echo "==> checkov (own venv, for the Bicep checks)"
  "$PY" -m venv .venv-checkov
  quiet .venv-checkov/bin/python -m pip install -q checkov==3.3.30
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
  command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> Debian packages: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "note: not root or no apt-get: card screenshots and shellcheck tests will be skipped"
fi
echo "==> installed"
