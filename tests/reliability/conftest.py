"""A fleet on the local stack: several APIs, each with two folder targets, one spec server
serving every version of every API at its own URL, Azurite for the queue and the ledger.

Why a fleet and not the pipeline ``stack``: delivery semantics and load only show up when many
targets are worked at once, by several workers, from one real queue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import stamina

from sync.bootstrap import Service, build
from sync.settings import Settings
from tests.support.spec_server import SpecServer

TARGETS = ("a", "b")
EVENT_TYPE = "ConnectorSync.ApiDeployed"


def spec_doc(api: str, n: int) -> dict[str, Any]:
    """Version ``n`` of ``api``: each version adds one operation (non-breaking), so every version
    has its own content hash and the newest is recognisable in the written connector."""
    paths = {
        f"/items{i}": {
            "get": {
                "operationId": f"GetItems{i}",
                "summary": f"List items {i}",
                "responses": {"200": {"description": "ok"}},
            }
        }
        for i in range(n + 1)
    }
    return {
        "swagger": "2.0",
        "info": {"title": f"{api} API", "version": f"{n}.0.0"},
        "host": f"{api}.contoso.example",
        "basePath": "/api",
        "schemes": ["https"],
        "paths": paths,
    }


@dataclass
class Fleet:
    server: SpecServer
    settings: Settings
    root: Path
    map_path: Path
    apis: tuple[str, ...]

    def service(self, **overrides: Any) -> Service:
        return build(self.settings, **overrides)

    def live_path(self, api: str) -> str:
        return f"/{api}/openapi.json"

    def version_path(self, api: str, n: int) -> str:
        return f"/{api}/v{n}/openapi.json"

    def publish(self, api: str, n: int, *, live: bool = True) -> str:
        """Serve version ``n`` at its own URL (and as the live spec); return its URL."""
        body = json.dumps(spec_doc(api, n)).encode()
        self.server.set_spec(self.version_path(api, n), body)
        if live:
            self.server.set_spec(self.live_path(api), body)
        return self.server.url(self.version_path(api, n))

    def folder(self, api: str, target: str) -> Path:
        return self.root / "connectors" / api / target / "apiDefinition.swagger.json"

    def connector(self, api: str, target: str) -> dict[str, Any] | None:
        path = self.folder(api, target)
        return json.loads(path.read_text()) if path.exists() else None

    def cards(self) -> list[dict[str, Any]]:
        path = self.root / "cards.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def write_map(self, **api_extra: Any) -> None:
        self.map_path.write_text(json.dumps(fleet_map(self.server, self.apis, **api_extra)))


def fleet_map(server: SpecServer, apis: tuple[str, ...], **api_extra: Any) -> dict[str, Any]:
    return {
        "apis": {
            api: {
                "spec": {"url": server.url(f"/{api}/openapi.json")},
                "allowedSpecUrls": [server.base_url + "/"],
                "on": [{"custom": api}],
                "breaking": "allow",
                "targets": [{"name": t, "folder": f"connectors/{api}/{t}"} for t in TARGETS],
                **api_extra,
            }
            for api in apis
        },
        "notify": {"file": "cards.jsonl"},
    }


def make_fleet(azurite: Any, root: Path, n_apis: int, **settings: Any) -> Fleet:
    server = SpecServer().start()
    suffix = uuid.uuid4().hex[:10]
    apis = tuple(f"api-{i:02d}" for i in range(n_apis))
    map_path = root / "sync-map.json"
    map_path.write_text(json.dumps(fleet_map(server, apis)))
    base = Settings(
        config_path=str(map_path),
        storage_connection_string=azurite.connection_string,
        ledger_table=f"rel{suffix}",
        ledger_container=f"rel-{suffix}",
        work_queue=f"rel-{suffix}",
        allow_private_hosts=frozenset({"127.0.0.1"}),
        fetch_budget_seconds=3.0,
        fetch_timeout_seconds=2.0,
        lease_seconds=60.0,
    )
    return Fleet(server, replace(base, **settings), root, map_path, apis)


@pytest.fixture
def fleet(azurite: Any, tmp_path: Path) -> Iterator[Fleet]:
    built = make_fleet(azurite, tmp_path, 2)
    try:
        yield built
    finally:
        built.server.stop()


@pytest.fixture
def fast_retries() -> Iterator[None]:
    """Real retry decisions, no real backoff sleeps (stamina's testing mode)."""
    with stamina.set_testing(True, attempts=3):
        yield


def event(
    api: str,
    *,
    event_id: str | None = None,
    time: str = "2026-11-28T10:00:00Z",
    spec_url: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """The documented CI event (CloudEvents 1.0)."""
    data: dict[str, Any] = {"api": api}
    if spec_url:
        data["specUrl"] = spec_url
    if version:
        data["version"] = version
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": f"/contoso/pipelines/{api}",
        "type": EVENT_TYPE,
        "time": time,
        "data": data,
    }


def version_shas(svc: Service, api: str, target: str) -> list[tuple[int, str | None]]:
    """(version, applied sha) newest first, every row of the target."""
    rows = svc.ports.ledger.versions(api, target, limit=1000)
    return [(r.version, r.applied_sha256) for r in rows]
