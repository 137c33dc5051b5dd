"""A lease left by a crashed worker outlasts the host's five deliveries (30 s apart; the lease runs
600 s): on the delivery that would poison, the item is sent again, hidden until the lease
expires, instead of being recorded as failed with a card. Earlier deliveries, leases of unknown
length and items already sent again too often keep the host's retry and poison handling."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from azure.functions.queue import QueueMessage  # the type the worker hands the trigger

from sync.errors import LeaseTakenError
from sync.models import MAX_LEASE_REQUEUES, RunSummary, SyncRequest, WorkItem
from sync.triggers import parse_work_item
from sync.worker_loop import drain
from tests.pipeline.test_function_app import call, received

pytestmark = pytest.mark.azurite

API = "contoso-invoicing"


def started_item(svc, **changes) -> WorkItem:
    request = SyncRequest(api=API, reason="manual", targets=("dev",))
    item = WorkItem(run_id=uuid.uuid4().hex, api=API, target="dev", request=request, **changes)
    svc.ports.ledger.start_run(
        RunSummary(run_id=item.run_id, api=API, request=request, targets=("dev",))
    )
    return item


def delivery(item: WorkItem, dequeue_count: int) -> QueueMessage:
    body = json.dumps(item.to_dict()).encode()
    return QueueMessage(id="m", body=body, dequeue_count=dequeue_count)


def wait_for_message(svc, seconds: float) -> list:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        messages = received(svc)
        if messages:
            return messages
        time.sleep(0.2)
    return []


def test_the_last_delivery_waits_out_a_lease_a_crashed_worker_left(env):
    env.serve("openapi-v1.yaml")
    svc = env.service()
    item = started_item(svc)
    svc.ports.ledger.acquire_lease(API, "dev", "crashed-worker", 3)

    assert call("work_item", delivery(item, dequeue_count=5)) is None  # acknowledged

    assert received(svc) == []  # hidden until the lease has run out
    assert svc.ports.ledger.state(API, "dev").last_outcome != "failed"
    assert not svc.ports.ledger.get_run(item.run_id).complete
    assert env.cards() == []
    [(again, handle)] = wait_for_message(svc, 8)
    assert (again.run_id, again.target, again.lease_requeues) == (item.run_id, "dev", 1)

    call("work_item", delivery(again, dequeue_count=1))
    svc.ports.queue.delete(handle)
    assert env.folder("dev").exists()
    run = svc.ports.ledger.get_run(item.run_id)
    assert run.complete and [o.result for o in run.outcomes] == ["updated"]
    assert len(env.cards()) == 1


def test_earlier_deliveries_leave_a_held_lease_to_the_host_retry(env):
    env.serve("openapi-v1.yaml")
    svc = env.service()
    item = started_item(svc)
    svc.ports.ledger.acquire_lease(API, "dev", "live-worker", 60)
    with pytest.raises(LeaseTakenError, match="live-worker"):
        call("work_item", delivery(item, dequeue_count=4))
    time.sleep(0.2)
    assert received(svc) == []  # nothing sent: the host shows this message again in 30 s
    assert svc.ports.ledger.state(API, "dev").last_outcome is None  # nothing recorded yet
    assert env.cards() == []


def test_the_last_delivery_records_its_error_and_the_poison_trigger_adds_nothing(env):
    """An item sent again too often meets the lease once more on its last delivery: that delivery
    records the failure with the error it met (the host's poison trigger cannot know it), and
    the poison trigger that runs next finds the outcome and leaves it."""
    env.serve("openapi-v1.yaml")
    svc = env.service()
    item = started_item(svc, lease_requeues=MAX_LEASE_REQUEUES)
    svc.ports.ledger.acquire_lease(API, "dev", "stuck-worker", 60)

    with pytest.raises(LeaseTakenError):  # so the host moves the message to the poison queue
        call("work_item", delivery(item, dequeue_count=5))

    assert wait_for_message(svc, 1) == []  # not sent again
    state = svc.ports.ledger.state(API, "dev")
    assert state.last_outcome == "failed"
    assert "gave up after 20 attempts" in state.last_message  # 3 copies x 5 deliveries + 5
    assert "held by stuck-worker" in state.last_message, state.last_message
    run = svc.ports.ledger.get_run(item.run_id)
    assert run.complete and [o.result for o in run.outcomes] == ["failed"]
    [card] = env.cards()
    assert "stuck-worker" in json.dumps(card)
    assert "see logs" not in json.dumps(card)

    call("poison_item", QueueMessage(id="p", body=json.dumps(item.to_dict()).encode()))

    assert len(env.cards()) == 1
    assert svc.ports.ledger.state(API, "dev").last_message == state.last_message


def test_the_poison_trigger_leaves_an_item_whose_attempt_finished(env):
    """A message the host gave up on after an attempt that did finish (the host lost the answer)
    is not recorded as failed over the update."""
    env.serve("openapi-v1.yaml")
    svc = env.service()
    item = started_item(svc)
    call("work_item", delivery(item, dequeue_count=1))
    assert svc.ports.ledger.state(API, "dev").last_outcome == "updated"

    call("poison_item", QueueMessage(id="p", body=json.dumps(item.to_dict()).encode()))

    assert svc.ports.ledger.state(API, "dev").last_outcome == "updated"
    assert len(env.cards()) == 1


def test_the_host_retries_as_often_as_the_code_expects():
    """``wait_out_lease`` and the last delivery's own record take delivery 5 as the last."""
    from pathlib import Path

    from sync.adapters.queue_storage import HOST_MAX_DEQUEUE_COUNT

    host = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())
    assert host["extensions"]["queues"]["maxDequeueCount"] == HOST_MAX_DEQUEUE_COUNT


