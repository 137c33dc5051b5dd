"""Run fan-in: concurrent finishers, exactly one gets the completed run."""

from __future__ import annotations

import threading
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import UpdateMode

from sync.adapters import ledger_tables
from sync.adapters.ledger_tables import NOTIFY_CLAIM_SECONDS, TableLedger
from sync.errors import NotificationPendingError, PermanentError
from sync.models import RunSummary, SyncRequest, TargetOutcome, new_run_id
from tests.ledger.conftest import edit_row
from tests.support.lossy_proxy import lossy_proxy

pytestmark = pytest.mark.azurite

API = "contoso-invoicing"


def _run(targets: list[str]) -> RunSummary:
    return RunSummary(
        run_id=new_run_id(),
        api=API,
        request=SyncRequest(api=API, reason="event", event_id="evt-1", targets=tuple(targets)),
        targets=tuple(targets),
        created_at="2026-01-01T00:00:00Z",
    )


def _outcome(target: str, result: str = "updated", **kw) -> TargetOutcome:
    return TargetOutcome(api=API, target=target, result=result, message=f"{target} done", **kw)


def test_start_and_get_round_trip(ledger):
    run = _run(["a", "b"])
    ledger.start_run(run)
    assert ledger.get_run(run.run_id) == run
    assert ledger.get_run(new_run_id()) is None


def test_second_start_keeps_the_first_and_returns_it(ledger):
    run = _run(["a", "b"])
    assert ledger.start_run(run) is None  # created
    assert ledger.finish_item(run.run_id, _outcome("a")) is None
    stored = ledger.start_run(run)  # the planner's event was redelivered
    assert stored is not None and [o.target for o in stored.outcomes] == ["a"]
    assert [o.target for o in ledger.get_run(run.run_id).outcomes] == ["a"]


def test_a_run_row_deleted_between_the_create_and_the_read_is_created_again(ledger, monkeypatch):
    run = _run(["a"])
    ledger.start_run(run)
    real_get = TableLedger._get
    deleted: list[str] = []

    def delete_first(self, pk, rk, select=None):
        if not deleted:  # someone deletes the row just before the planner reads it
            deleted.append(rk)
            self._table().delete_entity(pk, rk)
            return None
        return real_get(self, pk, rk, select)

    monkeypatch.setattr(TableLedger, "_get", delete_first)
    assert ledger.start_run(run) is None  # created again
    assert deleted == [run.run_id]
    assert ledger.get_run(run.run_id) == run


def test_an_unreadable_stored_run_plans_as_if_nothing_had_finished(ledger):
    run = _run(["a", "b"])
    ledger.start_run(run)
    ledger.finish_item(run.run_id, _outcome("a"))
    table = ledger._table()
    row = table.get_entity("runs", run.run_id)
    row["Out00"] = b"not zlib"  # the stored outcomes no longer decode
    table.update_entity(row, mode=UpdateMode.REPLACE)
    stored = ledger.start_run(run)
    assert stored is not None and stored.outcomes == () and stored.targets == ("a", "b")


@pytest.mark.parametrize(
    ("outcomes", "notified", "again"),
    [
        ((), None, ("a", "b", "c")),
        ((("a", "updated"),), None, ("b", "c")),
        ((("a", "failed"), ("b", "blocked")), None, ("a", "c")),  # a retry may heal a failure
        ((("a", "updated"), ("b", "held"), ("c", "unchanged")), "accepted", ()),
        ((("a", "updated"), ("c", "failed"), ("b", "held")), None, ("c", "b")),  # b: the card
        ((("c", "failed"), ("a", "updated"), ("b", "held")), "accepted", ("c",)),
    ],
)
def test_a_redelivered_event_enqueues_what_did_not_settle_and_the_cards_claimant(
    outcomes, notified, again
):
    from dataclasses import replace

    from sync.runs import _unfinished

    run = replace(
        _run(["a", "b", "c"]),
        outcomes=tuple(_outcome(t, r) for t, r in outcomes),
        notified=notified,
    )
    assert _unfinished(run) == again


