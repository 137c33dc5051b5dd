"""Properties over generated small swagger-like documents (hypothesis)."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sync.spec.canonical import compact_bytes, with_member
from sync.spec.diff import diff
from sync.spec.merge import merge3

NAMES = st.sampled_from(["a", "b", "c", "id", "limit"])
TEXT = st.text(alphabet="abcXYZ ", max_size=6)

param = st.fixed_dictionaries(
    {
        "name": NAMES,
        "in": st.sampled_from(["query", "header", "path"]),
        "type": st.sampled_from(["string", "integer", "boolean"]),
    },
    optional={
        "required": st.booleans(),
        "x-ms-summary": TEXT,
        "x-ms-visibility": st.sampled_from(["important", "advanced", "internal"]),
    },
)
operation = st.fixed_dictionaries(
    {
        "parameters": st.lists(param, max_size=3, unique_by=lambda p: (p["name"], p["in"])),
        "responses": st.fixed_dictionaries({"200": st.fixed_dictionaries({"description": TEXT})}),
    },
    optional={
        "operationId": st.sampled_from(["GetA", "GetB", "ListC", "MakeD"]),
        "summary": TEXT,
        "x-ms-trigger": st.just("single"),
    },
)
path_item = st.dictionaries(
    st.sampled_from(["get", "post", "put", "delete"]), operation, min_size=1, max_size=2
)
document = st.builds(
    lambda paths, title, tags: {
        "swagger": "2.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "tags": tags,
    },
    st.dictionaries(st.sampled_from(["/a", "/b", "/c/{id}", "/d"]), path_item, max_size=3),
    TEXT,
    st.lists(st.sampled_from(["x", "y", "z"]), max_size=3, unique=True),
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(document)
def test_diff_of_a_document_with_itself_is_empty(doc: dict[str, Any]) -> None:
    assert diff(doc, doc).is_empty


@FAST
@given(document, document)
def test_merge_without_connector_edits_is_theirs(
    base: dict[str, Any], theirs: dict[str, Any]
) -> None:
    assert merge3(base, base, theirs)[0] == theirs


@FAST
@given(document, document)
def test_merge_without_upstream_change_is_ours(base: dict[str, Any], ours: dict[str, Any]) -> None:
    assert merge3(base, ours, base)[0] == ours


@FAST
@given(document)
def test_merge_of_three_equal_documents_is_that_document(doc: dict[str, Any]) -> None:
    assert merge3(doc, doc, doc) == (doc, [])


@FAST
@given(document, document)
def test_diff_added_removed_are_symmetric(a: dict[str, Any], b: dict[str, Any]) -> None:
    forward, backward = diff(a, b), diff(b, a)
    assert forward.added == backward.removed and forward.removed == backward.added


@FAST
@given(document, document, document)
def test_merge_keeps_upstream_operations_ours_did_not_touch(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    """Any path ours left as base ends up exactly as theirs has it, unless upstream moved an
    operation there from another path (the connector's edits to it follow it)."""
    merged, _ = merge3(base, ours, theirs)
    for path, item in theirs["paths"].items():
        untouched = base["paths"].get(path) == ours["paths"].get(path) and path in ours["paths"]
        if untouched and not _moved_in(base, item, path):
            assert merged["paths"][path] == item


def _moved_in(base: dict[str, Any], item: dict[str, Any], path: str) -> bool:
    """Whether base holds an operationId of ``item`` at another (path, method)."""
    here = {(op["operationId"], (path, m)) for m, op in item.items() if "operationId" in op}
    ids = {op_id for op_id, _ in here}
    return any(
        op.get("operationId") in ids and (op["operationId"], (p, m)) not in here
        for p, base_item in base["paths"].items()
        for m, op in base_item.items()
    )


@FAST
@given(document, st.data())
def test_an_operation_upstream_moved_keeps_the_connectors_edit(
    base: dict[str, Any], data: st.DataObject
) -> None:
    """Upstream moves one operation with a unique operationId to a new path; the connector had
    hidden it: the merge is upstream's document with that operation still hidden, no conflict."""
    located = [
        (path, method, op["operationId"])
        for path, item in base["paths"].items()
        for method, op in item.items()
        if "operationId" in op
    ]
    unique = [loc for loc in located if [x[2] for x in located].count(loc[2]) == 1]
    assume(unique)
    path, method, _ = data.draw(st.sampled_from(unique))
    theirs = copy.deepcopy(base)
    op = theirs["paths"][path].pop(method)
    if not theirs["paths"][path]:
        del theirs["paths"][path]
    theirs["paths"]["/moved"] = {data.draw(st.sampled_from(["get", "patch"])): op}
    ours = copy.deepcopy(base)
    ours["paths"][path][method]["x-ms-visibility"] = "internal"
    expected = copy.deepcopy(theirs)
    next(iter(expected["paths"]["/moved"].values()))["x-ms-visibility"] = "internal"
    assert merge3(base, ours, theirs) == (expected, [])
    assert merge3(base, base, theirs) == (theirs, [])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=6), _json, max_size=4), st.text(max_size=6), _json)
def test_with_member_is_the_compact_encoding_of_the_whole(doc, name, value) -> None:
    """The PATCH body spliced from an already encoded definition is byte-for-byte what encoding
    the whole body would give (the member goes last; a member of that name is replaced)."""
    spliced = with_member(doc, name, compact_bytes(value))
    whole = {k: v for k, v in doc.items() if k != name}
    whole[name] = value
    assert spliced == compact_bytes(whole)
    assert json.loads(spliced) == whole
