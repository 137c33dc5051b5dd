"""The ``apimExport`` spec source: API Management's "Api Export - Get", then the exported blob.

Why export instead of reading the backend's own spec: APIM's definition is what callers see
(operations, paths and schemas as published through the gateway), and it always describes the
*current* revision, whatever revision an event named.

The ARM answer carries ``value.link``: a blob URL with a SAS valid for about 5 minutes. The link is
downloaded through the URL source (guard, cap, retries, redaction of ``sig=``); a link that expired
before we used it (a slow queue, a long warm-up) is refused by Storage with 403, so the export is
asked for once more and then the run fails with a message saying so. The link itself is never
logged, stored or shown: the ledger records the ARM resource URL instead. Both exports and both
downloads share one ``FetchDeadline``: the fetch ends within SYNC_FETCH_BUDGET_SECONDS.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from sync.adapters.spec_sources import EXPORT_LABELS, FetchDeadline, fetch_export_link
from sync.errors import PermanentError, SpecError
from sync.models import FetchedSpec

if TYPE_CHECKING:
    from sync.adapters.spec_http import HttpSpecSource
    from sync.adapters.spec_sources import ArmCaller

log = logging.getLogger(__name__)

API_VERSION = "2022-08-01"
DEFAULT_FORMAT = "openapi+json-link"
# The sync map names formats as APIM's export *result* calls them; the request takes these.
REQUEST_FORMATS = {
    "openapi+json-link": "openapi+json-link",
    "swagger-link-json": "swagger-link",
}
EXPIRY_MARGIN_SECONDS = 5.0


def link_expiry(link: str) -> float | None:
    """The SAS ``se=`` expiry as epoch seconds, or None when the link has none we can read."""
    values = parse_qs(urlsplit(link).query).get("se")
    if not values:
        return None
    try:
        return datetime.fromisoformat(values[-1].replace("Z", "+00:00")).astimezone(UTC).timestamp()
    except ValueError:
        return None


class ApimExportSource:
    """One export (and at most one re-export when the link expired) per fetch."""

    def __init__(self, arm: ArmCaller, links: HttpSpecSource, *, clock: Any = time.time) -> None:
        self.arm = arm
        self.links = links
        self.clock = clock

    def export_url(self, params: dict[str, Any]) -> str:
        return self.arm.url(params["service"], f"/apis/{params['api']}")

    def export_link(
        self, params: dict[str, Any], *, where: str, deadline: FetchDeadline | None = None
    ) -> str:
        """Ask ARM for a fresh export (within ``deadline``); return the SAS link (never logged)."""
        url = self.export_url(params)
        fmt = REQUEST_FORMATS[params.get("format", DEFAULT_FORMAT)]
        _, body = self.arm.call(
            "GET",
            url,
            params={"format": fmt, "export": "true", "api-version": API_VERSION},
            where=url,
            deadline=deadline,
        )
        try:
            data = json.loads(body)
            link = data["value"]["link"]
        except (ValueError, KeyError, TypeError, RecursionError):  # nested past the limit too
            raise SpecError(
                "the API Management export answer has no value.link", where=url
            ) from None
        if not isinstance(link, str) or not link:
            raise SpecError("the API Management export answer has an empty value.link", where=url)
        try:
            urlsplit(link).port  # noqa: B018 - link_expiry() and the download parse it
        except ValueError:
            # a ValueError out of fetch() would escape the error tree; the link (and its SAS
            # signature) is not shown
            raise SpecError(
                "the API Management export answer's value.link is not a URL", where=url
            ) from None
        return link

    def fetch(
        self, params: dict[str, Any], *, where: str, deadline: FetchDeadline | None = None
    ) -> FetchedSpec:
        """The exported spec; every request of it ends within one ``deadline`` (by default
        SYNC_FETCH_BUDGET_SECONDS from now)."""
        source = self.export_url(params)
        deadline = deadline or FetchDeadline(
            self.arm.settings, what=EXPORT_LABELS["apimExport"], where=where
        )
        for attempt in (1, 2):
            link = self.export_link(params, where=where, deadline=deadline)
            expiry = link_expiry(link)
            if expiry is not None and expiry - EXPIRY_MARGIN_SECONDS <= self.clock():
                log.warning("export link of %s expired on arrival (attempt %d)", source, attempt)
                if attempt == 1:
                    continue
                raise PermanentError(
                    "the export link had already expired twice when it arrived; check the clock "
                    "of this host and of the API Management service",
                    where=source,
                )
            fetched = fetch_export_link(
                self.links, link, attempt=attempt, source=source, deadline=deadline
            )
            if fetched is None:
                continue
            log.info(
                "exported %s from API Management (%d bytes)", source, len(fetched.content or b"")
            )
            # the link is single-use and carries a signature: record the ARM resource instead,
            # and no validators (every export writes a new blob, a 304 would never come)
            return FetchedSpec(
                url=source,
                content=fetched.content,
                content_type=fetched.content_type,
            )
        raise AssertionError("unreachable")  # pragma: no cover
