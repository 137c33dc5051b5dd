"""One API-deployment event end to end on the local stack: planner -> Azurite queue -> worker ->
folder connector -> ledger -> card. Every part is real; only the Functions host is absent."""

from __future__ import annotations

import json
import threading

import pytest

from sync.errors import TransientError
from sync.models import SyncRequest
from sync.runs import run_inline
from sync.triggers import plan
from sync.worker_loop import drain
from tests.pipeline.conftest import SPEC_PATH, ci_event

pytestmark = pytest.mark.azurite


def versions(svc, target):
    return [r.version for r in svc.ports.ledger.versions("contoso-invoicing", target, limit=50)]


def test_event_flows_through_planner_queue_worker_to_connector_and_ledger(stack):
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    runs = plan(ci_event(version="1.0.0", commit="abc1234"), svc)
    assert len(runs) == 1
    outcomes = {o.target: o for o in drain(svc, wait_seconds=0.5)}
    assert {o.result for o in outcomes.values()} == {"updated"}, outcomes
    doc = json.loads(stack.folder("dev").read_text())
    assert doc["swagger"] == "2.0"  # converted from OpenAPI 3.0.3
    assert doc["host"] == "invoicing.contoso.example" and doc["basePath"] == "/api"
    assert {op["operationId"] for p in doc["paths"].values() for op in p.values()} == {
        "ListInvoices",
        "CreateInvoice",
        "GetInvoice",
        "SendReminder",
    }
    assert versions(svc, "dev") == [1] and versions(svc, "prod") == [1]
    run = svc.ports.ledger.get_run(runs[0])
    assert run.complete and {o.result for o in run.outcomes} == {"updated"}
    record = svc.ports.ledger.version("contoso-invoicing", "dev", 1, include_definitions=True)
    assert record.applied == doc and record.event_type == "ConnectorSync.ApiDeployed"
    assert record.commit == "abc1234" and record.info_version == "1.0.0"
    cards = stack.cards()
    assert len(cards) == 1  # one card per run, not per target

    # v2: a breaking change. dev warns and applies; prod's policy blocks it.
    stack.serve("openapi-v2.yaml")
    plan(ci_event(version="2.0.0"), svc)
    outcomes = {o.target: o for o in drain(svc, wait_seconds=0.5)}
    assert outcomes["dev"].result == "updated" and outcomes["dev"].version == 2
    assert outcomes["dev"].diff["breaking"] is True
    assert "SendReminder" in outcomes["dev"].diff["removed"]
    assert "PayInvoice" in outcomes["dev"].diff["added"]
    assert outcomes["prod"].result == "blocked"
    assert "SendReminder" in outcomes["prod"].message
    assert versions(svc, "dev") == [2, 1] and versions(svc, "prod") == [1]
    prod = json.loads(stack.folder("prod").read_text())
    assert "/invoices/{invoiceId}/reminders" in prod["paths"]  # blocked: untouched
    assert len(stack.cards()) == 2
    state = svc.ports.ledger.state("contoso-invoicing", "prod")
    assert state.last_outcome == "blocked" and state.version == 1


def test_redelivered_event_changes_nothing_and_sends_one_card(stack):
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    event = ci_event("evt-redelivered")
    first = plan(event, svc)
    drain(svc, wait_seconds=0.5)
    second = plan(event, svc)  # Event Grid redelivers
    assert first == second  # the same run
    assert drain(svc, wait_seconds=0.5) == []  # every target finished: nothing enqueued again
    assert versions(svc, "dev") == [1]
    assert len(stack.cards()) == 1


def test_a_redelivered_event_enqueues_only_the_targets_that_did_not_finish(stack):
    """Event Grid redelivers when the planner's answer came late or failed, maybe after some
    items ran: those keep their outcomes and are not enqueued again (before, every target was,
    and each copy went through the pipeline to "event already processed")."""
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    event = ci_event("evt-half-done")
    [run_id] = plan(event, svc)
    [done] = drain(svc, max_items=1, wait_seconds=0.5)
    assert done.result in ("updated", "blocked")
    assert plan(event, svc) == [run_id]  # the redelivery
    rest = drain(svc, wait_seconds=0.5)
    assert rest and {o.target for o in rest} == {"dev", "prod"} - {done.target}, rest
    assert len(rest) == 2  # the first item, and the one enqueued again (absorbed by its marker)
    run = svc.ports.ledger.get_run(run_id)
    assert run.complete and sorted(o.target for o in run.outcomes) == ["dev", "prod"]
    assert len(stack.cards()) == 1


