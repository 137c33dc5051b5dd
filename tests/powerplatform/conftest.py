"""Fixtures for the Power Platform targets: the simulator, locally minted tokens, a secret store."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
import stamina

from sync.adapters.dataverse import DataverseTarget
from sync.adapters.powerapps import PowerAppsTarget
from sync.adapters.pp_verdicts import AcceptedDefinitions
from sync.clouds import Cloud, cloud_for
from sync.errors import SecretError
from tests.simulators.powerplatform import Simulator, start_simulator

ENV = "Default-11111111-2222-3333-4444-555555555555"
USER_OID = "0c1e6f0a-3b7d-4c55-9a4e-2f1e8b7a9c01"


def mint(aud: str, *, oid: str = USER_OID, idtyp: str | None = "user", **extra: Any) -> str:
    """An unsigned-looking (HS256, throwaway key) JWT with the claims the services read."""
    claims: dict[str, Any] = {"aud": aud, "oid": oid, "exp": int(time.time()) + 3600, **extra}
    if idtyp:
        claims["idtyp"] = idtyp
    return jwt.encode(claims, "local-test-key-not-a-secret-0123456789", algorithm="HS256")


def settle() -> None:
    """Wait for background work (``PowerAppsTarget.prevalidate``'s validateApiSwagger) to end."""
    from sync.background import unfinished

    deadline = time.monotonic() + 10
    while unfinished() and time.monotonic() < deadline:
        time.sleep(0.002)


class FakeTokens:
    """TokenProvider for adapter tests: the audience is the scope without '/.default'."""

    def __init__(self, *, idtyp: str | None = "user", oid: str = USER_OID) -> None:
        self.idtyp = idtyp
        self.oid = oid
        self.scopes: list[str] = []

    def token(self, scope: str) -> str:
        self.scopes.append(scope)
        aud = scope.removesuffix(".default").rstrip("/")
        if "service.powerapps.com" in aud:
            aud += "/"
        return mint(aud, oid=self.oid, idtyp=self.idtyp)


class DictSecrets:
    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})
        self.asked: list[str] = []

    def get(self, name: str) -> str:
        self.asked.append(name)
        if name not in self.values:
            raise SecretError(f"secret {name!r} not found in the test store")
        return self.values[name]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = start_simulator()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    """No real backoff sleeps; at most 4 attempts per call."""
    with stamina.set_testing(True, attempts=4):
        yield


@pytest.fixture
def cloud(sim: Simulator) -> Cloud:
    return cloud_for("public", {"powerApps": sim.url})


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def make_powerapps(cloud: Cloud, http: httpx.Client) -> Callable[..., PowerAppsTarget]:
    def build(
        params: dict[str, Any] | None = None,
        *,
        tokens: FakeTokens | None = None,
        secrets: DictSecrets | None = None,
        state_id: str | None = None,
        api: str = "contoso",
        name: str = "prod",
        verify_seconds: float = 2,
        accepted: AcceptedDefinitions | None = None,
    ) -> PowerAppsTarget:
        return PowerAppsTarget(
            api=api,
            name=name,
            params={"environment": ENV, "credential": "pp-user", **(params or {})},
            cloud=cloud,
            tokens=tokens or FakeTokens(),
            secrets=secrets or DictSecrets(),
            client=http,
            get_state_connector_id=lambda: state_id,
            budget_seconds=10,
            verify_seconds=verify_seconds,
            accepted=accepted,
        )

    return build


@pytest.fixture
def make_dataverse(
    sim: Simulator, cloud: Cloud, http: httpx.Client
) -> Callable[..., DataverseTarget]:
    def build(
        params: dict[str, Any] | None = None,
        *,
        tokens: FakeTokens | None = None,
        state_id: str | None = None,
        api: str = "contoso",
        name: str = "dv",
    ) -> DataverseTarget:
        return DataverseTarget(
            api=api,
            name=name,
            params={"org": sim.url, "credential": "pp-app", **(params or {})},
            cloud=cloud,
            tokens=tokens or FakeTokens(idtyp="app"),
            client=http,
            get_state_connector_id=lambda: state_id,
            budget_seconds=10,
            verify_seconds=2,
        )

    return build


def new_guid() -> str:
    return str(uuid.uuid4())
