"""Picks the spec source per API (``url``, ``apimExport``, ``apiCenterExport``, ``blob``).

Why one dispatcher instead of one port per kind: the pipeline should not know where a spec lives,
only that it gets bytes (or a 304). Every kind goes out through the same guarded client (the
outbound-URL guard, the download cap, the retry policy of ``sync.adapters.http``) so an export
link or a blob URL cannot reach what a plain URL could not.

``url`` keeps its exact behaviour: the event's or caller's ``spec_url`` (already checked against
``allowedSpecUrls``) wins over the configured URL, for every kind.

The ARM helper lives here because APIM and API Center share it: bearer token for the cloud's
Resource Manager (``Cloud.arm_scope()``), 429/5xx retried with Retry-After, ARM error bodies
(``{"error": {"code", "message"}}``) turned into errors that name the resource and the code.
So does ``FetchDeadline``: an export is many requests (the action, its polls, the result, the
linked blob, a re-export), and SYNC_FETCH_BUDGET_SECONDS bounds all of them together.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from sync.adapters.http import as_transient, check_transient, default_timeout, with_retries
from sync.adapters.response_limits import DEADLINE
from sync.errors import ConfigError, PermanentError, SpecError, TransientError
from sync.models import FetchedSpec, SyncRequest
from sync.redact import redact_url

if TYPE_CHECKING:
    from sync.adapters.spec_http import HttpSpecSource
    from sync.clouds import Cloud
    from sync.config import ApiConfig, SyncMap
    from sync.ports import SecretStore, TokenProvider
    from sync.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

FUNCTION_IDENTITY = "(function identity)"
ARM_ROLE_HINTS = {
    "apimExport": "API Management Service Reader Role on the APIM service",
    "apiCenterExport": "a role with Microsoft.ApiCenter/services/workspaces/apis/versions/"
    "definitions/exportSpecification/action (e.g. Azure API Center Service Reader)",
}


EXPORT_LABELS = {"apimExport": "API Management export", "apiCenterExport": "API Center export"}


class FetchDeadline:
    """One deadline for a whole spec fetch, SYNC_FETCH_BUDGET_SECONDS after it starts.

    Why one: each step of an export (the action, every poll, the result, the link download, and
    all of them again on a re-export) used to get the budget for itself, so one fetch could hold
    a worker for several budgets, past the lease and the function time the budget is sized for.
    Every request, retry and wait of the fetch is given what is left of this one instead.
    ``clock`` times the waits between polls; requests end by the same instant on
    ``time.monotonic()``, which the transport holds each exchange to.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        what: str,
        where: str,
        clock: Callable[[], float] = time.monotonic,
        until: float | None = None,
    ) -> None:
        # ``until``: a caller's earlier end (a ``time.monotonic()`` instant), e.g. planning's
        self.budget = settings.fetch_budget_seconds
        if until is not None:
            self.budget = max(min(self.budget, until - time.monotonic()), 0.0)
        self.what = what
        self.where = where
        self._clock = clock
        self._at = clock() + self.budget

    def remaining(self) -> float:
        return self._at - self._clock()

    def left(self, doing: str) -> float:
        """Seconds left for ``doing``; the out-of-budget error when none are."""
        left = self.remaining()
        if left <= 0:
            raise self.spent(f"no time left for {doing}")
        return left

    def monotonic_at(self) -> float:
        """The deadline as a ``time.monotonic()`` value (``response_limits.DEADLINE``)."""
        return time.monotonic() + self.remaining()

    def spent(self, detail: str, *, retry_after: float | None = None) -> TransientError:
        """The error of a fetch that ran out of its budget: transient, the queue retries it."""
        return TransientError(
            f"{self.what} did not finish within the fetch budget of {self.budget:g}s "
            f"(SYNC_FETCH_BUDGET_SECONDS): {detail}",
            where=self.where,
            retry_after=retry_after,
        )


