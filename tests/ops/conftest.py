"""Fixtures for the operability tests: the pipeline's local stack and a JSON log capture."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sync import settings as names
from sync.logs import install, wants_json
from tests.pipeline.conftest import stack as stack  # re-exported fixture


@dataclass
class Captured:
    stream: io.StringIO

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict[str, Any]]:
        """Every captured line parsed as JSON (a line that is not JSON fails the test)."""
        out = []
        for number, line in enumerate(self.text.splitlines(), 1):
            try:
                data = json.loads(line)
            except ValueError:
                pytest.fail(f"log line {number} is not JSON: {line[:200]!r}")
            assert isinstance(data, dict), line
            out.append(data)
        return out


@pytest.fixture
def json_logs() -> Iterator[Captured]:
    """A root handler like the Functions worker's: message only, for ``sync``/``function_app``."""
    install()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(lambda record: wants_json(record.name))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def env(stack, monkeypatch):
    monkeypatch.setenv(names.SYNC_CONFIG, stack.settings.config_path)
    monkeypatch.setenv(names.STORAGE_CONNECTION_STRING, stack.settings.storage_connection_string)
    monkeypatch.setenv(names.LEDGER_TABLE, stack.settings.ledger_table)
    monkeypatch.setenv(names.LEDGER_CONTAINER, stack.settings.ledger_container)
    monkeypatch.setenv(names.WORK_QUEUE, stack.settings.work_queue)
    monkeypatch.setenv(names.ALLOW_PRIVATE_HOSTS, "127.0.0.1")
    monkeypatch.delenv(names.KEY_VAULT_URL, raising=False)
    monkeypatch.setenv("SYNC_AUTH_DISABLED", "1")  # local development switch of sync.auth
    return stack
