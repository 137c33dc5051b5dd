"""One run, one spec download: the targets of a fan-out share the first 200 of their run; a
target whose state already holds that ETag is "not modified"; a leader's 304 or failure is its
own, never handed to the others."""

from __future__ import annotations

import json
from typing import Any

from sync.triggers import plan
from sync.worker_loop import drain
from tests.pipeline.conftest import SPEC_PATH, Stack, ci_event, sync_map

TARGETS = ["t1", "t2", "t3", "t4"]


def write_map(stack: Stack, names: list[str]) -> None:
    doc = sync_map(stack.server)
    doc["apis"]["contoso-invoicing"]["targets"] = [
        {"name": n, "folder": f"connectors/{n}"} for n in names
    ]
    stack.map_path.write_text(json.dumps(doc))


def sync(stack: Stack, *, concurrency: int) -> dict[str, Any]:
    svc = stack.service()
    plan(ci_event(), svc)
    return {o.target: o for o in drain(svc, wait_seconds=0.5, concurrency=concurrency)}


def gets(stack: Stack) -> int:
    return len([r for r in stack.server.requests_for(SPEC_PATH) if r.method == "GET"])


def test_a_fan_out_downloads_the_spec_once(stack: Stack) -> None:
    write_map(stack, TARGETS)
    stack.serve("openapi-v1.yaml")
    outcomes = sync(stack, concurrency=4)
    assert {t: o.result for t, o in outcomes.items()} == dict.fromkeys(TARGETS, "updated")
    assert gets(stack) == 1
    written = {t: stack.folder(t).read_text() for t in TARGETS}
    assert len(set(written.values())) == 1  # every target got the same content


def test_a_target_already_at_the_shared_etag_is_not_modified(stack: Stack) -> None:
    write_map(stack, TARGETS)
    stack.serve("openapi-v2.yaml")
    sync(stack, concurrency=1)
    # A target added later comes first in the map: its (unconditional) 200 leads the next run.
    write_map(stack, ["late", *TARGETS])
    before = gets(stack)
    outcomes = sync(stack, concurrency=1)
    assert outcomes["late"].result == "updated"
    for name in TARGETS:  # the shared answer's ETag is theirs: what their own 304 would say
        assert outcomes[name].result == "unchanged", outcomes[name].message
        assert "not modified" in outcomes[name].message
    assert gets(stack) - before == 1


def test_a_leaders_failure_is_not_handed_to_the_others(stack: Stack) -> None:
    write_map(stack, TARGETS)
    stack.serve("openapi-v1.yaml")
    stack.server.fail(SPEC_PATH, times=1, status=403, body=b"forbidden")
    outcomes = sync(stack, concurrency=1)
    results = [outcomes[t].result for t in TARGETS]
    assert results[0] == "failed" and "403" in outcomes["t1"].message
    assert results[1:] == ["updated"] * 3
    assert gets(stack) == 2  # the failed leader's, then the next leader's shared 200


def test_each_run_downloads_for_itself(stack: Stack) -> None:
    write_map(stack, TARGETS[:2])
    stack.serve("openapi-v1.yaml")
    sync(stack, concurrency=2)
    stack.serve("openapi-v2.yaml")
    outcomes = sync(stack, concurrency=2)
    assert {o.result for o in outcomes.values()} == {"updated"}
    assert "PayInvoice" in stack.folder("t1").read_text()
    assert gets(stack) == 2


def test_a_target_updated_by_a_later_run_does_not_take_an_older_runs_share(
    stack: Stack,
) -> None:
    """An event without a location fetches what is live (``_superseded`` does not order it): a
    late item of an older run must not apply that run's earlier download over the newer content
    a later run already applied (queue items are not delivered in order)."""
    from sync.logs import log_context
    from sync.models import SyncRequest, WorkItem

    write_map(stack, TARGETS[:2])
    stack.serve("openapi-v1.yaml")
    svc = stack.service()

    def item(run: str, target: str, event_id: str) -> WorkItem:
        request = SyncRequest(api="contoso-invoicing", reason="event", event_id=event_id)
        return WorkItem(run_id=run, api="contoso-invoicing", target=target, request=request)

    def run(work: WorkItem) -> Any:
        with log_context():  # as the worker does: the item's stages never outlive it
            return svc.pipeline.run(work)

    assert run(item("run-1", "t1", "e1")).result == "updated"  # downloads v1
    stack.serve("openapi-v2.yaml")  # deployed again: a second event, a second run
    assert run(item("run-2", "t2", "e2")).result == "updated"
    assert "PayInvoice" in stack.folder("t2").read_text()
    late = run(item("run-1", "t2", "e1"))  # run 1's item for t2 arrives last
    assert late.result == "unchanged", late.message
    assert "PayInvoice" in stack.folder("t2").read_text()  # still v2, not rolled back to v1
