"""Making a URL fit for a log line, an error message or a ledger row: credentials taken out.

Kept apart from the outbound-URL guard (``sync.adapters.urlguard``) so that code which only shows
URLs -- the pipeline, the event planner -- does not import httpx: the Event Grid trigger plans
without any HTTP client, and an instance that only plans never pays for one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Names whose values are credentials: as URL query parameters (SAS ``sig``, Functions ``code``,
# API keys) and as keys of ``key=value`` / JSON pairs in log text, which ``sync.logs`` masks from
# this same set (bar the few names that are ordinary words in free text, see ``sync.logs``). One
# list, so that a credential named in one place is not left in the clear in the other.
SECRET_NAMES = frozenset(
    {
        "sig",
        "signature",
        "code",
        "key",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apikey",
        "api-key",
        "subscription-key",
        "password",
        "secret",
        "client_secret",
        "client_assertion",  # a signed JWT standing for a client secret
        # Storage and Service Bus connection strings (AccountKey=...;SharedAccessKey=...)
        "accountkey",
        "sharedaccesskey",
        "sharedaccesssignature",
    }
)
# ... and any parameter named like one of these: presigned URLs of other clouds (X-Amz-Signature,
# X-Amz-Credential, X-Amz-Security-Token, X-Goog-Signature, X-Goog-Credential), Event Grid's
# aeg-sas-key / aeg-sas-token, OAuth's id_token. Suffixes, so that api-version or keyName stay.
SECRET_QUERY_SUFFIXES = ("signature", "token", "secret", "key", "credential", "password")
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
            [(k, REDACTED if _is_secret(k) else v) for k, v in pairs],
            safe="/:",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def carries_credential(url: str) -> bool:
    """Whether ``url`` holds what ``redact_url`` takes out because it is a credential: a query
    parameter named like one, or userinfo. Such a URL must not be stored or queued, so a spec at
    one is downloaded when its run is planned (``sync.staging``). A fragment is never sent, and
    input ``urlsplit`` refuses holds nothing usable."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if "@" in parts.netloc:
        return True
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    return any(_is_secret(key) for key, _ in pairs)


def _is_secret(key: str) -> bool:
    name = key.lower()
    return name in SECRET_NAMES or name.endswith(SECRET_QUERY_SUFFIXES)
