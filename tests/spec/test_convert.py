"""OpenAPI 3.x -> Swagger 2.0: unit cases per construct, then every real OpenAPI 3 document."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sync.errors import SpecError
from sync.spec.convert import normalize, operation_id_for
from sync.spec.refs import check_refs
from sync.spec.validate import validate
from tests.spec import corpus


def _doc(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"openapi": "3.0.3", "info": {"title": "T", "version": "1"}, "paths": {}}
    doc.update(extra)
    return doc


def _op(doc: dict[str, Any], path: str = "/x", method: str = "post") -> dict[str, Any]:
    return doc["paths"][path][method]


@pytest.mark.parametrize(
    "doc",
    [
        {"info": {}, "paths": {}},
        {"swagger": "1.2"},
        {"swagger": 2.0},
        {"openapi": "2.0"},
        {"openapi": "4.0.0"},
        {"openapi": 3.0},
    ],
)
def test_neither_swagger_2_nor_openapi_3_is_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="neither"):
        normalize(doc)


def test_swagger_2_passes_through_as_a_copy() -> None:
    doc = {"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {"/a": {}}}
    result = normalize(doc)
    assert result.doc == doc
    assert result.doc is not doc and result.doc["paths"] is not doc["paths"]
    assert (result.losses, result.source_version) == ([], "2.0")


def test_servers_variables_resolve_to_defaults_and_extras_are_losses() -> None:
    doc = _doc(
        servers=[
            {
                "url": "{scheme}://api.example.com:8443/{base}/",
                "variables": {"scheme": {"default": "https"}, "base": {"default": "v2"}},
            },
            {"url": "https://backup.example.com"},
        ]
    )
    result = normalize(doc)
    assert result.doc["host"] == "api.example.com:8443"
    assert result.doc["basePath"] == "/v2"
    assert result.doc["schemes"] == ["https"]
    assert any(loss.startswith("servers:") and "extra server" in loss for loss in result.losses)


def test_relative_server_becomes_base_path_only() -> None:
    result = normalize(_doc(servers=[{"url": "/api/v1"}]))
    assert result.doc["basePath"] == "/api/v1"
    assert "host" not in result.doc


def test_components_become_definitions_parameters_responses_with_refs_rewritten() -> None:
    doc = _doc(
        paths={
            "/pets/{id}": {
                "get": {
                    "operationId": "GetPet",
                    "parameters": [{"$ref": "#/components/parameters/Id"}],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}
                            },
                        },
                        "404": {"$ref": "#/components/responses/NotFound"},
                    },
                }
            }
        },
        components={
            "schemas": {
                "Pet": {
                    "type": "object",
                    "properties": {"owner": {"$ref": "#/components/schemas/Owner"}},
                },
                "Owner": {"type": "string"},
            },
            "parameters": {
                "Id": {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
            },
            "responses": {"NotFound": {"description": "missing"}},
        },
    )
    out = normalize(doc).doc
    op = out["paths"]["/pets/{id}"]["get"]
    assert op["parameters"] == [{"$ref": "#/parameters/Id"}]
    assert out["parameters"]["Id"] == {
        "name": "id",
        "in": "path",
        "required": True,
        "type": "integer",
    }
    assert op["responses"]["200"]["schema"] == {"$ref": "#/definitions/Pet"}
    assert op["responses"]["404"] == {"$ref": "#/responses/NotFound"}
    assert out["definitions"]["Pet"]["properties"]["owner"] == {"$ref": "#/definitions/Owner"}
    assert op["produces"] == ["application/json"]
    assert validate(out).ok


def test_json_request_body_becomes_one_body_parameter() -> None:
    doc = _doc(
        paths={
            "/x": {
                "post": {
                    "operationId": "Make",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "application/xml": {"schema": {"type": "object"}},
                            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                        },
                    },
                    "responses": {"201": {"description": "made"}},
                }
            }
        }
    )
    result = normalize(doc)
    op = _op(result.doc)
    assert op["parameters"] == [
        {"name": "body", "in": "body", "required": True, "schema": {"type": "object"}}
    ]
    assert op["consumes"] == ["application/json", "application/xml"]
    assert any("form media" in loss for loss in result.losses)


def test_form_request_body_becomes_form_data_with_files() -> None:
    doc = _doc(
        paths={
            "/x": {
                "post": {
                    "operationId": "Upload",
                    "requestBody": {
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {
                                        "file": {"type": "string", "format": "binary"},
                                        "note": {"type": "string", "description": "why"},
                                        "tags": {"type": "array", "items": {"type": "string"}},
                                    },
                                }
                            }
                        }
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        }
    )
    op = _op(normalize(doc).doc)
    params = {p["name"]: p for p in op["parameters"]}
    assert params["file"] == {"name": "file", "in": "formData", "required": True, "type": "file"}
    assert params["note"]["type"] == "string" and params["note"]["required"] is False
    assert params["tags"]["collectionFormat"] == "multi"
    assert op["consumes"] == ["multipart/form-data"]


def test_nullable_and_type_arrays_become_x_nullable() -> None:
    doc = _doc(
        openapi="3.1.0",
        components={
            "schemas": {
                "A": {"type": "string", "nullable": True},
                "B": {"type": ["integer", "null"]},
                "C": {"type": ["string", "integer"]},
                "D": {"anyOf": [{"$ref": "#/components/schemas/A"}, {"type": "null"}]},
            }
        },
    )
    result = normalize(doc)
    defs = result.doc["definitions"]
    assert defs["A"] == {"type": "string", "x-nullable": True}
    assert defs["B"] == {"type": "integer", "x-nullable": True}
    assert "type" not in defs["C"]
    assert any(loss.startswith("components.schemas.C.type") for loss in result.losses)
    assert defs["D"] == {"$ref": "#/definitions/A", "x-nullable": True}


def test_one_of_objects_become_a_union_object_with_a_loss() -> None:
    doc = _doc(
        components={
            "schemas": {
                "Cat": {
                    "type": "object",
                    "required": ["name", "claws"],
                    "properties": {"name": {"type": "string"}, "claws": {"type": "integer"}},
                },
                "Dog": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "bark": {"type": "boolean"}},
                },
                "Pet": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/Cat"},
                        {"$ref": "#/components/schemas/Dog"},
                    ]
                },
                "Id": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            }
        }
    )
    result = normalize(doc)
    pet = result.doc["definitions"]["Pet"]
    assert pet["type"] == "object"
    assert set(pet["properties"]) == {"name", "claws", "bark"}
    assert pet["required"] == ["name"]
    assert result.doc["definitions"]["Id"] == {"type": "string"}
    assert any(loss.startswith("components.schemas.Pet.oneOf") for loss in result.losses)
    assert any(
        loss.startswith("components.schemas.Id.anyOf") and "first" in loss for loss in result.losses
    )


def test_all_of_is_kept() -> None:
    doc = _doc(
        components={
            "schemas": {
                "A": {"type": "object"},
                "B": {
                    "allOf": [
                        {"$ref": "#/components/schemas/A"},
                        {"type": "object", "properties": {"x": {"type": "string"}}},
                    ]
                },
            }
        }
    )
    result = normalize(doc)
    assert result.doc["definitions"]["B"]["allOf"][0] == {"$ref": "#/definitions/A"}
    assert result.losses == []


@pytest.mark.parametrize(
    ("scheme", "expected", "lossy"),
    [
        ({"type": "http", "scheme": "basic"}, {"type": "basic"}, False),
        (
            {"type": "http", "scheme": "bearer"},
            {"type": "apiKey", "name": "Authorization", "in": "header"},
            True,
        ),
        (
            {"type": "apiKey", "name": "k", "in": "query"},
            {"type": "apiKey", "name": "k", "in": "query"},
            False,
        ),
        ({"type": "apiKey", "name": "k", "in": "cookie"}, None, True),
        ({"type": "openIdConnect", "openIdConnectUrl": "https://x/.well-known"}, None, True),
        ({"type": "http", "scheme": "digest"}, None, True),
        (
            {
                "type": "oauth2",
                "flows": {"implicit": {"authorizationUrl": "https://a", "scopes": {"r": "read"}}},
            },
            {
                "type": "oauth2",
                "flow": "implicit",
                "authorizationUrl": "https://a",
                "scopes": {"r": "read"},
            },
            False,
        ),
        (
            {
                "type": "oauth2",
                "flows": {
                    "authorizationCode": {
                        "authorizationUrl": "https://a",
                        "tokenUrl": "https://t",
                        "scopes": {},
                    }
                },
            },
            {
                "type": "oauth2",
                "flow": "accessCode",
                "authorizationUrl": "https://a",
                "tokenUrl": "https://t",
                "scopes": {},
            },
            False,
        ),
        (
            {
                "type": "oauth2",
                "flows": {"clientCredentials": {"tokenUrl": "https://t", "scopes": {}}},
            },
            {"type": "oauth2", "flow": "application", "tokenUrl": "https://t", "scopes": {}},
            False,
        ),
        (
            {
                "type": "oauth2",
                "flows": {
                    "password": {"tokenUrl": "https://t", "scopes": {}},
                    "clientCredentials": {"tokenUrl": "https://t", "scopes": {}},
                },
            },
            {"type": "oauth2", "flow": "password", "tokenUrl": "https://t", "scopes": {}},
            True,
        ),
    ],
)
def test_security_schemes(
    scheme: dict[str, Any], expected: dict[str, Any] | None, lossy: bool
) -> None:
    doc = _doc(components={"securitySchemes": {"s": scheme}}, security=[{"s": []}])
    result = normalize(doc)
    assert result.doc.get("securityDefinitions", {}).get("s") == expected
    assert bool(result.losses) is lossy
    assert result.doc["security"] == ([{"s": []}] if expected else [])


def test_what_2_0_cannot_say_is_dropped_with_a_loss_entry() -> None:
    doc = _doc(
        openapi="3.1.0",
        webhooks={"ping": {}},
        paths={
            "/x": {
                "summary": "path summary",
                "post": {
                    "operationId": "Sub",
                    "parameters": [
                        {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                        {
                            "name": "q",
                            "in": "query",
                            "schema": {"type": "string"},
                            "examples": {"a": {"value": "1"}},
                        },
                    ],
                    "callbacks": {"onEvent": {}},
                    "responses": {"200": {"description": "ok", "links": {"next": {}}}},
                },
                "trace": {"responses": {"200": {"description": "ok"}}},
            }
        },
        components={"examples": {"e": {}}, "links": {"l": {}}},
    )
    result = normalize(doc)
    op = _op(result.doc)
    assert [p["name"] for p in op["parameters"]] == ["q"]
    assert "callbacks" not in op and "trace" not in result.doc["paths"]["/x"]
    joined = "\n".join(result.losses)
    for where in (
        "webhooks:",
        "paths./x.summary:",
        "paths./x.post.parameters[0]: cookie",
        "paths./x.post.parameters[1].examples:",
        "paths./x.post.callbacks:",
        "paths./x.post.responses.200.links:",
        "paths./x.trace:",
        "components.examples:",
        "components.links:",
    ):
        assert where in joined, where


def test_missing_operation_ids_are_generated_stably() -> None:
    doc = _doc(
        paths={
            "/pets/{pet-id}/toys": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/pets/{pet_id}/toys": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/ok": {"get": {"operationId": "Keep", "responses": {"200": {"description": "ok"}}}},
        }
    )
    first = normalize(doc)
    again = normalize(copy.deepcopy(doc))
    ids = first.generated_operation_ids
    assert ids == ["GetPetsPetIdToys", "GetPetsPetIdToys2"]
    assert again.generated_operation_ids == ids
    assert first.doc["paths"]["/ok"]["get"]["operationId"] == "Keep"
    assert all("-" not in i and "_" not in i for i in ids)
    assert operation_id_for("delete", "/a_b/{c-d}") == "DeleteABCD"


def test_input_is_not_mutated() -> None:
    doc = corpus.openapi3("swagger-petstore-v3.yaml")
    before = copy.deepcopy(doc)
    normalize(doc)
    assert doc == before


@pytest.mark.parametrize("name", corpus.openapi3_files())
def test_every_openapi3_document_keeps_every_operation_and_validates(name: str) -> None:
    doc = corpus.openapi3(name)
    check_refs(doc)
    source_ops = corpus.count_operations(doc, (*corpus.METHODS, "trace"))
    result = normalize(doc)
    assert result.source_version.startswith("3.")
    assert result.doc["swagger"] == "2.0"
    assert corpus.count_operations(result.doc) == source_ops
    ids = [
        op["operationId"]
        for item in result.doc["paths"].values()
        for m, op in item.items()
        if m in corpus.METHODS
    ]
    assert len(ids) == len(set(ids))
    report = validate(result.doc)
    assert report.errors == []
    check_refs(result.doc)  # converted refs are still local


def test_spotify_dates_stay_strings() -> None:
    doc = corpus.openapi3("spotify-web-api.yml")
    assert isinstance(doc["info"]["version"], str)
    out = normalize(doc).doc
    dates = []
    stack: list[Any] = [out]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if (
                    key in ("example", "default")
                    and isinstance(value, str)
                    and value[:4].isdigit()
                    and value[4:5] == "-"
                ):
                    dates.append(value)
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    assert dates, "expected date-like examples in the Spotify document"
    import json

    json.dumps(out)  # no date objects anywhere


def test_callback_example_reports_the_callback_and_generates_ids() -> None:
    result = normalize(corpus.openapi3("oai-callback-example.yaml"))
    assert any("callbacks" in loss for loss in result.losses)
    assert result.generated_operation_ids


def test_swagger2_is_copied_unless_the_caller_owns_it() -> None:
    doc = {"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}}
    copied = normalize(doc).doc
    assert copied == doc and copied is not doc and copied["info"] is not doc["info"]
    assert normalize(doc, owned=True).doc is doc  # no 20 ms copy of what was just parsed


def test_accept_content_type_and_authorization_headers_are_ignored_as_openapi_3_says() -> None:
    """OpenAPI 3: such a header parameter "SHALL be ignored". Converted, every action would show
    an Authorization input beside the connector's own security, and a Content-Type input that
    can contradict ``consumes``. Other headers, and the same names in the query, stay."""
    header = {"in": "header", "schema": {"type": "string"}}
    doc = _doc(
        paths={
            "/x": {
                "post": {
                    "operationId": "Send",
                    "parameters": [
                        {"name": "Authorization", "required": True, **header},
                        {"name": "content-type", **header},
                        {"$ref": "#/components/parameters/accept"},
                        {"name": "X-Tenant", **header},
                        {"name": "accept", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
        components={"parameters": {"accept": {"name": "ACCEPT", **header}}},
    )
    result = normalize(doc)
    op = _op(result.doc)
    assert [(p.get("name"), p.get("in")) for p in op["parameters"]] == [
        ("X-Tenant", "header"),
        ("accept", "query"),
    ]
    assert "accept" not in result.doc.get("parameters", {})
    joined = "\n".join(result.losses)
    for where, name in (
        ("paths./x.post.parameters[0]:", "'Authorization' is ignored"),
        ("paths./x.post.parameters[1]:", "'content-type' is ignored"),
        ("components.parameters.accept:", "'ACCEPT' is ignored"),
    ):
        assert f"{where} header parameter {name}" in joined, (where, joined)
    assert "paths./x.post.parameters[2]: parameter #/components/parameters/accept dropped" in joined
    assert validate(result.doc).ok


def test_object_alternatives_sharing_a_property_take_the_union_of_its_enums() -> None:
    """OpenAI's chat message is a oneOf of message types, each with its own role enum; the first
    alternative's property alone left a connector that can send 'system' messages only (found
    by review 2026-12-07 on the corpus's openai document)."""

    def message(role: str, extra: str) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": {"type": "string", "enum": [role]},
                extra: {"type": "string"},
            },
        }

    doc = _doc(
        components={
            "schemas": {
                "Message": {
                    "oneOf": [
                        message("system", "content"),
                        message("user", "content"),
                        message("tool", "tool_call_id"),
                        {"type": "object", "properties": {"role": {"type": "string"}}},
                    ]
                },
                "Two": {"oneOf": [message("system", "a"), message("user", "b")]},
            }
        }
    )
    result = normalize(doc)
    two = result.doc["definitions"]["Two"]
    assert two["properties"]["role"] == {"type": "string", "enum": ["system", "user"]}
    assert two["required"] == ["role"]
    anything = result.doc["definitions"]["Message"]["properties"]["role"]
    assert anything == {"type": "string"}  # one alternative allows any role: no enum at all
