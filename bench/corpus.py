"""Where the corpus is and which of its connectors the benchmark uses (no heavy imports: the
1 MB memory measurement imports this in a fresh process)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("CONNECTOR_SYNC_CORPUS", ROOT.parent / "shared" / "corpus"))


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8-sig"))


def largest_connector() -> str:
    """The corpus case with the largest 'after' definition (iManage-Work at the time of writing)."""
    folder = CORPUS / "connectors"
    if not folder.is_dir():
        raise SystemExit(f"corpus not found at {folder}; set CONNECTOR_SYNC_CORPUS")
    cases = [p for p in folder.iterdir() if (p / "after" / "apiDefinition.swagger.json").exists()]
    return max(
        cases, key=lambda p: (p / "after" / "apiDefinition.swagger.json").stat().st_size
    ).name
