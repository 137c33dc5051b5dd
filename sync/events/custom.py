"""The custom "API deployed" event CI pipelines publish: the primary, most precise trigger.

Only the pipeline knows a deployment finished (App Service has no such event), which commit it
was and where the new spec is; so this payload is validated strictly - a typo in a pipeline
should fail loudly with the field name, not turn into a silent no-op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sync.events.model import Event, MalformedEvent, has_unpaired_surrogate

API_DEPLOYED = "ConnectorSync.ApiDeployed"
API_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
MAX_URL_CHARS = 2_048
MAX_TEXT_CHARS = 256
_TEXT_FIELDS = {"version": "version", "commit": "commit", "deploymentId": "deployment_id"}
_KNOWN = {"api", "specUrl", *_TEXT_FIELDS}


@dataclass(frozen=True)
class ApiDeployed:
    """``data`` of a ConnectorSync.ApiDeployed event."""

    api: str
    spec_url: str | None = None
    version: str | None = None
    commit: str | None = None
    deployment_id: str | None = None


def _spec_url(value: Any, where: str) -> str:
    """Shape only; whether the URL is *allowed* is the API's allowedSpecUrls decision."""
    field = "data.specUrl"
    if not isinstance(value, str) or not value:
        raise MalformedEvent("must be a non-empty string", field=field, where=where)
    if len(value) > MAX_URL_CHARS:
        raise MalformedEvent(f"is longer than {MAX_URL_CHARS} characters", field=field, where=where)
    if any(ord(ch) <= 0x20 or ch in "\\\x7f" for ch in value):
        raise MalformedEvent(
            "contains whitespace, control characters or '\\'", field=field, where=where
        )
    if has_unpaired_surrogate(value):
        raise MalformedEvent("contains an unpaired surrogate", field=field, where=where)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a port that is not a number in 0..65535
    except ValueError:  # its message would quote the netloc, user info and all
        raise MalformedEvent("is not a valid URL", field=field, where=where) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise MalformedEvent("must be an absolute http(s) URL", field=field, where=where)
    if "@" in parts.netloc:
        raise MalformedEvent("must not carry credentials (user@host)", field=field, where=where)
    segments = parts.path.split("/")
    if ".." in segments or "." in segments or "%2e" in parts.path.lower():
        # a prefix check on https://host/allowed/../other would pass; refuse dot segments
        raise MalformedEvent("must not contain '.' or '..' path segments", field=field, where=where)
    if parts.fragment:
        raise MalformedEvent("must not have a #fragment", field=field, where=where)
    return value


def parse_api_deployed(event: Event) -> ApiDeployed:
    """Validate the custom event's data; unknown keys are refused so typos surface."""
    where = f"event {event.id}"
    data = event.data
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise MalformedEvent(
            f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: api, specUrl, version, "
            "commit, deploymentId",
            field="data",
            where=where,
        )
    api = data.get("api")
    if api is None:
        raise MalformedEvent("is missing", field="data.api", where=where)
    if not isinstance(api, str) or not API_NAME.match(api):
        raise MalformedEvent(
            f"must match {API_NAME.pattern} (an API name of the sync map), got {str(api)[:80]!r}",
            field="data.api",
            where=where,
        )
    values: dict[str, str | None] = {}
    for key, attr in _TEXT_FIELDS.items():
        value = data.get(key)
        if value is None:
            values[attr] = None
            continue
        if not isinstance(value, str) or not value or len(value) > MAX_TEXT_CHARS:
            raise MalformedEvent(
                f"must be a non-empty string of at most {MAX_TEXT_CHARS} characters",
                field=f"data.{key}",
                where=where,
            )
        if any(ord(ch) < 0x20 or ch == "\x7f" for ch in value):
            raise MalformedEvent("contains control characters", field=f"data.{key}", where=where)
        if has_unpaired_surrogate(value):
            raise MalformedEvent("contains an unpaired surrogate", field=f"data.{key}", where=where)
        values[attr] = value
    spec_url = data.get("specUrl")
    return ApiDeployed(
        api=api,
        spec_url=None if spec_url is None else _spec_url(spec_url, where),
        **values,
    )
