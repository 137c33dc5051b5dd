"""Fixtures: a local authority per test, settings pointing at it, a fresh key cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync import auth
from sync.settings import Settings
from tests.auth.authority import APP_ID_URI, CLIENT_ID, TENANT, Authority
from tests.pipeline.conftest import stack  # noqa: F401 - the whole local stack, reused


@pytest.fixture
def authority() -> Iterator[Authority]:
    server = Authority()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> Iterator[None]:
    auth.reset_key_cache()
    yield
    auth.reset_key_cache()


@pytest.fixture
def settings(authority: Authority) -> Settings:
    return Settings(
        auth_tenant_id=TENANT,
        auth_audience=f"{APP_ID_URI}, {CLIENT_ID}",
        auth_metadata_url=authority.metadata_url(),
        allow_private_hosts=frozenset({"127.0.0.1"}),
    )


@pytest.fixture
def secured(stack, authority: Authority, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    """The app settings of a deployed app (auth on) pointing at the local stack and authority."""
    from sync import settings as names

    values = {
        names.SYNC_CONFIG: stack.settings.config_path,
        names.STORAGE_CONNECTION_STRING: stack.settings.storage_connection_string,
        names.LEDGER_TABLE: stack.settings.ledger_table,
        names.LEDGER_CONTAINER: stack.settings.ledger_container,
        names.WORK_QUEUE: stack.settings.work_queue,
        names.ALLOW_PRIVATE_HOSTS: "127.0.0.1",
        names.FETCH_BUDGET_SECONDS: "3",
        names.AUTH_TENANT_ID: TENANT,
        names.AUTH_AUDIENCE: f"{APP_ID_URI},{CLIENT_ID}",
        names.AUTH_METADATA_URL: authority.metadata_url(),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(names.AUTH_DISABLED, raising=False)
    monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)
    return stack
