"""The local identity platform as this process's managed identity, for fixtures in any folder.

azure-identity picks its credential from environment variables, so a test that wants the local
managed-identity endpoint must first clear whatever the developer's shell (or CI) set, or a real
login would answer instead of the simulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.local_identity import LocalIdentity, start_local_identity

AZURE_ENV = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
    "IDENTITY_SERVER_THUMBPRINT",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS",
)


@contextmanager
def local_managed_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIdentity]:
    """Start the local identity platform with the managed-identity env pointing at it; stop it
    on exit (``monkeypatch`` restores the env)."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    idp = start_local_identity()
    for key, value in idp.managed_identity_env().items():
        monkeypatch.setenv(key, value)
    try:
        yield idp
    finally:
        idp.stop()
