"""The connector is read as soon as the download brings content, while the spec is prepared and the
lease is taken: a failed read is reported by the item as if read under the lease, and no read
outlives its item (not even one whose spec turns out broken)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from sync.errors import LeaseTakenError, TargetError
from sync.logs import current_context
from sync.models import RunSummary, SyncRequest, WorkItem
from sync.runs import execute, run_id_for
from tests.pipeline.conftest import Stack

API = "contoso-invoicing"


class ReadWrapper:
    """A folder target whose read is slow or fails; everything else is the real target."""

    def __init__(
        self,
        inner: Any,
        *,
        delay: float = 0.0,
        error: str | None = None,
        turn_limit: float | None = None,
    ) -> None:
        self._inner, self._delay, self._error = inner, delay, error
        self._turn_limit = (
            turn_limit  # wait for the item's decoding turn, as the PowerApps read does
        )
        self.turns: list[
            bool
        ] = []  # what each wait for the turn returned (False: the limit ran out)
        self.reads: list[str] = []
        self.contexts: list[dict[str, Any]] = []
        self.started = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read(self) -> Any:
        self.reads.append(threading.current_thread().name)
        self.contexts.append(current_context())
        self.started.set()
        time.sleep(self._delay)
        if self._turn_limit is not None:
            from sync import decode_turn

            self.turns.append(decode_turn.wait_for_turn(self._turn_limit))
        if self._error:
            raise TargetError(self._error, where="test")
        result = self._inner.read()
        self.reads.append("done")
        return result


def wrapped(stack: Stack, **behaviour: Any) -> tuple[Any, dict[str, ReadWrapper]]:
    """A service whose targets are wrapped (one wrapper per target name, kept for asserts)."""
    stack.serve("openapi-v1.yaml")
    real = stack.service().ports.targets
    wrappers: dict[str, ReadWrapper] = {}

    def targets(api: str, name: str) -> ReadWrapper:
        return wrappers.setdefault(name, ReadWrapper(real(api, name), **behaviour))

    return stack.service(targets=targets), wrappers


def item_for(svc: Any, target: str, event_id: str) -> WorkItem:
    request = SyncRequest(api=API, reason="event", event_id=event_id, targets=(target,))
    item = WorkItem(run_id=run_id_for(request), api=API, target=target, request=request)
    svc.ports.ledger.start_run(
        RunSummary(run_id=item.run_id, api=API, request=request, targets=(target,))
    )
    return item


def test_a_failed_early_read_is_the_items_failure_and_the_lease_is_released(stack: Stack) -> None:
    svc, wrappers = wrapped(stack, error="connector is gone")
    outcome = execute(item_for(svc, "dev", "evt-read-fails"), svc.pipeline, svc.ports)
    assert outcome.result == "failed"
    assert "connector is gone" in outcome.message
    assert wrappers["dev"].reads == ["connector-read"]  # read in the background, before the lease
    lease = svc.ports.ledger.acquire_lease(API, "dev", "someone-else", 60)  # it was released
    svc.ports.ledger.release_lease(lease)


def test_no_early_read_outlives_an_item_whose_lease_is_taken(stack: Stack) -> None:
    svc, wrappers = wrapped(stack, delay=0.3)
    held = svc.ports.ledger.acquire_lease(API, "dev", "another-worker", 60)
    try:
        with pytest.raises(LeaseTakenError, match="another-worker"):
            execute(item_for(svc, "dev", "evt-lease-taken"), svc.pipeline, svc.ports)
        assert wrappers["dev"].reads == ["connector-read", "done"]  # finished before the raise
    finally:
        svc.ports.ledger.release_lease(held)


def test_an_update_reads_the_connector_once(stack: Stack) -> None:
    svc, wrappers = wrapped(stack)
    outcome = execute(item_for(svc, "dev", "evt-once"), svc.pipeline, svc.ports)
    assert outcome.result == "updated", outcome.message
    assert wrappers["dev"].reads == ["connector-read", "done"]
    assert stack.folder("dev").exists()
    [seen] = wrappers["dev"].contexts  # the background read logs with the item's fields
    assert seen["api"] == API and seen["target"] == "dev" and seen["run_id"]


def test_the_read_starts_when_the_download_arrives_before_the_spec_is_prepared(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sync.pipeline as pipeline

    svc, wrappers = wrapped(stack)
    real = pipeline.prepare_upstream
    read_running: list[bool] = []

    def prepare(*args: Any, **kwargs: Any) -> Any:
        read_running.append(wrappers["dev"].started.wait(5))  # times out if the read waits for us
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "prepare_upstream", prepare)
    outcome = execute(item_for(svc, "dev", "evt-read-first"), svc.pipeline, svc.ports)
    assert outcome.result == "updated", outcome.message
    assert read_running == [True]
    assert wrappers["dev"].reads == ["connector-read", "done"]


def test_a_broken_spec_fails_the_item_only_after_the_read_it_started_has_finished(
    stack: Stack,
) -> None:
    svc, wrappers = wrapped(stack, delay=0.3)
    stack.server.set_spec(
        "/openapi.yaml", b"swagger: '2.0'\npaths: [unclosed\n", "application/yaml"
    )
    outcome = execute(item_for(svc, "dev", "evt-broken-spec"), svc.pipeline, svc.ports)
    assert outcome.result == "failed"
    assert wrappers["dev"].reads == ["connector-read", "done"]  # finished before the item did


def test_the_same_content_under_a_new_etag_is_checked_with_the_one_early_read(stack: Stack) -> None:
    svc, wrappers = wrapped(stack)
    first = execute(item_for(svc, "dev", "evt-same-1"), svc.pipeline, svc.ports)
    assert first.result == "updated", first.message
    body = stack.server.state.specs["/openapi.yaml"].body
    stack.server.set_spec("/openapi.yaml", body, "application/yaml", etag='"moved"')
    again = execute(item_for(svc, "dev", "evt-same-2"), svc.pipeline, svc.ports)
    assert again.result == "unchanged" and again.message == "spec content unchanged"
    assert wrappers["dev"].reads == ["connector-read", "done"] * 2


def test_background_workers_are_reused_and_carry_the_callers_context():
    import contextvars
    import threading
    import time

    from sync.background import in_background, unfinished

    var = contextvars.ContextVar("var", default="unset")
    var.set("the item's")
    first = in_background(lambda: var.get(), name="probe")
    assert first.result(timeout=5) == "the item's"
    deadline = time.monotonic() + 5
    while unfinished() and time.monotonic() < deadline:
        time.sleep(0.001)
    alive = {thread.ident for thread in threading.enumerate()}
    again = in_background(threading.get_ident, name="probe")
    assert again.result(timeout=5) in alive  # an idle worker took it: no thread was started
    failing = in_background(lambda: 1 / 0, name="probe")
    assert isinstance(failing.exception(timeout=5), ZeroDivisionError)


# --- the upstream's validation runs in the read's wait -------------------------------------------


def spy_validations(
    monkeypatch: pytest.MonkeyPatch, wrapper: ReadWrapper
) -> list[tuple[str, bool]]:
    """Each local validation: (its thread, whether the connector read had finished then); with an
    empty report cache, so no earlier test's report is found instead."""
    import sync.pipeline as pipeline
    import sync.spec.validate as validate_module
    from sync.lru import Lru

    monkeypatch.setattr(pipeline, "_REPORTS", Lru(64))
    real = validate_module.validate
    seen: list[tuple[str, bool]] = []

    def validate(*args: Any, **kwargs: Any) -> Any:
        seen.append((threading.current_thread().name, "done" in wrapper.reads))
        return real(*args, **kwargs)

    monkeypatch.setattr(validate_module, "validate", validate)
    return seen


