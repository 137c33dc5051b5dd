"""Specs whose version rows did not fit Table Storage: the ledger refused the record only after the
connector had been written, so the connector held the new definition, no version was recorded,
the outcome said "failed" (permanent, never retried) and the pending marker stayed. Now such a
version is recorded: its free text is cut and its change summary shortened until it fits."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from sync.models import SyncRequest
from sync.runs import run_inline
from tests.pipeline.conftest import SPEC_PATH

pytestmark = pytest.mark.azurite

API = "contoso-invoicing"
REQUEST = SyncRequest(api=API, reason="cli", targets=("dev",))


def sync(stack, svc, doc: dict[str, Any]):
    stack.server.set_spec(SPEC_PATH, json.dumps(doc).encode())
    [outcome] = run_inline(REQUEST, svc.map, svc.ports, svc.pipeline).outcomes
    return outcome


def model_spec(fields: list[str], version: str = "1") -> dict[str, Any]:
    """256 operations (the platform's most) answering one model of ``fields``."""
    item = {"type": "object", "properties": {f: {"type": "string"} for f in fields}}
    ok = {"description": "ok", "schema": {"$ref": "#/definitions/Item"}}
    return {
        "swagger": "2.0",
        "info": {"title": "Big", "version": version},
        "host": "x.example",
        "definitions": {"Item": item},
        "paths": {
            f"/p{i}": {"get": {"operationId": f"Op{i}", "responses": {"200": ok}}}
            for i in range(256)
        },
    }


def test_a_40000_character_info_version_is_recorded_cut(stack):
    svc = stack.service()

    outcome = sync(stack, svc, model_spec(["a"], version="9" * 40_000))

    assert outcome.result == "updated", outcome.message
    record = svc.ports.ledger.version(API, "dev", 1)
    assert record is not None and record.info_version == "9" * 255 + "…"
    state = svc.ports.ledger.state(API, "dev")
    assert state.version == 1 and state.pending is None
    assert state.spec_info_version == record.info_version
    written = json.loads(stack.folder("dev").read_text())
    assert written["info"]["version"] == "9" * 40_000  # the connector gets the spec as it is


def test_a_change_too_large_to_describe_is_recorded_with_a_shortened_summary(stack):
    svc = stack.service()
    before = [f"field_{i}_{uuid.uuid4().hex[:8]}" for i in range(300)]
    assert sync(stack, svc, model_spec(before)).result == "updated"
    after = [f"field_{i}_{uuid.uuid4().hex[:8]}" for i in range(300)]  # every field renamed

    outcome = sync(stack, svc, model_spec(after, version="2"))

    assert outcome.result == "updated", outcome.message
    assert [r.version for r in svc.ports.ledger.versions(API, "dev")] == [2, 1]
    record = svc.ports.ledger.version(API, "dev", 2, include_definitions=True)
    assert record.applied == json.loads(stack.folder("dev").read_text())
    summary = record.summary
    assert summary["breaking"] is True and summary["detailsOmitted"] is True
    assert sorted(e["operationId"] for e in summary["changed"]) == sorted(
        f"Op{i}" for i in range(256)
    )
    assert svc.ports.ledger.state(API, "dev").pending is None
