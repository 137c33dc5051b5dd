"""A whole local stack per test: Azurite (own table/queue/container), a spec server, folder targets."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sync.bootstrap import Service, build
from sync.settings import Settings
from tests.simulators.powerplatform import Simulator, start_simulator
from tests.support.identity_env import local_managed_identity
from tests.support.local_identity import LocalIdentity
from tests.support.spec_server import SpecServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo"
SPEC_PATH = "/openapi.yaml"
ENV = "Default-11111111-2222-3333-4444-555555555555"


@dataclass
class Stack:
    server: SpecServer
    settings: Settings
    root: Path
    map_path: Path

    def service(self, **overrides: Any) -> Service:
        return build(self.settings, **overrides)

    def serve(self, name: str) -> None:
        self.server.set_spec(SPEC_PATH, (EXAMPLES / name).read_bytes(), "application/yaml")

    def folder(self, target: str) -> Path:
        return self.root / "connectors" / target / "apiDefinition.swagger.json"

    def cards(self) -> list[dict[str, Any]]:
        path = self.root / "cards.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def sync_map(server: SpecServer, **api_extra: Any) -> dict[str, Any]:
    api = {
        "spec": {"url": server.url(SPEC_PATH)},
        "allowedSpecUrls": [server.base_url + "/"],
        "on": [{"custom": "contoso-invoicing"}],
        "breaking": "warn",
        "targets": [
            {"name": "dev", "folder": "connectors/dev"},
            {"name": "prod", "folder": "connectors/prod", "breaking": "block"},
        ],
    }
    api.update(api_extra)
    return {"apis": {"contoso-invoicing": api}, "notify": {"file": "cards.jsonl"}}


@pytest.fixture
def stack(azurite: Any, tmp_path: Path) -> Iterator[Stack]:
    server = SpecServer().start()
    suffix = uuid.uuid4().hex[:10]
    map_path = tmp_path / "sync-map.json"
    map_path.write_text(json.dumps(sync_map(server)))
    settings = Settings(
        config_path=str(map_path),
        storage_connection_string=azurite.connection_string,
        ledger_table=f"ledger{suffix}",
        ledger_container=f"ledger-{suffix}",
        work_queue=f"work-{suffix}",
        allow_private_hosts=frozenset({"127.0.0.1"}),
        fetch_budget_seconds=3.0,
        fetch_timeout_seconds=2.0,
    )
    try:
        yield Stack(server=server, settings=settings, root=tmp_path, map_path=map_path)
    finally:
        server.stop()


@pytest.fixture
def env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack as the Function App sees it: its settings in the environment."""
    from sync import settings as names

    monkeypatch.setenv(names.SYNC_CONFIG, stack.settings.config_path)
    monkeypatch.setenv(names.STORAGE_CONNECTION_STRING, stack.settings.storage_connection_string)
    monkeypatch.setenv(names.LEDGER_TABLE, stack.settings.ledger_table)
    monkeypatch.setenv(names.LEDGER_CONTAINER, stack.settings.ledger_container)
    monkeypatch.setenv(names.WORK_QUEUE, stack.settings.work_queue)
    monkeypatch.setenv(names.ALLOW_PRIVATE_HOSTS, "127.0.0.1")
    monkeypatch.setenv(names.FETCH_BUDGET_SECONDS, "3")
    monkeypatch.setenv(names.AUTH_DISABLED, "1")  # tokens: tests/auth
    return stack


def ci_event(event_id: str | None = None, **data: Any) -> dict[str, Any]:
    """The documented CI event (CloudEvents 1.0)."""
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "/contoso/pipelines/invoicing",
        "type": "ConnectorSync.ApiDeployed",
        "time": "2026-11-28T10:00:00Z",
        "data": {"api": "contoso-invoicing", **data},
    }


@pytest.fixture
def identity(monkeypatch) -> Iterator[LocalIdentity]:
    with local_managed_identity(monkeypatch) as idp:
        yield idp


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = start_simulator()
    try:
        yield simulator
    finally:
        simulator.stop()
