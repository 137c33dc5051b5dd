"""What the Table Storage ledger and the Queue Storage work queue share about talking to Storage
(and, for the transport, every Azure SDK client of the service, Key Vault's included).

Both reach one storage account the same two ways -- a connection string (Azurite, local runs) or
an endpoint plus a credential that is only created when a client is first needed (creating a
managed-identity credential costs cold-start time) -- and both must sort the SDK's failures the
same way once its own pipeline has retried: 408, 429 and 5xx (and any transport failure) are worth
retrying later, every other refusal is not. Keeping that rule in one place stops the ledger and the
queue from disagreeing about whether an outage is transient.

The Azure SDKs are imported inside the functions, never at module level.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sync.errors import PermanentError, SyncError, TransientError

T = TypeVar("T")


def default_credential() -> Any:
    """The app's managed identity (AZURE_CLIENT_ID picks a user-assigned one), else dev logins.

    On App Service (a Function App) that is the function identity's provider, which serves the
    platform's identity endpoint without importing azure-identity
    (``sync.adapters.app_service_identity``), unless the environment names a credential that
    DefaultAzureCredential would try first; anywhere else, azure-identity's chain."""
    from sync.adapters import app_service_identity

    if app_service_identity.serves() and not environment_credential_configured():
        from sync.adapters.function_identity import function_identity
        from sync.clouds import CLOUDS

        # A managed identity has no authority host: the cloud would only matter off App Service.
        return function_identity(CLOUDS["public"])
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def environment_credential_configured() -> bool:
    """Whether DefaultAzureCredential would sign in before it reaches the managed identity: a
    service principal or user in AZURE_* variables (EnvironmentCredential) or a workload
    identity token file."""
    env = os.environ
    if env.get("AZURE_FEDERATED_TOKEN_FILE"):
        return True
    if not (env.get("AZURE_TENANT_ID") and env.get("AZURE_CLIENT_ID")):
        return False
    return any(
        env.get(name)
        for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME")
    )


def is_transient_status(status: int) -> bool:
    """Whether Storage refusing with ``status`` may succeed later (timeout, throttling, 5xx)."""
    return status in (408, 429) or status >= 500


def call_storage(
    where: str, call: Callable[[], T], *, service: str = "storage", with_reason: bool = True
) -> T:
    """Run ``call`` and map azure-core errors onto the service's error tree.

    ``service`` starts the message ("storage answered HTTP 409 ...", "queue request failed: ...");
    ``with_reason`` appends the HTTP reason phrase. Errors of our own pass through unchanged.
    """
    from azure.core.exceptions import AzureError, HttpResponseError

    try:
        return call()
    except SyncError:
        raise
    except HttpResponseError as exc:
        status = exc.status_code or 0
        code = getattr(exc, "error_code", None) or "unknown"
        message = f"{service} answered HTTP {status} ({code})"
        if with_reason:
            message = f"{message} {getattr(exc, 'reason', '') or ''}".strip()
        if is_transient_status(status):
            raise TransientError(message, where=where) from exc
        raise PermanentError(message, where=where) from exc
    except AzureError as exc:
        raise TransientError(
            f"{service} request failed: {type(exc).__name__}", where=where
        ) from exc


_TRANSPORT_KEYS = (
    "connection_timeout",
    "read_timeout",
    "connection_verify",
    "connection_cert",
    "connection_data_block_size",
)
STORAGE_CONNECTION_TIMEOUT = 20  # azure-storage-blob / -queue's _shared.constants
STORAGE_READ_TIMEOUT = 60
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "netrc")
ENV_ONLY_PROXIES = sys.platform.startswith("linux")  # urllib's proxies come from env vars only


def plain_environment_verify() -> bool | str | None:
    """What ``requests`` would verify TLS with, when the environment asks nothing else of it.

    With ``trust_env`` on (azure-core's default) requests looks up proxy variables and ~/.netrc on
    every call (~0.5-1 ms each, ten storage calls per update). When none is set, the only thing the
    environment changes is the CA bundle (``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``): returned
    here so a transport without environment lookups verifies exactly as before. None: a proxy,
    a ``no_proxy`` or a netrc is configured, or the platform has system proxy settings (not
    Linux, where Functions run): keep requests' own handling."""
    if not ENV_ONLY_PROXIES:  # elsewhere urllib also reads system proxy settings
        return None
    names = {name.lower() for name in os.environ}
    if names & set(_PROXY_VARIABLES):
        return None
    home = os.path.expanduser("~")
    if any(os.path.exists(os.path.join(home, name)) for name in (".netrc", "_netrc")):
        return None
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def plain_transport(options: dict[str, Any]) -> Any | None:
    """A transport without the per-call environment lookups, or None (see
    ``plain_environment_verify``); takes the connection settings out of ``options``.

    azure-core's transport over httpx (``sync.adapters.httpx_transport``: requests is then never
    imported), else requests' with ``use_env_settings`` off when that one is unavailable."""
    verify = plain_environment_verify()
    if verify is None or options.get("proxies"):
        return None
    settings = {key: options.pop(key) for key in _TRANSPORT_KEYS if key in options}
    if settings.get("connection_verify", True) is True:
        settings["connection_verify"] = verify  # what requests' env merge would have chosen
    from sync.adapters.httpx_transport import transport

    ours = transport(**{k: v for k, v in settings.items() if k != "connection_data_block_size"})
    if ours is not None:
        return ours
    from azure.core.pipeline.transport import RequestsTransport

    return RequestsTransport(use_env_settings=False, **settings)


def import_transport() -> None:
    """Import what ``plain_transport`` will send through, ahead of the first client
    (``sync.adapters.sdk_imports``)."""
    if plain_environment_verify() is not None:
        from sync.adapters.httpx_transport import transport_class

        if transport_class() is not None:
            return
    from azure.core.pipeline.transport import RequestsTransport  # noqa: F401


class StorageAccount:
    """How to build SDK clients for one account: connection string, or endpoint + credential.

    The credential (given, or made by ``credential_factory`` on first use) is shared by every
    client built here. Thread-safe.
    """

    def __init__(
        self,
        *,
        connection_string: str | None,
        credential: Any = None,
        credential_factory: Callable[[], Any] | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self._connection_string = connection_string
        self._credential = credential
        self._credential_factory = credential_factory
        self._options = dict(client_options or {})
        self._lock = threading.Lock()

    @property
    def uses_connection_string(self) -> bool:
        return bool(self._connection_string)

    def credential(self) -> Any:
        with self._lock:
            if self._credential is None and self._credential_factory is not None:
                self._credential = self._credential_factory()
            return self._credential

    def client(self, client_class: Any, endpoint: str | None, **names: str) -> Any:
        """``client_class`` (TableClient, QueueClient, ContainerClient) for the resource ``names``
        (``table_name=...``, ``queue_name=...``, ``container_name=...``); ``endpoint`` is only
        used without a connection string."""
        options = dict(self._options)
        if client_class.__module__.startswith("azure.storage."):
            # what the Blob and Queue SDKs give their own transport (20 s connect, 60 s read);
            # a transport handed in gets azure-core's 300 s unless told
            options.setdefault("connection_timeout", STORAGE_CONNECTION_TIMEOUT)
            options.setdefault("read_timeout", STORAGE_READ_TIMEOUT)
        if "transport" not in options and (transport := plain_transport(options)) is not None:
            options["transport"] = transport
        if self._connection_string:
            return client_class.from_connection_string(self._connection_string, **names, **options)
        return client_class(str(endpoint), credential=self.credential(), **names, **options)
