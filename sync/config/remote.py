"""The sync map read from Blob Storage (``SYNC_CONFIG=https://<account>.blob.<suffix>/<c>/<map>``).

Why: a map change then needs no redeploy. The blob is read with the function identity (Storage
Blob Data Reader), or locally with the connection string's key (Azurite), through the same guarded,
capped reader as blob specs.

Caching: every process keeps the last valid map with its ETag and asks again (a conditional GET,
normally a 304) at most once per ``REFRESH_SECONDS``. A 304 returns the very same ``SyncMap``
object, so ``sync.bootstrap.service`` keeps its wiring; a changed blob is parsed and validated
again, and a broken one raises ``ConfigError`` (the planner raises, so Event Grid retries and then
dead-letters instead of syncing with a map nobody validated).

Refreshing never makes a caller wait when a map is cached: every invocation (the Event Grid
planner with its 30 s deadline too) asks for the map, so one caller per URL refreshes (single
flight, no lock held across the network) while the others take the cached map at once; only a
first load, with nothing cached, waits for the one in flight and shares its result or error. A
refresh that storage does not answer (``TransientError``) keeps the cached map and is tried again
only after ``REFRESH_SECONDS``, so an unreachable account costs one slow request per interval,
not one per invocation.

Overlays named relative to a blob map are read from the same container (the map's folder) and kept
in a per-process folder so the pipeline reads them as files; their ETags are checked with the map's.
Folder targets and ``notify.file`` are local paths, so a blob map must give them absolute.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sync.config import SyncMap, parse_map
from sync.errors import ConfigError, SpecError, SyncError, TransientError
from sync.redact import redact_url
from sync.spec.parse import load_object

log = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0
SCHEMES = ("https://", "http://")


def is_remote(path: str) -> bool:
    return path.lower().startswith(SCHEMES)


@dataclass
class _Entry:
    map: SyncMap
    etag: str | None
    raw: bytes
    overlays: dict[str, str | None] = field(default_factory=dict)  # relative path -> ETag
    folder: str = ""
    checked_at: float = 0.0


_lock = threading.Lock()  # guards the dicts below; never held across a request
_entries: dict[str, _Entry] = {}
_flights: dict[str, Future[SyncMap]] = {}  # URL -> the refresh in progress (single flight)
# URL -> (when, the ConfigError) of a map that did not load: answered for REFRESH_SECONDS, as a
# good map is, instead of a download and a parse per invocation until someone fixes the blob
_failed: dict[str, tuple[float, ConfigError]] = {}
_reader: Any = None


def _default_reader() -> Any:
    """One reader per process: guarded client + the function identity (lazy, cold start)."""
    global _reader
    if _reader is None:
        from sync.adapters.blob_spec import BlobReader
        from sync.adapters.function_identity import function_identity
        from sync.adapters.urlguard import guarded_client
        from sync.clouds import CLOUDS
        from sync.settings import Settings

        settings = Settings.from_env()
        # the app's own identity, as Key Vault and storage use it (az login locally)
        provider = function_identity(CLOUDS["public"])
        _reader = BlobReader(settings, guarded_client(settings), tokens=lambda: provider)
    return _reader


def _relative(url: str, relative: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + relative


def _overlay_paths(raw: dict[str, Any], source: str) -> list[str]:
    """Overlay paths of the map, refused when they would leave the map's container folder."""
    found: list[str] = []
    apis = raw.get("apis")
    if not isinstance(apis, dict):
        apis = {}
    for name, api in apis.items():
        overlay = api.get("overlay") if isinstance(api, dict) else None
        if not isinstance(overlay, str) or not overlay:
            continue
        parts = PurePosixPath(overlay).parts
        if overlay.startswith("/") or is_remote(overlay) or ".." in parts or "\\" in overlay:
            raise ConfigError(
                f"overlay {overlay!r} of a blob map must be a path relative to the map, inside "
                "its container",
                path=f"{source}: apis.{name}.overlay",
            )
        found.append(overlay)
    return sorted(set(found))


def _refuse_relative_local_paths(sync_map: SyncMap, source: str) -> None:
    for api in sync_map.apis.values():
        for index, target in enumerate(api.targets):
            if target.kind == "folder" and not Path(str(target.params)).is_absolute():
                raise ConfigError(
                    "a folder target of a blob map must be an absolute path (there is no local "
                    "folder beside a blob)",
                    path=f"{source}: apis.{api.name}.targets[{index}].folder",
                )
    file = sync_map.notify.get("file")
    if isinstance(file, str) and not Path(file).is_absolute():
        raise ConfigError(
            "notify.file of a blob map must be an absolute path", path=f"{source}: notify.file"
        )


