"""A sync map that passed the schema once is not checked with jsonschema again (other processes).

The marker lives in the private per-user cache folder; these tests point the temp directory at
``tmp_path`` so they never share markers with other tests or engineers. Since the evening of
2026-12-06 the shipped quick check (``sync.config.map_check``) answers first; the marker is what
remains when it cannot (a stale shipped module), so these tests switch the quick check off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sync.config as config
from sync import private_cache
from sync.config import SCHEMA_PATH, load_map_file, schema_marker
from sync.errors import ConfigError
from sync.spec.parse import load_object

ROOT = Path(__file__).resolve().parents[1]
GOOD = """
apis:
  inv:
    spec: {url: "https://inv.example/swagger.json"}
    targets:
      - {name: dev, folder: connectors/dev}
"""
BAD = GOOD.replace("{name: dev, folder", "{name: dev, colour: red, folder")


@pytest.fixture(autouse=True)
def no_quick_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from sync.config import map_check

    monkeypatch.setattr(map_check, "passes", lambda raw: False)


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp directory the cache folder is made in."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(root))
    return root


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How often jsonschema really ran (the real check still runs)."""
    calls: list[int] = []
    real = config._schema_errors

    def counted(raw, written=None):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(raw, written)

    monkeypatch.setattr(config, "_schema_errors", counted)
    return calls


def write(folder: Path, text: str, name: str = "map.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def markers(temp: Path) -> list[Path]:
    return sorted((temp / private_cache.FOLDER_NAME).glob("syncmap_*"))


def key_of(text: str) -> str:
    key = schema_marker.marker_key(load_object(text.encode()), SCHEMA_PATH)
    assert key is not None
    return key


def error_without_cache(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The error today's code gives (no cache folder usable: the temp path is a file)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with monkeypatch.context() as patch:
        patch.setattr("tempfile.gettempdir", lambda: str(blocker))
        with pytest.raises(ConfigError) as info:
            load_map_file(write(tmp_path, text, "reference.yaml"))
    return str(info.value).replace("reference.yaml", "map.yaml")


def test_a_pass_is_remembered_and_the_next_load_skips_jsonschema(tmp_path, temp, validations):
    path = write(tmp_path, GOOD)
    first = load_map_file(path)
    assert validations == [1]
    [marker] = markers(temp)
    assert marker.read_text() == key_of(GOOD)
    second = load_map_file(path)
    assert validations == [1]  # the marker answered
    assert second.raw == first.raw
    assert [t.name for t in second.api("inv").targets] == ["dev"]


def test_the_checks_after_the_schema_still_run_with_a_marker(tmp_path, temp, validations):
    text = GOOD.replace("      - {name: dev", "      - {name: dev, folder: a}\n      - {name: dev")
    load_map_file(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="duplicate target name"):
        load_map_file(write(tmp_path, text))
    with pytest.raises(ConfigError, match="duplicate target name"):  # the schema passed: marked
        load_map_file(write(tmp_path, text))
    assert validations == [1, 1]


def test_an_edited_map_is_validated_again_with_the_same_error(
    tmp_path, temp, validations, monkeypatch
):
    expected = error_without_cache(tmp_path, BAD, monkeypatch)
    assert "apis.inv.targets[0]" in expected and "colour" in expected
    validations.clear()
    path = write(tmp_path, GOOD)
    load_map_file(path)
    path.write_text(BAD)
    with pytest.raises(ConfigError) as info:
        load_map_file(path)
    assert str(info.value) == expected
    assert validations == [1, 1]
    assert len(markers(temp)) == 1  # the invalid version left no marker
    with pytest.raises(ConfigError) as again:  # and it is not remembered as anything
        load_map_file(path)
    assert str(again.value) == expected


def test_an_edit_that_keeps_size_and_time_is_still_validated(tmp_path, temp, validations):
    path = write(tmp_path, GOOD)
    load_map_file(path)
    stamp = path.stat()
    edited = GOOD.replace("name: dev", "name: 1ev")  # same length, still valid
    path.write_text(edited)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert load_map_file(path).api("inv").targets[0].name == "1ev"
    assert validations == [1, 1]


def test_a_marker_in_a_folder_others_can_write_to_is_ignored(tmp_path, temp, validations):
    folder = temp / private_cache.FOLDER_NAME
    folder.mkdir()
    folder.chmod(0o777)  # planted, world-writable
    (folder / f"syncmap_{key_of(BAD)}").write_text(key_of(BAD))  # "BAD passed": a lie
    with pytest.raises(ConfigError, match="colour"):
        load_map_file(write(tmp_path, BAD))
    load_map_file(write(tmp_path, GOOD))
    assert validations == [1, 1]
    assert [p.name for p in folder.iterdir()] == [f"syncmap_{key_of(BAD)}"]  # nothing written


def test_a_symlinked_cache_folder_is_ignored(tmp_path, temp, validations):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (elsewhere / f"syncmap_{key_of(BAD)}").write_text(key_of(BAD))
    (temp / private_cache.FOLDER_NAME).symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="colour"):
        load_map_file(write(tmp_path, BAD))
    assert validations == [1]


def test_a_corrupt_marker_is_ignored_and_replaced(tmp_path, temp, validations):
    path = write(tmp_path, GOOD)
    load_map_file(path)
    [marker] = markers(temp)
    marker.write_bytes(b"\x00garbage")
    load_map_file(path)
    assert validations == [1, 1]  # validated again
    assert marker.read_text() == key_of(GOOD)  # and the marker repaired
    load_map_file(path)
    assert validations == [1, 1]


def test_a_marker_file_named_for_an_invalid_map_with_wrong_content_is_ignored(
    tmp_path, temp, validations
):
    load_map_file(write(tmp_path, GOOD))  # creates the private folder
    key = key_of(BAD)
    (temp / private_cache.FOLDER_NAME / f"syncmap_{key}").write_text(key_of(GOOD))
    with pytest.raises(ConfigError, match="colour"):
        load_map_file(write(tmp_path, BAD))


def test_a_map_json_cannot_encode_is_simply_validated():
    assert schema_marker.marker_key({"apis": {"x": object()}}, SCHEMA_PATH) is None
    assert schema_marker.marker_key({"apis": {}}, SCHEMA_PATH.with_name("absent.json")) is None


def test_a_fresh_process_with_a_marked_map_never_imports_jsonschema(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    path = write(tmp_path, GOOD)
    code = (
        "import json, sys\n"
        "import sync.config.map_check as quick\n"
        "quick.passes = lambda raw: False  # as with a stale shipped check\n"
        "from sync.config import load_map_file\n"
        f"load_map_file({str(path)!r})\n"
        "print(json.dumps('jsonschema' in sys.modules))\n"
    )
    env = {**os.environ, "TMPDIR": str(temp)}

    def run() -> bool:
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert run() is True  # first process: validated, marker written
    assert run() is False  # second: the marker answered
    path.write_text(BAD)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode != 0 and "colour" in out.stderr


def test_markers_are_pruned_to_the_newest(tmp_path, temp, monkeypatch):
    monkeypatch.setattr(schema_marker, "KEEP", 2)
    for name in ("a", "b", "c"):
        load_map_file(write(tmp_path, GOOD.replace("name: dev", f"name: {name}")))
    assert len(markers(temp)) == 2
