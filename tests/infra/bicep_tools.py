"""Static Bicep checks through checkov and the pycep parser it ships (no Bicep compiler exists here).

Both tools live in their own venv (.venv-checkov) because checkov pins an old pycep-parser; we call
them through subprocesses so the project venv never imports them.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHECKOV_VENV = ROOT / ".venv-checkov"
CHECKOV = CHECKOV_VENV / "bin" / "checkov"
CHECKOV_PYTHON = CHECKOV_VENV / "bin" / "python"
INSTALL_HINT = (
    "python3 -m venv .venv-checkov && .venv-checkov/bin/pip install 'checkov>=3.2,<4' "
    "(scripts/install.sh creates it)"
)


def require_checkov() -> None:
    """Skip with the exact install command when the checkov venv is absent."""
    if not CHECKOV.is_file() or not CHECKOV_PYTHON.is_file():
        pytest.skip(f"checkov venv not found at {CHECKOV_VENV}; create it with: {INSTALL_HINT}")


@dataclass(frozen=True)
class CheckovReport:
    passed: int
    failed: int
    skipped: int
    parsing_errors: int
    failed_checks: list[dict[str, Any]]
    skipped_checks: list[dict[str, Any]]


def run_checkov(directory: Path) -> CheckovReport:
    """Run checkov's Bicep framework offline; a broken file still exits 0, so read the summary."""
    proc = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(directory),
            "--framework",
            "bicep",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise AssertionError(f"checkov exited {proc.returncode}: {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout)
    reports = data if isinstance(data, list) else [data]
    report = next((r for r in reports if r.get("check_type") == "bicep"), reports[0])
    summary = report["summary"]
    results = report.get("results", {})
    return CheckovReport(
        passed=summary["passed"],
        failed=summary["failed"],
        skipped=summary.get("skipped", 0),
        parsing_errors=summary["parsing_errors"],
        failed_checks=results.get("failed_checks", []),
        skipped_checks=results.get("skipped_checks", []),
    )


_PARSE_SCRIPT = """
import json, sys
from pathlib import Path
from pycep import BicepParser
parser = BicepParser()
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = {"ok": parser.parse(file_path=Path(name))}
    except Exception as exc:  # a parse failure is a result here, not a crash
        out[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
print(json.dumps(out, default=str))
"""


def parse_bicep(*files: Path) -> dict[str, dict[str, Any]]:
    """Parse Bicep files with pycep (one process for all: building the grammar takes ~1 s)."""
    proc = subprocess.run(
        [str(CHECKOV_PYTHON), "-c", _PARSE_SCRIPT, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)
