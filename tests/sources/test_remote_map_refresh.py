"""The remote map's refresh: single flight, no caller queued behind it, a cooldown after a failure.

Every invocation (the Event Grid planner with its 30 s deadline too) asks for the map, so a slow
or unreachable storage account must cost one request per interval, never one per invocation, and
never make a caller with a cached map wait. The reader here stands in for Blob Storage: it counts
the requests and can be held mid-request, which is the one thing Azurite cannot do on demand (the
ETag behaviour itself is proven against Azurite in ``test_remote_map.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.config import SyncMap, remote
from sync.errors import ConfigError, TransientError
from sync.models import FetchedSpec

URL = "https://acct.blob.core.windows.net/c/sync-map.yaml"
WAIT = 5.0  # seconds a test waits for a thread before calling it stuck


class Storage:
    """A blob holding a valid map. ``down`` makes every request fail (TransientError);
    ``hold`` keeps a request open until ``release``; ``requests`` counts them."""

    def __init__(self, folder: Path) -> None:
        body = {
            "apis": {
                "orders": {
                    "spec": {"url": "https://api.example/o.json"},
                    "targets": [{"name": "dev", "folder": str(folder)}],
                }
            }
        }
        self.body = yaml.safe_dump(body).encode()
        self.requests = 0
        self.down = False
        self.held = threading.Event()  # a request is in progress and held
        self._gate = threading.Event()
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Any:
        self.requests += 1
        self.held.set()
        assert self._gate.wait(WAIT), "the test never released the request"
        if self.down:
            raise TransientError("storage unreachable", where=url)
        if etag == '"1"':
            return FetchedSpec(url=url, content=None, etag=etag)
        return FetchedSpec(url=url, content=self.body, etag='"1"')


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    remote.forget(URL)
    yield Storage(tmp_path)
    remote.forget(URL)


def in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    """Run ``call`` on a thread; the list receives its result or its exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # handed to the test, whatever it is
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_failed_refresh_keeps_the_cached_map_and_waits_the_interval(storage: Storage) -> None:
    clock = Clock()
    first = remote.load_remote_map(URL, reader=storage, clock=clock)
    storage.down = True
    clock.now += remote.REFRESH_SECONDS
    for _ in range(5):  # the same second: one request, not one per call
        assert remote.load_remote_map(URL, reader=storage, clock=clock) is first
    assert storage.requests == 2
    clock.now += remote.REFRESH_SECONDS - 1
    assert remote.load_remote_map(URL, reader=storage, clock=clock) is first
    assert storage.requests == 2  # still cooling down
    clock.now += 1
    storage.down = False
    assert remote.load_remote_map(URL, reader=storage, clock=clock) is first  # 304 again
    assert storage.requests == 3


def test_callers_with_a_cached_map_never_wait_for_the_refresh(storage: Storage) -> None:
    clock = Clock()
    first = remote.load_remote_map(URL, reader=storage, clock=clock)
    clock.now += remote.REFRESH_SECONDS
    storage.hold()
    refresher, refreshed = in_thread(
        lambda: remote.load_remote_map(URL, reader=storage, clock=clock)
    )
    assert storage.held.wait(WAIT)
    others = [
        in_thread(lambda: remote.load_remote_map(URL, reader=storage, clock=clock))
        for _ in range(5)
    ]
    for thread, out in others:
        thread.join(WAIT / 5)
        assert not thread.is_alive(), "a caller with a cached map waited behind the refresh"
        assert out == [first]
    assert storage.requests == 2  # one refresh in flight, nobody else asked storage
    storage.release()
    refresher.join(WAIT)
    assert refreshed == [first]


def test_a_first_load_waits_for_the_one_in_flight_and_shares_it(storage: Storage) -> None:
    clock = Clock()
    storage.hold()
    calls = [
        in_thread(lambda: remote.load_remote_map(URL, reader=storage, clock=clock))
        for _ in range(4)
    ]
    assert storage.held.wait(WAIT)
    for thread, _ in calls:
        thread.join(0.05)
        assert thread.is_alive()  # nothing cached: they must wait for the map
    storage.release()
    for thread, _ in calls:
        thread.join(WAIT)
    results = [out[0] for _, out in calls]
    assert isinstance(results[0], SyncMap) and all(r is results[0] for r in results)
    assert storage.requests == 1


def test_a_first_load_that_fails_fails_every_waiting_caller_as_a_config_error(
    storage: Storage,
) -> None:
    clock = Clock()
    storage.down = True
    storage.hold()
    calls = [
        in_thread(lambda: remote.load_remote_map(URL, reader=storage, clock=clock))
        for _ in range(3)
    ]
    assert storage.held.wait(WAIT)
    storage.release()
    for thread, _ in calls:
        thread.join(WAIT)
    for _, out in calls:
        assert isinstance(out[0], ConfigError) and out[0].path == "SYNC_CONFIG"
        assert "storage unreachable" in str(out[0])
    assert storage.requests == 1
    storage.down = False  # nothing was cached: the next call tries at once
    assert isinstance(remote.load_remote_map(URL, reader=storage, clock=clock), SyncMap)


def test_a_broken_upload_is_read_once_per_interval_and_still_refused(storage: Storage) -> None:
    """A map that does not load was downloaded and parsed again by every invocation until
    someone fixed the blob (found by review 2026-12-07). It is refused, as before, but read
    once per interval; a fixed upload is picked up at the next one."""
    clock = Clock()
    good = remote.load_remote_map(URL, reader=storage, clock=clock)
    real_get = storage.get

    def broken(url: str, *, etag: str | None = None, last_modified: str | None = None) -> Any:
        storage.requests += 1
        return FetchedSpec(url=url, content=b"apis: [not, a, mapping", etag='"2"')

    storage.get = broken  # type: ignore[method-assign]
    clock.now += remote.REFRESH_SECONDS + 1
    before = storage.requests
    for _ in range(5):
        with pytest.raises(ConfigError):
            remote.load_remote_map(URL, reader=storage, clock=clock)
    assert storage.requests - before == 1
    storage.get = real_get  # type: ignore[method-assign]
    clock.now += remote.REFRESH_SECONDS
    fixed = remote.load_remote_map(URL, reader=storage, clock=clock)
    assert fixed.apis.keys() == good.apis.keys()
