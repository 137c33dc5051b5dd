"""The shared JSON/YAML reader refuses what a hostile or sloppy server could send."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.errors import SpecError
from sync.spec.parse import MAX_DEPTH, load_document, load_object


def test_yaml_dates_stay_strings_and_keys_become_strings():
    doc = load_document("d: 2024-01-31\nt: 2024-01-31T10:00:00Z\n200: ok\n1.5: x\nnull: y\n")
    assert doc == {
        "d": "2024-01-31",
        "t": "2024-01-31T10:00:00Z",
        "200": "ok",
        "1.5": "x",
        "null": "y",
    }


def test_yaml_12_booleans_only():
    doc = load_document("on: [custom: x]\nyes: no\nflag: true\noff: FALSE\n")
    assert doc == {"on": [{"custom": "x"}], "yes": "no", "flag": True, "off": False}


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", '{"a": 1, "a": 2}'])
def test_duplicate_keys_are_refused(text):
    with pytest.raises(SpecError, match="duplicate key 'a'"):
        load_document(text)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"a": 1, "b": 2, "b": 3, "a": 4}', "b"),  # the first key to repeat, in document order
        ('{"p": {"x": 1, "y": [{"k": 1, "k": 1}]}}', "k"),  # deep, with equal values
        ('{"a": {"x": 1}, "b": {"x": 2}, "c": {"y": 1, "z": 2, "y": 3}}', "y"),
    ],
)
def test_a_repeated_key_anywhere_is_named(text, named):
    with pytest.raises(SpecError, match=f"duplicate key '{named}'"):
        load_document(text)


def test_the_same_key_in_sibling_objects_is_no_duplicate():
    doc = load_document('{"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 3}, {"x": 4}]}')
    assert doc == {"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 3}, {"x": 4}]}


def test_bom_is_tolerated_and_invalid_utf8_names_the_offset():
    assert load_document(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    with pytest.raises(SpecError, match="byte 5"):
        load_document(b"a: b\n\xff")


def test_yaml_bomb_is_refused_without_expanding_it():
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    with pytest.raises(SpecError, match="expands to more than"):
        load_document("\n".join(lines))


@pytest.mark.parametrize(
    "text",
    [
        "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5),
        '{"a":' * 5000 + "1" + "}" * 5000,
        "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 400)),
    ],
)
def test_deep_nesting_is_refused(text):
    with pytest.raises(SpecError, match="nested deeper"):
        load_document(text)


def test_nesting_right_at_the_limit_is_accepted_and_one_deeper_is_refused():
    assert load_document("[" * (MAX_DEPTH - 1) + '"x"' + "]" * (MAX_DEPTH - 1))  # scalar: level 200
    with pytest.raises(SpecError, match="nested deeper"):
        load_document("[" * MAX_DEPTH + '"x"' + "]" * MAX_DEPTH)
    assert load_document('{"a":' * (MAX_DEPTH - 1) + "1" + "}" * (MAX_DEPTH - 1))


def _depth_by_stack(doc):
    """The plain definition: every value one level below its container."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, (dict, list)):
            stack.extend((child, depth + 1) for child in children)
    return deepest


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_depth_counts_as_the_plain_definition(doc):
    from sync.spec.parse import nesting_depth

    assert nesting_depth(doc) == _depth_by_stack(doc)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty document"),
        (b"   \n", "empty document"),
        (b"[1, 2", "not valid JSON"),
        (b"a: [unclosed", "not valid JSON or YAML"),
        (b"? [a, b]\n: c\n", "mapping key must be a scalar"),
    ],
)
def test_broken_documents_name_the_problem_and_the_source(raw, message):
    with pytest.raises(SpecError, match=message) as info:
        load_document(raw, source="https://api.example/spec.yaml")
    assert "https://api.example/spec.yaml" in str(info.value)


def test_top_level_must_be_an_object():
    with pytest.raises(SpecError, match="top level must be an object, got list"):
        load_object(b"[1]")


def test_json_documents_never_import_pyyaml_and_yaml_ones_still_parse() -> None:
    """PyYAML (~8 ms) is imported on the first YAML document only: a CLI run on a JSON map and a
    JSON spec never pays for it."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from sync.spec.parse import load_object\n"
        'load_object(b\'{"swagger": "2.0", "on": [1]}\')\n'
        "print('yaml' in sys.modules)\n"
        "print(load_object(b'on: yes\\nwhen: 2024-01-01\\n'))\n"
        "print('yaml' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["False", "{'on': 'yes', 'when': '2024-01-01'}", "True"]


@pytest.mark.parametrize(
    "raw",
    [rb'{"info": {"title": "t\ud800"}}', rb'{"x-\udfff": 1}', rb'{"a": ["\uDBFF x"]}'],
    ids=["in-a-value", "in-a-key", "upper-case"],
)
def test_an_unpaired_surrogate_escape_is_refused_naming_the_source(raw):
    """JSON lets ``\\ud800`` through, and no UTF-8 form exists for it: hashing the spec raised
    UnicodeEncodeError, which ended the item without a reason (retried until poisoned)."""
    with pytest.raises(SpecError, match=r"^spec\.json: .*unpaired surrogate"):
        load_object(raw, source="spec.json")


def test_escaped_pairs_and_escaped_backslashes_are_not_unpaired_surrogates():
    raw = rb'{"emoji": "\ud83d\ude00", "text": "\\ud800", "yaml": "x"}'
    assert load_object(raw) == {"emoji": "\U0001f600", "text": "\\ud800", "yaml": "x"}
    assert load_object("a: \\ud800\n") == {"a": "\\ud800"}  # YAML plain text, no escape
