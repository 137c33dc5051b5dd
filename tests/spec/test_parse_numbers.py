"""Numbers past Python's int/str conversion limit are a ``SpecError`` naming the document.

Python refuses to convert a decimal literal of more than ``sys.get_int_max_str_digits()`` (4,300)
digits with a bare ``ValueError``; that is no ``SyncError``, so a worker handed such a spec would
crash (redelivered until poisoned, no reason recorded) instead of recording a failure.
"""

from __future__ import annotations

import sys

import pytest

from sync.errors import SpecError
from sync.spec.parse import load_document, load_object

DIGITS = "9" * (sys.get_int_max_str_digits() + 700)


@pytest.mark.parametrize(
    "raw",
    [
        '{"swagger": "2.0", "paths": {}, "x-n": ' + DIGITS + "}",
        "[" + DIGITS + "]",
        "{swagger: '2.0', x-n: " + DIGITS + "}",  # flow YAML: JSON first, then YAML
        "swagger: '2.0'\npaths: {}\nx-n: " + DIGITS + "\n",
        "swagger: '2.0'\npaths:\n  ? " + DIGITS + "\n  : {}\n",  # as a key
    ],
    ids=["json", "json-array", "flow-yaml", "yaml", "yaml-key"],
)
def test_an_integer_past_the_conversion_limit_is_a_spec_error_naming_the_source(raw: str) -> None:
    with pytest.raises(SpecError, match="number") as caught:
        load_document(raw.encode(), source="specs/orders.json")
    assert caught.value.where == "specs/orders.json"
    assert str(caught.value).startswith("specs/orders.json: ")


def test_an_integer_right_at_the_limit_still_parses() -> None:
    """The refusal is for what Python cannot convert, not for long numbers as such."""
    limit = "9" * sys.get_int_max_str_digits()
    assert load_object('{"x-n": ' + limit + "}")["x-n"] == int(limit)
    assert load_object("x-n: " + limit + "\n")["x-n"] == int(limit)


def test_invalid_json_is_still_reported_as_json() -> None:
    """JSONDecodeError is a ValueError too: it keeps its own message."""
    with pytest.raises(SpecError, match="not valid JSON"):
        load_document("[1, 2", source="s.json")
