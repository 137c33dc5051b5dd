"""The private per-user cache folder: only ours, only plain names, atomic writes."""

from __future__ import annotations

import pytest

from sync import private_cache


@pytest.fixture
def temp(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    return tmp_path


def test_round_trip_in_a_folder_only_we_can_use(temp):
    assert private_cache.read_bytes("entry") is None
    private_cache.write_bytes("entry", b"data")
    assert private_cache.read_bytes("entry") == b"data"
    folder = temp / private_cache.FOLDER_NAME
    assert folder.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in folder.iterdir()] == ["entry"]  # no temp file left behind


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden"])
def test_names_must_be_plain_file_names(temp, name):
    with pytest.raises(ValueError, match="plain file name"):
        private_cache.read_bytes(name)
    with pytest.raises(ValueError, match="plain file name"):
        private_cache.write_bytes(name, b"x")


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722])
def test_a_folder_others_can_write_to_is_refused(temp, mode):
    folder = temp / private_cache.FOLDER_NAME
    folder.mkdir()
    folder.chmod(mode)
    (folder / "entry").write_bytes(b"planted")
    with pytest.raises(PermissionError, match="not private"):
        private_cache.read_bytes("entry")
    with pytest.raises(PermissionError, match="not private"):
        private_cache.write_bytes("other", b"x")


def test_a_temp_path_that_is_a_file_is_an_oserror(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(blocker))
    with pytest.raises(NotADirectoryError):
        private_cache.folder()


def test_prune_keeps_the_newest_entries_of_one_prefix(temp):
    import os

    for index in range(5):
        private_cache.write_bytes(f"m_{index}", b"x")
        path = temp / private_cache.FOLDER_NAME / f"m_{index}"
        os.utime(path, ns=(index * 10**9, index * 10**9))
    private_cache.write_bytes("other", b"y")
    assert private_cache.prune("m_", 2) == 3
    names = sorted(p.name for p in (temp / private_cache.FOLDER_NAME).iterdir())
    assert names == ["m_3", "m_4", "other"]
    assert private_cache.prune("m_", 2) == 0


def test_prune_passes_over_an_entry_another_process_pruned_meanwhile(temp, monkeypatch):
    """Two processes pruning at once: an entry listed by the scan was gone by its ``stat`` and
    ``FileNotFoundError`` ended the prune (and the validation cache's read with it). Found in
    review on 2026-12-07, 325 times in 8 threads x 200 rounds."""
    import os

    for index in range(4):
        private_cache.write_bytes(f"m_{index}", b"x")
    real_scandir = os.scandir

    class Racing:
        """The real listing, the first ``m_`` entry deleted between listing and ``stat``."""

        def __init__(self, path: str) -> None:
            self._inner = real_scandir(path)
            self._done = False

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            self._inner.close()

        def __iter__(self):
            for entry in self._inner:
                if not self._done and entry.name.startswith("m_"):
                    os.unlink(entry.path)
                    self._done = True
                yield entry

    monkeypatch.setattr(private_cache.os, "scandir", Racing)
    assert private_cache.prune("m_", 1) == 2
    names = sorted(p.name for p in (temp / private_cache.FOLDER_NAME).iterdir())
    assert len(names) == 1
