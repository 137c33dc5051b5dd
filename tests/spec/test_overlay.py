"""Overlay 1.0/1.1: the specification's own examples (tests/spec/fixtures) apply as it says."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from sync.errors import SpecError
from sync.spec.overlay import apply_overlay, check_overlay
from sync.spec.parse import load_object

FIXTURES = Path(__file__).with_name("fixtures")


def load(name: str) -> dict[str, Any]:
    return load_object((FIXTURES / name).read_bytes(), source=name)


def ok(description: str = "OK") -> dict[str, Any]:
    return {"responses": {"200": {"description": description}}}


def test_structured_overlay_merges_from_the_root() -> None:
    doc = {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "paths": {"/pets": {"get": ok()}},
    }
    result, warnings = apply_overlay(doc, load("overlay-structured.yaml"))
    assert warnings == []
    assert result["info"] == {
        "title": "t",
        "version": "1",
        "x-overlay-applied": "structured-overlay",
    }
    assert result["paths"]["/"] == {
        "summary": "The root resource",
        "get": {"summary": "Retrieve the root resource", "x-rate-limit": 100},
    }
    assert result["paths"]["/pets"]["get"] == {
        **ok(),
        "summary": "Retrieve a list of pets",
        "x-rate-limit": 100,
    }
    assert result["components"] is None and result["tags"] is None


def test_targeted_overlay_replaces_primitives_and_merges_objects() -> None:
    doc = {
        "paths": {
            "/foo": {"get": {"description": "old foo"}},
            "/bar": {"get": {"description": "old bar"}},
        }
    }
    result, warnings = apply_overlay(doc, load("overlay-targeted.yaml"))
    assert warnings == []
    assert result["paths"]["/foo"]["get"]["description"] == "This is the new description"
    assert result["paths"]["/bar"]["get"]["description"] == "This is the updated description"
    assert result["paths"]["/bar"]["post"] == {
        "description": "This is an updated description of a child object",
        "x-safe": False,
    }


def test_wildcard_overlay_reaches_every_match_and_filters() -> None:
    doc = {
        "paths": {
            "/a": {
                "get": {
                    "parameters": [
                        {"name": "filter", "in": "query"},
                        {"name": "filter", "in": "header"},
                    ]
                }
            },
            "/b": {"get": {"parameters": []}, "post": {}},
        }
    }
    result, warnings = apply_overlay(doc, load("overlay-wildcard.yaml"))
    assert warnings == []
    assert result["paths"]["/a"]["get"]["x-safe"] is True
    assert result["paths"]["/b"]["get"]["x-safe"] is True
    assert "x-safe" not in result["paths"]["/b"]["post"]
    params = result["paths"]["/a"]["get"]["parameters"]
    assert params[0]["schema"] == {"$ref": "#/components/schemas/filterSchema"}
    assert "schema" not in params[1]


def test_update_on_an_array_appends() -> None:
    doc = {"paths": {"/a": {"get": {"parameters": [{"name": "x", "in": "query"}]}}}}
    result, _ = apply_overlay(doc, load("overlay-array-add.yaml"))
    assert result["paths"]["/a"]["get"]["parameters"] == [
        {"name": "x", "in": "query"},
        {"name": "newParam", "in": "query"},
    ]


def test_remove_array_elements_objects_and_primitives() -> None:
    doc = {
        "paths": {
            "/a": {
                "get": {
                    "parameters": [{"name": "dummy"}, {"name": "keep"}, {"name": "dummy"}],
                    "tags": ["dummy", "keep", "dummy"],
                }
            }
        }
    }
    result, _ = apply_overlay(doc, load("overlay-array-remove.yaml"))
    assert result["paths"]["/a"]["get"]["parameters"] == [{"name": "keep"}]
    result, _ = apply_overlay(result, load("overlay-primitive-remove.yaml"))
    assert result["paths"]["/a"]["get"]["tags"] == ["keep"]


def test_traits_example_gives_the_specified_result() -> None:
    result, warnings = apply_overlay(load("traits-source.yaml"), load("overlay-traits.yaml"))
    assert warnings == []
    paged = [{"name": "top", "in": "query"}, {"name": "skip", "in": "query"}]
    assert result["paths"]["/items"]["get"]["parameters"] == paged
    assert result["paths"]["/items/{id}/subitems"]["get"]["parameters"] == [
        {"name": "id", "in": "path", "required": True},
        *paged,
    ]
    assert "parameters" not in result["paths"]["/other"]["get"]


def test_copy_examples() -> None:
    source = load("copy-source.yaml")
    result, _ = apply_overlay(source, load("overlay-copy.yaml"))
    assert result["paths"]["/some-items"] == {"get": ok(), "delete": ok()}
    result, _ = apply_overlay(source, load("overlay-copy-ensure.yaml"))
    assert result["paths"]["/other-items"] == {"get": ok()}
    assert result["paths"]["/some-items"] == {"delete": ok()}
    result, _ = apply_overlay(source, load("overlay-move.yaml"))
    assert result["paths"] == {"/new-items": {"get": ok()}, "/some-items": {"delete": ok()}}
    result["paths"]["/new-items"]["get"]["x"] = 1
    assert "x" not in source["paths"]["/items"]["get"]  # copied, not shared; input untouched


def test_an_action_matching_nothing_is_a_warning_naming_it() -> None:
    overlay = load("overlay-move.yaml")
    overlay["actions"][2]["target"] = "$.paths['/nowhere']"
    result, warnings = apply_overlay(load("copy-source.yaml"), overlay)
    assert warnings == [
        'overlay.actions[2] (moves (renames) the "items" path item to "new-items"): target "$.paths[\'/nowhere\']" matched nothing'
    ]
    assert "/items" in result["paths"]


def test_inputs_are_not_mutated() -> None:
    doc, overlay = load("traits-source.yaml"), load("overlay-traits.yaml")
    snapshot = copy.deepcopy((doc, overlay))
    apply_overlay(doc, overlay)
    assert (doc, overlay) == snapshot


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda o: o.pop("info"), "overlay.(root)"),
        (lambda o: o.__setitem__("overlay", "2.0.0"), "overlay.overlay"),
        (lambda o: o.__setitem__("actions", []), "overlay.actions"),
        (lambda o: o["actions"][0].__setitem__("target", "paths"), "overlay.actions[0].target"),
        (lambda o: o["actions"][0].__setitem__("remove", "yes"), "overlay.actions[0].remove"),
        (lambda o: o["actions"][0].__setitem__("bogus", 1), "overlay.actions[0]"),
        (lambda o: o.__setitem__("unknown", 1), "overlay.(root)"),
        (lambda o: o["info"].__setitem__("description", "1.1 only"), "overlay.info"),
        (lambda o: o["actions"][0].__setitem__("copy", "$.a"), "overlay.actions[0]"),
    ],
)
def test_invalid_overlays_are_refused_with_a_path(mutate: Any, where: str) -> None:
    overlay = load("overlay-array-add.yaml")  # a 1.0.0 overlay
    mutate(overlay)
    with pytest.raises(SpecError) as caught:
        check_overlay(overlay)
    assert caught.value.where == where


def test_bad_jsonpath_and_bad_copy_source_and_incompatible_merge() -> None:
    doc = load("copy-source.yaml")
    bad = {
        "overlay": "1.1.0",
        "info": {"title": "t", "version": "1"},
        "actions": [{"target": "$.paths[", "remove": True}],
    }
    with pytest.raises(SpecError) as caught:
        apply_overlay(doc, bad)
    assert caught.value.where == "overlay.actions[0].target"
    many = {**bad, "actions": [{"target": "$.paths['/items']", "copy": "$.paths.*"}]}
    with pytest.raises(SpecError, match="exactly one") as caught:
        apply_overlay(doc, many)
    assert caught.value.where == "overlay.actions[0].copy"
    clash = {**bad, "actions": [{"target": "$.info", "update": {"title": {"nested": True}}}]}
    with pytest.raises(SpecError, match="incompatible"):
        apply_overlay(doc, clash)
    root = {**bad, "actions": [{"target": "$", "remove": True}]}
    with pytest.raises(SpecError, match="root"):
        apply_overlay(doc, root)
