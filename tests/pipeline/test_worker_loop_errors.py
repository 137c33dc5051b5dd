"""Permanent errors in the queue's work: an item whose target the map lost while it was queued
ends as failed in one delivery, and the local worker loop handles any error an item raises as
the host does (retry, then record the failure on the last delivery) instead of ending the loop.
"""

from __future__ import annotations

import json

import pytest

import sync.worker_loop as worker_loop
from sync.errors import PermanentError
from sync.triggers import plan
from sync.worker_loop import drain
from tests.pipeline.conftest import ci_event

pytestmark = pytest.mark.azurite

API = "contoso-invoicing"


def without_target(stack, name: str) -> None:
    data = json.loads(stack.map_path.read_text())
    data["apis"][API]["targets"] = [t for t in data["apis"][API]["targets"] if t["name"] != name]
    stack.map_path.write_text(json.dumps(data))


def assert_run_ended_with_prod_failed(stack, svc, run_id: str) -> None:
    """The run completed with dev updated and prod failed, one card went out, nothing poisoned."""
    run = svc.ports.ledger.get_run(run_id)
    assert run.complete and {o.target: o.result for o in run.outcomes} == {
        "dev": "updated",
        "prod": "failed",
    }
    assert len(stack.cards()) == 1
    assert svc.ports.queue.peek_poison() == []


def test_an_item_whose_target_the_map_no_longer_has_ends_failed_in_one_delivery(stack):
    stack.serve("openapi-v1.yaml")
    [run_id] = plan(ci_event("evt-map-lost-prod"), stack.service())
    without_target(stack, "prod")  # the map is redeployed while the run's items are queued
    svc = stack.service()

    outcomes = {o.target: o for o in drain(svc, wait_seconds=0.3, concurrency=2)}

    assert outcomes["dev"].result == "updated", outcomes
    prod = outcomes["prod"]
    assert prod.result == "failed" and "'prod'" in prod.message, prod
    assert_run_ended_with_prod_failed(stack, svc, run_id)
    assert svc.ports.ledger.state(API, "prod").last_outcome is None  # no row for a lost target
    assert not stack.folder("prod").exists()


def test_a_permanent_error_escaping_an_item_is_retried_then_recorded_like_the_host(
    stack, monkeypatch
):
    stack.serve("openapi-v1.yaml")
    svc = stack.service()
    [run_id] = plan(ci_event("evt-permanent"), svc)
    real_execute = worker_loop.execute
    calls: list[str] = []

    def execute(item, pipeline, ports):
        calls.append(item.target)
        if item.target == "prod":
            raise PermanentError("the run row refused prod's outcome")
        return real_execute(item, pipeline, ports)

    monkeypatch.setattr(worker_loop, "execute", execute)

    first = drain(svc, wait_seconds=0.3, visibility_timeout=1, concurrency=2)

    assert [(o.target, o.result) for o in first] == [("dev", "updated")]  # its batch-mate kept
    assert not svc.ports.ledger.get_run(run_id).complete  # prod is left for a retry

    rest = drain(svc, wait_seconds=2.5, visibility_timeout=1)

    assert calls.count("prod") == worker_loop.HOST_MAX_DEQUEUE_COUNT, calls
    [gave_up] = rest
    assert gave_up.target == "prod" and gave_up.result == "failed"
    assert "the run row refused prod's outcome" in gave_up.message
    assert_run_ended_with_prod_failed(stack, svc, run_id)


def test_a_last_delivery_whose_failure_cannot_be_recorded_is_left_and_the_loop_goes_on(
    stack, monkeypatch
):
    """Recording the last delivery's failure fails (the run row refuses it): as under the host,
    the item is left on the queue and the loop goes on; its next receive moves it to the poison
    queue and records it, as the host's poison trigger would. Before, the error escaped
    ``drain`` (its batch-mate's outcome unreported, the command ended with a traceback); and
    then, with the host's real limit, the item moved to poison was never recorded locally: the
    run never completed and sent no card (the loop's receive used its own limit, so a lowered
    ``HOST_MAX_DEQUEUE_COUNT`` hid that)."""
    from sync.adapters.ledger_tables import TableLedger
    from sync.errors import TransientError

    stack.serve("openapi-v1.yaml")
    svc = stack.service()
    [run_id] = plan(ci_event("evt-unrecordable"), svc)
    real_execute = worker_loop.execute
    real_finish = TableLedger.finish_item
    refused: list[str] = []

    def execute(item, pipeline, ports):
        if item.target == "prod":
            raise PermanentError("the target refused prod")
        return real_execute(item, pipeline, ports)

    def finish_item(self, run_id, outcome, **options):
        if outcome.result == "failed" and not refused:
            refused.append(outcome.target)
            raise TransientError("table down", where="ledger.finish_item")
        return real_finish(self, run_id, outcome, **options)

    monkeypatch.setattr(worker_loop, "execute", execute)
    monkeypatch.setattr(worker_loop, "HOST_MAX_DEQUEUE_COUNT", 1)  # every delivery is the last
    monkeypatch.setattr(TableLedger, "finish_item", finish_item)

    first = drain(svc, wait_seconds=0.3, visibility_timeout=1)

    assert [(o.target, o.result) for o in first] == [("dev", "updated")]
    assert refused == ["prod"]
    assert not svc.ports.ledger.get_run(run_id).complete  # prod's failure is not recorded yet

    rest = drain(svc, wait_seconds=2.5, visibility_timeout=1)  # delivered past the limit

    [gave_up] = rest
    assert gave_up.target == "prod" and gave_up.result == "failed"
    assert "gave up" in gave_up.message  # the poison path knows no reason, as under the host
    assert [m.item.target for m in svc.ports.queue.peek_poison()] == ["prod"]  # for a re-drive
    run = svc.ports.ledger.get_run(run_id)
    assert run.complete and {o.target: o.result for o in run.outcomes} == {
        "dev": "updated",
        "prod": "failed",
    }
    assert len(stack.cards()) == 1
