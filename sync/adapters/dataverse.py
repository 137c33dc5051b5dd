"""A custom connector stored as a row of the Dataverse ``connector`` table (Web API v9.2).

This is the solution-aware route (what ``pac connector`` writes). Dataverse application users can
call it, so unlike the PowerApps API it works with a service principal or a managed identity.

Only ``openapidefinition`` is written on update (plus ``displayname`` when configured): connection
parameters, policies, script and icon columns are left exactly as they are. Dataverse stores no
secrets for custom connectors (it blanks them), so there is nothing to re-inject here; OAuth client
secrets of a Dataverse connector are managed through environment variables / the portal.

The column holds at most 500,000 characters, counted by Dataverse as UTF-16 code units of the
compact JSON string; ``size_problem`` checks that before any write.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from sync.adapters.http import json_or_none
from sync.adapters.pp_target import MarkedConnectorTarget, json_object, list_page, next_page
from sync.clouds import Cloud
from sync.errors import ConfigError, TargetError
from sync.models import CurrentConnector
from sync.ports import TokenProvider

log = logging.getLogger(__name__)

SERVICE = "Dataverse Web API"
API_PATH = "api/data/v9.2"
LIMIT_CHARS = 500_000
DISPLAYNAME_UNITS = 200  # connector.displayname, UTF-16 code units (the map loader checks it too)
DESCRIPTION_UNITS = 1000  # connector.description, UTF-16 code units
CUSTOM_CONNECTOR = 1  # connectortype picklist
READ_COLUMNS = (
    "connectorid",
    "name",
    "displayname",
    "description",
    "openapidefinition",
    "connectionparameters",
    "policytemplateinstances",
    "scriptoperations",
    "iconbrandcolor",
    "capabilities",
    "connectortype",
)
_ENTITY_ID = re.compile(r"connectors\(([0-9a-fA-F-]{36})\)")
_ID_NAMESPACE = uuid.UUID("6f1c7a52-2a8e-4f4e-9a53-5b0b8c1d7e11")


def compact_string(definition: dict[str, Any]) -> str:
    return json.dumps(definition, separators=(",", ":"), ensure_ascii=False)


def utf16_length(text: str) -> int:
    """Characters as Dataverse (.NET) counts them: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def utf16_prefix(text: str, units: int) -> str:
    """The longest start of ``text`` that fits in ``units`` UTF-16 code units.

    Dataverse limits string columns (``displayname`` 200, ``description`` 1000) in UTF-16 code
    units, where an astral character such as an emoji counts 2: cutting by Python code points let
    such text through too long, and every create answered 400. The cut never ends between the two
    halves of a surrogate pair: a lone half has no UTF-8 form and is not the character either.
    """
    used = 0  # counted by hand, not encoded: a lone surrogate would make the encoder raise
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            return text[:index]
    return text


def like_literal(text: str) -> str:
    """``text`` as a literal inside a Dataverse ``contains``/``startswith``/``endswith`` value.

    Dataverse evaluates those functions as SQL LIKE: ``%``, ``_`` and ``[...]`` are wildcards
    (learn.microsoft.com/power-apps/developer/data-platform/wildcard-characters). Unescaped, the
    marker ``[connector-sync:api/target]`` was a one-character set that matched nearly every
    connector's description, so the search listed the whole table; a bracketed wildcard character
    is the documented literal (``]`` alone is no wildcard).
    """
    return "".join(f"[{char}]" if char in "[%_" else char for char in text)


def _odata_literal(text: str) -> str:
    return text.replace("'", "''")


