"""The targets of a fan-out share one diff when they move between the same two definitions."""

from __future__ import annotations

import copy

from sync.pipeline import diff_cached
from sync.spec.canonical import sha256_hex
from tests.powerplatform.samples import DEFINITION, changed


def test_same_pair_of_definitions_is_diffed_once() -> None:
    old, new = DEFINITION, changed(DEFINITION)
    first = diff_cached(old, sha256_hex(old), new, sha256_hex(new))
    again = diff_cached(copy.deepcopy(old), sha256_hex(old), copy.deepcopy(new), sha256_hex(new))
    assert again is first
    assert first.added == ["GetInvoice"]


def test_another_pair_gets_its_own_diff() -> None:
    old, new = DEFINITION, changed(DEFINITION)
    other = copy.deepcopy(new)
    del other["paths"]["/invoices/{id}"]
    a = diff_cached(old, sha256_hex(old), new, sha256_hex(new))
    b = diff_cached(old, sha256_hex(old), other, sha256_hex(other))
    assert a is not b
    assert b.added == []


def test_no_connector_definition_is_never_cached() -> None:
    new = changed(DEFINITION)
    assert diff_cached(None, None, new, sha256_hex(new)) is not diff_cached(
        None, None, new, sha256_hex(new)
    )
