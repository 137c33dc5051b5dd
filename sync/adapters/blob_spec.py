"""The ``blob`` spec source, and the one Blob Storage reader the sync map shares with it.

Why plain HTTP through the guarded client instead of the azure-storage-blob client: the SDK has
its own transport (no URL guard, no pinning) and no download cap; a blob GET is one request, so the
same capped, guarded, retried path as every other spec download costs less than wrapping the SDK.

Auth: in Azure a bearer token for Storage (scope ``https://storage.azure.com/.default``, the same
in every cloud) with ``x-ms-version``; the identity needs *Storage Blob Data Reader*. Locally, when
``SYNC_STORAGE_CONNECTION_STRING`` names the same blob endpoint (Azurite), a read-only SAS is made
from its account key (the SDK's ``generate_blob_sas``, imported only then), since Azurite accepts
OAuth only over HTTPS.

Which blob: a ``BlobCreated`` event names it in its subject (``/blobServices/default/containers/
<c>/blobs/<name>``): it must be in the configured container and under the prefix (and equal to
``blobName`` when one is set), else the run is refused. Without an event, ``blobName`` names it.
Zero-length blobs and Data Lake ``CreateFile`` never get here (the event matcher ignores them).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import httpx

from sync.adapters.http import check_transient, default_timeout
from sync.adapters.response_limits import DEADLINE
from sync.adapters.spec_sources import (
    FetchDeadline,
    read_capped,
    require_https,
    retried_request,
)
from sync.errors import ConfigError, PermanentError, SpecError, SpecNotNamedError
from sync.models import FetchedSpec, SyncRequest
from sync.redact import redact_url

if TYPE_CHECKING:
    from sync.ports import TokenProvider
    from sync.settings import Settings

log = logging.getLogger(__name__)

STORAGE_SCOPE = "https://storage.azure.com/.default"
STORAGE_VERSION = "2023-11-03"
BLOB_CREATED = "microsoft.storage.blobcreated"
SAS_MINUTES = 10
_SUBJECT = re.compile(
    r"^/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<blob>.+)\Z"
)


def connection_string_parts(connection_string: str) -> dict[str, str]:
    """``Key=Value;`` pairs with lower-case keys (values keep their case: the key is base64)."""
    parts: dict[str, str] = {}
    for item in connection_string.split(";"):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            parts[key.strip().lower()] = value.strip()
    return parts


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host.lower(), url.port


_VERSION_PARAMETERS = frozenset({"versionid", "snapshot"})


def split_blob_url(url: str, account: str) -> tuple[str, str] | None:
    """(container, blob name) of ``url`` when it lies under the ``account`` endpoint, else None.

    Azurite uses path-style endpoints (``http://127.0.0.1:10000/devstoreaccount1``), so the
    account's own path is stripped before the container."""
    target, base = httpx.URL(url), httpx.URL(account)
    if _origin(target) != _origin(base):
        return None
    base_path = base.path.rstrip("/")
    path = target.path
    if base_path and not path.startswith(base_path + "/"):
        return None
    rest = path[len(base_path) :].lstrip("/")
    container, _, blob = rest.partition("/")
    if not container or not blob:
        return None
    return container, unquote(blob)


def blob_url(account: str, container: str, blob: str) -> str:
    return f"{account.rstrip('/')}/{container}/{quote(blob, safe='/')}"


def blob_location(
    params: dict[str, Any], request: SyncRequest, *, default_account: str | None, where: str
) -> str:
    """The URL of the blob this run reads, or a refusal naming what did not match."""
    account = params.get("account") or default_account
    if not account:
        raise ConfigError(
            "no storage account for the blob source: set spec.blob.account or SYNC_BLOB_ENDPOINT",
            path=where,
        )
    container = params["container"]
    prefix = params.get("prefix", "")
    fixed = params.get("blobName")
    named: tuple[str, str] | None = None
    origin = ""
    if request.spec_url:
        named = split_blob_url(request.spec_url, account)
        origin = f"spec URL {redact_url(request.spec_url)}"
        if named is None:
            raise PermanentError(
                f"{origin} is not a blob of the configured account {account}; refused", where=where
            )
        kept = {k.lower() for k in httpx.URL(request.spec_url).params} & _VERSION_PARAMETERS
        if kept:
            # the blob is read by its name (the managed identity needs no SAS), so the version
            # or snapshot would be dropped and the current blob synced in its place
            raise PermanentError(
                f"{origin} names a blob {' and '.join(sorted(kept))}; only the current blob is "
                "read: copy that version over it, or roll back a connector to its recorded "
                "version (POST /api/apis/<api>/rollback)",
                where=where,
            )
    elif (request.event_type or "").casefold() == BLOB_CREATED and request.subject:
        match = _SUBJECT.match(request.subject)
        origin = f"event subject {request.subject!r}"
        if not match:
            raise PermanentError(f"{origin} does not name a blob; refused", where=where)
        named = match.group("container"), match.group("blob")
    if named is None:
        if not fixed:
            raise SpecNotNamedError(
                "no blob to read: set spec.blob.blobName, or sync from a BlobCreated event",
                where=where,
            )
        return blob_url(account, container, fixed)
    got_container, got_blob = named
    if any(segment in (".", "..") for segment in got_blob.split("/")):
        # the URL path is normalised before it is sent (httpx removes dot segments), so
        # 'v1/../../other/x' would pass the checks below and read another container's blob
        raise PermanentError(
            f"{origin} names blob {got_blob!r} with a '.' or '..' path segment; refused",
            where=where,
        )
    if got_container != container:
        raise PermanentError(
            f"{origin} is in container {got_container!r}, not the configured {container!r}; "
            "refused",
            where=where,
        )
    if not got_blob.startswith(prefix):
        raise PermanentError(
            f"{origin} names blob {got_blob!r}, not under the configured prefix {prefix!r}; refused",
            where=where,
        )
    if fixed and got_blob != fixed:
        raise PermanentError(
            f"{origin} names blob {got_blob!r}, but spec.blob.blobName is {fixed!r}; refused",
            where=where,
        )
    return blob_url(account, container, got_blob)


class BlobReader:
    """Conditional, capped, retried blob GETs with a Storage token or a local SAS."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client,
        *,
        tokens: Callable[[], TokenProvider] | None,
        attempts: int = 6,
        wait_initial: float = 0.5,
        wait_max: float = 10.0,
    ) -> None:
        self.settings = settings
        self.client = client
        self.tokens = tokens
        self._attempts = attempts
        self._wait_initial = wait_initial
        self._wait_max = wait_max

    def _local_sas(self, url: str) -> str | None:
        """A read SAS from the connection string's key when the URL is on its blob endpoint."""
        if not self.settings.storage_connection_string:
            return None
        parts = connection_string_parts(self.settings.storage_connection_string)
        endpoint, name, key = (
            parts.get("blobendpoint"),
            parts.get("accountname"),
            parts.get("accountkey"),
        )
        if not (endpoint and name and key):
            return None
        located = split_blob_url(url, endpoint)
        if located is None:
            return None
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        return str(
            generate_blob_sas(
                account_name=name,
                container_name=located[0],
                blob_name=located[1],
                account_key=key,
                permission=BlobSasPermissions(read=True),
                expiry=datetime.now(UTC) + timedelta(minutes=SAS_MINUTES),
                start=datetime.now(UTC) - timedelta(minutes=5),
            )
        )

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        deadline: float | None = None,
    ) -> FetchedSpec:
        """The blob at ``url`` (no query); ``content`` is None on 304. ``deadline`` (a
        ``time.monotonic()`` instant) ends the read, its retries and each exchange sooner than
        the fetch budget would (a run being planned)."""
        shown = redact_url(url)
        until = (
            None
            if deadline is None
            else FetchDeadline(
                self.settings, what=f"the read of {shown}", where=shown, until=deadline
            )
        )
        headers = {"x-ms-version": STORAGE_VERSION, "Accept": "*/*"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        sas = self._local_sas(url)
        if not sas:  # the SAS path is the local emulator's own endpoint, from its connection string
            require_https(
                url,
                self.settings,
                what="a Storage bearer token",
                setting="the blob URL (spec.blob.account, SYNC_BLOB_ENDPOINT or SYNC_CONFIG)",
                where=shown,
            )

        def attempt() -> FetchedSpec:
            request_headers = dict(headers)
            target = url
            if sas:
                target = f"{url}?{sas}"
            else:
                if self.tokens is None:
                    raise ConfigError("no credential to read the blob with", path=shown)
                request_headers["Authorization"] = "Bearer " + self.tokens().token(STORAGE_SCOPE)
            request = self.client.build_request(
                "GET",
                target,
                headers=request_headers,
                timeout=default_timeout(self.settings.fetch_timeout_seconds),
                extensions={} if until is None else {DEADLINE: until.monotonic_at()},
            )
            response = self.client.send(request, stream=True)
            try:
                return self._answer(response, shown, url, conditional=bool(etag or last_modified))
            finally:
                response.close()

        fetched = retried_request(
            attempt,
            settings=self.settings,
            where=shown,
            attempts=self._attempts,
            wait_initial=self._wait_initial,
            wait_max=self._wait_max,
            deadline=until,
        )
        if fetched.not_modified:
            log.info("blob %s not modified (304)", shown)
        else:
            log.info("read blob %s: %d bytes", shown, len(fetched.content or b""))
        return fetched

    def _answer(
        self, response: httpx.Response, shown: str, url: str, *, conditional: bool
    ) -> FetchedSpec:
        status = response.status_code
        code = response.headers.get("x-ms-error-code") or ""
        if status == 304 and conditional:
            return FetchedSpec(
                url=url,
                content=None,
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )
        check_transient(response, where=shown)
        if status in (401, 403):
            raise PermanentError(
                f"HTTP {status} {code or response.reason_phrase}: Storage refused the read (the "
                "identity needs Storage Blob Data Reader on the container or account)",
                where=shown,
            )
        if status == 404:
            raise PermanentError(
                f"HTTP 404 {code or 'Not Found'}: the blob or its container does not exist",
                where=shown,
            )
        if status != 200:
            raise PermanentError(
                f"unexpected HTTP {status} {code or response.reason_phrase} for a blob read",
                where=shown,
            )
        body = read_capped(response, cap=self.settings.fetch_max_bytes, where=shown)
        if not body.strip():
            raise SpecError("the blob is empty", where=shown)
        return FetchedSpec(
            url=url,
            content=body,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            content_type=response.headers.get("content-type"),
        )
