"""merge3() compares JSON values type-strictly: Python's ``1 == 1.0 == True`` must not hide a change.

A new upstream that turns an integer default into a boolean (or ``enum: [0, 1]`` into
``[false, true]``) is an API change like any other: when only the API changed the type its typed
value wins; when both sides changed it differently the usual conflict rules apply.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.spec.merge import merge3

LIMIT = "paths./pets.get.parameters.[limit(query)]"
DEEP = ("definitions", "Pet", "properties", "settings", "properties", "flags", "items")


def typed(value: Any) -> str:
    """The JSON text, where ``1``, ``1.0`` and ``true`` differ (plain ``==`` cannot tell them)."""
    return json.dumps(value, sort_keys=True)


def upstream() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "Pets", "version": "1"},
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "ListPets",
                    "summary": "List pets",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "type": "integer",
                            "default": 1,
                            "minimum": 1,
                            "x-ms-dynamic-values": {"operationId": "Sizes", "parameters": {"n": 1}},
                        },
                        {"name": "verbose", "in": "query", "type": "integer", "enum": [0, 1]},
                    ],
                    "responses": {
                        "200": {"description": "ok", "schema": {"$ref": "#/definitions/Pet"}}
                    },
                }
            }
        },
        "definitions": {
            "Pet": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "settings": {
                        "type": "object",
                        "properties": {
                            "flags": {
                                "type": "array",
                                "items": {"type": "integer", "default": 0, "maximum": 10},
                            }
                        },
                    },
                },
            }
        },
    }


def connector(base: dict[str, Any], *, curated: bool) -> dict[str, Any]:
    """The connector's definition: a copy of base (no shared objects), optionally with portal edits
    away from the values the tests retype, so only a per-key decision can get those right."""
    ours = copy.deepcopy(base)
    if curated:
        op = ours["paths"]["/pets"]["get"]
        op["summary"] = "Find pets"
        op["x-ms-visibility"] = "important"
        op["parameters"][0]["x-ms-summary"] = "Max results"
        op["parameters"][1]["x-ms-summary"] = "Verbose"
    return ours


def limit(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["paths"]["/pets"]["get"]["parameters"][0]


def verbose(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["paths"]["/pets"]["get"]["parameters"][1]


def deep(doc: dict[str, Any]) -> dict[str, Any]:
    node: Any = doc
    for key in DEEP:
        node = node[key]
    return node


CURATED = pytest.mark.parametrize("curated", [False, True], ids=["unedited", "curated"])


@CURATED
def test_api_changing_an_integer_default_to_a_boolean_wins(curated: bool) -> None:
    base = upstream()
    ours = connector(base, curated=curated)
    theirs = upstream()
    limit(theirs).update(type="boolean", default=True)
    merged, conflicts = merge3(base, ours, theirs)
    assert limit(merged)["type"] == "boolean"
    assert limit(merged)["default"] is True
    assert conflicts == []


@CURATED
def test_api_changing_an_integer_to_a_float_wins(curated: bool) -> None:
    base = upstream()
    ours = connector(base, curated=curated)
    theirs = upstream()
    limit(theirs)["minimum"] = 1.0
    merged, conflicts = merge3(base, ours, theirs)
    assert typed(limit(merged)["minimum"]) == "1.0"
    assert conflicts == []


@CURATED
def test_type_change_deep_inside_an_otherwise_equal_subtree_wins(curated: bool) -> None:
    """The only change is ``0`` -> ``false`` six levels down: ``ours == theirs`` (unedited) or
    ``ours.definitions == theirs.definitions`` (curated) is True in Python and must not decide."""
    base = upstream()
    ours = connector(base, curated=curated)
    theirs = upstream()
    deep(theirs)["default"] = False
    merged, conflicts = merge3(base, ours, theirs)
    assert deep(merged)["default"] is False
    assert typed(merged["definitions"]) == typed(theirs["definitions"])
    assert conflicts == []


@CURATED
def test_api_changing_an_integer_enum_to_booleans_wins(curated: bool) -> None:
    base = upstream()
    ours = connector(base, curated=curated)
    theirs = upstream()
    verbose(theirs).update(type="boolean", enum=[False, True])
    merged, conflicts = merge3(base, ours, theirs)
    assert typed(verbose(merged)["enum"]) == "[false, true]"
    assert conflicts == []


def test_scalar_lists_changed_on_both_sides_merge_as_sets_of_typed_values() -> None:
    """0 and false are different JSON values: the API replaced 0 by false and added true, the
    connector added 1; each side's change is kept (the existing set rule)."""
    base = upstream()
    verbose(base)["enum"] = [0]
    ours = connector(base, curated=True)
    verbose(ours)["enum"] = [0, 1]
    theirs = upstream()
    verbose(theirs)["enum"] = [False, True]
    merged, conflicts = merge3(base, ours, theirs)
    assert typed(verbose(merged)["enum"]) == "[false, true, 1]"
    assert conflicts == []


def test_a_type_change_on_the_connector_alone_is_kept() -> None:
    base = upstream()
    ours = connector(base, curated=True)
    limit(ours)["default"] = True
    deep(ours)["maximum"] = 10.0
    merged, conflicts = merge3(base, ours, upstream())
    assert limit(merged)["default"] is True
    assert typed(deep(merged)["maximum"]) == "10.0"
    assert conflicts == []


