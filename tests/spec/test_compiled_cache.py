"""The generated Swagger 2.0 validator is cached on disk and behaves like the in-memory one."""

from __future__ import annotations

import importlib

import fastjsonschema

validate_module = importlib.import_module("sync.spec.validate")
GOOD = {
    "swagger": "2.0",
    "info": {"title": "T", "version": "1"},
    "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}},
}
BAD = {"swagger": "2.0", "info": {"title": "T"}, "paths": {"/a": {"get": {"responses": {}}}}}


def check(validator, doc) -> bool:
    try:
        validator(doc)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def test_cached_file_is_written_once_and_agrees_with_an_in_memory_compile(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    schema = validate_module._swagger2_schema()
    first = validate_module._load_compiled(schema)["validate"]
    files = list((tmp_path / "connector-sync-validators").glob("swagger2_*.bin"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = validate_module._load_compiled(schema)["validate"]
    assert files[0].stat().st_mtime_ns == stamp  # reused, not regenerated
    memory = fastjsonschema.compile(
        schema, handlers={"http": validate_module._draft4_metaschema}, use_default=False
    )
    for doc in (GOOD, BAD):
        assert check(first, doc) == check(second, doc) == check(memory, doc)
    assert check(first, GOOD) and not check(first, BAD)


def test_a_corrupt_cache_file_falls_back_to_compiling_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    schema = validate_module._swagger2_schema()
    validate_module._load_compiled(schema)
    [cached] = (tmp_path / "connector-sync-validators").glob("swagger2_*.bin")
    cached.write_bytes(b"not marshal data")
    validator = validate_module._load_compiled(schema)["validate"]
    assert check(validator, GOOD) and not check(validator, BAD)


def test_a_temp_path_that_is_a_file_falls_back_to_compiling_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(blocker))
    validator = validate_module._load_compiled(validate_module._swagger2_schema())["validate"]
    assert check(validator, GOOD) and not check(validator, BAD)


def test_bytecode_in_a_folder_others_can_write_to_is_never_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    folder = tmp_path / "connector-sync-validators"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)  # a planted, world-writable folder
    planted = folder / "planted.bin"
    planted.write_bytes(b"x")
    validator = validate_module._load_compiled(validate_module._swagger2_schema())["validate"]
    assert check(validator, GOOD) and not check(validator, BAD)
    assert list(folder.glob("swagger2_*.bin")) == []  # nothing read or written there


def failure(validator, doc) -> tuple[str, str] | None:
    try:
        validator(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        return exc.message, exc.name
    return None


BROKEN = [
    BAD,
    {**GOOD, "tags": [{"name": "a"}, {"name": 3}]},  # an item of an array, by index
    {**GOOD, "paths": {"/a": {"get": {"responses": {"200": {"description": 5}}}}}},
    {
        **GOOD,
        "paths": {"/a": {"get": {"parameters": [{"name": "q", "in": "query", "type": "x"}]}}},
    },
    {**GOOD, "definitions": {"Pet": {"properties": {"id": {"type": "whatever"}}}}},
    {**GOOD, "definitions": {"Pet": {"allOf": [{}, {"required": "id"}]}}},
    {**GOOD, "x-vendor": 1, "paths": {"/a": {"x-ok": {}, "get": 3}}},
]


def test_the_validator_with_fstrings_fails_exactly_as_the_generated_one() -> None:
    """``with_fstrings`` rewrites how the generated code names nested values; the verdict, the
    message and the name of the failing value stay those of fastjsonschema's own code."""
    schema = validate_module._swagger2_schema()
    generated = fastjsonschema.compile(
        schema, handlers={"http": validate_module._draft4_metaschema}, use_default=False
    )
    edited = validate_module._load_compiled(schema)["validate"]
    assert failure(edited, GOOD) is None
    for doc in BROKEN:
        found = failure(edited, doc)
        assert found is not None and found == failure(generated, doc)


def test_with_fstrings_rewrites_plain_fields_and_leaves_everything_else() -> None:
    edit = validate_module.with_fstrings
    assert edit('x("[{data_x}]".format(**locals()))') == 'x(f"[{data_x}]")'
    assert edit('".{a}.{b_1}".format(**locals())') == 'f".{a}.{b_1}"'
    for kept in (
        '"{x:>3}".format(**locals())',  # a format spec
        '"{{x}}".format(**locals())',  # escaped braces
        '"a\\\\n{x}".format(**locals())',  # an escape
        '"{x}".format(**other)',
        '"{x.y}".format(**locals())',  # an attribute
    ):
        assert edit(kept) == kept
