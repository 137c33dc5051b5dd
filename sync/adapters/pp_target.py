"""What the PowerApps and Dataverse targets share: finding *their* connector and calling the API.

Both targets must answer the same question before every read or write -- which connector is
ours? -- and must answer it the same way, or one of them drifts into creating duplicates: the
configured id wins, then the id the ledger remembers, then the one connector whose description
carries ``[connector-sync:<api>/<target>]``. A remembered id that the platform no longer knows is
forgotten (the connector was deleted by hand) and the marker search runs again; a configured id
that is gone is an error, because the sync map is wrong and a new connector would hide that.

Subclasses say how to list marked connectors (``_marked_ids``) and where they live (``_scope``);
the rest is one rule for both.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from sync.adapters.pp_errors import send
from sync.clouds import Cloud
from sync.errors import TargetError, TransientError
from sync.ports import TokenProvider
from sync.spec.canonical import canonical_bytes
from sync.spec.parse import unpaired_surrogate

log = logging.getLogger(__name__)


def marker(api: str, target: str) -> str:
    """The tag in the connector description that says which (api, target) created it."""
    return f"[connector-sync:{api}/{target}]"


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """JSON pointer of the first place two documents differ (for read-back messages)."""
    if type(a) is not type(b):
        return path or "/"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}/{key}"
            found = first_difference(a[key], b[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return path or "/"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}/{i}")
            if found:
                return found
        return None
    return None if a == b else (path or "/")


def verify(
    read_back: Callable[[], dict[str, Any] | None],
    definition: dict[str, Any],
    *,
    seconds: float,
    where: str,
) -> None:
    """Poll ``read_back`` until it equals ``definition`` (canonical JSON) or time runs out."""
    expected: bytes | None = None  # canonical JSON, built once
    deadline = time.monotonic() + seconds
    pause = 0.2
    while True:
        got = read_back()
        if got is not None:
            if got is definition:
                return
            # canonical bytes, not ==: Python's equality takes 1, 1.0 and true for one another
            expected = expected or canonical_bytes(definition)
            if canonical_bytes(got) == expected:
                return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            where_diff = (
                "the connector has no definition"
                if got is None
                else (f"first difference at {first_difference(definition, got)}")
            )
            raise TargetError(
                f"read-back does not match the written definition after {seconds:g}s ({where_diff})",
                where=where,
            )
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 5.0)


def json_object(text: str | bytes, *, what: str, where: str) -> dict[str, Any]:
    """A stored definition as the platform returned it: JSON, and an object, or a TargetError
    naming ``what`` (which connector, which property or URL)."""
    try:
        document = json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise TargetError(f"{what} is not JSON ({exc})", where=where) from None
    except RecursionError:  # nested deeper than the parser goes: no definition is
        raise TargetError(f"{what} is not JSON (nested too deep)", where=where) from None
    if not isinstance(document, dict):
        raise TargetError(f"{what} is not a JSON object", where=where)
    if unpaired_surrogate(document, text if isinstance(text, str) else None):
        # no UTF-8 form: hashing it raised UnicodeEncodeError, which is no SyncError
        raise TargetError(
            f"{what} holds an unpaired surrogate escape (\\ud800-\\udfff), which has no UTF-8 form",
            where=where,
        )
    return document


def list_page(
    response: httpx.Response, *, where: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A list answer's ``value`` rows and the page itself (for its next link), or a TargetError:
    a gateway's HTML or an answer of another shape must end the item with a reason, not with an
    AttributeError that gets it retried until poisoned."""
    try:
        page = response.json()
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        raise TargetError(
            f"the list answer (HTTP {response.status_code}) is not JSON", where=where
        ) from None
    rows = page.get("value") if isinstance(page, dict) else None
    # no fallback for a missing or null "value": read as "no connectors", it made the marker
    # search find nothing and a second connector be created
    if not isinstance(page, dict) or not isinstance(rows, list):
        raise TargetError("the list answer is not an object with a 'value' array", where=where)
    if not all(isinstance(row, dict) for row in rows):
        raise TargetError("the list answer's 'value' holds a non-object", where=where)
    return rows, page


MAX_LIST_PAGES = 100  # a marker search never needs more; a longer chain is a broken service


def next_page(link: Any, first: str, seen: set[str], *, where: str) -> str | None:
    """The next list page to GET, or None. The link comes from the remote answer and our bearer
    token goes with it, so it must stay on the first page's origin; a repeated link or an endless
    chain is refused instead of looping."""
    from urllib.parse import urlsplit

    if not link:
        return None
    text = str(link)
    try:
        here, there = urlsplit(first), urlsplit(text)
    except ValueError:  # e.g. "https://[bad/x"; not shown: it may be long, or carry a signature
        raise TargetError(
            "the list answer's nextLink is not a URL; not followed", where=where
        ) from None
    if (there.scheme.lower(), there.netloc.lower()) != (here.scheme.lower(), here.netloc.lower()):
        raise TargetError(
            f"the list answer's nextLink points at {there.scheme}://{there.netloc}, not at "
            f"{here.scheme}://{here.netloc}; not followed (our token would go with it)",
            where=where,
        )
    if text in seen or len(seen) >= MAX_LIST_PAGES:
        raise TargetError(
            f"the list answer's nextLink repeats or passes {MAX_LIST_PAGES} pages; stopped",
            where=where,
        )
    seen.add(text)
    return text


