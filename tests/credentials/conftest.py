"""Fixtures: the local Entra authority + managed-identity endpoint, and the local Key Vault.

Both servers start on port 0 per test (cheap: the CA and signing key are made once per process)
so a test's recorded requests and registered apps never leak into another test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from sync.clouds import CLOUDS, Cloud
from tests.support.identity_env import local_managed_identity
from tests.support.local_identity import LocalIdentity
from tests.support.local_vault import LocalVault, start_local_vault


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIdentity]:
    """The local identity platform, with this process's managed-identity env pointing at it."""
    with local_managed_identity(monkeypatch) as idp:
        yield idp


@pytest.fixture
def vault(identity: LocalIdentity) -> Iterator[LocalVault]:
    kv = start_local_vault(identity)
    try:
        yield kv
    finally:
        kv.stop()


@pytest.fixture
def cloud(identity: LocalIdentity) -> Cloud:
    """The public cloud with the authority host pointed at the local identity platform."""
    return replace(CLOUDS["public"], authority_host=identity.authority)
