"""Key Vault secrets behind the ``SecretStore`` port, with a short TTL cache.

Why a TTL cache: one sync run asks for the same secrets for every target (OAuth client secret,
webhook URL, refresh token), and Key Vault throttles per vault; five minutes is short enough that a
rotated secret is picked up on the next run. ``set`` updates the cache so a value we just wrote
(a rotated refresh token) is what the next ``get`` sees.

Errors name the vault and the secret, never the value: 404 / 403 / 401 are ``SecretError``
(permanent: a missing secret or a missing role assignment does not fix itself), 429 / 5xx,
connection failures and answers cut off mid-body are ``TransientError``. azure-keyvault-secrets is
imported on first use.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sync.errors import ConfigError, SecretError, SyncError, TransientError
from sync.logs import register_secret
from sync.ports import SecretStore

log = logging.getLogger(__name__)

SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}\Z")
TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


def secret_name_of(ref: Any) -> str:
    """``kv:<name>`` -> ``<name>``; the map's only form of secret reference."""
    if not isinstance(ref, str) or not ref.startswith("kv:") or not SECRET_NAME.match(ref[3:]):
        raise ConfigError(f"secret reference {ref!r} must look like 'kv:<secret-name>'")
    return ref[3:]


def resolve_ref(ref: str, store: SecretStore) -> str:
    """The value behind a ``kv:<name>`` reference, from whichever store is configured."""
    return store.get(secret_name_of(ref))


class _TokenProviderCredential:
    """azure-core ``TokenCredential`` over a bare ``TokenProvider`` (which knows no expiry)."""

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        # The provider caches; a 10-minute nominal expiry makes the SDK ask again in 5.
        return AccessToken(self._provider.token(scopes[0]), int(time.time()) + 600)


def _as_credential(credential: Any) -> Any:
    if hasattr(credential, "get_token"):
        return credential
    if hasattr(credential, "token"):
        return _TokenProviderCredential(credential)
    if callable(credential):  # a factory: build the credential only when the vault is first used
        return _as_credential(credential())
    raise TypeError("credential must be a TokenCredential, a TokenProvider or a factory of one")


class KeyVaultSecretStore:
    """``SecretStore`` + ``set`` over one vault (azure-keyvault-secrets ``SecretClient``)."""

    def __init__(
        self,
        vault_url: str,
        credential: Any,
        *,
        cache_ttl: float = 300.0,
        connection_verify: str | None = None,
        verify_challenge_resource: bool = True,
        client_options: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(vault_url or "")
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigError(f"Key Vault URL {vault_url!r} must be an https:// URL", path="vault")
        self.vault_url = vault_url.rstrip("/")
        self._credential = credential
        self._ttl = cache_ttl
        self._clock = clock
        self._options: dict[str, Any] = dict(client_options or {})
        self._options["verify_challenge_resource"] = verify_challenge_resource
        if connection_verify:
            self._options["connection_verify"] = connection_verify
        self._client: Any = None
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyVaultSecretStore({self.vault_url!r})"

    def _secret_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from azure.keyvault.secrets import SecretClient

                from sync.adapters.sdk_transport import plain_transport

                options = dict(self._options)
                if "transport" not in options and (transport := plain_transport(options)):
                    options["transport"] = transport  # httpx's, as the storage clients'
                self._client = SecretClient(
                    self.vault_url, _as_credential(self._credential), **options
                )
            return self._client

    def _where(self, name: str) -> str:
        return f"secret {name!r} in vault {self.vault_url}"

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not SECRET_NAME.match(name):
            raise SecretError(
                f"invalid secret name {name!r} (1-127 letters, digits and '-')",
                where=f"vault {self.vault_url}",
            )

    def get(self, name: str) -> str:
        self._check_name(name)
        with self._lock:
            hit = self._cache.get(name)
            if hit and self._clock() < hit[1]:
                return hit[0]
        try:
            value = self._secret_client().get_secret(name).value
        except SyncError:
            raise
        except Exception as exc:
            raise self._translate(exc, name, "read") from None
        if value is None:
            raise SecretError("secret has no value", where=self._where(name))
        # masked in logs wherever it may turn up; a rotated value replaces this secret's old ones
        register_secret(value, owner=self.vault_url, name=name)
        with self._lock:
            self._cache[name] = (value, self._clock() + self._ttl)
        return str(value)

    def set(self, name: str, value: str) -> None:
        self._check_name(name)
        register_secret(value, owner=self.vault_url, name=name)  # before a failure names it
        try:
            self._secret_client().set_secret(name, value)
        except SyncError:
            raise
        except Exception as exc:
            raise self._translate(exc, name, "write") from None
        with self._lock:
            self._cache[name] = (value, self._clock() + self._ttl)

    def forget(self, name: str | None = None) -> None:
        """Drop one cached secret (or all), e.g. after an out-of-band rotation."""
        with self._lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache.pop(name, None)

    def _translate(self, exc: Exception, name: str, action: str) -> SyncError:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            IncompleteReadError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        where = self._where(name)
        if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
            return TransientError(
                f"cannot {action}: vault unreachable ({type(exc).__name__})", where=where
            )
        status = getattr(exc, "status_code", None)
        code = getattr(getattr(exc, "error", None), "code", None)
        if isinstance(exc, ResourceNotFoundError) or status == 404:
            return SecretError(f"cannot {action}: not found ({code or 'HTTP 404'})", where=where)
        if status == 403:
            return SecretError(
                f"cannot {action}: access denied (HTTP 403 {code or 'Forbidden'}); the identity "
                f"needs the 'Key Vault Secrets {'Officer' if action == 'write' else 'User'}' role",
                where=where,
            )
        if status in TRANSIENT:
            return TransientError(f"cannot {action}: vault answered HTTP {status}", where=where)
        if isinstance(exc, ClientAuthenticationError):
            return SecretError(
                f"cannot {action}: authentication failed (HTTP {status})", where=where
            )
        if isinstance(exc, IncompleteReadError) or (
            isinstance(exc, HttpResponseError) and status is None  # DecodeError included
        ):
            # no status: the answer was cut off or unreadable (a stream failure), not the vault's
            # verdict on the request
            return TransientError(
                f"cannot {action}: the vault's answer was cut off or unreadable "
                f"({type(exc).__name__})",
                where=where,
            )
        if isinstance(exc, HttpResponseError):
            return SecretError(f"cannot {action}: HTTP {status} {code or ''}".rstrip(), where=where)
        if isinstance(exc, ValueError):  # e.g. the challenge names a different resource
            return SecretError(f"cannot {action}: {type(exc).__name__}", where=where)
        return TransientError(f"cannot {action}: {type(exc).__name__}", where=where)
