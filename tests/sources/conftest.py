"""Fixtures for the spec sources: the local identity platform, the ARM simulator, a local stack."""

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
from tests.simulators.arm import ArmSimulator
from tests.support.identity_env import local_managed_identity
from tests.support.local_identity import LocalIdentity

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo"
APIM_SERVICE = (
    "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ApiManagement/service/apim-1"
)
CENTER_SERVICE = (
    "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ApiCenter/services/center-1"
)


def demo_spec(name: str = "openapi-v1.yaml") -> bytes:
    return (EXAMPLES / name).read_bytes()


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIdentity]:
    """The local identity platform; this process's managed-identity env points at it."""
    with local_managed_identity(monkeypatch) as idp:
        yield idp


@pytest.fixture
def arm(identity: LocalIdentity) -> Iterator[ArmSimulator]:
    sim = ArmSimulator(lambda token, audience: identity.decode(token, audience=audience)).start()
    try:
        yield sim
    finally:
        sim.stop()


def local_settings(azurite: Any, **changes: Any) -> Settings:
    suffix = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "storage_connection_string": azurite.connection_string,
        "ledger_table": f"ledger{suffix}",
        "ledger_container": f"ledger-{suffix}",
        "work_queue": f"work-{suffix}",
        "allow_private_hosts": frozenset({"127.0.0.1"}),
        "fetch_budget_seconds": 3.0,
        "fetch_timeout_seconds": 2.0,
    }
    values.update(changes)
    return Settings(**values)


@dataclass
class Stack:
    settings: Settings
    root: Path
    arm: ArmSimulator | None

    def write_map(self, apis: dict[str, Any]) -> Path:
        raw: dict[str, Any] = {"apis": apis, "notify": {"file": "cards.jsonl"}}
        if self.arm is not None:
            raw["endpoints"] = {"resourceManager": self.arm.url}
        path = Path(self.settings.config_path or "")
        path.write_text(json.dumps(raw))
        return path

    def service(self) -> Service:
        return build(self.settings)

    def folder(self, target: str) -> Path:
        return self.root / "connectors" / target / "apiDefinition.swagger.json"


@pytest.fixture
def stack(azurite: Any, arm: ArmSimulator, tmp_path: Path) -> Stack:
    settings = local_settings(azurite, config_path=str(tmp_path / "sync-map.json"))
    return Stack(settings=settings, root=tmp_path, arm=arm)


def blob_container(azurite: Any, name: str | None = None) -> Any:
    """A fresh container on Azurite (real azure-storage-blob client) for uploading test blobs."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client(name or f"c{uuid.uuid4().hex[:12]}")
    if not container.exists():
        container.create_container()
    return container


def blob_endpoint(azurite: Any) -> str:
    return f"http://127.0.0.1:{azurite.blob_port}/devstoreaccount1"
