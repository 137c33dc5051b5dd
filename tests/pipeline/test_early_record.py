"""The version's ledger transaction is prepared while the connector write is in flight and sent
only after the write is verified (``sync.early_record``): the strict Power Platform simulator,
Azurite, the whole pipeline."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import sync.early_record as early_record
from sync import write_progress
from sync.adapters.powerapps import PowerAppsTarget
from sync.background import unfinished
from sync.bootstrap import build
from sync.errors import TargetError
from sync.triggers import plan
from sync.worker_loop import drain
from tests.pipeline.conftest import ENV, Stack, ci_event
from tests.pipeline.test_powerplatform_e2e import powerapps_map
from tests.powerplatform.conftest import settle
from tests.simulators.powerplatform import Simulator

pytestmark = pytest.mark.azurite
API, TARGET = "contoso-invoicing", "prod"


class Holds:
    """Counts the early records that reached their hold, lets a test wait for one, and keeps
    the order of the write's "body sent" signals and the holds."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.count = 0
        self.order: list[str] = []
        real = early_record.Gate.wait
        real_sent = write_progress.body_sent

        def wait(gate: early_record.Gate) -> None:
            self.count += 1
            self.order.append("hold")
            self.entered.set()
            real(gate)

        def body_sent() -> None:
            self.order.append("body sent")
            real_sent()

        real_start = early_record.EarlyRecord.start

        def start(record: early_record.EarlyRecord) -> None:
            self.order.append("start")
            real_start(record)

        monkeypatch.setattr(early_record.Gate, "wait", wait)
        monkeypatch.setattr(write_progress, "body_sent", body_sent)
        monkeypatch.setattr(early_record.EarlyRecord, "start", start)


def synced_v1(stack: Stack, sim: Simulator) -> Any:
    powerapps_map(stack, sim)
    svc = build(stack.settings)
    stack.serve("openapi-v1.yaml")
    plan(ci_event(), svc)
    [first] = drain(svc, wait_seconds=0.5)
    assert first.result == "updated", first.message
    return svc


def versions(svc: Any) -> list[int]:
    return [v.version for v in svc.ports.ledger.versions(API, TARGET)]


