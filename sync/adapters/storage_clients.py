"""What the Table Storage ledger and the Queue Storage work queue share about talking to Storage.

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
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sync.adapters.sdk_transport import plain_transport
from sync.errors import ConfigError, StorageError, SyncError, TransientError
from sync.settings import BLOB_ENDPOINT, QUEUE_ENDPOINT, STORAGE_CONNECTION_STRING, TABLE_ENDPOINT

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
        raise StorageError(message, where=where) from exc
    except AzureError as exc:
        raise TransientError(
            f"{service} request failed: {type(exc).__name__}", where=where
        ) from exc


# The setting that gave each client its endpoint (a connection string names them all)
_ENDPOINT_SETTINGS = {
    "TableClient": TABLE_ENDPOINT,
    "QueueClient": QUEUE_ENDPOINT,
    "ContainerClient": BLOB_ENDPOINT,
    "BlobClient": BLOB_ENDPOINT,
}
STORAGE_CONNECTION_TIMEOUT = 20  # azure-storage-blob / -queue's _shared.constants
STORAGE_READ_TIMEOUT = 60


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
        try:
            if self._connection_string:
                return client_class.from_connection_string(
                    self._connection_string, **names, **options
                )
            return client_class(str(endpoint), credential=self.credential(), **names, **options)
        except ValueError as exc:  # the SDK's check of the URL: a bare 500 from the host before
            setting = (
                STORAGE_CONNECTION_STRING
                if self._connection_string
                else _ENDPOINT_SETTINGS.get(client_class.__name__, "SYNC_*_ENDPOINT")
            )
            raise ConfigError(f"{setting} is not usable: {exc}", path=setting) from None