def test_types_changed_differently_on_both_sides_follow_the_conflict_rules() -> None:
    base = upstream()
    ours = connector(base, curated=True)
    limit(ours)["default"] = 1.0
    limit(ours)["x-ms-dynamic-values"]["parameters"]["n"] = 1.0
    theirs = upstream()
    limit(theirs)["default"] = True
    limit(theirs)["x-ms-dynamic-values"]["parameters"]["n"] = True
    merged, conflicts = merge3(base, ours, theirs)
    assert limit(merged)["default"] is True  # the shape: upstream wins
    assert typed(limit(merged)["x-ms-dynamic-values"]["parameters"]["n"]) == "1.0"  # curation
    assert sorted(conflicts) == [
        f"{LIMIT}.default: changed on both sides; upstream value wins",
        f"{LIMIT}.x-ms-dynamic-values.parameters.n: changed on both sides; connector value kept",
    ]


def test_types_are_compared_by_key_whatever_the_key_order() -> None:
    """A merge base read back from canonical JSON has sorted keys: pairing values by position
    would see ``[true, 1]`` on both sides here, though both keys changed type upstream."""
    base = {"a": 1, "b": True}
    ours = {"b": True, "a": 1}
    theirs = {"a": True, "b": 1}
    merged, conflicts = merge3(base, ours, theirs)
    assert typed(merged) == typed(theirs)
    assert conflicts == []


@pytest.mark.parametrize("share", [False, True])
def test_an_unchanged_document_merges_to_itself_without_conflicts(share: bool) -> None:
    doc = upstream()
    deep(doc)["multipleOf"] = 0.5
    merged, conflicts = merge3(doc, copy.deepcopy(doc), copy.deepcopy(doc), share=share)
    assert typed(merged) == typed(doc)
    assert conflicts == []
    ours = connector(doc, curated=True)
    merged, conflicts = merge3(doc, ours, copy.deepcopy(doc), share=share)
    assert typed(merged) == typed(ours)
    assert conflicts == []


SCALARS = st.sampled_from([0, 1, 2, 0.0, 1.0, 2.5, False, True, None, "1", "true"])
KEYS = st.sampled_from(["a", "b", "default", "enum", "x-ms-n"])
TREES = st.recursive(SCALARS, lambda inner: st.dictionaries(KEYS, inner, max_size=3), max_leaves=12)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def retyped(data: st.DataObject, value: Any) -> Any:
    """A copy with some numbers swapped for an ``==``-equal value of another JSON type."""
    if isinstance(value, dict):
        return {key: retyped(data, item) for key, item in value.items()}
    if isinstance(value, list):
        return [retyped(data, item) for item in value]
    if isinstance(value, (bool, int, float)) and float(value).is_integer():
        twins = [value, int(value), float(value)] + ([bool(value)] if value in (0, 1) else [])
        return data.draw(st.sampled_from(twins))
    return value


def leafwise(b: Any, o: Any, t: Any, path: str, conflicts: list[str]) -> Any:
    """The merge rules for three dict trees of one shape, written out leaf by leaf."""
    if isinstance(b, dict):
        return {key: leafwise(b[key], o[key], t[key], f"{path}.{key}", conflicts) for key in b}
    if typed(o) == typed(t) or typed(t) == typed(b):
        return o
    if typed(o) == typed(b):
        return t
    curation = "x-ms-n" in path
    winner = "connector value kept" if curation else "upstream value wins"
    conflicts.append(f"{path[1:]}: changed on both sides; {winner}")
    return o if curation else t


@FAST
@given(st.dictionaries(KEYS, VALUES, max_size=4), st.data())
def test_property_without_connector_edits_the_result_is_theirs_with_its_types(
    base: dict[str, Any], data: st.DataObject
) -> None:
    theirs = retyped(data, base)
    assert typed(merge3(base, copy.deepcopy(base), theirs)[0]) == typed(theirs)


@FAST
@given(st.dictionaries(KEYS, VALUES, max_size=4), st.data())
def test_property_without_upstream_change_the_result_is_ours_with_its_types(
    base: dict[str, Any], data: st.DataObject
) -> None:
    ours = retyped(data, base)
    assert typed(merge3(base, ours, copy.deepcopy(base))[0]) == typed(ours)


@FAST
@given(st.dictionaries(KEYS, TREES, max_size=4), st.data())
def test_property_retyped_on_both_sides_merges_leaf_by_leaf(
    base: dict[str, Any], data: st.DataObject
) -> None:
    ours, theirs = retyped(data, base), retyped(data, base)
    expected_conflicts: list[str] = []
    expected = leafwise(base, ours, theirs, "", expected_conflicts)
    merged, conflicts = merge3(base, ours, theirs)
    assert typed(merged) == typed(expected)
    assert sorted(conflicts) == sorted(expected_conflicts)


@FAST
@given(st.dictionaries(KEYS, VALUES, max_size=4))
def test_property_three_equal_documents_merge_to_that_document(doc: dict[str, Any]) -> None:
    merged, conflicts = merge3(doc, copy.deepcopy(doc), copy.deepcopy(doc), share=True)
    assert typed(merged) == typed(doc)
    assert conflicts == []