def test_the_record_is_prepared_during_the_write_and_sent_after_it(
    stack: Stack, sim: Simulator, identity: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    holds = Holds(monkeypatch)
    svc = synced_v1(stack, sim)
    assert holds.count == 0  # the create: its id comes with the answer, recorded after it
    created = svc.ports.ledger.state(API, TARGET).connector_id
    seen_during_write: list[list[int]] = []
    real_write = PowerAppsTarget.write

    def write(self: PowerAppsTarget, definition: Any, current: Any) -> Any:
        answer = real_write(self, definition, current)
        # The record reached its hold during the write, started once the PATCH body had left.
        assert holds.entered.wait(10), "the version's record was not prepared during the write"
        seen_during_write.append(versions(svc))  # written, not yet verified: nothing recorded
        return answer

    monkeypatch.setattr(PowerAppsTarget, "write", write)
    stack.serve("openapi-v2.yaml")
    plan(ci_event(), svc)
    [second] = drain(svc, wait_seconds=0.5)
    assert second.result == "updated", second.message
    assert seen_during_write == [[1]]
    assert versions(svc) == [2, 1]
    state = svc.ports.ledger.state(API, TARGET)
    assert (state.version, state.connector_id, state.pending) == (2, created, None)
    recorded = svc.ports.ledger.version(API, TARGET, 2, include_definitions=True)
    assert recorded.applied == sim.powerapps_connector(ENV, created)["definition"]
    assert holds.count == 1
    # started once the PATCH body had left, not before the upload, which it would compete with
    assert holds.order[:3] == ["body sent", "start", "hold"]


@pytest.mark.parametrize("failing", ["write", "verify"])
def test_a_write_that_fails_or_does_not_verify_records_nothing(
    stack: Stack, sim: Simulator, identity: Any, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The PATCH body has left (the record is started and waiting at its hold) when the
    platform refuses the write, or when the write lands and its read-back does not match."""
    holds = Holds(monkeypatch)
    svc = synced_v1(stack, sim)
    if failing == "write":
        sim.faults.add(status=400, method="PATCH", times=5, code="BadRequest", message="refused")
    else:
        real = PowerAppsTarget.verify

        def fails(self: PowerAppsTarget, *args: Any) -> Any:
            assert holds.entered.wait(10)  # the write sent its body: the record is waiting
            real(self, *args)  # the write landed; its read-back is what fails
            raise TargetError("verify failed", where="test")

        monkeypatch.setattr(PowerAppsTarget, "verify", fails)
    stack.serve("openapi-v2.yaml")
    plan(ci_event(), svc)
    [second] = drain(svc, wait_seconds=0.5)
    assert second.result == "failed", second.message
    assert ("refused" if failing == "write" else "verify failed") in second.message
    assert holds.order[:2] == ["body sent", "start"]  # the record was under way
    settle()
    assert unfinished() == 0  # the abandoned record ended with its item
    assert versions(svc) == [1]
    state = svc.ports.ledger.state(API, TARGET)
    assert state.version == 1 and state.pending  # the marker says a write may have landed


def test_a_record_the_ledger_refuses_fails_the_item_after_the_write(
    stack: Stack,
    sim: Simulator,
    identity: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The state row moved during the write (another worker): the prepared transaction is
    refused by its ETag once sent, as the sequential one was, and nothing is recorded twice."""
    holds = Holds(monkeypatch)
    svc = synced_v1(stack, sim)
    ledger = svc.ports.ledger
    real_write = PowerAppsTarget.write

    def write(self: PowerAppsTarget, definition: Any, current: Any) -> Any:
        answer = real_write(self, definition, current)
        state = ledger.state(API, TARGET)
        ledger.save_state(API, TARGET, state.evolve(last_message="moved by someone else"))
        return answer

    monkeypatch.setattr(PowerAppsTarget, "write", write)
    stack.serve("openapi-v2.yaml")
    plan(ci_event(), svc)
    with caplog.at_level("WARNING"):
        assert drain(svc, wait_seconds=0.5) == []  # transient: left on the queue to retry
    assert "state row changed since it was read (stale ETag)" in caplog.text
    assert versions(svc) == [1]
    assert svc.ports.ledger.state(API, TARGET).pending  # the retry reconciles from the marker
    assert holds.count == 1  # the record refused was the one prepared during the write


# -- the gate itself, without storage --------------------------------------------------------------


def test_commit_gives_what_the_send_returned_and_lets_later_holds_through() -> None:
    holds: list[str] = []

    def send(hold: Any) -> str:
        hold()
        holds.append("first")
        hold()  # a resend after the gate opened does not wait
        holds.append("again")
        return "recorded"

    record = early_record.EarlyRecord("c1", send)
    assert record.commit() == "recorded"
    assert holds == ["first", "again"]


def test_abandon_sends_nothing_and_waits_for_the_background_to_end() -> None:
    sent: list[str] = []
    ended = threading.Event()

    def send(hold: Any) -> None:
        try:
            hold()
            sent.append("sent")
        finally:
            ended.set()

    record = early_record.EarlyRecord("c1", send)
    record.start()
    record.abandon()
    assert ended.is_set() and sent == []


def test_a_failure_before_the_hold_is_raised_by_commit_and_dropped_by_abandon() -> None:
    def send(hold: Any) -> None:
        raise TargetError("version row too large", where="test")

    with pytest.raises(TargetError, match="too large"):
        early_record.EarlyRecord("c1", send).commit()
    started = early_record.EarlyRecord("c1", send)
    started.start()
    started.abandon()  # the version is not recorded either way


def test_a_record_never_started_is_sent_by_commit_and_never_by_a_late_start() -> None:
    """A write that failed before its body left never started its record; one that never said
    so (no ``body_sent``) has it started by ``commit``."""
    calls: list[str] = []

    def send(hold: Any) -> str:
        hold()
        calls.append("sent")
        return "recorded"

    assert early_record.EarlyRecord("c1", send).commit() == "recorded"
    assert calls == ["sent"]
    abandoned = early_record.EarlyRecord("c1", send)
    abandoned.abandon()
    abandoned.start()  # e.g. a late "body sent": nothing starts after the item gave it up
    assert calls == ["sent"] and unfinished() == 0
