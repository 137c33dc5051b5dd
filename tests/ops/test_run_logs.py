"""A whole run on the local stack (planner -> Azurite queue -> worker) read back from its logs:
every line is one JSON object, the ids join up with the ledger, and no secret gets through."""

from __future__ import annotations

import json

import pytest

from sync.logs import REQUIRED_FIELDS
from sync.triggers import plan
from sync.worker_loop import drain
from tests.pipeline.conftest import SPEC_PATH, ci_event, sync_map

pytestmark = [pytest.mark.azurite, pytest.mark.reliability]

API = "contoso-invoicing"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
CANARY = "canary-Zq81xLw7"


def use_signed_spec_url(stack) -> str:
    """Point the map at the spec URL with a SAS-like signature, as a blob spec source would."""
    data = sync_map(stack.server)
    url = stack.server.url(SPEC_PATH) + f"?sv=2024&sig={CANARY}"
    data["apis"][API]["spec"] = {"url": url}
    stack.map_path.write_text(json.dumps(data))
    return url


def test_full_run_logs_are_json_lines_joined_by_run_id_and_trace_id(stack, json_logs, monkeypatch):
    monkeypatch.setenv("SYNC_SECRET_SPEC_SIG", CANARY)
    use_signed_spec_url(stack)
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    event = {**ci_event("evt-logs-1", commit="c0ffee1"), "traceparent": TRACEPARENT}

    runs = plan(event, svc)
    outcomes = drain(svc, wait_seconds=0.5)
    assert {o.result for o in outcomes} == {"updated"}, outcomes

    records = json_logs.records()
    assert records, "the run logged nothing"
    for record in records:
        missing = [f for f in (*REQUIRED_FIELDS, "level", "logger", "message") if f not in record]
        assert not missing, (missing, record)
    run_id = runs[0]
    ledger_run_id = svc.ports.ledger.version(API, "dev", 1).run_id
    assert ledger_run_id == run_id

    planned = [r for r in records if r["message"] == "run planned"]
    assert len(planned) == 1
    assert planned[0]["run_id"] == run_id
    assert planned[0]["event_id"] == "evt-logs-1"
    assert planned[0]["trace_id"] == TRACE_ID

    finished = {r["target"]: r for r in records if r["message"] == "target finished"}
    assert set(finished) == {"dev", "prod"}
    for target, record in finished.items():
        assert record["run_id"] == run_id, record
        assert record["event_id"] == "evt-logs-1"
        assert record["trace_id"] == TRACE_ID
        assert record["api"] == API
        assert record["outcome"] == "updated"
        assert isinstance(record["duration_ms"], int)
        assert record["logger"] == "sync.pipeline"
        assert svc.ports.ledger.version(API, target, 1).run_id == record["run_id"]
    # the work item crossed the queue with the trace on it: worker lines from other modules too
    worker_lines = [r for r in records if r["target"] is not None]
    assert {r["trace_id"] for r in worker_lines} == {TRACE_ID}
    assert {r["run_id"] for r in worker_lines} == {run_id}
    assert CANARY not in json_logs.text


def test_a_failure_names_its_stage_and_reason_with_the_signature_redacted(
    stack, json_logs, monkeypatch
):
    use_signed_spec_url(stack)
    svc = stack.service()
    stack.server.set_spec(SPEC_PATH, b"{not: [valid", "application/yaml")

    runs = plan(ci_event("evt-logs-2"), svc)
    outcomes = drain(svc, wait_seconds=0.5)
    assert {o.result for o in outcomes} == {"failed"}
    # the outcome (and so the state row and the card) names the URL with its signature redacted
    assert CANARY not in outcomes[0].message and "sig=REDACTED" in outcomes[0].message

    records = json_logs.records()
    failed = [r for r in records if r["message"] == "target finished"]
    assert {r["outcome"] for r in failed} == {"failed"}
    for record in failed:
        assert record["run_id"] == runs[0]
        assert "not valid JSON or YAML" in record["reason"]
        assert "?<redacted>" in record["reason"]
    assert CANARY not in json_logs.text
    # no traceparent on the event: the planner started a trace, and the worker kept it
    traces = {r["trace_id"] for r in records if r["run_id"] == runs[0]}
    assert len(traces) == 1 and len(next(iter(traces))) == 32


def test_planner_stages_are_logged_with_the_stage_field(stack, json_logs):
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    plan(ci_event("evt-logs-3"), svc)
    drain(svc, wait_seconds=0.5)
    stages = {r["stage"] for r in json_logs.records()}
    assert {"plan", "done"} <= stages, stages


def test_an_event_for_no_api_is_logged_as_json_with_its_event_id(stack, json_logs):
    svc = stack.service()
    event = ci_event("evt-unknown")
    event["data"] = {"api": "someone-else"}
    assert plan(event, svc) == []
    records = json_logs.records()
    assert records and all(r["event_id"] == "evt-unknown" for r in records)