def test_concurrent_finishers_exactly_one_gets_the_summary(ledger, azurite):
    targets = [f"t{i}" for i in range(8)]
    run = _run(targets)
    ledger.start_run(run)
    other = TableLedger(
        connection_string=azurite.connection_string,
        table_name=ledger.table_name,
        container=ledger.container,
    )
    barrier = threading.Barrier(len(targets))
    results: list[RunSummary | None] = []
    errors: list[BaseException] = []

    def finish(i: int, target: str) -> None:
        store = ledger if i % 2 else other
        barrier.wait()
        try:
            results.append(store.finish_item(run.run_id, _outcome(target, warnings=("w",))))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    done = [r for r in results if r is not None]
    assert len(done) == 1
    assert done[0].complete
    assert sorted(o.target for o in done[0].outcomes) == targets
    assert ledger.get_run(run.run_id).outcomes == done[0].outcomes


def test_redelivered_item_after_the_card_gets_nothing(ledger):
    run = _run(["a"])
    ledger.start_run(run)
    summary = ledger.finish_item(run.run_id, _outcome("a", "failed"))
    assert summary is not None
    assert summary.failed_targets == ["a"]
    ledger.mark_notified(run.run_id, "accepted")
    assert ledger.finish_item(run.run_id, _outcome("a", "unchanged")) is None
    assert ledger.get_run(run.run_id).outcomes[0].result == "failed"


def test_an_outcome_for_an_unfinished_run_is_kept_once_and_nothing_is_claimed(ledger):
    run = _run(["a", "b"])
    ledger.start_run(run)
    assert ledger.finish_item(run.run_id, _outcome("a")) is None
    assert ledger.finish_item(run.run_id, _outcome("a", "failed")) is None  # a redelivery
    row = ledger._table().get_entity("runs", run.run_id)
    assert "NotifyClaim" not in row
    assert [o.result for o in ledger.get_run(run.run_id).outcomes] == ["updated"]


def test_a_redelivered_item_before_the_card_went_out_is_told_to_ask_again(ledger):
    """The run is complete, its card claimed a moment ago and not yet sent (the claimant may be
    sending it now, or may have died): acknowledging would risk a run without a card, so the
    item is retried; the first outcome stays."""
    run = _run(["a"])
    ledger.start_run(run)
    assert ledger.finish_item(run.run_id, _outcome("a")) is not None
    with pytest.raises(NotificationPendingError, match="claimed 0 s ago") as caught:
        ledger.finish_item(run.run_id, _outcome("a", "unchanged"))
    assert caught.value.transient
    assert 0 < caught.value.retry_after <= NOTIFY_CLAIM_SECONDS
    assert [o.result for o in ledger.get_run(run.run_id).outcomes] == ["updated"]


def _later(monkeypatch, seconds: float) -> None:
    """This process's clock, ``seconds`` ahead: claims made before look that old."""
    ahead = datetime.now(UTC) + timedelta(seconds=seconds)
    monkeypatch.setattr(ledger_tables, "utcnow", lambda: ahead)


def _same_table(ledger, azurite) -> TableLedger:
    """Another process's ledger on the same table."""
    return TableLedger(
        connection_string=azurite.connection_string,
        table_name=ledger.table_name,
        container=ledger.container,
    )


def test_a_claim_older_than_the_notifier_could_take_is_taken_over_once(
    ledger, azurite, monkeypatch
):
    """The claimant died between the fan-in and the card: a later delivery of its item takes
    the claim over and gets the run to notify; another delivery of it, from another process,
    then finds the new claim young. The other target's items leave the card to b's."""
    run = _run(["a", "b"])
    ledger.start_run(run)
    ledger.finish_item(run.run_id, _outcome("a"))
    assert ledger.finish_item(run.run_id, _outcome("b")) is not None  # ...and then it died
    assert ledger.finish_item(run.run_id, _outcome("a", "unchanged")) is None
    _later(monkeypatch, NOTIFY_CLAIM_SECONDS + 1)
    assert ledger.finish_item(run.run_id, _outcome("a", "unchanged")) is None
    other = _same_table(ledger, azurite)
    taken = other.finish_item(run.run_id, _outcome("b", "unchanged"))
    assert taken is not None and taken.complete
    assert [o.result for o in taken.outcomes] == ["updated", "updated"]
    monkeypatch.undo()  # back to now: the takeover is a new write
    with pytest.raises(NotificationPendingError, match="claimed 0 s ago"):
        ledger.finish_item(run.run_id, _outcome("b", "unchanged"))
    other.mark_notified(run.run_id, "accepted")
    assert ledger.finish_item(run.run_id, _outcome("b", "unchanged")) is None


