"""The local stack of tests/pipeline (Azurite, spec server, folder targets), with a map per test
that sets the targets' drift modes, and the environment the Functions triggers read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync import settings as names
from sync.models import SyncRequest
from sync.runs import InlineResult, run_inline
from tests.pipeline.conftest import EXAMPLES, SPEC_PATH, Stack, sync_map
from tests.pipeline.conftest import stack as stack  # the fixture, re-exported

API = "contoso-invoicing"


def write_map(stack: Stack, *, drift: dict[str, str] | None = None, **api_extra: Any) -> None:
    """Two folder targets that both accept breaking changes, with per-target drift modes."""
    data = sync_map(stack.server, **api_extra)
    targets = data["apis"][API]["targets"]
    for target in targets:
        target.pop("breaking", None)
        if drift and target["name"] in drift:
            target["drift"] = drift[target["name"]]
    stack.map_path.write_text(json.dumps(data))


def serve_spec(stack: Stack, name: str, *, version: str | None = None) -> None:
    """An example spec; ``version`` makes a new deployment of it (another info.version)."""
    if version is None:
        stack.serve(name)
        return
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    doc["info"]["version"] = version
    doc["info"]["description"] = f"release {version}"
    stack.server.set_spec(SPEC_PATH, yaml.safe_dump(doc).encode(), "application/yaml")


def sync_now(svc: Any, *targets: str, reason: str = "cli") -> InlineResult:
    request = SyncRequest(api=API, reason=reason, targets=tuple(targets) or None)
    return run_inline(request, svc.map, svc.ports, svc.pipeline)


def read_connector(stack: Stack, target: str) -> dict[str, Any]:
    return json.loads(stack.folder(target).read_text())


def edit_connector(stack: Stack, target: str, change: Any) -> dict[str, Any]:
    """A hand edit, as someone in the portal (or with paconn) would make it."""
    doc = read_connector(stack, target)
    change(doc)
    stack.folder(target).write_text(json.dumps(doc, indent=2))
    return doc


@pytest.fixture
def env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """What the Function App and the CLI read from the environment, pointing at this stack."""
    monkeypatch.setenv(names.SYNC_CONFIG, stack.settings.config_path)
    monkeypatch.setenv(names.STORAGE_CONNECTION_STRING, stack.settings.storage_connection_string)
    monkeypatch.setenv(names.LEDGER_TABLE, stack.settings.ledger_table)
    monkeypatch.setenv(names.LEDGER_CONTAINER, stack.settings.ledger_container)
    monkeypatch.setenv(names.WORK_QUEUE, stack.settings.work_queue)
    monkeypatch.setenv(names.ALLOW_PRIVATE_HOSTS, "127.0.0.1")
    monkeypatch.setenv(names.FETCH_BUDGET_SECONDS, "3")
    monkeypatch.setenv(names.AUTH_DISABLED, "1")  # token checks: tests/auth
    monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)
    return stack


def card_texts(card_message: dict[str, Any]) -> str:
    """Every text of a webhook message's card, joined (what a reader of the card sees)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "title", "value"):
                if isinstance(node.get(key), str):
                    out.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card_message)
    return "\n".join(out)


__all__ = ["API", "Path"]