def test_the_local_worker_loop_waits_out_the_lease_too(env):
    """The CLI's worker: five deliveries 1 s apart meet the lease; the fifth sends the item again
    hidden until the lease expires, and the loop then runs it. So that the test does not sleep
    out a minute's lease, the send is watched: it is asked for the lease's remaining minute, and
    the lease then ends early and the copy is shown after 1 s (Azurite's queue, as sent)."""
    env.serve("openapi-v1.yaml")
    svc = env.service()
    item = started_item(svc)
    svc.ports.queue.send(item)
    lease = svc.ports.ledger.acquire_lease(API, "dev", "crashed-worker", 60)
    sent: list[tuple[int, int | None]] = []
    real_send = svc.ports.queue.send

    def send(work: WorkItem, *, visibility_timeout: int | None = None) -> None:
        sent.append((work.lease_requeues, visibility_timeout))
        svc.ports.ledger.release_lease(lease)  # the minute is up
        real_send(work, visibility_timeout=1)

    svc.ports.queue.send = send

    outcomes = drain(svc, wait_seconds=5, visibility_timeout=1)

    assert [o.result for o in outcomes] == ["updated"], outcomes
    [(requeues, delay)] = sent
    assert requeues == 1 and delay is not None and 50 <= delay <= 61, sent
    assert svc.ports.ledger.get_run(item.run_id).complete
    assert len(env.cards()) == 1


def test_a_lost_answer_on_the_last_delivery_does_not_turn_an_update_into_a_failure(
    env, monkeypatch
):
    """The last delivery updates the connector and its outcome reaches the run row, but the
    answer to that write is lost: the delivery fails, and giving up keeps the recorded update
    (before, the state row said "failed" over it) and sends the card the lost answer kept from
    going out (the claim is this item's own, and no later delivery comes); the poison trigger
    adds nothing."""
    from sync.adapters.ledger_tables import TableLedger
    from sync.errors import TransientError

    env.serve("openapi-v1.yaml")
    svc = env.service()
    item = started_item(svc)
    real_finish = TableLedger.finish_item

    lost: list[str] = []

    def finish_then_lose_the_answer(self, run_id, outcome, **options):
        done = real_finish(self, run_id, outcome, **options)
        if lost:
            return done
        lost.append(outcome.target)
        raise TransientError("response lost", where="ledger.finish_item")

    with monkeypatch.context() as patch:
        patch.setattr(TableLedger, "finish_item", finish_then_lose_the_answer)
        with pytest.raises(TransientError, match="response lost"):
            call("work_item", delivery(item, dequeue_count=5))

    ledger = svc.ports.ledger
    assert ledger.state(API, "dev").last_outcome == "updated"
    run = ledger.get_run(item.run_id)
    assert [o.result for o in run.outcomes] == ["updated"]
    assert run.notified
    [card] = env.cards()
    assert item.run_id in json.dumps(card)
    call("poison_item", QueueMessage(id="p", body=json.dumps(item.to_dict()).encode()))
    assert ledger.state(API, "dev").last_outcome == "updated"
    assert len(env.cards()) == 1


def test_a_first_message_carries_no_requeue_count_and_a_requeued_one_round_trips():
    request = SyncRequest(api=API, reason="manual")
    first = WorkItem(run_id="r" * 32, api=API, target="dev", request=request)
    assert "leaseRequeues" not in first.to_dict()
    again = WorkItem(run_id="r" * 32, api=API, target="dev", request=request, lease_requeues=2)
    assert WorkItem.from_dict(json.loads(json.dumps(again.to_dict()))) == again