class DataverseTarget(MarkedConnectorTarget):
    """One row of the ``connector`` table in one Dataverse organisation."""

    kind = "dataverse"
    service = SERVICE
    adopted_noun = "Dataverse connector"

    def __init__(
        self,
        *,
        api: str,
        name: str,
        params: dict[str, Any],
        cloud: Cloud,
        tokens: TokenProvider,
        client: httpx.Client,
        get_state_connector_id: Callable[[], str | None] | None = None,
        budget_seconds: float = 60,
        verify_seconds: float = 30,
    ) -> None:
        org = str(params.get("org") or "").rstrip("/")
        if not org.startswith(("https://", "http://")):
            raise ConfigError(
                f"dataverse.org must be an https URL, not {org!r}", path=f"{api}/{name}"
            )
        self.org = org
        self.environment: str | None = org
        self.limit_bytes: int | None = None  # the limit is in characters: see limit_chars
        self.limit_chars = LIMIT_CHARS
        super().__init__(
            api=api,
            name=name,
            params=params,
            cloud=cloud,
            tokens=tokens,
            client=client,
            get_state_connector_id=get_state_connector_id,
            budget_seconds=budget_seconds,
            verify_seconds=verify_seconds,
            where=f"{api}/{name} (dataverse {org})",
        )

    # --- Target port ---------------------------------------------------------------------------

    def read(self) -> CurrentConnector:
        cid = self._resolve_id()
        row = self._row(cid, READ_COLUMNS) if cid else None
        if row is None:
            return CurrentConnector(definition=None)
        return CurrentConnector(
            definition=self._definition(row),
            properties={k: v for k, v in row.items() if not k.startswith("@")},
            connector_id=self._connector_id,
        )

    def write(self, definition: dict[str, Any], current: CurrentConnector) -> str | None:
        self._refuse_oversize(definition)
        text = compact_string(definition)
        cid = current.connector_id or self._resolve_id()
        if cid and current.connector_id is None:
            # Is the id still there? On a 404, _row forgets a stale ledger id and switches to the
            # marked connector (or to none: create); write to whichever id it settled on, not to
            # the one it just found gone.
            self._row(cid, ("connectorid",))
            cid = self._connector_id
        if cid:
            body: dict[str, Any] = {"openapidefinition": text}
            if self._params.get("displayName"):
                # sent as configured: the map loader refuses one over DISPLAYNAME_UNITS, because
                # cutting a configured value here would silently rename the connector
                body["displayname"] = self._params["displayName"]
            self._send(
                "PATCH",
                self._url(f"connectors({cid})"),
                headers=lambda: self._headers({"If-Match": "*"}),  # update only, never upsert
                json_body=body,
            )
            log.info("updated Dataverse connector %s for %s", cid, self._where)
            return cid
        return self._create(definition, text)

    def probe(self) -> str:
        """Read-only check for ``doctor``: the connectors row is readable with this token."""
        current = self.read()
        if current.definition is None:
            return "no connector row yet (created on first sync)"
        return f"connector row {current.connector_id}: readable"

    def read_back(self) -> dict[str, Any] | None:
        cid = self._resolve_id()
        row = self._row(cid, ("connectorid", "openapidefinition")) if cid else None
        return self._definition(row) if row else None

    def portal_url(self) -> str | None:
        """The connector row in the organisation's model-driven UI (no environment id is known
        from an org URL, so the maker-portal link cannot be built here)."""
        if not self._connector_id:
            return None
        return f"{self.org}/main.aspx?pagetype=entityrecord&etn=connector&id={self._connector_id}"

    # --- extras -------------------------------------------------------------------------------

    def size_problem(self, definition: dict[str, Any]) -> str | None:
        size = utf16_length(compact_string(definition))
        if size > LIMIT_CHARS:
            return (
                f"definition is {size:,} characters (compact JSON); target {self.name} (dataverse "
                f"openapidefinition column) holds at most {LIMIT_CHARS:,} characters"
            )
        return None

    # --- internals ---------------------------------------------------------------------------

    def _url(self, path: str, query: dict[str, str] | None = None) -> str:
        url = f"{self.org}/{API_PATH}/{path}"
        return f"{url}?{urlencode(query, quote_via=quote, safe=',')}" if query else url

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._tokens.token(self._cloud.dataverse_scope(self.org))}",
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
        }
        headers.update(extra or {})
        return headers

    def _scope(self) -> str:
        return self.org

    def _marked_ids(self) -> list[str]:
        first = self._url(
            "connectors",
            {
                "$select": "connectorid,name,description",
                "$filter": f"contains(description,'{_odata_literal(like_literal(self.marker))}')",
            },
        )
        url: str | None = first
        seen = {first}
        found: list[str] = []
        while url:
            rows, page = list_page(self._send("GET", url), where=self._where)
            marked = [r for r in rows if self.marker in str(r.get("description") or "")]
            if any(not r.get("connectorid") for r in marked):
                raise TargetError(
                    "the list answer has a marked row without connectorid", where=self._where
                )
            found += [str(r["connectorid"]) for r in marked]
            url = next_page(page.get("@odata.nextLink"), first, seen, where=self._where)
        return found

    def _row(self, cid: str, columns: tuple[str, ...]) -> dict[str, Any] | None:
        try:
            response = self._send(
                "GET", self._url(f"connectors({cid})", {"$select": ",".join(columns)})
            )
        except TargetError as exc:
            if exc.status != 404:
                raise
            adopted = self._replace_missing(cid, exc)
            if adopted is None:
                return None
            return self._row(adopted, columns)
        row = json_or_none(response)
        if not isinstance(row, dict):
            # an AttributeError out of read() would end the item without a reason
            raise TargetError(
                f"connector {cid}: the row answer (HTTP {response.status_code}) is not a JSON "
                "object",
                where=self._where,
            )
        return row

    def _definition(self, row: dict[str, Any]) -> dict[str, Any] | None:
        text = row.get("openapidefinition")
        if not text:
            return None
        if not isinstance(text, str):  # json.loads would raise TypeError
            raise TargetError(
                f"connector {row.get('connectorid')}: openapidefinition is a "
                f"{type(text).__name__}, not text",
                where=self._where,
            )
        return json_object(
            text, what=f"connector {row.get('connectorid')}: openapidefinition", where=self._where
        )

    def _create(self, definition: dict[str, Any], text: str) -> str:
        info = definition.get("info") or {}
        # Both columns are limited in UTF-16 code units (see utf16_prefix); the marker is ASCII
        # and must survive whole, so the spec's description gives way to it.
        display = utf16_prefix(
            str(self._params.get("displayName") or info.get("title") or self.api),
            DISPLAYNAME_UNITS,
        )
        base = utf16_prefix(
            str(info.get("description") or ""), DESCRIPTION_UNITS - len(self.marker) - 1
        )
        description = f"{base} {self.marker}".strip()
        # A stable id per (org, api, target): a retried create collides instead of duplicating.
        cid = str(uuid.uuid5(_ID_NAMESPACE, f"{self.org}|{self.api}|{self.name}"))
        slug = re.sub(r"[^A-Za-z0-9]", "", f"{self.api}{self.name}")[:60] or "connector"
        body = {
            "connectorid": cid,
            "name": f"cs_{slug}",
            "displayname": display,
            "description": description,
            "connectortype": CUSTOM_CONNECTOR,
            "openapidefinition": text,
        }
        extra = (
            {"MSCRM.SolutionUniqueName": self._params["solution"]}
            if self._params.get("solution")
            else {}
        )
        try:
            response = self._send(
                "POST",
                self._url("connectors"),
                json_body=body,
                headers=lambda: self._headers(extra),
            )
        except TargetError as exc:
            if exc.status != 412:
                raise
            log.info("connector %s already exists (earlier create); adopting it", cid)
            self._connector_id, self._id_source = cid, "adopted"
            return (
                self.write(definition, CurrentConnector(definition=None, connector_id=cid)) or cid
            )
        found = _ENTITY_ID.search(response.headers.get("OData-EntityId", ""))
        new_id = found.group(1) if found else cid
        self._connector_id, self._id_source = new_id, "created"
        log.info("created Dataverse connector %s for %s", new_id, self._where)
        return new_id