def test_a_redelivery_after_planning_failed_half_way_enqueues_what_is_missing(stack, monkeypatch):
    """The queue fails after the first target's item was sent: the planner raises, Event Grid
    delivers again, and the redelivery sends every target without an outcome (the first one
    again too: its copy is absorbed)."""
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    event = ci_event("evt-half-planned")
    real_send = svc.ports.queue.send
    sent: list[str] = []
    first = threading.Lock()  # the planner's sends run in parallel streams (runs.enqueue)

    def send_one_then_fail(item, **options):
        with first:
            if sent:
                raise TransientError("queue unavailable", where="queue.send")
            sent.append(item.target)
        real_send(item, **options)

    monkeypatch.setattr(svc.ports.queue, "send", send_one_then_fail)
    with pytest.raises(TransientError, match="queue unavailable"):
        plan(event, svc)
    monkeypatch.undo()
    [run_id] = plan(event, svc)
    outcomes = drain(svc, wait_seconds=0.5)
    assert sorted(o.target for o in outcomes) == sorted(["dev", "prod", sent[0]])
    run = svc.ports.ledger.get_run(run_id)
    assert run.complete and sorted(o.target for o in run.outcomes) == ["dev", "prod"]
    assert len(stack.cards()) == 1


def test_a_failed_read_of_the_stored_run_makes_the_planner_ask_for_a_redelivery(stack, monkeypatch):
    from azure.core.exceptions import ServiceRequestError

    from sync.adapters.ledger_tables import TableLedger

    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    event = ci_event("evt-read-fails")
    plan(event, svc)

    def down(*args, **kwargs):
        raise ServiceRequestError("connection refused")

    monkeypatch.setattr(TableLedger, "_get", down)
    with pytest.raises(TransientError, match=r"ledger\.start_run"):
        plan(event, svc)  # Event Grid retries a failed delivery


def test_unchanged_spec_writes_nothing(stack):
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    plan(ci_event(), svc)
    drain(svc, wait_seconds=0.5)
    before = stack.folder("dev").stat().st_mtime_ns
    state_before = svc.ports.ledger.state("contoso-invoicing", "dev")
    plan(ci_event(), svc)  # a new event, same spec: 304 from the server
    outcomes = drain(svc, wait_seconds=0.5)
    assert {o.result for o in outcomes} == {"unchanged"}
    assert any("304" in o.message for o in outcomes)
    assert stack.folder("dev").stat().st_mtime_ns == before
    assert versions(svc, "dev") == [1]
    assert svc.ports.ledger.state("contoso-invoicing", "dev").etag == state_before.etag
    # Without the ETag the content hash decides: still nothing written.
    stack.server.set_spec(
        SPEC_PATH,
        stack.server.state.specs[SPEC_PATH].body,
        "application/yaml",
        etag=None,
        last_modified=None,
    )
    plan(ci_event(), svc)
    outcomes = drain(svc, wait_seconds=0.5)
    assert {o.result for o in outcomes} == {"unchanged"}
    assert versions(svc, "dev") == [1]


def test_definition_over_the_platform_limit_fails_naming_target_limit_and_size(stack):
    svc = stack.service()
    big = {
        "swagger": "2.0",
        "info": {"title": "Big", "version": "1"},
        "host": "x.example",
        "paths": {
            f"/p{i}": {
                "get": {
                    "operationId": f"Op{i}",
                    "description": "d" * 5000,
                    "responses": {"200": {"description": "ok"}},
                }
            }
            for i in range(210)
        },
    }
    stack.server.set_spec(SPEC_PATH, json.dumps(big).encode())
    result = run_inline(
        SyncRequest(api="contoso-invoicing", reason="cli"), svc.map, svc.ports, svc.pipeline
    )
    assert {o.result for o in result.outcomes} == {"failed"}
    message = result.outcomes[0].message
    size = len(json.dumps(big, separators=(",", ":")).encode())
    assert "contoso-invoicing/dev" in message  # the target
    assert "limit" in message
    assert any(f in message for f in ("999,999", "999999", "1,000,000", "1000000"))
    assert any(f in message for f in (f"{size:,}", str(size)))  # the measured size
    assert not stack.folder("dev").exists()
    assert versions(svc, "dev") == []


