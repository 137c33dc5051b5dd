"""The shipped quick check of the sync map (``sync.config.map_check``) says yes only where
jsonschema, the judge of the map's schema, says yes: on the example maps and on thousands of
damaged ones. A yes skips jsonschema (~80 ms of a new process); a no always asks it. That the
shipped module is current: tests/spec/test_shipped_validator.py."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sync.config as config
from sync.config import map_check
from sync.spec.parse import load_object

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [
    ROOT / "examples" / "sync-map.local.yaml",
    ROOT / "examples" / "sync-map.production.yaml",
]
MAPS = [load_object(path.read_bytes(), source=str(path)) for path in EXAMPLES]

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            " ",
            "x",
            "dev",
            "Dev",
            "a b",
            "a\n",
            "https://example.com/a",
            "http://example.com/a",
            "kv:secret",
            "11111111-2222-3333-4444-555555555555",
            "x" * 300,
            "block",
            "warn",
            "allow",
            "report",
            "adopt",
            "overwrite",
        ]
    ),
    st.lists(st.sampled_from(["a", 1, None, {"custom": "x"}]), max_size=3),
    st.dictionaries(st.sampled_from(["a", "name", "url", "custom"]), st.just("x"), max_size=2),
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += paths(value, (*prefix, index))
    return out


def damaged(doc: dict[str, Any], where: tuple, how: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    if not where:
        return value if how == "replace" else out
    parent = out
    for part in where[:-1]:
        parent = parent[part]
    last = where[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent[last], dict):
        parent[last]["unexpectedKey"] = value
    elif how == "add" and isinstance(parent[last], list):
        parent[last].append(value)
    return out


def jsonschema_says_yes(doc: Any) -> bool:
    return not list(config._validator().iter_errors(doc))


@pytest.mark.parametrize("doc", MAPS, ids=[path.name for path in EXAMPLES])
def test_the_example_maps_pass_both(doc: dict[str, Any]) -> None:
    assert map_check.passes(doc) and jsonschema_says_yes(doc)


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_quick_check_says_yes_only_where_jsonschema_does(data: st.DataObject) -> None:
    doc = data.draw(st.sampled_from(MAPS))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        where = data.draw(st.sampled_from(paths(doc)))
        how = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if how == "delete" and not where:
            continue
        doc = damaged(doc, where, how, data.draw(VALUES))
    assert map_check.passes(doc) == jsonschema_says_yes(doc), doc


def test_a_shipped_check_of_another_schema_is_not_used(monkeypatch) -> None:
    monkeypatch.setattr(map_check, "source_key", lambda: "0" * 16)
    map_check._shipped_check.cache_clear()
    try:
        assert not map_check.passes(MAPS[0])  # not trusted: jsonschema decides
        assert config._schema_problems(MAPS[0]) == []
    finally:
        map_check._shipped_check.cache_clear()


def test_a_new_process_with_a_valid_map_does_not_import_jsonschema(tmp_path) -> None:
    import subprocess

    code = (
        "import sys\n"
        "from sync.config import load_map_file\n"
        f"load_map_file({str(EXAMPLES[1])!r})\n"
        "print('jsonschema' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_the_quick_check_leaves_the_map_as_it_was() -> None:
    """fastjsonschema's generated code writes a missing property's ``default`` into the data;
    generated with ``use_default=False`` it does not (the map's ``cloud`` and a blob source's
    ``workspace`` have defaults)."""
    for doc in MAPS:
        before = copy.deepcopy(doc)
        assert map_check.passes(doc)
        assert doc == before


def test_a_shipped_check_that_raises_is_a_no(monkeypatch) -> None:
    monkeypatch.setattr(
        "sync.shipped_code.shipped_code",
        lambda module, key: compile("raise NameError('half-written')\n", "<broken>", "exec"),
    )
    map_check._shipped_check.cache_clear()
    try:
        assert not map_check.passes(MAPS[0])  # jsonschema decides, and says yes
        assert config._schema_problems(MAPS[0]) == []
    finally:
        map_check._shipped_check.cache_clear()