def function_identity_spec(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The function's own managed identity; AZURE_CLIENT_ID picks a user-assigned one."""
    env = dict(os.environ) if env is None else env
    client_id = (env.get("AZURE_CLIENT_ID") or "").strip()
    return {"managedIdentity": {"clientId": client_id} if client_id else {}}


def require_https(url: str, settings: Settings, *, what: str, setting: str, where: str) -> None:
    """Refuse to send ``what`` (a bearer token) to a plain-http ``url``.

    The URL guard lets http through because public spec URLs may be http, but a token sent in
    clear text is anyone's on the path. A host listed in SYNC_ALLOW_PRIVATE_HOSTS (as written in
    the URL, with or without its port, like the guard matches it) is exempt: the local emulators
    and simulators speak plain http on loopback."""
    from sync.adapters.urlguard import tls_or_allowlisted

    if tls_or_allowlisted(url, settings.allow_private_hosts):
        return
    raise PermanentError(
        f"refusing to send {what} over plain http to {redact_url(url)}; {setting} must be an "
        "https:// URL (local emulators: add the host to SYNC_ALLOW_PRIVATE_HOSTS)",
        where=where,
    )


def read_capped(
    response: httpx.Response,
    *,
    cap: int,
    where: str,
    deadline: float | None = None,
    timeout: float = 0.0,
) -> bytes:
    """The body of a streamed response, refused past ``cap`` bytes (SYNC_FETCH_MAX_BYTES).

    With ``deadline`` (a ``time.monotonic()`` value, ``timeout`` seconds after the request) a body
    still arriving after it is a ``TransientError``: a server trickling bytes must not hold a
    worker past its timeout.
    """
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > cap:
        raise SpecError(
            f"Content-Length {int(declared):,} bytes exceeds the download cap of {cap:,} bytes "
            "(SYNC_FETCH_MAX_BYTES); not downloaded",
            where=where,
        )
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > cap:
            raise SpecError(
                f"body exceeds the download cap of {cap:,} bytes (SYNC_FETCH_MAX_BYTES): "
                f"{total:,} bytes received when the download was aborted",
                where=where,
            )
        chunks.append(chunk)
        if deadline is not None and time.monotonic() > deadline:
            raise TransientError(
                f"download did not finish within {timeout:g}s ({total:,} bytes received)",
                where=where,
            )
    return b"".join(chunks)


def retried_request(
    attempt: Callable[[], T],
    *,
    settings: Settings,
    where: str,
    attempts: int,
    wait_initial: float,
    wait_max: float,
    deadline: FetchDeadline | None = None,
) -> T:
    """One logical spec-source request: retried while transient within SYNC_FETCH_BUDGET_SECONDS,
    or within what is left of ``deadline`` (an export's, shared by all its requests); a transport
    failure that outlasts the budget is a ``TransientError`` naming ``where``, or the deadline's
    error when the deadline, not the attempts, ended the retries; any other httpx error (a body
    that does not decode as its Content-Encoding says) is a ``SpecError``, as ``HttpSpecSource``
    makes it: the same bytes decode no better next time."""
    budget = settings.fetch_budget_seconds if deadline is None else deadline.left(where)
    tried = 0

    def counted() -> T:
        nonlocal tried
        tried += 1
        return attempt()

    try:
        return with_retries(
            counted,
            budget_seconds=budget,
            attempts=attempts,
            wait_initial=wait_initial,
            wait_max=wait_max,
        )
    except (httpx.TransportError, httpx.TimeoutException, TransientError) as exc:
        error = exc if isinstance(exc, TransientError) else as_transient(exc, where=where)
        if deadline is None or tried >= attempts:
            raise error from None
        raise deadline.spent(f"{where}: {error.message}", retry_after=error.retry_after) from None
    except httpx.HTTPError as exc:  # DecodingError, TooManyRedirects, ...
        raise SpecError(f"download failed: {type(exc).__name__}: {exc}", where=where) from None


def arm_error(response: httpx.Response, body: bytes) -> tuple[str, str]:
    """(code, message) from an ARM error body; the status text when the body is not ARM's.
    A body nested past the recursion limit is not ARM's either: a RecursionError out of here
    would escape the error tree instead of the PermanentError the status calls for."""
    import json

    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        data = {}
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or response.status_code), str(error.get("message") or "")[:300]
    return str(response.status_code), response.reason_phrase


