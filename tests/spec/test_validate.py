"""validate(): errors only for platform rules, warnings for the rest, each naming its JSON path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sync.spec.canonical import compact_size, sha256_hex
from sync.spec.validate import validate, validator_name
from tests.spec import corpus

# Warnings per corpus `after` definition (certification rules + structural findings), pinned so a
# change in the rules or the validator shows up here.
AFTER_WARNINGS = {
    "AccuWeather": 0,
    "Africas-Talking-SMS": 0,
    "Almabase": 0,
    "Calendly": 0,
    "DocuSign": 7,
    "Egnyte": 2,
    "Encodian": 0,
    "GitLab": 0,
    "HiveCPQ-Product-configurator": 0,
    "Kanbanize": 0,
    "Meisterplan": 0,
    "Microsoft-Bookings": 0,
    "Morf": 0,
    "Notion": 0,
    "Office-365-Users": 1,
    "OpenAI-GPT-4": 0,
    "Planner": 0,
    "Scrive-eSign": 0,
    "Tikit": 0,
    "WorkSpan": 0,
    "ZohoSign": 0,
    "envoy": 2,
    "haveibeenpwned": 0,
    "iManage-Work": 0,
    "monday": 0,
}


def good() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {
            "title": "Pets",
            "version": "1.0",
            "description": "Manage the pets of a pet shop, one at a time.",
        },
        "host": "api.example.com",
        "x-ms-connector-metadata": [{"propertyName": "Website", "propertyValue": "https://x"}],
        "paths": {
            "/pets/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "type": "string"}],
                "get": {
                    "operationId": "GetPet",
                    "summary": "Get a pet",
                    "responses": {
                        "200": {"description": "ok", "schema": {"$ref": "#/definitions/Pet"}}
                    },
                },
            }
        },
        "definitions": {"Pet": {"type": "object", "x-ms-visibility": "important"}},
    }


def test_a_good_definition_has_no_findings() -> None:
    report = validate(good())
    assert report.ok and report.errors == [] and report.warnings == []
    assert report.to_dict()["ok"] is True


@pytest.mark.parametrize("version", [None, "3.0.0", 2.0, "2"])
def test_swagger_must_be_2_0(version: Any) -> None:
    doc = good()
    doc["swagger"] = version
    report = validate(doc)
    assert not report.ok
    assert report.errors[0].startswith("swagger:")


def test_size_limit_names_limit_and_measured_size() -> None:
    doc = good()
    size = compact_size(doc)
    assert validate(doc, limit_bytes=size).ok
    report = validate(doc, limit_bytes=size - 1)
    assert report.errors == [
        f"(root): definition is {size} bytes as compact JSON, over the limit of {size - 1} bytes"
    ]


@pytest.mark.parametrize("number", [float("inf"), float("nan")])
def test_a_non_finite_number_is_an_error_naming_where_not_a_crash(number: float) -> None:
    """A YAML spec may say ``maximum: .inf``: JSON cannot carry it, so no platform accepts the
    definition; validation (and a dry run) says where, before any write could meet it."""
    doc = good()
    doc["definitions"]["Pet"]["maximum"] = number
    report = validate(doc, limit_bytes=1_000_000)
    assert len(report.errors) == 1
    assert report.errors[0].startswith("definitions.Pet.maximum: NaN or Infinity")
    assert compact_size(doc) > compact_size(good())


def test_duplicate_operation_ids() -> None:
    doc = good()
    doc["paths"]["/other"] = {
        "post": {
            "operationId": "GetPet",
            "summary": "x",
            "responses": {"200": {"description": "ok"}},
        }
    }
    report = validate(doc)
    assert report.errors == [
        "paths./other.post.operationId: duplicate operationId 'GetPet' (also at paths./pets/{id}.get)"
    ]


def test_unresolved_local_ref() -> None:
    doc = good()
    doc["paths"]["/pets/{id}"]["get"]["responses"]["200"]["schema"] = {"$ref": "#/definitions/Nope"}
    report = validate(doc)
    assert report.errors == [
        "paths./pets/{id}.get.responses.200.schema.$ref: $ref '#/definitions/Nope' does not resolve"
    ]


def test_path_template_and_parameters_must_match_both_ways() -> None:
    doc = good()
    doc["paths"]["/pets/{id}"]["parameters"][0]["name"] = "petId"
    report = validate(doc)
    assert sorted(report.errors) == [
        "paths./pets/{id}.get.parameters: path parameter 'petId' is not in the path template",
        "paths./pets/{id}.get: path template {id} has no path parameter 'id'",
    ]


def test_path_parameter_through_a_ref_counts() -> None:
    doc = good()
    doc["parameters"] = {"Id": {"name": "id", "in": "path", "required": True, "type": "string"}}
    doc["paths"]["/pets/{id}"]["parameters"] = [{"$ref": "#/parameters/Id"}]
    assert validate(doc).ok


def test_more_than_one_body_and_body_with_form_data() -> None:
    doc = good()
    op = doc["paths"]["/pets/{id}"]["get"]
    op["parameters"] = [
        {"name": "a", "in": "body", "schema": {"type": "object"}},
        {"name": "b", "in": "body", "schema": {"type": "object"}},
        {"name": "c", "in": "formData", "type": "string"},
    ]
    report = validate(doc)
    assert "paths./pets/{id}.get.parameters: 2 body parameters (max one)" in report.errors
    assert "paths./pets/{id}.get.parameters: body and formData parameters mixed" in report.errors


def test_more_than_256_operations() -> None:
    doc = good()
    for i in range(256):
        doc["paths"][f"/op{i}"] = {
            "get": {
                "operationId": f"Op{i}",
                "summary": "s",
                "responses": {"200": {"description": "ok"}},
            }
        }
    report = validate(doc)
    assert report.errors == ["paths: 257 operations, over the platform maximum of 256"]
    del doc["paths"]["/op0"]
    assert validate(doc).ok


def test_certification_rules_are_warnings_with_paths() -> None:
    doc = good()
    doc["info"]["title"] = "A title that is far longer than thirty"
    doc["info"]["description"] = "short"
    del doc["x-ms-connector-metadata"]
    doc["paths"]["/pets/{id}"]["get"]["summary"] = "x" * 81
    doc["definitions"]["Pet"]["x-ms-visibility"] = "hidden"
    doc["paths"]["/pets/{id}"]["get"]["x-ms-trigger"] = "sometimes"
    report = validate(doc)
    assert report.ok
    assert sorted(report.warnings) == sorted(
        [
            "info.title: 38 characters, certification allows 30",
            "info.description: 5 characters, certification wants 30 to 500",
            "x-ms-connector-metadata: missing (Website, Privacy policy, Categories)",
            "paths./pets/{id}.get.summary: 81 characters, certification allows 80",
            "definitions.Pet.x-ms-visibility: 'hidden' is not one of ['important', 'advanced', 'internal']",
            "paths./pets/{id}.get.x-ms-trigger: 'sometimes' is not one of ['batch', 'single']",
        ]
    )
    strict = validate(doc, strict=True)
    assert not strict.ok and strict.warnings == []
    assert len(strict.errors) == 6


def test_missing_summary_is_a_warning() -> None:
    doc = good()
    del doc["paths"]["/pets/{id}"]["get"]["summary"]
    assert validate(doc).warnings == ["paths./pets/{id}.get.summary: missing operation summary"]


def test_structural_findings_come_from_the_full_validator_with_paths() -> None:
    doc = good()
    doc["host"] = "https://api.example.com/v1"  # the 2.0 schema forbids scheme and path in host
    doc["paths"]["/pets/{id}"]["get"]["responses"] = {}
    report = validate(doc)
    assert report.ok  # structure is a warning; the platform rules above are the errors
    assert validator_name() == "openapi-spec-validator"
    assert any(w.startswith("host:") for w in report.warnings)
    assert any(w.startswith("paths./pets/{id}.get.responses:") for w in report.warnings)


def test_fast_path_runs_for_a_clean_document() -> None:
    validate(good())
    assert validator_name() == "fastjsonschema"


def test_validate_does_not_mutate_and_is_repeatable() -> None:
    doc = good()
    doc["paths"]["/pets/{id}"]["get"]["parameters"] = [
        {"name": "q", "in": "query", "type": "string"}
    ]
    doc["host"] = "bad host/with path"
    before = sha256_hex(doc)
    first = validate(doc)
    second = validate(doc)  # served from the cache
    assert sha256_hex(doc) == before
    assert first == second


def test_non_local_ref_is_an_error_and_the_library_is_not_run() -> None:
    doc = good()
    doc["definitions"]["Pet"] = {"$ref": "http://127.0.0.1:9/x.json"}
    report = validate(copy.deepcopy(doc), strict=True)
    assert report.errors[0].startswith("definitions.Pet.$ref: non-local $ref")


@pytest.mark.parametrize("case", corpus.connector_cases())
def test_every_corpus_after_definition_validates_without_errors(case: str) -> None:
    report = validate(corpus.connector(case, "after"))
    assert report.errors == []
    assert len(report.warnings) == AFTER_WARNINGS[case], report.warnings


@pytest.mark.parametrize("case", corpus.connector_cases())
def test_the_ref_guards_kept_walk_gives_the_same_report(case: str, monkeypatch) -> None:
    """check_refs(keep=True) on the pipeline's freshly parsed spec: validate then reuses that
    walk (no second one) and reports exactly what its own walk reports."""
    import importlib

    from sync.spec.refs import check_refs

    refs_module = importlib.import_module("sync.spec.refs")
    validate_module = importlib.import_module("sync.spec.validate")
    doc = corpus.connector(case, "after")
    doc.setdefault("paths", {})["/x-odd"] = {
        "get": {"x-ms-visibility": "hidden", "responses": {"200": {"description": "ok"}}}
    }
    walked = validate(copy.deepcopy(doc)).to_dict()
    walks: list[object] = []
    real = refs_module.scan
    monkeypatch.setattr(validate_module, "scan", lambda d: walks.append(d) or real(d))
    check_refs(doc, keep=True)
    assert validate(doc).to_dict() == walked
    assert walks == []
    assert any("x-ms-visibility" in w for w in walked["warnings"])
    other = copy.deepcopy(doc)  # equal content, another object: walked again
    assert validate(other).to_dict() == walked
    assert walks == [other]


@pytest.mark.parametrize(
    ("flow", "grant"),
    [("application", "client credentials"), ("password", "resource owner password")],
)
def test_oauth_grants_custom_connectors_do_not_support_are_errors(flow: str, grant: str) -> None:
    doc = good()
    doc["securityDefinitions"] = {
        "key": {"type": "apiKey", "name": "k", "in": "header"},
        "oauth": {"type": "oauth2", "flow": flow, "tokenUrl": "https://t", "scopes": {}},
    }
    report = validate(doc)
    assert not report.ok
    assert report.errors == [
        f"securityDefinitions.oauth.flow: {flow!r} (the {grant} grant) is not supported by "
        "custom connectors; the platform replaces it with 'accessCode' (use the authorization "
        "code flow, or an API key)"
    ]


@pytest.mark.parametrize("flow", ["accessCode", "implicit"])
def test_oauth_grants_custom_connectors_support_pass(flow: str) -> None:
    doc = good()
    doc["securityDefinitions"] = {
        "oauth": {
            "type": "oauth2",
            "flow": flow,
            "authorizationUrl": "https://a",
            "tokenUrl": "https://t",
            "scopes": {},
        }
    }
    assert validate(doc).errors == []


def test_a_converted_client_credentials_scheme_is_refused_before_any_write() -> None:
    """OpenAPI 3's clientCredentials becomes 2.0's application (the faithful conversion); the
    validation then stops it, so no connector gets a flow the platform would rewrite."""
    from sync.spec.convert import normalize

    source = {
        "openapi": "3.0.3",
        "info": {"title": "T", "version": "1"},
        "paths": {},
        "components": {
            "securitySchemes": {
                "cc": {
                    "type": "oauth2",
                    "flows": {"clientCredentials": {"tokenUrl": "https://t", "scopes": {}}},
                }
            }
        },
        "security": [{"cc": []}],
    }
    report = validate(normalize(source).doc)
    assert any(e.startswith("securityDefinitions.cc.flow: 'application'") for e in report.errors)
