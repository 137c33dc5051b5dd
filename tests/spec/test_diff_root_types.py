"""Regression: breaking changes the diff used to miss (same-name inputs in two locations, the
body's and the response's own top-level type)."""

from __future__ import annotations

import copy
from typing import Any

from sync.spec.diff import diff


def doc(params: list[dict[str, Any]], resp: dict[str, Any] | None = None) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "ok", **({"schema": resp} if resp else {})}
    return {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/x": {"post": {"operationId": "Op", "parameters": params, "responses": {"200": ok}}}
        },
    }


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, bool]]:
    result = diff(old, new)
    return [(c.kind, c.message, c.breaking) for oc in result.changed for c in oc.changes]


def test_a_same_name_input_in_another_location_does_not_hide_a_removal() -> None:
    query = {"name": "id", "in": "query", "type": "string", "required": True}
    header = {"name": "id", "in": "header", "type": "string"}
    old, new = doc([query, header]), doc([header])
    assert changes(old, new) == [("input-removed", "input 'id' (query) removed", True)]
    assert diff(old, new).breaking
    # and the other way round: the required query input coming back is a new required input
    assert changes(new, old) == [("input-added-required", "new required input 'id' (query)", True)]


def test_a_same_name_input_retyped_in_one_location_only() -> None:
    old = doc(
        [
            {"name": "id", "in": "query", "type": "string"},
            {"name": "id", "in": "header", "type": "string"},
        ]
    )
    new = copy.deepcopy(old)
    new["paths"]["/x"]["post"]["parameters"][1]["type"] = "integer"
    assert changes(old, new) == [
        ("input-retyped", "input 'id' (header) type string -> integer", True)
    ]


def test_a_single_input_changing_location_is_still_moved() -> None:
    old = doc([{"name": "id", "in": "query", "type": "string"}])
    new = doc([{"name": "id", "in": "header", "type": "string"}])
    assert changes(old, new) == [("input-moved", "input 'id' moved from query to header", False)]


def test_b_body_retyped_string_to_integer_is_breaking() -> None:
    old = doc([{"name": "body", "in": "body", "required": True, "schema": {"type": "string"}}])
    new = doc([{"name": "body", "in": "body", "required": True, "schema": {"type": "integer"}}])
    assert changes(old, new) == [("input-retyped", "input 'body' type string -> integer", True)]
    assert diff(old, new).breaking


def test_c_body_retyped_object_to_array_is_breaking() -> None:
    old = doc([{"name": "body", "in": "body", "schema": {"type": "object"}}])
    new = doc(
        [{"name": "body", "in": "body", "schema": {"type": "array", "items": {"type": "object"}}}]
    )
    got = {kind: breaking for kind, _, breaking in changes(old, new)}
    assert got.get("input-retyped") is True
    assert diff(old, new).breaking


def test_d_response_retyped_string_to_integer_is_breaking() -> None:
    old, new = doc([], {"type": "string"}), doc([], {"type": "integer"})
    assert changes(old, new) == [("output-retyped", "response type string -> integer", True)]
    assert diff(old, new).breaking


def test_d_response_object_to_array_is_breaking() -> None:
    fields = {"type": "object", "properties": {"a": {"type": "string"}}}
    old, new = doc([], fields), doc([], {"type": "array", "items": fields})
    got = {kind: breaking for kind, _, breaking in changes(old, new)}
    assert got.get("output-retyped") is True


def test_unchanged_documents_still_diff_empty() -> None:
    for old in (
        doc(
            [
                {"name": "id", "in": "query", "type": "string", "required": True},
                {"name": "id", "in": "header", "type": "string"},
                {"name": "body", "in": "body", "schema": {"type": "array", "items": {}}},
            ],
            {"type": "string"},
        ),
        doc([{"name": "body", "in": "body", "schema": {"type": "integer"}}], {"type": "object"}),
    ):
        result = diff(old, copy.deepcopy(old))
        assert result.is_empty and not result.breaking
