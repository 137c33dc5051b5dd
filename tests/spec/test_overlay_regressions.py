"""Overlay regressions: YAML aliases must not carry an edit outside its target; nested removes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sync.errors import SpecError
from sync.spec.convert import normalize
from sync.spec.overlay import _remove, apply_overlay
from sync.spec.parse import load_object

SHARED = """
swagger: "2.0"
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: GetA
      responses: &ok
        "200": {description: ok}
  /b:
    get:
      operationId: GetB
      responses: *ok
"""


def overlay(*actions: dict[str, Any]) -> dict[str, Any]:
    return {"overlay": "1.0.0", "info": {"title": "o", "version": "1"}, "actions": list(actions)}


def shared_doc() -> dict[str, Any]:
    doc = normalize(load_object(SHARED), owned=True).doc
    assert doc["paths"]["/a"]["get"]["responses"] is doc["paths"]["/b"]["get"]["responses"]
    return doc


def test_update_through_a_yaml_alias_changes_only_its_target() -> None:
    doc = shared_doc()
    target = "$.paths['/a'].get.responses['200']"
    out, warnings = apply_overlay(doc, overlay({"target": target, "update": {"description": "A"}}))
    assert warnings == []
    assert out["paths"]["/a"]["get"]["responses"] == {"200": {"description": "A"}}
    assert out["paths"]["/b"]["get"]["responses"] == {"200": {"description": "ok"}}
    assert doc["paths"]["/a"]["get"]["responses"] == {"200": {"description": "ok"}}


def test_remove_through_a_yaml_alias_leaves_the_other_path() -> None:
    doc = shared_doc()
    target = "$.paths['/a'].get.responses['200']"
    out, _ = apply_overlay(doc, overlay({"target": target, "remove": True}))
    assert out["paths"]["/a"]["get"]["responses"] == {}
    assert out["paths"]["/b"]["get"]["responses"] == {"200": {"description": "ok"}}
    assert doc["paths"]["/b"]["get"]["responses"] == {"200": {"description": "ok"}}


def test_aliased_values_inside_an_update_are_not_shared_afterwards() -> None:
    ov = load_object(
        """
overlay: 1.0.0
info: {title: o, version: "1"}
actions:
  - target: $
    update:
      paths:
        /c: {get: {responses: &r {"200": {description: ok}}}}
        /d: {get: {responses: *r}}
  - target: $.paths['/c'].get.responses['200']
    update: {description: C}
"""
    )
    out, _ = apply_overlay({"swagger": "2.0"}, ov)
    assert out["paths"]["/c"]["get"]["responses"]["200"] == {"description": "C"}
    assert out["paths"]["/d"]["get"]["responses"]["200"] == {"description": "ok"}


def nested_doc() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/a": {
                "get": {
                    "operationId": "A",
                    "x-internal": True,
                    "parameters": [
                        {"name": "q", "in": "query", "type": "string", "x-internal": True}
                    ],
                    "responses": {"200": {"description": "ok"}},
                },
                "post": {
                    "operationId": "B",
                    "parameters": [
                        {"name": "p", "in": "query", "type": "string"},
                        {"name": "h", "in": "header", "type": "string", "x-internal": True},
                        {"name": "r", "in": "query", "type": "string", "x-internal": True},
                    ],
                    "responses": {"200": {"description": "ok"}},
                },
            }
        },
    }


def test_remove_of_nested_matches_removes_the_ancestor_without_a_key_error() -> None:
    doc = nested_doc()
    snapshot = copy.deepcopy(doc)
    action = {
        "target": "$..[?@['x-internal'] == true]",
        "remove": True,
        "description": "drop internal things",
    }
    out, warnings = apply_overlay(doc, overlay(action))
    assert warnings == []
    assert "get" not in out["paths"]["/a"]
    assert [p["name"] for p in out["paths"]["/a"]["post"]["parameters"]] == ["p"]
    assert doc == snapshot


def test_a_remove_path_that_cannot_be_walked_is_a_spec_error() -> None:
    doc = {"a": {"b": "text"}}
    # already gone: nothing to do
    _remove(doc, [("a", "zz", "c")], "overlay.actions[0]")
    assert doc == {"a": {"b": "text"}}
    with pytest.raises(SpecError) as caught:
        _remove(doc, [("a", "b", "c")], "overlay.actions[0]")
    assert caught.value.where == "overlay.actions[0].target"
