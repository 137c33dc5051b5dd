"""Every pattern that vets a name, id or header must refuse what it accepts plus a final newline.

``re.match(r"^name$", "name\\n")`` matches: ``$`` also matches just before a string's last
newline. The validators use ``\\Z``; these tests fail if one goes back to ``$``. (The event
patterns whose segments are ``[^/]+`` take a newline into the segment, which then names no
configured resource; they are not listed.)
"""

from __future__ import annotations

import re

import pytest

from sync import http_api, rollback
from sync.adapters import blob_spec, keyvault, ledger_tables, queue_storage, secrets_env, urlguard
from sync.auth import _TOKEN68
from sync.events import custom, handshake, match
from sync.logs import _TRACEPARENT

ACCEPTED = [
    (custom.API_NAME, "contoso-invoicing"),
    (re.compile(http_api.NAME), "contoso-invoicing"),
    (re.compile(rollback.NAME), "contoso-invoicing"),
    (ledger_tables.NAME, "contoso-invoicing"),
    (ledger_tables.RUN_ID, "0123abcd"),
    (ledger_tables.TABLE_NAME, "syncledger"),
    (ledger_tables.CONTAINER_NAME, "sync-ledger"),
    (queue_storage.QUEUE_NAME, "sync-work"),
    (keyvault.SECRET_NAME, "pp-user-refresh"),
    (secrets_env._NAME, "pp-user-refresh"),
    (urlguard._NAME_RE, "api.example.com"),
    (urlguard._LEGACY_V4_RE, "0x7f000001"),
    (_TOKEN68, "eyJ0eXAi.eyJhdWQi.c2ln"),
    (_TRACEPARENT, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    (handshake._CODE, "512d38b6-c7b8-40c8-89fe-f46f9e9853b5"),
    (handshake._ORIGIN, "eventgrid.azure.net"),
    (match._BLOB_SUBJECT, "/blobServices/default/containers/specs/blobs/invoicing.json"),
    (blob_spec._SUBJECT, "/blobServices/default/containers/specs/blobs/invoicing.json"),
]


@pytest.mark.parametrize(("pattern", "value"), ACCEPTED, ids=[p.pattern[:40] for p, _ in ACCEPTED])
def test_a_final_newline_is_refused(pattern: re.Pattern[str], value: str) -> None:
    assert pattern.match(value), "the sample must be valid, or the test proves nothing"
    assert not pattern.match(value + "\n")
    assert not pattern.search(value + "\n")  # jsonschema applies "pattern" with re.search
