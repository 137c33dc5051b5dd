"""The targets of a fan-out share one diff when they move between the same two definitions."""

from __future__ import annotations

import copy

from sync.pipeline import diff_cached
from sync.spec.canonical import sha256_hex
from sync.spec.diff import diff
from tests.powerplatform.samples import DEFINITION, changed


def test_same_pair_of_definitions_is_diffed_once() -> None:
    old, new = DEFINITION, changed(DEFINITION)
    first = diff_cached(old, new)
    again = diff_cached(copy.deepcopy(old), copy.deepcopy(new))
    assert again is first
    assert first.added == ["GetInvoice"]


def test_another_pair_gets_its_own_diff() -> None:
    old, new = DEFINITION, changed(DEFINITION)
    other = copy.deepcopy(new)
    del other["paths"]["/invoices/{id}"]
    a = diff_cached(old, new)
    b = diff_cached(old, other)
    assert a is not b
    assert b.added == []


def test_no_connector_definition_is_never_cached() -> None:
    new = changed(DEFINITION)
    assert diff_cached(None, new) is not diff_cached(None, new)


def test_the_same_content_in_another_key_order_gets_its_own_diff() -> None:
    """One canonical hash, two key orders: the first 2xx response (which names the output
    fields) differs, so a diff cached for one order must not answer for the other."""

    def doc(order: list[str], version: str = "1") -> dict:
        responses = {
            "200": {"description": "ok", "schema": {"properties": {"a": {"type": "string"}}}},
            "201": {"description": "made", "schema": {"properties": {"b": {"type": "integer"}}}},
        }
        return {
            "swagger": "2.0",
            "info": {"title": "t", "version": version},
            "paths": {
                "/x": {"get": {"operationId": "Op", "responses": {k: responses[k] for k in order}}}
            },
        }

    ours, served = doc(["201", "200"]), doc(["200", "201"])
    assert sha256_hex(ours) == sha256_hex(served)
    new = doc(["200", "201"], version="2")
    plain = diff(served, new).to_dict()
    assert plain["changed"] == [] and not plain["breaking"]
    diff_cached(ours, new)  # a warm worker diffed the other order first
    assert diff_cached(served, new).to_dict() == plain
