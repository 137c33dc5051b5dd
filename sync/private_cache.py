"""A per-user folder in the temp directory for results one process computes and the next reuses.

Why: a CLI call or a cold Function App instance pays again for work whose result only depends on
inputs we can hash (a compiled schema validator, "this sync map passed this schema"). Files here
are trusted by whoever reads them, so the folder is only used when no one else can write to it:
created 0700, a real directory (not a symlink), owned by this user, without group/other write.
A shared /tmp where someone planted the folder first is refused with ``PermissionError``.

Callers treat every ``OSError`` / ``ValueError`` from here as "no cache" and do the work normally.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

FOLDER_NAME = "connector-sync-validators"


def folder() -> str:
    """The private cache folder (created on first use); ``OSError`` when it is not ours alone."""
    path = os.path.join(tempfile.gettempdir(), FOLDER_NAME)
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    getuid = getattr(os, "getuid", None)
    if (
        getuid is None  # no owner check possible (Windows): no cache
        or not stat.S_ISDIR(info.st_mode)
        or info.st_uid != getuid()
        or info.st_mode & 0o022
    ):
        raise PermissionError(f"{path} is not private to this user")
    return path


def _file(name: str) -> str:
    if not name or name != os.path.basename(name) or name.startswith("."):
        raise ValueError(f"cache entry name {name!r} must be a plain file name")
    return os.path.join(folder(), name)


def read_bytes(name: str) -> bytes | None:
    """The entry's bytes, or None when there is no such entry."""
    try:
        with open(_file(name), "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_bytes(name: str, data: bytes) -> None:
    """Store an entry atomically: a concurrent reader sees all of it or nothing."""
    path = _file(name)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def prune(prefix: str, keep: int) -> int:
    """Delete the oldest entries named ``prefix*`` beyond the newest ``keep``; how many went.

    Content-addressed entries are never overwritten by new content, only added (every edited map
    is a new marker), so writers call this to keep the folder from growing without bound.
    """
    path = folder()
    found: list[tuple[int, str]] = []
    with os.scandir(path) as entries:
        for entry in entries:
            if not entry.name.startswith(prefix) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                found.append((entry.stat().st_mtime_ns, entry.name))
            except FileNotFoundError:  # another process pruned it since the scan listed it
                continue
    found.sort(reverse=True)
    removed = 0
    for _, name in found[keep:]:
        with contextlib.suppress(FileNotFoundError):  # a concurrent writer pruned it first
            os.unlink(os.path.join(path, name))
            removed += 1
    return removed
