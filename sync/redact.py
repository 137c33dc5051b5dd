"""Making a URL fit for a log line, an error message or a ledger row: credentials taken out.

Kept apart from the outbound-URL guard (``sync.adapters.urlguard``) so that code which only shows
URLs -- the pipeline, the event planner -- does not import httpx: the Event Grid trigger plans
without any HTTP client, and an instance that only plans never pays for one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters whose values are credentials (SAS ``sig``, Functions ``code``, API keys).
SECRET_QUERY_KEYS = frozenset(
    {
        "sig",
        "signature",
        "code",
        "key",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "api-key",
        "subscription-key",
        "password",
        "secret",
        "client_secret",
    }
)
REDACTED = "REDACTED"
UNPARSEABLE = "<unparseable URL>"


def redact_url(url: Any) -> str:
    """The URL (a string, or anything whose ``str`` is one, such as ``httpx.URL``) with
    credential-carrying query values (``sig=``, ``code=``...) replaced and userinfo and fragment
    dropped. Input ``urlsplit`` refuses is reduced to a marker rather than shown."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return UNPARSEABLE
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs],
            safe="/:",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
