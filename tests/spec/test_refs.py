"""The $ref guard: nothing leaves the machine, hostile refs are named by path, cycles are reported."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from sync.errors import SpecError
from sync.spec.convert import normalize
from sync.spec.diff import diff
from sync.spec.merge import merge3
from sync.spec.refs import check_refs
from sync.spec.validate import validate
from tests.spec import corpus
from tests.support.json_handler import JsonHandler

pytestmark = pytest.mark.reliability


class _Counter(JsonHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.answer_json(200, b'{"type": "string"}')


@pytest.fixture(scope="module")
def loopback() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Counter,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def _swagger(ref: str) -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "ListPets",
                    "responses": {"200": {"description": "ok", "schema": {"$ref": ref}}},
                }
            }
        },
    }


def _openapi3(ref: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/pets": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"schema": {"$ref": ref}}},
                        }
                    }
                }
            }
        },
    }


def _hostile(base: str) -> list[tuple[dict[str, Any], str]]:
    refs = [f"{base}/x.json", "file:///etc/passwd", "other.yaml#/x", "https://example.invalid/s#/a"]
    out = []
    for ref in refs:
        out.append((_swagger(ref), "paths./pets.get.responses.200.schema.$ref"))
        out.append(
            (_openapi3(ref), "paths./pets.get.responses.200.content.application/json.schema.$ref")
        )
    return out


def _pipeline(doc: dict[str, Any]) -> None:
    """Every stage a document meets in the worker, in order."""
    check_refs(doc)
    normalized = normalize(doc).doc
    validate(normalized, strict=True)  # strict: the full openapi-spec-validator runs too
    merged, _ = merge3(normalized, normalized, normalized)
    diff(normalized, merged)


@pytest.mark.slow
def test_corpus_and_hostile_documents_make_zero_requests(
    loopback: tuple[str, list[str]],
) -> None:
    base, hits = loopback
    seen = 0
    for case in corpus.connector_cases():
        for side in ("before", "after"):
            _pipeline(corpus.connector(case, side))
            seen += 1
    for name in corpus.openapi3_files():
        _pipeline(corpus.openapi3(name))
        seen += 1
    for doc, where in _hostile(base):
        with pytest.raises(SpecError) as caught:
            _pipeline(doc)
        assert caught.value.where == where
        # validate() on its own (no check_refs before it) reports instead of fetching.
        if "swagger" in doc:
            report = validate(doc, strict=True)
            assert any(e.startswith(where) for e in report.errors)
    assert seen == 60
    assert hits == []


def test_the_loopback_server_does_count(loopback: tuple[str, list[str]]) -> None:
    """Guards the test above: a real fetch to the server is seen."""
    import httpx

    base, hits = loopback
    before = len(hits)
    httpx.get(f"{base}/probe.json", timeout=5)
    assert len(hits) == before + 1
    hits.remove("/probe.json")


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data", "remote"),
        ("HTTPS://example.com/a.json#/b", "remote"),
        ("file:///etc/passwd", "file"),
        ("other.yaml#/x", "relative external"),
        ("../shared/defs.json", "relative external"),
        ("//evil.example/x", "external"),
        ("ftp://x/y", "external"),
    ],
)
def test_non_local_refs_are_refused_with_their_path(ref: str, kind: str) -> None:
    doc = _swagger("#/definitions/Pet")
    doc["definitions"] = {"Pet": {"type": "object", "properties": {"tag": {"$ref": ref}}}}
    with pytest.raises(SpecError) as caught:
        check_refs(doc)
    assert caught.value.where == "definitions.Pet.properties.tag.$ref"
    assert kind in caught.value.message
    assert ref[:20] in caught.value.message


def test_ref_inside_a_list_is_named_with_its_index() -> None:
    doc = _swagger("#/definitions/Pet")
    doc["paths"]["/pets"]["get"]["parameters"] = [
        {"name": "a", "in": "query", "type": "string"},
        {"$ref": "http://127.0.0.1:1/p.json"},
    ]
    with pytest.raises(SpecError) as caught:
        check_refs(doc)
    assert caught.value.where == "paths./pets.get.parameters[1].$ref"


def test_local_refs_and_property_named_ref_pass() -> None:
    doc = _swagger("#/definitions/Pet")
    doc["definitions"] = {
        "Pet": {
            "type": "object",
            "properties": {
                "$ref": {"type": "string"},  # a property called $ref (Meisterplan has these)
                "children": {"type": "array", "items": {"$ref": "#/definitions/Pet"}},
            },
        }
    }
    original = copy.deepcopy(doc)
    check_refs(doc)
    assert doc == original


def test_alias_cycle_is_reported_not_followed() -> None:
    doc = _swagger("#/definitions/A")
    doc["definitions"] = {"A": {"$ref": "#/definitions/B"}, "B": {"$ref": "#/definitions/A"}}
    with pytest.raises(SpecError, match="cycle") as caught:
        check_refs(doc)
    assert "#/definitions/A -> #/definitions/B -> #/definitions/A" in caught.value.message


def test_self_alias_is_a_cycle() -> None:
    doc = _swagger("#/definitions/A")
    doc["definitions"] = {"A": {"$ref": "#/definitions/A"}}
    with pytest.raises(SpecError, match="cycle"):
        check_refs(doc)


def test_recursive_schema_is_not_a_cycle_and_later_stages_terminate() -> None:
    doc = _swagger("#/definitions/Node")
    doc["definitions"] = {
        "Node": {
            "type": "object",
            "properties": {
                "next": {"$ref": "#/definitions/Node"},
                "all": {"allOf": [{"$ref": "#/definitions/Node"}]},
            },
        }
    }
    check_refs(doc)
    assert validate(doc).ok
    assert diff(doc, doc).is_empty
