"""The ``url`` spec source: download an API's OpenAPI document over HTTP(S), defensively.

Why each rule exists:
- A deployment event arrives while the new revision is still starting, so connection errors,
  timeouts, 5xx and 404 (route not mapped yet) are retried with backoff inside a total budget
  (``SYNC_FETCH_BUDGET_SECONDS``); the shared policy in ``sync.adapters.http`` decides the waits.
- Conditional GET (If-None-Match / If-Modified-Since) turns the drift timer's polling into 304s.
- The body is streamed against a cap (``SYNC_FETCH_MAX_BYTES``) so a hostile or broken server
  cannot exhaust the worker's memory; a Content-Length over the cap is refused before reading.
- Redirects are followed by hand, at most ``MAX_REDIRECTS`` hops, each hop vetted by the URL guard,
  and never from https down to http (a sign-in page or a hijacked link would otherwise be fetched).
- An HTML answer (Easy Auth sign-in page, App Service error page) is reported as such instead of
  surfacing later as a puzzling YAML parse error.
- URLs in logs and errors are redacted: SAS ``sig=`` and function ``code=`` are credentials.
"""

from __future__ import annotations

import logging
import re
import time

import httpx

from sync.adapters.http import (
    as_transient,
    check_transient,
    default_timeout,
    with_retries,
)
from sync.adapters.response_limits import DEADLINE
from sync.adapters.spec_sources import read_capped
from sync.adapters.urlguard import UrlGuard, guarded_client
from sync.errors import PermanentError, SpecError, TransientError, UnsafeUrlError
from sync.models import FetchedSpec
from sync.redact import redact_url
from sync.settings import Settings

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
WARM_UP_STATUSES = (404,)  # plus the shared transient set (408, 429, 500, 502, 503, 504)
HTML_TYPES = ("text/html", "application/xhtml+xml")
ACCEPT = (
    "application/json, application/yaml, application/x-yaml, text/yaml, text/plain;q=0.8, */*;q=0.1"
)
_BAD_LOCATION = "Invalid URL in location header"  # httpx's message for it
_TITLE_RE = re.compile(rb"<title[^>]*>([^<]{1,200})</title>", re.IGNORECASE)


class DownloadRefused(PermanentError):
    """The server answered 4xx to the download; ``status`` lets callers act on it (an export
    link refused with 403 is re-exported) without reading the message."""

    def __init__(self, message: str, *, where: str | None = None, status: int) -> None:
        super().__init__(message, where=where)
        self.status = status


def _describe(response: httpx.Response) -> str:
    hint = " (API still warming up?)" if response.status_code in (404, 503) else ""
    return f"HTTP {response.status_code} {response.reason_phrase}{hint}"


def _html_title(body: bytes) -> str:
    match = _TITLE_RE.search(body[:65536])
    if not match:
        return ""
    title = " ".join(match.group(1).decode("utf-8", "replace").split())[:80]
    return f", page title {title!r}" if title else ""


