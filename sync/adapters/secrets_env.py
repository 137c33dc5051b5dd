"""Secrets from environment variables, for local runs without a vault (``SYNC_SECRETS_FROM_ENV=1``).

Secret ``teams-webhook-url`` comes from ``SYNC_SECRET_TEAMS_WEBHOOK_URL``: the map keeps its
``kv:`` references unchanged and only the store differs between a laptop and Azure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from sync import settings as app_settings
from sync.errors import ConfigError, SecretError
from sync.logs import register_secret
from sync.ports import SecretStore

log = logging.getLogger(__name__)

PREFIX = "SYNC_SECRET_"
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}\Z")


def env_var_for(name: str) -> str:
    return PREFIX + name.upper().replace("-", "_")


class EnvSecretStore:
    """Read-only ``SecretStore`` over a mapping (``os.environ`` or a test's dict)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __repr__(self) -> str:  # the mapping holds secrets: never print it
        return "EnvSecretStore()"

    def get(self, name: str) -> str:
        if not isinstance(name, str) or not _NAME.match(name):
            raise SecretError(f"invalid secret name {name!r}", where="environment")
        var = env_var_for(name)
        value = self._env.get(var, "")
        if not value:
            raise SecretError(
                f"secret {name!r} not found: set environment variable {var}", where="environment"
            )
        register_secret(value)  # masked in logs wherever it may turn up
        return value


def secret_store_for(
    settings: app_settings.Settings,
    env: Mapping[str, str],
    credential: Callable[[], Any] | Any,
    *,
    connection_verify: str | None = None,
) -> SecretStore:
    """The store the settings ask for: env vars locally, else the Key Vault in ``SYNC_KEY_VAULT_URL``.

    ``credential`` (or a factory of one) is used only for the vault; nothing is imported or
    fetched before the first ``get``.
    """
    if settings.secrets_from_env:
        return EnvSecretStore(env)
    if not settings.key_vault_url:
        raise ConfigError(
            f"app setting {app_settings.KEY_VAULT_URL} is not set "
            f"(or set {app_settings.SECRETS_FROM_ENV}=1 for local runs)",
            path=app_settings.KEY_VAULT_URL,
        )
    from sync.adapters.keyvault import KeyVaultSecretStore

    return KeyVaultSecretStore(
        settings.key_vault_url, credential, connection_verify=connection_verify
    )
