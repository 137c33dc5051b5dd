"""``python -m sync`` run / history / plan / worker: the same pipeline from a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync import settings as names
from sync.cli import main
from tests.pipeline.conftest import SPEC_PATH, ci_event

pytestmark = pytest.mark.azurite
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(stack, monkeypatch):
    for name, value in {
        names.STORAGE_CONNECTION_STRING: stack.settings.storage_connection_string,
        names.LEDGER_TABLE: stack.settings.ledger_table,
        names.LEDGER_CONTAINER: stack.settings.ledger_container,
        names.WORK_QUEUE: stack.settings.work_queue,
        names.ALLOW_PRIVATE_HOSTS: "127.0.0.1",
        names.FETCH_BUDGET_SECONDS: "2",
    }.items():
        monkeypatch.setenv(name, value)
    return stack


def test_run_then_history(env, capsys):
    env.serve("openapi-v1.yaml")
    assert main(["run", "--config", str(env.map_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {t["result"] for t in report[0]["targets"]} == {"updated"}
    assert (
        main(["history", "--config", str(env.map_path), "--api", "contoso-invoicing", "--json"])
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["target"] for r in rows) == ["dev", "prod"]
    assert {r["reason"] for r in rows} == {"cli"}


def test_run_exit_codes(env, capsys):
    env.server.set_spec(SPEC_PATH, b"<html>502 Bad Gateway</html>", "text/html")
    assert main(["run", "--config", str(env.map_path)]) == 1  # the sync failed
    out = capsys.readouterr().out
    assert "failed" in out
    assert "HTML" in out
    assert main(["run", "--config", str(env.root / "missing.yaml")]) == 2
    assert "configuration error" in capsys.readouterr().err
    assert main(["run", "--config", str(env.map_path), "--api", "nope"]) == 2
    assert main(["run", "--config", str(env.map_path), "--target", "nope"]) == 1


def test_plan_and_worker_go_through_the_queue(env, capsys):
    env.serve("openapi-v1.yaml")
    event = env.root / "event.json"
    event.write_text(json.dumps(ci_event()))
    assert main(["plan", str(event), "--config", str(env.map_path), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["runs"]) == 1
    assert main(["worker", "--config", str(env.map_path), "--wait", "0.5"]) == 0
    assert capsys.readouterr().out.count("updated") == 2
    ignored = env.root / "other.json"
    ignored.write_text(json.dumps({**ci_event(), "data": {"api": "someone-else"}}))
    assert main(["plan", str(ignored), "--config", str(env.map_path)]) == 0
    assert "ignored" in capsys.readouterr().out


def test_dry_run_needs_no_storage_at_all(stack, tmp_path):
    stack.serve("openapi-v1.yaml")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    environment[names.ALLOW_PRIVATE_HOSTS] = "127.0.0.1"
    done = subprocess.run(
        [sys.executable, "-m", "sync", "run", "--config", str(stack.map_path), "--dry-run"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("dry-run") == 2
    assert not stack.folder("dev").exists()


def test_help_lists_the_commands():
    done = subprocess.run(
        [sys.executable, "-m", "sync", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for command in (
        "run",
        "history",
        "config",
        "plan",
        "worker",
        "convert",
        "validate",
        "diff",
        "merge",
        "doctor",
        "credential",
    ):
        assert command in done.stdout


@pytest.mark.parametrize("raw", ["verbose", "info "])
def test_a_bad_or_padded_log_level_does_not_break_a_command(raw):
    """Every command used to crash with a traceback on SYNC_LOG_LEVEL='verbose' or 'info ', before
    its own error handling; the setting is now read as the Functions host reads it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    environment["SYNC_LOG_LEVEL"] = raw
    done = subprocess.run(
        [sys.executable, "-m", "sync", "config", "validate", "examples/sync-map.local.yaml"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout
    assert "Traceback" not in done.stderr
    if raw == "verbose":
        assert "SYNC_LOG_LEVEL='verbose'" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