class HttpSpecSource:
    """``SpecSource`` for plain URLs (App Service ``/swagger/v1/swagger.json``, SAS blob links...)."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.Client | None = None,
        guard: UrlGuard | None = None,
        attempts: int = 100,
        wait_initial: float = 1.0,
        wait_max: float = 15.0,
    ) -> None:
        self._settings = settings
        self._guard = guard or UrlGuard(settings.allow_private_hosts)
        self._owns_client = client is None
        self._client = client or guarded_client(settings, guard=self._guard)
        self._attempts = attempts
        self._wait_initial = wait_initial
        self._wait_max = wait_max

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> HttpSpecSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(
        self,
        location: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        deadline: float | None = None,
    ) -> FetchedSpec:
        """Download the spec at ``location``; ``content`` is None when the server answered 304.

        ``deadline`` (a ``time.monotonic()`` value: an export's, whose link this is) ends the
        download, its retries and each exchange by then, when that is sooner than the budget."""
        shown = redact_url(location)
        budget = self._settings.fetch_budget_seconds
        started = time.monotonic()
        if deadline is not None:
            budget = min(budget, deadline - started)
        headers = {"Accept": ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        attempts = 0

        def attempt() -> FetchedSpec:
            nonlocal attempts
            attempts += 1
            remaining = budget - (time.monotonic() - started)
            timeout = max(0.1, min(self._settings.fetch_timeout_seconds, remaining))
            return self._fetch_once(
                location,
                headers,
                timeout,
                conditional=bool(etag or last_modified),
                ends_by=deadline,
            )

        log.info("fetching spec from %s", shown)
        try:
            spec = with_retries(
                attempt,
                budget_seconds=budget,
                attempts=self._attempts,
                wait_initial=self._wait_initial,
                wait_max=self._wait_max,
            )
        except TransientError as exc:
            raise TransientError(
                f"spec download still failing after {attempts} attempts in "
                f"{time.monotonic() - started:.1f}s (budget {budget:g}s): {exc}",
                where=shown,
                retry_after=exc.retry_after,
            ) from None
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            last = as_transient(exc, where=shown)
            raise TransientError(
                f"spec download still failing after {attempts} attempts in "
                f"{time.monotonic() - started:.1f}s (budget {budget:g}s): {last.message}",
                where=shown,
            ) from None
        except httpx.HTTPError as exc:  # decoding errors, invalid redirect URLs, ...
            raise SpecError(f"download failed: {type(exc).__name__}: {exc}", where=shown) from None
        if spec.not_modified:
            log.info("spec at %s not modified (304)", shown)
        else:
            log.info(
                "fetched spec from %s: %d bytes after %d attempt(s)",
                shown,
                len(spec.content or b""),
                attempts,
            )
        return spec

    def _fetch_once(
        self,
        location: str,
        headers: dict[str, str],
        timeout: float,
        *,
        conditional: bool,
        ends_by: float | None = None,
    ) -> FetchedSpec:
        """One attempt: follow up to ``MAX_REDIRECTS`` vetted hops, then read the capped body."""
        try:
            url = httpx.URL(location)
        except (httpx.InvalidURL, ValueError) as exc:
            # an export link is the service's answer, not checked before: httpx.InvalidURL is no
            # HTTPError, so it would escape the error tree and be retried until poisoned
            raise UnsafeUrlError(f"not a valid URL: {exc}", where=redact_url(location)) from None
        deadline = time.monotonic() + timeout
        previous_scheme: str | None = None
        hops = 0
        while True:
            shown = redact_url(url)
            vetted = self._guard.check(url)
            if previous_scheme == "https" and vetted.scheme == "http":
                raise UnsafeUrlError("redirect from https to http refused (downgrade)", where=shown)
            request = self._client.build_request(
                "GET",
                url,
                headers=headers,
                timeout=default_timeout(timeout),
                extensions={} if ends_by is None else {DEADLINE: ends_by},
            )
            try:
                response = self._client.send(request, stream=True)
            except httpx.RemoteProtocolError as exc:
                # httpx parses a redirect's Location before handing the response back; a bad one
                # is the server's answer, not a blip: permanent, not retried until poisoned
                if not str(exc).startswith(_BAD_LOCATION):
                    raise
                raise SpecError(
                    f"redirect to an invalid Location refused: {exc}", where=shown
                ) from None
            except ValueError as exc:
                # ... and a host that is no valid IDNA (``http://xn--/``) raises idna.IDNAError
                # there, a UnicodeError: outside httpx's errors and ours, so caught as permanent
                raise SpecError(
                    f"redirect to an invalid Location refused: {type(exc).__name__}: {exc}",
                    where=shown,
                ) from None
            try:
                status = response.status_code
                if status in REDIRECT_STATUSES:
                    target = response.headers.get("location")
                    if not target:
                        raise SpecError(f"HTTP {status} redirect without a Location", where=shown)
                    hops += 1
                    if hops > MAX_REDIRECTS:
                        raise SpecError(
                            f"more than {MAX_REDIRECTS} redirects, refused",
                            where=redact_url(location),
                        )
                    try:
                        joined = url.join(target)
                    except (httpx.InvalidURL, ValueError) as exc:  # InvalidURL is no HTTPError
                        raise SpecError(
                            f"redirect to an invalid Location refused: {exc}", where=shown
                        ) from None
                    previous_scheme, url = vetted.scheme, joined
                    log.info("spec redirect %d: %s -> %s", hops, shown, redact_url(url))
                    continue
                if status == 304:
                    if not conditional:
                        raise SpecError("HTTP 304 to an unconditional request", where=shown)
                    return FetchedSpec(
                        url=location,
                        content=None,
                        etag=response.headers.get("etag") or headers.get("If-None-Match"),
                        last_modified=response.headers.get("last-modified")
                        or headers.get("If-Modified-Since"),
                        content_type=response.headers.get("content-type"),
                    )
                check_transient(response, where=shown, extra=WARM_UP_STATUSES, describe=_describe)
                if status >= 400:
                    raise DownloadRefused(
                        f"HTTP {status} {response.reason_phrase}: the server refused the spec "
                        "download",
                        where=shown,
                        status=status,
                    )
                if status not in (200, 203):
                    raise PermanentError(
                        f"unexpected HTTP {status} {response.reason_phrase} for a spec download",
                        where=shown,
                    )
                body = read_capped(
                    response,
                    cap=self._settings.fetch_max_bytes,
                    where=shown,
                    deadline=deadline,
                    timeout=timeout,
                )
            finally:
                response.close()
            content_type = response.headers.get("content-type")
            self._refuse_html(body, content_type, status, shown)
            if not body.strip():
                raise SpecError(f"HTTP {status} with an empty body", where=shown)
            return FetchedSpec(
                url=location,
                content=body,
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                content_type=content_type,
            )

    @staticmethod
    def _refuse_html(body: bytes, content_type: str | None, status: int, shown: str) -> None:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media in HTML_TYPES or body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            raise SpecError(
                f"server answered an HTML page, not a spec (HTTP {status}, Content-Type "
                f"{content_type or 'none'}{_html_title(body)})",
                where=shown,
            )