def test_the_upstream_is_validated_while_the_connector_read_is_on_its_way(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, wrappers = wrapped(stack, delay=0.3)
    seen = spy_validations(monkeypatch, _first(svc, wrappers))
    outcome = execute(item_for(svc, "dev", "evt-validate-early"), svc.pipeline, svc.ports)
    assert outcome.result == "updated", outcome.message
    # once, on the item's thread, before the read finished; the stages found the report done
    assert seen == [("MainThread", False)]


def test_a_spec_that_fails_validation_early_fails_in_its_place(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The early validation only keeps the report: the item fails in the stages, under the
    lease, after the read, with the validation's message, as before."""
    svc, wrappers = wrapped(stack, delay=0.3)
    stack.server.set_spec("/openapi.yaml", DUPLICATE_IDS, "application/yaml")
    seen = spy_validations(monkeypatch, _first(svc, wrappers))
    outcome = execute(item_for(svc, "dev", "evt-invalid-early"), svc.pipeline, svc.ports)
    assert outcome.result == "failed"
    assert "duplicate operationId 'listThings'" in outcome.message
    assert seen == [("MainThread", False)]
    assert wrappers["dev"].reads == ["connector-read", "done"]
    state = svc.ports.ledger.state(API, "dev")
    assert state.last_outcome == "failed" and state.version == 0
    lease = svc.ports.ledger.acquire_lease(API, "dev", "someone-else", 60)  # it was released
    svc.ports.ledger.release_lease(lease)


def test_a_quick_read_leaves_the_validation_to_the_stages(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sync.pipeline as pipeline

    svc, wrappers = wrapped(stack)
    early: list[bool] = []
    real = pipeline.Pipeline._validate_while_reading
    monkeypatch.setattr(
        pipeline.Pipeline,
        "_validate_while_reading",
        staticmethod(lambda *a: (early.append(True), real(*a))),
    )
    # the read is done before the spec is prepared: nothing to wait for, so nothing runs early
    real_prepare = pipeline.prepare_upstream

    def prepare(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 5
        while "done" not in _first(svc, wrappers).reads and time.monotonic() < deadline:
            time.sleep(0.01)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(pipeline, "prepare_upstream", prepare)
    outcome = execute(item_for(svc, "dev", "evt-quick-read"), svc.pipeline, svc.ports)
    assert outcome.result == "updated", outcome.message
    assert early == []


def _first(svc: Any, wrappers: dict[str, ReadWrapper]) -> ReadWrapper:
    """The "dev" wrapper, made now if no call made it yet (the spy needs it before the item)."""
    return wrappers.get("dev") or svc.ports.targets(API, "dev")


DUPLICATE_IDS = b"""swagger: '2.0'
info: {title: Things, version: '1.0'}
host: things.example.com
basePath: /
schemes: [https]
paths:
  /things:
    get:
      operationId: listThings
      responses: {'200': {description: ok}}
  /other:
    get:
      operationId: listThings
      responses: {'200': {description: ok}}
"""


# --- the read decodes its answer once the item's thread waits (sync.decode_turn) ------------------


def test_the_read_waits_for_the_items_turn_until_the_spec_is_prepared(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sync.pipeline as pipeline

    svc, wrappers = wrapped(stack, turn_limit=5)
    real = pipeline.prepare_upstream
    order: list[str] = []

    def prepare(*args: Any, **kwargs: Any) -> Any:
        assert wrappers["dev"].started.wait(5)  # the read has begun and reached the turn
        time.sleep(0.05)  # room for it to go on, were the turn not held
        order.append("prepare ends" if not wrappers["dev"].turns else "read went on first")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "prepare_upstream", prepare)
    outcome = execute(item_for(svc, "dev", "evt-turn"), svc.pipeline, svc.ports)
    assert outcome.result == "updated", outcome.message
    assert order == ["prepare ends"]
    assert wrappers["dev"].turns == [True]  # given up before the item waited for the read


def _broken_spec(stack: Stack) -> None:
    stack.server.set_spec(
        "/openapi.yaml", b"swagger: '2.0'\npaths: [unclosed\n", "application/yaml"
    )


def _invalid_spec(stack: Stack) -> None:
    stack.server.set_spec("/openapi.yaml", DUPLICATE_IDS, "application/yaml")


@pytest.mark.parametrize(
    "ending", ["updated", "broken spec", "invalid spec", "lease taken", "same content"]
)
def test_every_ending_gives_the_turn_up_before_waiting_for_the_read(
    stack: Stack, ending: str
) -> None:
    """A wait for the read while the turn is held would meet the read's wait for the turn; the
    read's limit (1 s here) would end it and return False."""
    svc, wrappers = wrapped(stack, turn_limit=1.0)
    if ending == "broken spec":
        _broken_spec(stack)
    elif ending == "invalid spec":
        _invalid_spec(stack)
    elif ending == "same content":
        first = execute(item_for(svc, "dev", "evt-ending-1"), svc.pipeline, svc.ports)
        assert first.result == "updated", first.message
        body = stack.server.state.specs["/openapi.yaml"].body
        stack.server.set_spec("/openapi.yaml", body, "application/yaml", etag='"moved"')
    held = None
    if ending == "lease taken":
        held = svc.ports.ledger.acquire_lease(API, "dev", "another-worker", 60)
    try:
        try:
            outcome = execute(item_for(svc, "dev", "evt-ending"), svc.pipeline, svc.ports)
        except LeaseTakenError:
            assert ending == "lease taken"
        else:
            expected = {"updated": "updated", "same content": "unchanged"}.get(ending, "failed")
            assert outcome.result == expected, outcome.message
    finally:
        if held is not None:
            svc.ports.ledger.release_lease(held)
    assert wrappers["dev"].turns and all(wrappers["dev"].turns), wrappers["dev"].turns
