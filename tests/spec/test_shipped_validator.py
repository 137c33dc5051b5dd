"""The generated validators ship in the package (sync/spec/swagger2_validator.py, and the sync
map's quick check sync/config/map_validator.py), so a new machine (a CI agent, a new Function App
instance) neither generates nor, with a .pyc, compiles them; they are used only while they match
what would be generated now."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import fastjsonschema
import pytest

from tests.spec.test_compiled_cache import BAD, GOOD, check

validate_module = importlib.import_module("sync.spec.validate")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("shipped", "writer"),
    [
        ("sync/spec/swagger2_validator.py", "shipped_text"),
        ("sync/config/map_validator.py", "shipped_map_text"),
    ],
)
def test_the_shipped_module_is_what_would_be_generated_now(shipped: str, writer: str) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import generate_validator
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    expected = getattr(generate_validator, writer)().encode("utf-8")
    assert (ROOT / shipped).read_bytes() == expected, (
        f"{shipped} is stale: run scripts/generate_validator.py"
    )


def test_a_new_machine_loads_the_shipped_validator_without_generating_it(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))  # an empty private cache

    def refuse(*args, **kwargs):
        raise AssertionError("generated although the package ships the validator")

    monkeypatch.setattr(fastjsonschema, "compile_to_code", refuse)
    validator = validate_module._load_compiled(validate_module._swagger2_schema())["validate"]
    assert check(validator, GOOD) and not check(validator, BAD)
    assert list((tmp_path / "connector-sync-validators").glob("swagger2_*.bin"))  # then kept


def test_a_shipped_module_for_another_schema_is_not_used(tmp_path, monkeypatch) -> None:
    """An upgraded fastjsonschema or openapi-spec-validator until the script is run again: the
    validator is generated as before, never taken from the stale module."""
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(validate_module, "_SOURCE_EDITS", "another-edit")
    generated: list[int] = []
    real = fastjsonschema.compile_to_code

    def counting(*args, **kwargs):
        generated.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fastjsonschema, "compile_to_code", counting)
    validator = validate_module._load_compiled(validate_module._swagger2_schema())["validate"]
    assert generated == [1]
    assert check(validator, GOOD) and not check(validator, BAD)


def test_a_shipped_module_that_does_not_run_is_replaced_by_a_generated_one_and_not_kept(
    tmp_path, monkeypatch
) -> None:
    """A shipped module that passes its checks but does not define the validator (or raises):
    the validator is generated, and the bad code never reaches the private cache."""
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(
        validate_module, "_shipped_code", lambda key: compile("x = 1\n", "<broken>", "exec")
    )
    validator = validate_module._load_compiled(validate_module._swagger2_schema())["validate"]
    assert check(validator, GOOD) and not check(validator, BAD)
    assert not list((tmp_path / "connector-sync-validators").glob("swagger2_*.bin"))


def _package_with(tmp_path, monkeypatch, text: bytes) -> str:
    package = tmp_path / "shippedpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "generated.py").write_bytes(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "shippedpkg.generated"


def test_a_shipped_module_cut_short_or_edited_is_not_used(tmp_path, monkeypatch) -> None:
    from sync.shipped_code import header, shipped_code

    body = "def validate(data):\n    return data\n\ndef other():\n    return 1\n"
    whole = ('"""doc"""\n' + header("0123456789abcdef", body) + body).encode()
    module = _package_with(tmp_path, monkeypatch, whole)
    assert shipped_code(module, "0123456789abcdef") is not None  # the control
    assert shipped_code(module, "fedcba9876543210") is None  # another source key
    (tmp_path / "shippedpkg" / "generated.py").write_bytes(whole[: whole.index(b"def other")])
    assert shipped_code(module, "0123456789abcdef") is None  # cut short
    (tmp_path / "shippedpkg" / "generated.py").write_bytes(whole.replace(b"data\n", b"None\n"))
    assert shipped_code(module, "0123456789abcdef") is None  # edited
    (tmp_path / "shippedpkg" / "generated.py").write_bytes(whole.replace(b"\n", b"\r\n"))
    assert shipped_code(module, "0123456789abcdef") is not None  # a CRLF checkout is whole
