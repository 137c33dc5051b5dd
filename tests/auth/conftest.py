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
