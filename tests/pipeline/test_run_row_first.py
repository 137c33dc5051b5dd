"""An inline run (the CLI) writes its run row while its items read: the row's round trip overlaps
the state read, the download and the connector read, but no write goes ahead of the row, and a
run whose row cannot be written writes nothing at all (as when the row was written first)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from sync.errors import TransientError
from sync.models import SyncRequest
from sync.runs import run_inline
from tests.pipeline.conftest import Stack

pytestmark = pytest.mark.azurite

API = "contoso-invoicing"
READS = {"state", "seen_event", "versions", "version", "prepare_definitions"}


class HeldRunRow:
    """The real ledger, logging every call in order; ``start_run`` waits until ``release`` is
    set (by the connector read, or by the ledger call ``release_on``), then takes ``slow``
    seconds more and fails with ``fail`` or writes the row."""

    def __init__(
        self,
        inner: Any,
        *,
        fail: Exception | None = None,
        release_on: str | None = None,
        slow: float = 0.0,
    ) -> None:
        self._inner, self._fail, self._release_on, self._slow = inner, fail, release_on, slow
        self.calls: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def _log(self, entry: str) -> None:
        with self._lock:
            self.calls.append(entry)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self._log(name)
            if name == self._release_on:
                self.release.set()
            if name == "start_run":
                if not self.release.wait(10):
                    raise AssertionError("the run row was awaited before the releasing read")
                time.sleep(self._slow)
                if self._fail is not None:
                    raise self._fail
                attr(*args, **kwargs)
                self._log("start_run done")
                return None
            return attr(*args, **kwargs)

        return call


class ReleasingRead:
    """The real folder target; its read lets the held run row go on."""

    def __init__(self, inner: Any, held: HeldRunRow) -> None:
        self._inner, self._held = inner, held
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read(self) -> Any:
        self.reads += 1
        self._held.release.set()
        return self._inner.read()


def service(stack: Stack, held: HeldRunRow) -> tuple[Any, dict[str, ReleasingRead]]:
    stack.serve("openapi-v1.yaml")
    real = stack.service().ports.targets
    wrappers: dict[str, ReleasingRead] = {}

    def targets(api: str, name: str) -> ReleasingRead:
        return wrappers.setdefault(name, ReleasingRead(real(api, name), held))

    return stack.service(ledger=held, targets=targets), wrappers


def test_the_run_row_overlaps_the_first_reads_and_every_write_waits_for_it(stack):
    held = HeldRunRow(stack.service().ports.ledger, slow=0.3)  # slower than the item's reads
    svc, wrappers = service(stack, held)
    request = SyncRequest(api=API, reason="cli", targets=("dev",))

    result = run_inline(request, svc.map, svc.ports, svc.pipeline)

    assert [o.result for o in result.outcomes] == ["updated"], result.outcomes
    assert wrappers["dev"].reads >= 1
    done = held.calls.index("start_run done")
    assert "state" in held.calls[:done], held.calls  # read while the row was on its way
    writes = [
        i
        for i, name in enumerate(held.calls)
        if name not in READS | {"start_run", "start_run done"}
    ]
    assert writes and min(writes) > done, held.calls  # the first write came after the row
    assert held.calls[min(writes)] == "acquire_lease", held.calls
    run = stack.service().ports.ledger.get_run(result.run.run_id)
    assert run is not None and [o.result for o in run.outcomes] == ["updated"]
    assert stack.folder("dev").exists()


@pytest.mark.parametrize("concurrency", [1, 4])  # 4: the CLI's, both targets at once
def test_a_run_whose_row_cannot_be_written_writes_nothing(stack, concurrency):
    ledger = stack.service().ports.ledger
    held = HeldRunRow(ledger, fail=TransientError("storage down", where="ledger.start_run"))
    svc, wrappers = service(stack, held)
    request = SyncRequest(api=API, reason="cli")

    with pytest.raises(TransientError, match="storage down"):
        run_inline(request, svc.map, svc.ports, svc.pipeline, concurrency=concurrency)

    assert wrappers["dev"].reads >= 1  # the items did start (and only read)
    assert set(held.calls) - READS == {"start_run"}, held.calls
    for target in ("dev", "prod"):
        assert not stack.folder(target).exists()
        assert ledger.versions(API, target) == []
        assert ledger.state(API, target).etag is None


def test_a_run_row_that_fails_after_the_items_only_read_still_fails_the_run(stack):
    """The second run of an unchanged spec writes nothing to the target or its rows; its
    fan-in (``finish_item``, held for the row) is what tells the caller the run was not
    recorded."""
    ledger = stack.service().ports.ledger
    first = stack.service()
    request = SyncRequest(api=API, reason="cli", targets=("dev",))
    stack.serve("openapi-v1.yaml")
    assert [
        o.result for o in run_inline(request, first.map, first.ports, first.pipeline).outcomes
    ] == ["updated"]
    state = ledger.state(API, "dev")

    held = HeldRunRow(
        ledger, fail=TransientError("storage down", where="ledger.start_run"), release_on="state"
    )
    svc, wrappers = service(stack, held)
    with pytest.raises(TransientError, match="storage down"):
        run_inline(request, svc.map, svc.ports, svc.pipeline)

    assert set(held.calls) - READS == {"start_run"}, held.calls
    assert wrappers["dev"].reads == 0  # the item ended at its pre-check: unchanged, read nothing
    assert ledger.state(API, "dev").etag == state.etag
    assert [r.version for r in ledger.versions(API, "dev")] == [1]


def test_every_ledger_call_is_decided_by_the_wrapper():
    """A new port method must be placed (read straight through, or after the run row) here too:
    a missing one would only fail inside an inline run."""
    from sync.ports import Ledger
    from sync.run_row_first import RunRowFirst

    calls = {name for name in vars(Ledger) if not name.startswith("_")}
    assert calls, "the Ledger port lists no calls"
    assert calls <= set(vars(RunRowFirst)), sorted(calls - set(vars(RunRowFirst)))