class MarkedConnectorTarget:
    """A connector found by configured id, ledger id or description marker; see the module doc.

    Subclasses set ``kind`` (also the sync-map key: ``<kind>.connector``), ``service`` (named in
    error messages), ``adopted_noun`` (named in the adoption log line) and implement
    ``_marked_ids``, ``_scope`` and ``_headers``.
    """

    kind: str
    service: str
    adopted_noun = "connector"

    def __init__(
        self,
        *,
        api: str,
        name: str,
        params: dict[str, Any],
        cloud: Cloud,
        tokens: TokenProvider,
        client: httpx.Client,
        get_state_connector_id: Callable[[], str | None] | None,
        budget_seconds: float,
        verify_seconds: float,
        where: str,
    ) -> None:
        self.api = api
        self.name = name
        self._params = params
        self._cloud = cloud
        self._tokens = tokens
        self._client = client
        self._state_id = get_state_connector_id
        self._budget = budget_seconds
        self._verify_seconds = verify_seconds
        self._connector_id: str | None = None
        self._id_source: str | None = None  # "config" | "state" | "adopted" | "created"
        self._state_stale = False  # the ledger's id points at a deleted connector
        self._where = where
        self.marker = marker(api, name)

    @property
    def connector_label(self) -> str | None:
        return (
            self._params.get("displayName") or self._connector_id or self._params.get("connector")
        )

    def verify(self, definition: dict[str, Any], sha256: str | None = None) -> None:
        """Read back until the platform serves ``definition`` or ``verify_seconds`` pass
        (``sha256``, its canonical hash, is a hint some platforms' reads can use)."""
        verify(self.read_back, definition, seconds=self._verify_seconds, where=self._where)

    def read_back(self) -> dict[str, Any] | None:  # pragma: no cover - every subclass has one
        raise NotImplementedError

    # --- for subclasses ------------------------------------------------------------------------

    def _scope(self) -> str:  # pragma: no cover - every subclass has one
        """Where the connector lives, as the not-found message names it."""
        raise NotImplementedError

    def _marked_ids(self) -> list[str]:  # pragma: no cover - every subclass has one
        """Ids of every connector whose description carries ``self.marker``."""
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:  # pragma: no cover - every subclass has one
        raise NotImplementedError

    def _hint(self, status: int, code: str | None) -> str | None:
        """Advice appended to a refusal; none unless the subclass knows the API's pitfalls."""
        return None

    def _refuse_oversize(self, definition: dict[str, Any]) -> None:
        problem = self.size_problem(definition)
        if problem:
            raise TargetError(problem, where=self._where)

    def size_problem(self, definition: dict[str, Any]) -> str | None:  # pragma: no cover
        raise NotImplementedError

    def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Callable[[], dict[str, str]] | None = None,
        where: str | None = None,
        resend_unanswered: bool = True,
        budget_seconds: float | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> httpx.Response:
        """One call with the shared retry policy, this target's token headers and hint.
        ``resend_unanswered=False`` for calls that are not idempotent (a create);
        ``budget_seconds`` shortens the retry budget (never lengthens it)."""
        return send(
            self._client,
            method,
            url,
            service=self.service,
            where=where or self._where,
            budget_seconds=min(self._budget, budget_seconds or self._budget),
            headers=headers or self._headers,
            json_body=json_body,
            content=content,
            hint=self._hint,
            resend_unanswered=resend_unanswered,
            on_sent=on_sent,
        )

    def _resolve_id(self) -> str | None:
        if self._connector_id:
            return self._connector_id
        configured = self._params.get("connector")
        if configured:
            self._connector_id, self._id_source = str(configured), "config"
            return self._connector_id
        from_state = self._state_id() if self._state_id and not self._state_stale else None
        if from_state:
            self._connector_id, self._id_source = str(from_state), "state"
            return self._connector_id
        adopted = self._find_marked()
        if adopted:
            self._connector_id, self._id_source = adopted, "adopted"
            log.info(
                "adopted %s %s (description marker) for %s", self.adopted_noun, adopted, self._where
            )
        return adopted

    def _find_marked(self) -> str | None:
        found = self._marked_ids()
        if len(found) > 1:
            raise TargetError(
                f"{len(found)} connectors carry the marker {self.marker}: {', '.join(found)}; "
                f"set {self.kind}.connector to the one to keep",
                where=self._where,
            )
        return found[0] if found else None

    def _replace_missing(self, cid: str, exc: TargetError) -> str | None:
        """After a 404 on ``cid``: the marked connector to use instead, or None to create one."""
        if self._id_source == "config":
            raise TargetError(
                f"connector {cid} was not found in {self._scope()} ({self.kind}.connector): "
                f"{exc.message}",
                where=self._where,
                status=404,
                code=exc.code,
                tracking_id=exc.tracking_id,
            ) from None
        log.warning(
            "connector %s (from %s) no longer exists; looking for the marker",
            cid,
            self._id_source,
        )
        self._connector_id = self._id_source = None
        self._state_stale = True
        adopted = self._find_marked()
        if adopted == cid:
            # listed with the marker, yet its GET answers 404 (deleted, the list not caught up):
            # asking again at once recursed until Python's limit, ~1,900 requests an attempt
            raise TransientError(
                f"connector {cid} is listed with the marker {self.marker} but reading it "
                "answers 404; the list may lag behind a deletion",
                where=self._where,
            )
        if adopted is not None:
            self._connector_id, self._id_source = adopted, "adopted"
        return adopted