def _build(url: str, source: str, raw_bytes: bytes, etag: str | None, reader: Any) -> _Entry:
    try:
        raw = load_object(raw_bytes, source=source)
    except SpecError as exc:
        raise ConfigError(exc.message, path=source) from None
    folder = tempfile.mkdtemp(prefix="connector-sync-map-")
    overlays: dict[str, str | None] = {}
    try:
        for relative in _overlay_paths(raw, source):
            fetched = reader.get(_relative(url, relative))
            local = Path(folder, *PurePosixPath(relative).parts)
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(fetched.content or b"")
            overlays[relative] = fetched.etag
        sync_map = parse_map(raw, source=source, base_dir=Path(folder), written=raw_bytes)
        _refuse_relative_local_paths(sync_map, source)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    log.info(
        "sync map loaded from %s (%d APIs, %d overlays)", source, len(sync_map.apis), len(overlays)
    )
    return _Entry(sync_map, etag, raw_bytes, overlays, folder)


def _overlays_changed(url: str, entry: _Entry, reader: Any) -> bool:
    for relative, etag in entry.overlays.items():
        fetched = reader.get(_relative(url, relative), etag=etag)
        if not fetched.not_modified:
            return True
    return False


def load_remote_map(url: str, *, reader: Any = None, clock: Any = time.monotonic) -> SyncMap:
    """The map at ``url``: the cached one within ``REFRESH_SECONDS``, else revalidated by ETag.

    Any failure to produce a map is a ``ConfigError`` naming SYNC_CONFIG (HTTP answers 500 with
    it, the planner raises so Event Grid retries), whether the blob is missing, refused, or
    storage is briefly unreachable before a first copy is cached.
    """
    try:
        return _load_remote_map(url, reader=reader, clock=clock)
    except ConfigError:
        raise
    except SyncError as exc:
        raise ConfigError(
            f"sync map at {redact_url(url)} could not be read: {exc}", path="SYNC_CONFIG"
        ) from None


def _load_remote_map(url: str, *, reader: Any, clock: Any) -> SyncMap:
    """The cached map, or the result of this URL's one refresh in flight (see the module doc)."""
    with _lock:
        entry = _entries.get(url)
        now = clock()
        failed = _failed.get(url)
        if failed is not None and now - failed[0] < REFRESH_SECONDS:
            raise ConfigError(failed[1].message, path=failed[1].path)
        if entry is not None and now - entry.checked_at < REFRESH_SECONDS:
            return entry.map
        flight = _flights.get(url)
        if flight is not None:
            if entry is not None:  # someone is refreshing: the cached map meanwhile
                return entry.map
            leader = False
        else:
            flight = _flights[url] = Future()
            leader = True
    if not leader:  # a first load in flight: wait for it, its map or its error
        return flight.result()
    try:
        fresh = _refresh(url, entry, reader or _default_reader(), now, clock)
    except BaseException as exc:
        if isinstance(exc, ConfigError):  # the map as uploaded is wrong: say so, cheaply
            with _lock:
                _failed[url] = (clock(), exc)
        flight.set_exception(exc)
        raise
    else:
        with _lock:
            _failed.pop(url, None)
        flight.set_result(fresh)
        return fresh
    finally:
        with _lock:
            _flights.pop(url, None)


def _refresh(url: str, entry: _Entry | None, reader: Any, now: float, clock: Any) -> SyncMap:
    """Revalidate (or first load) the map at ``url``; the caller is this URL's single flight."""
    source = redact_url(url)
    try:
        fetched = reader.get(url, etag=entry.etag if entry else None)
    except TransientError as exc:
        if entry is None:
            raise
        log.warning("sync map at %s not revalidated, keeping the cached one: %s", source, exc)
        with _lock:  # cool down: the next try after REFRESH_SECONDS, not at the next call
            entry.checked_at = clock()
        return entry.map
    try:
        overlays_changed = (
            entry is not None and fetched.not_modified and _overlays_changed(url, entry, reader)
        )
    except TransientError as exc:  # like the map itself: keep the cached copy
        log.warning("overlays of %s not revalidated, keeping the cached map: %s", source, exc)
        overlays_changed = False
    if entry is not None and fetched.not_modified and not overlays_changed:
        with _lock:
            entry.checked_at = now
        return entry.map
    content = entry.raw if fetched.not_modified and entry is not None else fetched.content
    etag = fetched.etag or (entry.etag if entry else None)
    fresh = _build(url, source, content or b"", etag, reader)
    fresh.checked_at = now
    if entry is not None:  # its overlay folder stays: a run in flight may still read it
        log.info("sync map at %s changed; re-validated", source)
    with _lock:
        _entries[url] = fresh
    return fresh.map


def forget(url: str | None = None) -> None:
    """Drop cached maps (tests; a process never needs it)."""
    with _lock:
        for key in [url] if url else list(_failed):
            _failed.pop(key, None)
        for key in [url] if url else list(_entries):
            entry = _entries.pop(key, None)
            if entry is not None:
                shutil.rmtree(entry.folder, ignore_errors=True)