def test_dry_run_writes_nothing_anywhere(stack):
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    result = run_inline(
        SyncRequest(api="contoso-invoicing", reason="manual", dry_run=True),
        svc.map,
        svc.ports,
        svc.pipeline,
    )
    assert {o.result for o in result.outcomes} == {"dry-run"}
    assert result.outcomes[0].diff["added"]
    assert not stack.folder("dev").exists()
    assert versions(svc, "dev") == []
    assert svc.ports.ledger.state("contoso-invoicing", "dev").etag is None
    assert stack.cards() == []


def test_crash_between_connector_write_and_ledger_write_is_reconciled(stack, monkeypatch):
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    ledger = svc.ports.ledger
    real = ledger.record_version
    calls = {"n": 0}

    def crash_once(record, *args, **kwargs):
        if record.target == "dev":  # prod's item may run first or at once: crash dev's only
            calls["n"] += 1
            if calls["n"] == 1:
                raise TransientError("worker killed", where="test")
        return real(record, *args, **kwargs)

    monkeypatch.setattr(ledger, "record_version", crash_once)
    plan(ci_event("evt-crash"), svc)
    drain(svc, wait_seconds=0.5, visibility_timeout=1)  # first attempt dies after the write
    written = stack.folder("dev").stat().st_mtime_ns
    assert ledger.state("contoso-invoicing", "dev").pending  # the marker says a write was in flight
    outcomes = drain(svc, wait_seconds=2.5, visibility_timeout=1)  # the queue redelivers
    dev = [o for o in outcomes if o.target == "dev"]
    assert dev and dev[-1].result == "updated" and dev[-1].version == 1
    assert stack.folder("dev").stat().st_mtime_ns == written  # not written twice
    assert versions(svc, "dev") == [1]
    assert ledger.state("contoso-invoicing", "dev").pending is None


def test_an_unchanged_spec_writes_no_ledger_row_at_all_not_even_the_lease(stack):
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    plan(ci_event(), svc)
    drain(svc, wait_seconds=0.5)
    ledger = svc.ports.ledger
    writes: list[str] = []
    for name in ("acquire_lease", "release_lease", "save_state", "record_version"):
        real = getattr(ledger, name)

        def counting(*args, _name=name, _real=real, **kwargs):
            writes.append(_name)
            return _real(*args, **kwargs)

        setattr(ledger, name, counting)
    for etag in ("auto", None):  # a 304, then the same content without validators
        body = stack.server.state.specs[SPEC_PATH].body
        stack.server.set_spec(SPEC_PATH, body, "application/yaml", etag=etag, last_modified=None)
        plan(ci_event(), svc)
        outcomes = drain(svc, wait_seconds=0.5)
        assert {o.result for o in outcomes} == {"unchanged"}
    assert writes == []


def test_fan_out_shares_one_prepared_spec_and_never_mutates_it(stack):
    from sync.pipeline import _PREPARED
    from sync.spec.canonical import sha256_hex

    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    plan(ci_event(), svc)
    drain(svc, wait_seconds=0.5)
    cached = [value[0] for value in _PREPARED._data.values()]
    before = [sha256_hex(doc) for doc in cached]
    stack.serve("openapi-v2.yaml")  # merge, validate, diff, write and record over the cache
    plan(ci_event(), svc)
    drain(svc, wait_seconds=0.5)
    assert [sha256_hex(doc) for doc in cached] == before
    dev = svc.ports.ledger.version("contoso-invoicing", "dev", 1, include_definitions=True)
    prod = svc.ports.ledger.version("contoso-invoicing", "prod", 1, include_definitions=True)
    assert dev.upstream == prod.upstream  # both targets got the same prepared upstream
    assert sha256_hex(dev.upstream) in before


def test_an_update_whose_outcome_was_lost_is_reported_as_updated_on_the_retry(stack, monkeypatch):
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    ledger = svc.ports.ledger
    real = ledger.finish_item
    calls = {"n": 0}

    def blink_once(run_id, outcome, **options):
        calls["n"] += 1
        if calls["n"] == 1:  # the version is recorded; storage blinks before the run row
            raise TransientError("storage unavailable", where="test")
        return real(run_id, outcome, **options)

    monkeypatch.setattr(ledger, "finish_item", blink_once)
    [run_id] = plan(ci_event("evt-lost-outcome"), svc)
    drain(svc, wait_seconds=2.5, visibility_timeout=1)
    run = ledger.get_run(run_id)
    assert run.complete
    results = {o.target: (o.result, o.version) for o in run.outcomes}
    assert results == {"dev": ("updated", 1), "prod": ("updated", 1)}
    assert versions(svc, "dev") == [1]