class ArmCaller:
    """Resource Manager requests through the guarded client, with one token provider."""

    def __init__(
        self,
        client: httpx.Client,
        tokens: TokenProvider,
        cloud: Cloud,
        settings: Settings,
        *,
        kind: str,
        attempts: int = 6,
        wait_initial: float = 1.0,
        wait_max: float = 15.0,
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.cloud = cloud
        self.settings = settings
        self.kind = kind
        self._attempts = attempts
        self._wait_initial = wait_initial
        self._wait_max = wait_max

    def url(self, resource_id: str, suffix: str = "") -> str:
        return self.cloud.resource_manager.rstrip("/") + resource_id + suffix

    def call(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        where: str,
        deadline: FetchDeadline | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """One logical ARM call (retried while transient); 4xx raise ``PermanentError``.

        With ``deadline`` the call, its retries and each exchange end by it (see
        ``retried_request``)."""
        require_https(
            url,
            self.settings,
            what="a Resource Manager bearer token",
            setting="endpoints.resourceManager",
            where=where,
        )

        def attempt() -> tuple[httpx.Response, bytes]:
            headers = {
                "Authorization": "Bearer " + self.tokens.token(self.cloud.arm_scope()),
                "Accept": "application/json",
            }
            if method == "POST":
                headers["Content-Type"] = "application/json"
            request = self.client.build_request(
                method,
                url,
                params=params,
                headers=headers,
                content=b"" if method == "POST" else None,
                timeout=default_timeout(self.settings.fetch_timeout_seconds),
                extensions={} if deadline is None else {DEADLINE: deadline.monotonic_at()},
            )
            response = self.client.send(request, stream=True)
            try:
                check_transient(response, where=where)
                body = read_capped(response, cap=self.settings.fetch_max_bytes, where=where)
            finally:
                response.close()
            return response, body

        response, body = retried_request(
            attempt,
            settings=self.settings,
            where=where,
            attempts=self._attempts,
            wait_initial=self._wait_initial,
            wait_max=self._wait_max,
            deadline=deadline,
        )
        if response.status_code >= 400:
            code, message = arm_error(response, body)
            hint = ""
            if response.status_code in (401, 403):
                hint = f" (the identity needs {ARM_ROLE_HINTS.get(self.kind, 'read access')})"
            raise PermanentError(
                f"Resource Manager answered HTTP {response.status_code} {code}: {message}{hint}",
                where=where,
            )
        return response, body


def is_forbidden(exc: PermanentError) -> bool:
    """True when a link download was refused with 403 (an expired or revoked SAS)."""
    return getattr(exc, "status", None) == 403


def fetch_export_link(
    links: HttpSpecSource, link: str, *, attempt: int, source: str, deadline: FetchDeadline
) -> FetchedSpec | None:
    """Download an export's SAS link within what is left of the export's ``deadline``. A 403
    (the SAS expired before the download started) on the first attempt returns None so the
    caller exports again; on the second it is an error that names the exported resource, never
    the signed link. The download retries until its budget ends, so its transient failure is
    the deadline's."""
    deadline.left("the export link's download")
    try:
        return links.fetch(link, deadline=deadline.monotonic_at())
    except TransientError as exc:
        raise deadline.spent(
            f"the export link's download: {exc.message}", retry_after=exc.retry_after
        ) from None
    except PermanentError as exc:
        if not is_forbidden(exc):
            raise
        log.warning("export link of %s refused with 403 (attempt %d)", source, attempt)
        if attempt == 1:
            return None
        raise PermanentError(
            "the export link was refused twice with HTTP 403 (SAS expired before the "
            "download started?); re-exported once, giving up",
            where=source,
        ) from None


class SpecSources:
    """The ``SpecSource`` port for every kind: ``fetch_for(api, request)`` picks the adapter."""

    def __init__(
        self,
        settings: Settings,
        sync_map: SyncMap,
        *,
        secrets: SecretStore | None = None,
        client: httpx.Client | None = None,
        url_source: Any = None,
        token_factory: Callable[[str | None], TokenProvider] | None = None,
        function_identity: Callable[[Cloud], TokenProvider] | None = None,
        poll_interval: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from sync.adapters.spec_http import HttpSpecSource
        from sync.adapters.urlguard import UrlGuard, guarded_client

        self.settings = settings
        self.map = sync_map
        self._secrets = secrets
        self._guard = UrlGuard(settings.allow_private_hosts)
        self._owns_client = client is None
        self.client = client or guarded_client(settings, guard=self._guard)
        self.urls = url_source or HttpSpecSource(settings, client=self.client, guard=self._guard)
        self._token_factory = token_factory
        self._function_identity = function_identity
        self._tokens: dict[str | None, TokenProvider] = {}
        self._lock = threading.Lock()
        self.poll_interval = poll_interval
        self.sleep = sleep

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    @property
    def cloud(self) -> Cloud:
        from sync.clouds import cloud_for

        return cloud_for(self.map.cloud, self.map.endpoints)

    def tokens(self, credential: str | None) -> TokenProvider:
        """The named credential of the map, or the function identity when None.

        The function identity is the one the composition root passes (``sync.bootstrap.
        function_identity``, as Key Vault and Storage use it): the managed identity in Azure,
        DefaultAzureCredential (az login) locally, so an export or blob source without
        ``credential:`` signs in wherever the rest of the app does. Built at the first token, so
        nothing of azure-identity is imported before. Without one (a bare construction), the
        managed identity of ``function_identity_spec``."""
        with self._lock:
            if credential not in self._tokens:
                if self._token_factory is not None:
                    self._tokens[credential] = self._token_factory(credential)
                elif credential is None and self._function_identity is not None:
                    self._tokens[credential] = self._function_identity(self.cloud)
                else:
                    from sync.adapters.credentials import build_token_provider

                    if credential is not None and credential not in self.map.credentials:
                        raise ConfigError(
                            f"credential {credential!r} is not defined under 'credentials'",
                            path="credentials",
                        )
                    spec = (
                        self.map.credentials[credential]
                        if credential is not None
                        else function_identity_spec()
                    )
                    self._tokens[credential] = build_token_provider(
                        credential or FUNCTION_IDENTITY,
                        spec,
                        cloud=self.cloud,
                        secrets=self._secrets or _NoSecrets(),
                        guard=self._guard,
                    )
            return self._tokens[credential]

    def arm(self, kind: str, credential: str | None) -> ArmCaller:
        return ArmCaller(self.client, self.tokens(credential), self.cloud, self.settings, kind=kind)

    # -- the port ----------------------------------------------------------------------------
    def fetch(
        self,
        location: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        deadline: float | None = None,
    ) -> FetchedSpec:
        """A plain URL (the original port, kept for callers that only have a location)."""
        return self.urls.fetch(location, etag=etag, last_modified=last_modified, deadline=deadline)

    def fetch_for(
        self,
        api: ApiConfig,
        request: SyncRequest,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        deadline: float | None = None,
    ) -> FetchedSpec:
        """The API's spec through its configured source; ``content`` is None on 304.
        ``deadline`` (``time.monotonic()``) ends it sooner than the fetch budget would."""
        where = f"apis.{api.name}.spec.{api.spec_kind}"
        if api.spec_kind == "url" or (request.spec_url and api.spec_kind != "blob"):
            location = request.spec_url or api.spec_url
            if not location:
                raise PermanentError("no spec URL to fetch", where=where)
            return self.fetch(location, etag=etag, last_modified=last_modified, deadline=deadline)
        params = dict(api.spec) if isinstance(api.spec, dict) else {}
        if api.spec_kind in EXPORT_LABELS:
            return self._export(api, params, where, until=deadline)
        if api.spec_kind == "blob":
            from sync.adapters.blob_spec import BlobReader, blob_location

            url = blob_location(
                params, request, default_account=self.default_blob_account(), where=where
            )
            reader = BlobReader(
                self.settings,
                self.client,
                tokens=lambda: self.tokens(params.get("credential")),
            )
            return reader.get(url, etag=etag, last_modified=last_modified, deadline=deadline)
        raise ConfigError(f"unknown spec source kind {api.spec_kind!r}", path=where)

    def _export(
        self, api: ApiConfig, params: dict[str, Any], where: str, *, until: float | None = None
    ) -> FetchedSpec:
        """An export kind's spec, all of it within one deadline that names the API."""
        from sync.adapters.apicenter_export import ApiCenterExportSource
        from sync.adapters.apim_export import ApimExportSource

        deadline = FetchDeadline(
            self.settings,
            what=f"{EXPORT_LABELS[api.spec_kind]} of API {api.name!r}",
            where=where,
            until=until,
        )
        arm = self.arm(api.spec_kind, params.get("credential"))
        if api.spec_kind == "apimExport":
            return ApimExportSource(arm, self.urls).fetch(params, where=where, deadline=deadline)
        center = ApiCenterExportSource(
            arm, self.urls, poll_interval=self.poll_interval, sleep=self.sleep
        )
        return center.fetch(params, where=where, deadline=deadline)

    def default_blob_account(self) -> str | None:
        """SYNC_BLOB_ENDPOINT, else the connection string's blob endpoint (local)."""
        if self.settings.blob_endpoint:
            return self.settings.blob_endpoint
        if self.settings.storage_connection_string:
            from sync.adapters.blob_spec import connection_string_parts

            return connection_string_parts(self.settings.storage_connection_string).get(
                "blobendpoint"
            )
        return None


class _NoSecrets:
    """The function identity needs no secret; a named credential without a store is a bug."""

    def get(self, name: str) -> str:
        raise ConfigError(f"no secret store to read {name!r} from", path="credentials")


__all__ = [
    "EXPORT_LABELS",
    "ArmCaller",
    "FetchDeadline",
    "SpecSources",
    "arm_error",
    "fetch_export_link",
    "function_identity_spec",
    "is_forbidden",
    "read_capped",
    "require_https",
    "retried_request",
]
