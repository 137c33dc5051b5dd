"""The Function App's worker settles its garbage collector after the first item; nothing else
that uses ``sync`` has its collector changed (each case runs in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, sys
from sync import collector
before = gc.get_threshold()
collector.after_item()
collector.after_item()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != "FUNCTIONS_WORKER_RUNTIME"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_outside_a_functions_worker_nothing_changes() -> None:
    seen = probe()
    assert seen["after"] == seen["before"] == [700, 10, 10]
    assert seen["frozen"] == 0


def test_in_a_functions_worker_the_first_item_freezes_and_raises_the_threshold() -> None:
    from sync.collector import WORKER_THRESHOLDS

    seen = probe(FUNCTIONS_WORKER_RUNTIME="python")
    assert seen["after"] == list(WORKER_THRESHOLDS)
    assert seen["frozen"] > 1000  # the interpreter's and sync's objects, out of collections
