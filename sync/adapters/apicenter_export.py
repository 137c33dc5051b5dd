"""The ``apiCenterExport`` spec source: API Center's ``exportSpecification`` long-running action.

Why the ARM (control-plane) action and not the data plane: only ``exportSpecification`` returns
the definition's bytes; the data-plane API lists metadata. The action is a POST that may answer
200 with the result at once, or 202 with ``Location`` (and usually ``Azure-AsyncOperation``) plus
``Retry-After``: we poll until done, honouring Retry-After. The action, every poll, the result,
the link download and a re-export share one ``FetchDeadline``: the whole fetch ends within
SYNC_FETCH_BUDGET_SECONDS (each step had the budget for itself, several budgets in all).

The result is ``{"format": "inline", "value": "<spec text>"}`` or ``{"format": "link", "value":
"<blob URL with SAS>"}``; a link goes through the URL source (guard, cap, redaction) and an expired
one (403) is re-exported once, like the APIM export.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from sync.adapters.http import retry_after_seconds
from sync.adapters.spec_sources import EXPORT_LABELS, FetchDeadline, fetch_export_link
from sync.errors import PermanentError, SpecError
from sync.models import FetchedSpec
from sync.redact import redact_url

if TYPE_CHECKING:
    from sync.adapters.spec_http import HttpSpecSource
    from sync.adapters.spec_sources import ArmCaller

log = logging.getLogger(__name__)

API_VERSION = "2024-03-01"
TERMINAL_FAILURES = ("failed", "canceled", "cancelled")


class ApiCenterExportSource:
    def __init__(
        self,
        arm: ArmCaller,
        links: HttpSpecSource,
        *,
        poll_interval: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.arm = arm
        self.links = links
        self.poll_interval = poll_interval
        self.sleep = sleep
        self.clock = clock

    def definition_id(self, params: dict[str, Any]) -> str:
        return (
            f"{params['service']}/workspaces/{params.get('workspace', 'default')}"
            f"/apis/{params['api']}/versions/{params['version']}"
            f"/definitions/{params['definition']}"
        )

    def fetch(
        self, params: dict[str, Any], *, where: str, deadline: FetchDeadline | None = None
    ) -> FetchedSpec:
        """The exported spec; every request and poll wait of it ends within one ``deadline``
        (by default SYNC_FETCH_BUDGET_SECONDS from now, on this source's clock)."""
        source = self.arm.url(self.definition_id(params))
        deadline = deadline or FetchDeadline(
            self.arm.settings, what=EXPORT_LABELS["apiCenterExport"], where=where, clock=self.clock
        )
        for attempt in (1, 2):
            result = self.export(params, deadline)
            fmt, value = self._result(result, source)
            if fmt == "inline":
                content = value.encode("utf-8")
                if not content.strip():
                    raise SpecError("API Center exported an empty specification", where=source)
                if len(content) > self.arm.settings.fetch_max_bytes:
                    raise SpecError(
                        f"exported specification of {len(content):,} bytes exceeds the download "
                        f"cap of {self.arm.settings.fetch_max_bytes:,} bytes (SYNC_FETCH_MAX_BYTES)",
                        where=source,
                    )
                log.info("exported %s from API Center inline (%d bytes)", source, len(content))
                return FetchedSpec(url=source, content=content)
            fetched = fetch_export_link(
                self.links, value, attempt=attempt, source=source, deadline=deadline
            )
            if fetched is None:
                continue
            log.info("exported %s from API Center via link", source)
            return FetchedSpec(
                url=source, content=fetched.content, content_type=fetched.content_type
            )
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _result(result: Any, source: str) -> tuple[str, str]:
        if not isinstance(result, dict):
            raise SpecError("the export result is not a JSON object", where=source)
        fmt, value = result.get("format"), result.get("value")
        if fmt not in ("inline", "link") or not isinstance(value, str):
            raise SpecError(
                f"the export result has format {fmt!r} and a {type(value).__name__} value; "
                "expected format 'inline' or 'link' with a string value",
                where=source,
            )
        return fmt, value

    def export(self, params: dict[str, Any], deadline: FetchDeadline) -> Any:
        """POST the action, then poll a 202 until the result is there (within ``deadline``)."""
        url = self.arm.url(self.definition_id(params), "/exportSpecification")
        response, body = self.arm.call(
            "POST", url, params={"api-version": API_VERSION}, where=url, deadline=deadline
        )
        status_url = self._same_origin(
            response.headers.get("azure-asyncoperation"), url, header="Azure-AsyncOperation"
        )
        location = self._same_origin(response.headers.get("location"), url, header="Location")
        polls = 0
        while response.status_code == 202:
            if not (status_url or location):
                raise SpecError("HTTP 202 without Location or Azure-AsyncOperation", where=url)
            wait = retry_after_seconds(response)
            wait = self.poll_interval if wait is None else wait
            if wait >= deadline.remaining():
                raise deadline.spent(
                    f"the export was still running after {polls} polls ({url})", retry_after=wait
                )
            self.sleep(wait)
            polls += 1
            if status_url:
                response, body = self._poll_status(status_url, url, deadline)
                if response.status_code == 200:
                    status_url = None
                    if location:  # done: the result is at Location (final-state-via location)
                        response, body = self.arm.call(
                            "GET", location, where=url, deadline=deadline
                        )
                    else:  # no Location: the operation status carries the result
                        body = json.dumps(_json(body, url).get("properties")).encode()
                continue
            response, body = self.arm.call("GET", location or "", where=url, deadline=deadline)
        if response.status_code not in (200, 201):
            raise SpecError(f"unexpected HTTP {response.status_code} from the export", where=url)
        return _json(body, url)

    def _same_origin(
        self, link: str | None, where: str, *, header: str = "polling URL"
    ) -> str | None:
        """Polling URLs come from the answer; the ARM token must not travel to another host. A
        relative one (HTTP allows it in ``Location``) is taken relative to the request's URL."""
        if not link:
            return None
        base = httpx.URL(self.arm.cloud.resource_manager)
        try:
            target = httpx.URL(where).join(link)
        except (httpx.InvalidURL, ValueError) as exc:
            # httpx.InvalidURL is no HTTPError: it would escape the error tree as a crash
            raise PermanentError(
                f"the export answer's {header} header is not a URL ({redact_url(link)}: {exc})",
                where=where,
            ) from None
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise PermanentError(
                f"polling URL host {target.host!r} is not the Resource Manager host "
                f"{base.host!r}; refusing to send the token there",
                where=where,
            )
        return str(target)

    def _poll_status(
        self, status_url: str, where: str, deadline: FetchDeadline
    ) -> tuple[httpx.Response, bytes]:
        """Read Azure-AsyncOperation; answer a synthetic 202 while it runs (any status ARM does
        not call terminal). An answer with no status string is no operation status: waiting on
        it would only end when the budget does, as a retry of the same wait."""
        response, body = self.arm.call("GET", status_url, where=where, deadline=deadline)
        data = _json(body, where)
        raw_status = data.get("status") if isinstance(data, dict) else None
        if not isinstance(raw_status, str) or not raw_status.strip():
            raise SpecError(
                f"the export's operation status (HTTP {response.status_code}) has no 'status'",
                where=where,
            )
        status = raw_status.casefold()
        if status in TERMINAL_FAILURES:
            error = data.get("error") if isinstance(data.get("error"), dict) else {}
            raise PermanentError(
                f"API Center export {status}: {error.get('code', 'no code')}: "
                f"{str(error.get('message', ''))[:300]}",
                where=where,
            )
        if status == "succeeded":
            return response, body
        # still running: behave like a 202 carrying the operation's Retry-After
        return httpx.Response(202, headers=response.headers), body


def _json(body: bytes, where: str) -> Any:
    """The answer's JSON; one that is not JSON, or nests past the recursion limit (whose
    RecursionError would escape the error tree), is a ``SpecError``."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise SpecError("the export answer is not JSON", where=where) from None