def test_two_takers_of_one_stale_claim_one_wins(ledger, azurite, monkeypatch):
    """Two deliveries of the claimant's item, in two processes, read the same stale claim and
    both try to take it: the ETag lets one write; the other reads again and finds it young."""
    run = _run(["a"])
    ledger.start_run(run)
    assert ledger.finish_item(run.run_id, _outcome("a")) is not None  # ...and then it died
    both_read = threading.Barrier(2, timeout=20)
    real_age = ledger_tables._seconds_since
    first_round = threading.local()
    decided: list[float] = []

    def age_then_meet(entity):
        age = real_age(entity)
        if not getattr(first_round, "done", False):  # both decide from the same stale row
            first_round.done = True
            age += NOTIFY_CLAIM_SECONDS + 1
            both_read.wait()
        decided.append(age)
        return age

    monkeypatch.setattr(ledger_tables, "_seconds_since", age_then_meet)
    results: list[object] = []

    def take(store: TableLedger) -> None:
        try:
            results.append(store.finish_item(run.run_id, _outcome("a", "unchanged")))
        except NotificationPendingError as exc:
            results.append(exc)

    threads = [
        threading.Thread(target=take, args=(store,))
        for store in (ledger, _same_table(ledger, azurite))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [r for r in results if isinstance(r, RunSummary)]
    waiting = [r for r in results if isinstance(r, NotificationPendingError)]
    assert len(won) == 1 and len(waiting) == 1, results
    assert len(decided) == 3, decided  # the loser's MERGE was refused and it read the row again


def test_giving_up_takes_over_only_its_own_targets_claim_and_at_once(ledger):
    """On the last chance a young claim of this target's earlier attempt is taken over at once
    (no later delivery would); another target's claim is left to that target's item, whose
    message stays unacknowledged until the card is sent."""
    run = _run(["a", "b"])
    ledger.start_run(run)
    ledger.finish_item(run.run_id, _outcome("a"))
    assert ledger.finish_item(run.run_id, _outcome("b")) is not None  # b completed it
    assert ledger.finish_item(run.run_id, _outcome("a", "failed"), last_chance=True) is None
    taken = ledger.finish_item(run.run_id, _outcome("b", "failed"), last_chance=True)
    assert taken is not None and [o.result for o in taken.outcomes] == ["updated", "updated"]
    assert ledger.finish_item(run.run_id, _outcome("a", "failed"), last_chance=True) is None
    with pytest.raises(NotificationPendingError):  # b's new claim is young
        ledger.finish_item(run.run_id, _outcome("b", "failed"))


def test_a_row_completed_before_claims_existed_is_left_to_its_last_target(ledger, monkeypatch):
    """A release before 2026-12-06 completed the row without a claim: the target whose outcome
    came last completed it, and the row's last write dates the claim."""
    run = _run(["a", "b"])
    ledger.start_run(run)
    ledger.finish_item(run.run_id, _outcome("a"))
    ledger.finish_item(run.run_id, _outcome("b"))
    table = ledger._table()
    row = table.get_entity("runs", run.run_id)
    del row["NotifyClaim"]
    table.update_entity(row, mode=UpdateMode.REPLACE)
    with pytest.raises(NotificationPendingError):
        ledger.finish_item(run.run_id, _outcome("b", "unchanged"))
    _later(monkeypatch, NOTIFY_CLAIM_SECONDS + 1)
    assert ledger.finish_item(run.run_id, _outcome("a", "unchanged")) is None
    assert ledger.finish_item(run.run_id, _outcome("b", "unchanged")) is not None


def test_the_completing_write_whose_answer_was_lost_still_returns_the_run(azurite, ledger):
    """The REPLACE that completes the run lands, its answer is lost on the wire; azure-core
    sends it again and meets the ETag its own first copy changed. The call that completed the
    run still returns it (before: None, and the run never got its card)."""
    run = _run(["a", "b"])
    ledger.start_run(run)
    assert ledger.finish_item(run.run_id, _outcome("a")) is None
    with lossy_proxy(azurite.table_port) as proxy:
        through = TableLedger(
            connection_string=azurite.connection_string.replace(
                f":{azurite.table_port}/", f":{proxy.port}/"
            ),
            table_name=ledger.table_name,
            container=ledger.container,
        )
        proxy.lose_next(lambda method, path: method == "PUT" and run.run_id in path)
        summary = through.finish_item(run.run_id, _outcome("b"))
    assert len(proxy.lost) == 1, proxy.seen
    puts = [r for r in proxy.seen if r.startswith("PUT") and run.run_id in r]
    assert len(puts) == 2, proxy.seen  # the lost one and azure-core's resend (refused: 412)
    assert summary is not None and summary.complete
    assert [o.target for o in summary.outcomes] == ["a", "b"]
    assert [o.target for o in ledger.get_run(run.run_id).outcomes] == ["a", "b"]


def test_large_outcomes_span_chunks(ledger):
    targets = [f"t{i}" for i in range(3)]
    run = _run(targets)
    ledger.start_run(run)
    diff = {"changes": [{"op": f"Op{i}", "detail": f"{i:08x}" * 40} for i in range(3000)]}
    for t in targets[:-1]:
        assert ledger.finish_item(run.run_id, _outcome(t, diff=diff)) is None
    summary = ledger.finish_item(run.run_id, _outcome(targets[-1], diff=diff))
    assert summary is not None
    assert all(o.diff == diff for o in summary.outcomes)


def test_mark_notified_survives_later_reads(ledger):
    run = _run(["a"])
    ledger.start_run(run)
    ledger.finish_item(run.run_id, _outcome("a"))
    ledger.mark_notified(run.run_id, "accepted")
    got = ledger.get_run(run.run_id)
    assert got.notified == "accepted"
    assert got.complete


def test_a_late_outcome_keeps_the_notification_time(ledger):
    """An outcome for a target the run did not list arrives after the card went out: the run row
    is rewritten, and when it was notified must survive (it is what an operator checks)."""
    run = _run(["a"])
    ledger.start_run(run)
    ledger.finish_item(run.run_id, _outcome("a"))
    ledger.mark_notified(run.run_id, "accepted")
    table = ledger._table()
    stamped = table.get_entity("runs", run.run_id)["NotifiedAt"]
    ledger.finish_item(run.run_id, _outcome("late"))
    row = table.get_entity("runs", run.run_id)
    assert row["NotifiedAt"] == stamped
    assert row["Notified"] == "accepted"
    assert [o.target for o in ledger.get_run(run.run_id).outcomes] == ["a", "late"]


def test_unknown_run_is_a_permanent_error(ledger):
    with pytest.raises(PermanentError, match="never started"):
        ledger.finish_item(new_run_id(), _outcome("a"))
    with pytest.raises(PermanentError, match="never started"):
        ledger.mark_notified(new_run_id(), "written")


@pytest.mark.parametrize("run_id", ["", "a/b", "x#y", "q?", "a" * 200])
def test_bad_run_ids_are_refused(ledger, run_id):
    with pytest.raises(PermanentError, match="run id"):
        ledger.get_run(run_id)


def _reads_of_the_run_row(ledger: TableLedger, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real = ledger._get

    def counting(pk: str, rk: str, **kwargs):
        if pk == "runs":
            reads.append(rk)
        return real(pk, rk, **kwargs)

    monkeypatch.setattr(ledger, "_get", counting)
    return reads


def test_the_process_that_wrote_the_run_row_finishes_from_it_without_reading_it(
    ledger, monkeypatch
):
    run = _run(["a", "b"])
    ledger.start_run(run)
    reads = _reads_of_the_run_row(ledger, monkeypatch)
    assert ledger.finish_item(run.run_id, _outcome("a")) is None
    summary = ledger.finish_item(run.run_id, _outcome("b"))
    assert reads == []  # each write's ETag let the next one start from what it wrote
    assert summary is not None and summary.complete
    assert ledger.get_run(run.run_id) == summary


def test_a_remembered_run_row_another_worker_changed_is_read_again_and_nothing_is_lost(
    ledger, azurite, monkeypatch
):
    run = _run(["a", "b", "c"])
    ledger.start_run(run)  # this process remembers the row it created
    other = TableLedger(
        connection_string=azurite.connection_string,
        table_name=ledger.table_name,
        container=ledger.container,
    )
    assert other.finish_item(run.run_id, _outcome("a")) is None  # the remembered copy is stale
    reads = _reads_of_the_run_row(ledger, monkeypatch)
    assert ledger.finish_item(run.run_id, _outcome("b")) is None
    assert reads == [run.run_id]  # the stale copy was refused (ETag), then the row re-read
    summary = other.finish_item(run.run_id, _outcome("c"))
    assert summary is not None
    assert [o.target for o in summary.outcomes] == ["a", "b", "c"]


def test_after_the_notification_a_late_outcome_starts_from_the_stored_row(ledger, monkeypatch):
    """mark_notified MERGEs two properties and moves the ETag: the copy kept before it is dropped
    (it would only cost a refused REPLACE), and nothing the MERGE wrote is lost."""
    run = _run(["a"])
    ledger.start_run(run)
    assert ledger.finish_item(run.run_id, _outcome("a")) is not None
    ledger.mark_notified(run.run_id, "accepted")
    reads = _reads_of_the_run_row(ledger, monkeypatch)
    replaces: list[str] = []
    real_replace = ledger._replace_if_unchanged

    def counting(row, etag):
        replaces.append(row["RowKey"])
        return real_replace(row, etag)

    monkeypatch.setattr(ledger, "_replace_if_unchanged", counting)
    assert ledger.finish_item(run.run_id, _outcome("late")) is None
    assert reads == [run.run_id]
    assert replaces == [run.run_id]  # no REPLACE was tried from the dropped copy
    got = ledger.get_run(run.run_id)
    assert got.notified == "accepted"
    assert [o.target for o in got.outcomes] == ["a", "late"]


def test_finishers_of_one_run_in_one_process_take_turns_and_never_read_the_row(ledger, monkeypatch):
    targets = [f"t{i}" for i in range(8)]
    run = _run(targets)
    ledger.start_run(run)
    reads = _reads_of_the_run_row(ledger, monkeypatch)
    refused: list[str] = []
    real_replace = ledger._replace_if_unchanged

    def counting(row, etag):
        try:
            return real_replace(row, etag)
        except Exception:
            refused.append(row["RowKey"])
            raise

    monkeypatch.setattr(ledger, "_replace_if_unchanged", counting)
    barrier = threading.Barrier(len(targets))
    results: list[RunSummary | None] = []

    def finish(target: str) -> None:
        barrier.wait()
        results.append(ledger.finish_item(run.run_id, _outcome(target)))

    threads = [threading.Thread(target=finish, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reads == [] and refused == []
    [summary] = [r for r in results if r is not None]
    assert sorted(o.target for o in summary.outcomes) == targets
    assert ledger.get_run(run.run_id) == summary


def test_a_summary_finished_from_the_kept_copy_equals_the_stored_row(ledger):
    run = _run(["a", "b"])
    ledger.start_run(run)
    diff = {
        "breaking": [{"path": "/pets", "method": "get", "what": "removed", "detail": None}],
        "added": [["post", "/pets"]],
        "counts": {"breaking": 1, "added": 1},
    }
    ledger.finish_item(run.run_id, _outcome("a", diff=diff, warnings=("w1", "w2"), version=3))
    summary = ledger.finish_item(run.run_id, _outcome("b", result="failed", version=None))
    assert summary is not None
    assert ledger.get_run(run.run_id) == summary


CORRUPT_RUN = {
    "targets-not-json": {"Targets": "a,b"},
    "targets-a-string": {"Targets": '"ab"'},
    "targets-of-numbers": {"Targets": "[1, 2]"},
    "no-targets": {"Targets": None},
    "no-api": {"Api": None},
    "request-an-array": {"Request": "[1]"},
    "request-of-wrong-type": {"Request": '{"api": 5, "reason": "event"}'},
    "request-a-number": {"Request": 5},
    "out-chunks-text": {"OutChunks": "one"},
    "out-chunks-a-number-as-text": {"OutChunks": "1"},
    "out-chunks-a-double": {"OutChunks": 1.0},
    "an-outcome-not-an-object": {"Out00": zlib.compress(b"[5]"), "OutChunks": 1},
    "an-outcome-without-fields": {"Out00": zlib.compress(b"[{}]"), "OutChunks": 1},
}


@pytest.mark.parametrize("change", CORRUPT_RUN.values(), ids=CORRUPT_RUN.keys())
def test_a_corrupt_run_row_is_a_permanent_error_naming_the_row(ledger, change):
    """KeyError, TypeError, ValueError or AttributeError out of get_run() and finish_item()
    ended the item (or the runs API call) without a reason; "ab" read as targets a and b."""
    run = _run(["a", "b"])
    ledger.start_run(run)
    edit_row(ledger, "runs", run.run_id, change)
    ledger._run_rows.pop(run.run_id)  # as another process: read the row, not the kept copy
    with pytest.raises(PermanentError, match=f"run row runs/{run.run_id}"):
        ledger.get_run(run.run_id)
    with pytest.raises(PermanentError, match=f"run row runs/{run.run_id}"):
        ledger.finish_item(run.run_id, _outcome("a"))
    stored = ledger.start_run(run)  # a redelivered event plans as if nothing had finished
    assert stored is not None and stored.outcomes == ()
