"""The local notifier: one webhook message per line in a file, or one log line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from sync.adapters.file_notifier import FileNotifier
from sync.notify import build_message
from tests.notify import runs


def test_appends_one_message_per_run(tmp_path: Path) -> None:
    path = tmp_path / "cards.jsonl"
    notifier = FileNotifier(path, maker_portal=runs.PORTAL)
    assert notifier.notify(runs.success_run()) == "written"
    assert notifier.notify(runs.failed_run()) == "written"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        build_message(runs.success_run(), maker_portal=runs.PORTAL),
        build_message(runs.failed_run(), maker_portal=runs.PORTAL),
    ]


def test_without_a_path_logs_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sync.adapters.file_notifier")
    assert FileNotifier(None).notify(runs.failed_run()) == "written"
    assert "contoso-invoicing: failed (1 failed, 1 updated), run run-0f3c2a" in caplog.text


def test_unwritable_path_fails_without_raising(tmp_path: Path) -> None:
    result = FileNotifier(tmp_path).notify(runs.success_run())  # a directory, not a file
    assert result.startswith(f"failed: cannot write {tmp_path}:")


def test_missing_folder_fails_without_raising(tmp_path: Path) -> None:
    result = FileNotifier(tmp_path / "nope" / "cards.jsonl").notify(runs.success_run())
    assert result.startswith("failed: cannot write")
    assert "No such file or directory" in result
