"""Regression tests for reviewer findings on the 3.x -> 2.0 converter (loss-reporting promise)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sync.errors import SpecError
from sync.spec.convert import normalize
from sync.spec.refs import check_refs
from sync.spec.validate import validate

_INFO = {"title": "t", "version": "1"}


def _params(doc: dict[str, Any], path: str = "/pets", method: str = "get") -> dict[str, Any]:
    return {p["name"]: p for p in normalize(doc).doc["paths"][path][method]["parameters"]}


def test_recursive_ref_outside_components_is_not_inlined_forever() -> None:
    ref = "#/paths/~1tree/get/responses/200/content/application~1json/schema"
    schema = {"type": "object", "properties": {"left": {"$ref": ref}, "right": {"$ref": ref}}}
    doc = {
        "openapi": "3.0.3",
        "info": _INFO,
        "paths": {
            "/tree": {
                "get": {
                    "operationId": "Tree",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"schema": schema}},
                        }
                    },
                }
            }
        },
    }
    check_refs(doc)
    started = time.monotonic()
    n = normalize(doc)
    assert time.monotonic() - started < 1.0
    out = n.doc["paths"]["/tree"]["get"]["responses"]["200"]["schema"]
    # The ref is inlined once; where it comes back on its own path the recursion is cut.
    for side in ("left", "right"):
        inner = out["properties"][side]
        assert inner["type"] == "object"
        assert inner["properties"] == {"left": {}, "right": {}}
        assert any(
            f"properties.{side}.properties.left" in loss and "recursive" in loss
            for loss in n.losses
        ), n.losses


def test_recursive_inlining_still_expands_non_recursive_refs() -> None:
    leaf = "#/paths/~1a/get/responses/200/content/application~1json/schema/properties/leaf"
    doc = {
        "openapi": "3.0.3",
        "info": _INFO,
        "paths": {
            "/a": {
                "get": {
                    "operationId": "A",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "leaf": {"type": "string"},
                                            "x": {"$ref": leaf},
                                            "y": {"$ref": leaf},
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            }
        },
    }
    out = normalize(doc).doc["paths"]["/a"]["get"]["responses"]["200"]["schema"]
    assert out["properties"]["x"] == {"type": "string"}
    assert out["properties"]["y"] == {"type": "string"}


def test_inlining_budget_raises_a_spec_error_naming_the_document() -> None:
    # A wide, non-recursive fan-out: each level refers to the next one 12 times (12**6 nodes).
    schemas: dict[str, Any] = {"L6": {"type": "string"}}
    paths: dict[str, Any] = {}
    for level in range(6):
        target = f"#/paths/~1l{level + 1}/get/responses/200/content/application~1json/schema"
        if level == 5:
            target = "#/components/x-leaf"
        props = {f"p{i}": {"$ref": target} for i in range(12)}
        paths[f"/l{level}"] = {
            "get": {
                "operationId": f"L{level}",
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {"schema": {"type": "object", "properties": props}}
                        },
                    }
                },
            }
        }
    paths["/l6"] = {"get": {"operationId": "L6", "responses": {"200": {"description": "ok"}}}}
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "Fan Out", "version": "1"},
        "paths": paths,
        "components": {"x-leaf": {"type": "string"}, "schemas": schemas},
    }
    started = time.monotonic()
    with pytest.raises(SpecError, match="Fan Out"):
        normalize(doc)
    assert time.monotonic() - started < 5.0


def _param_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": _INFO,
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "List",
                    "parameters": [{"name": "p", "in": "query", "schema": schema}],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
        "components": {
            "schemas": {
                "Status": {"type": "string", "enum": ["a", "b"]},
                "Bounded": {"type": "integer", "minimum": 1},
            }
        },
    }


def test_parameter_all_of_ref_keeps_the_enum() -> None:
    doc = _param_doc({"allOf": [{"$ref": "#/components/schemas/Status"}]})
    p = _params(doc)["p"]
    assert p["type"] == "string"
    assert p["enum"] == ["a", "b"]
    assert "allOf" not in p


def test_parameter_all_of_several_members_are_folded() -> None:
    doc = _param_doc(
        {"allOf": [{"$ref": "#/components/schemas/Bounded"}, {"maximum": 9, "default": 3}]}
    )
    p = _params(doc)["p"]
    assert p["type"] == "integer"
    assert (p["minimum"], p["maximum"], p["default"]) == (1, 9, 3)


def test_parameter_one_of_reduction_is_a_loss() -> None:
    doc = _param_doc({"oneOf": [{"type": "integer"}, {"type": "string", "enum": ["all"]}]})
    n = normalize(doc)
    p = n.doc["paths"]["/pets"]["get"]["parameters"][0]
    assert p["type"] == "integer"
    assert any(
        loss.startswith("paths./pets.get.parameters[0]") and "oneOf" in loss for loss in n.losses
    ), n.losses


def test_parameter_nullable_one_of_is_not_a_loss() -> None:
    doc = _param_doc({"oneOf": [{"$ref": "#/components/schemas/Status"}, {"type": "null"}]})
    n = normalize(doc)
    p = n.doc["paths"]["/pets"]["get"]["parameters"][0]
    assert p["enum"] == ["a", "b"] and p.get("x-nullable") is True
    assert not n.losses, n.losses


def _form_op(
    operation_id: str, media: str, schema: dict[str, Any], *, required: bool = False
) -> dict[str, Any]:
    """An operation whose request body is a form of ``media`` with ``schema``."""
    body: dict[str, Any] = {"content": {media: {"schema": schema}}}
    if required:
        body = {"required": True, **body}
    return {
        "operationId": operation_id,
        "requestBody": body,
        "responses": {"200": {"description": "x"}},
    }


@pytest.mark.parametrize("media", ["multipart/form-data", "application/x-www-form-urlencoded"])
def test_form_body_all_of_ref_becomes_form_data(media: str) -> None:
    doc = {
        "openapi": "3.0.0",
        "info": _INFO,
        "paths": {
            "/u": {
                "post": _form_op(
                    "Upload", media, {"allOf": [{"$ref": "#/components/schemas/F"}]}, required=True
                )
            }
        },
        "components": {
            "schemas": {
                "F": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string"},
                    },
                }
            }
        },
    }
    n = normalize(doc)
    params = {p["name"]: p for p in n.doc["paths"]["/u"]["post"]["parameters"]}
    assert params["file"] == {"name": "file", "in": "formData", "required": True, "type": "file"}
    assert params["name"]["type"] == "string" and params["name"]["required"] is False
    assert not validate(n.doc).errors


def test_form_body_one_of_and_empty_schema_are_losses() -> None:
    doc = {
        "openapi": "3.0.0",
        "info": _INFO,
        "paths": {
            "/u": {
                "post": _form_op(
                    "Upload",
                    "multipart/form-data",
                    {
                        "oneOf": [
                            {"type": "object", "properties": {"a": {"type": "string"}}},
                            {"type": "object", "properties": {"b": {"type": "string"}}},
                        ]
                    },
                )
            },
            "/v": {"post": _form_op("Empty", "multipart/form-data", {"type": "object"})},
        },
    }
    n = normalize(doc)
    assert any(
        loss.startswith("paths./u.post.requestBody") and "oneOf" in loss for loss in n.losses
    ), n.losses
    assert any(loss.startswith("paths./v.post.requestBody") for loss in n.losses), n.losses


def test_component_response_ref_chain_is_inlined() -> None:
    doc = {
        "openapi": "3.0.0",
        "info": _INFO,
        "paths": {
            "/p": {
                "get": {
                    "operationId": "GetP",
                    "responses": {"200": {"$ref": "#/components/responses/A"}},
                }
            }
        },
        "components": {
            "responses": {
                "A": {"$ref": "#/components/responses/B"},
                "B": {
                    "description": "b",
                    "content": {"application/json": {"schema": {"type": "string"}}},
                },
            }
        },
    }
    n = normalize(doc)
    assert n.doc["responses"]["A"] == {"description": "b", "schema": {"type": "string"}}
    assert n.doc["paths"]["/p"]["get"]["responses"]["200"] == {"$ref": "#/responses/A"}
    assert not [w for w in validate(n.doc).warnings if w.startswith("responses.")]


def test_component_response_ref_cycle_is_a_loss_not_a_ref() -> None:
    doc = {
        "openapi": "3.0.0",
        "info": _INFO,
        "paths": {},
        "components": {
            "responses": {
                "A": {"$ref": "#/components/responses/B"},
                "B": {"$ref": "#/components/responses/A"},
            }
        },
    }
    n = normalize(doc)
    assert n.doc["responses"] == {"A": {"description": ""}, "B": {"description": ""}}
    assert any(loss.startswith("components.responses.A") for loss in n.losses), n.losses