@pytest.mark.parametrize("value", [-1, "1", True, 1.0, None])
def test_a_bad_requeue_count_makes_the_message_malformed(value):
    request = SyncRequest(api=API, reason="manual")
    data = WorkItem(run_id="r" * 32, api=API, target="dev", request=request).to_dict()
    data["leaseRequeues"] = value
    assert parse_work_item(json.dumps(data)) is None  # acknowledged and dropped, logged


@pytest.mark.parametrize("value", [MAX_LEASE_REQUEUES + 1, 10**9])
def test_a_higher_requeue_count_reads_as_the_most_this_release_allows(value):
    """A release that allows more requeues may have sent it (a rollback, or two releases side
    by side): the item still runs, with no requeue left here."""
    request = SyncRequest(api=API, reason="manual")
    data = WorkItem(run_id="r" * 32, api=API, target="dev", request=request).to_dict()
    data["leaseRequeues"] = value
    item = parse_work_item(json.dumps(data))
    assert item is not None and item.lease_requeues == MAX_LEASE_REQUEUES


# --- review fixes, 2026-12-07 -------------------------------------------------------------------


def test_a_defect_on_the_last_delivery_is_recorded_as_one_not_as_transient(env, monkeypatch):
    """A TypeError skipped the last delivery's recording (only SyncErrors were caught), and the
    poison trigger then wrote "transient errors persisted (see logs)"."""
    from sync.pipeline import Pipeline

    def broken(self, *args, **kwargs):
        raise TypeError("a bug with a secret-looking text sig=abc")

    monkeypatch.setattr(Pipeline, "_run", broken)
    env.serve("openapi-v1.yaml")
    svc = env.service()
    item = started_item(svc)
    with pytest.raises(TypeError):  # re-raised: the host moves the message to the poison queue
        call("work_item", delivery(item, dequeue_count=5))
    run = svc.ports.ledger.get_run(item.run_id)
    [outcome] = run.outcomes
    assert outcome.result == "failed"
    assert "unexpected TypeError (a defect" in outcome.message
    assert "sig=abc" not in outcome.message  # the type only: a defect's text may hold anything
    call("poison_item", QueueMessage(id="p", body=json.dumps(item.to_dict()).encode()))
    assert svc.ports.ledger.get_run(item.run_id).outcomes == run.outcomes


def test_the_local_loop_reports_the_rest_of_its_batch_past_a_defect(env, monkeypatch):
    from sync.pipeline import Pipeline

    real = Pipeline._run

    def broken_for_prod(self, item, *args, **kwargs):
        if item.target == "prod":
            raise TypeError("bug")
        return real(self, item, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "_run", broken_for_prod)
    env.serve("openapi-v1.yaml")
    svc = env.service()
    from sync.runs import submit

    submit(SyncRequest(api=API, reason="manual"), svc.map, svc.ports)
    failures: list = []
    outcomes = drain(svc, wait_seconds=0.3, on_failure=lambda *f: failures.append(f))
    assert [o.target for o in outcomes if o.result == "updated"] == ["dev"]
    assert [(f[0].target, type(f[1]).__name__) for f in failures] == [("prod", "PermanentError")]


def test_the_poison_trigger_for_a_run_never_started_leaves_the_state_alone(env):
    """A run with no row: recording raised on every poison delivery (so the host poisoned the
    poison message) and the target's 'updated' state was overwritten with 'failed'."""
    env.serve("openapi-v1.yaml")
    svc = env.service()
    item = started_item(svc)
    call("work_item", delivery(item, dequeue_count=1))
    before = svc.ports.ledger.state(API, "dev")
    assert before.last_outcome == "updated"
    stray = WorkItem(run_id=uuid.uuid4().hex, api=API, target="dev", request=item.request)
    for _ in range(2):
        assert (
            call("poison_item", QueueMessage(id="p", body=json.dumps(stray.to_dict()).encode()))
            is None
        )
    after = svc.ports.ledger.state(API, "dev")
    assert (after.last_outcome, after.last_message) == (before.last_outcome, before.last_message)


@pytest.mark.parametrize("run_id", ["a/b", "", "x" * 200, None, 7])
def test_a_message_whose_run_id_no_run_can_have_is_malformed(env, run_id):
    """Such an item wrote the connector, then could never finish: retried, poisoned, and the
    poison trigger failed too. It is acknowledged as malformed before anything runs."""
    env.serve("openapi-v1.yaml")
    svc = env.service()
    item = started_item(svc)
    body = {**item.to_dict(), "runId": run_id}
    assert parse_work_item(json.dumps(body)) is None
    assert call("work_item", QueueMessage(id="m", body=json.dumps(body).encode())) is None
    assert not env.folder("dev").exists()
