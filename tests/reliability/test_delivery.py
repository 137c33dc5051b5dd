"""Delivery semantics on the real local stack: event-id dedupe, redelivery while the first run is
in flight, ordering of events that name a spec, crash between connector write and ledger write,
holds that stay held."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sync.errors import LeaseTakenError
from sync.models import Hold, RunSummary, SyncRequest, WorkItem
from sync.runs import execute, run_id_for
from sync.triggers import plan
from sync.worker_loop import drain
from tests.reliability.conftest import Fleet, event, spec_doc, version_shas

pytestmark = [pytest.mark.reliability, pytest.mark.azurite]
ROOT = Path(__file__).resolve().parents[2]


class SlowCountingTarget:
    """A real folder target whose write takes a while and is counted: the window in which a
    redelivered item would race the first one."""

    def __init__(self, inner: Any, delay: float, writes: list[str]) -> None:
        self._inner = inner
        self._delay = delay
        self._writes = writes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write(self, definition: dict[str, Any], current: Any) -> str | None:
        self._writes.append(self._inner.name)
        time.sleep(self._delay)
        return self._inner.write(definition, current)


def test_redelivery_while_the_first_run_is_in_flight_writes_once(fleet: Fleet):
    """Two workers of one process (the Functions host runs queue invocations in threads) get the
    same item; the per-target lease lets exactly one write, the other retries and finds it done."""
    api = fleet.apis[0]
    fleet.publish(api, 1)
    writes: list[str] = []
    base = fleet.service()
    real = base.ports.targets
    svc = fleet.service(targets=lambda a, t: SlowCountingTarget(real(a, t), 0.6, writes))
    request = SyncRequest(api=api, reason="event", event_id="evt-inflight", targets=("a",))
    item = WorkItem(run_id=run_id_for(request), api=api, target="a", request=request)
    svc.ports.ledger.start_run(
        RunSummary(run_id=item.run_id, api=api, request=request, targets=("a",))
    )
    start = threading.Barrier(2)
    results: list[Any] = []

    def worker() -> None:
        start.wait()
        try:
            results.append(execute(item, svc.pipeline, svc.ports))
        except LeaseTakenError as exc:
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    outcomes = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, LeaseTakenError)]
    assert [o.result for o in outcomes] == ["updated"], results
    assert len(refused) == 1 and "held by" in str(refused[0])
    # the queue redelivers the refused one: it finds the event recorded and writes nothing
    again = execute(item, svc.pipeline, svc.ports)
    assert again.result == "unchanged" and "already processed" in again.message
    assert writes == ["a"]
    assert [v for v, _ in version_shas(svc, api, "a")] == [1]
    assert len(fleet.cards()) == 1


def test_a_redelivered_event_is_skipped_by_id_even_if_the_live_spec_moved(fleet: Fleet):
    api = fleet.apis[0]
    fleet.publish(api, 1)
    svc = fleet.service()
    first = event(api, event_id="evt-dup")
    runs = plan(first, svc)
    assert {o.result for o in drain(svc, wait_seconds=0.3)} == {"updated"}
    fleet.publish(api, 2)  # the live spec changes; the SAME event is delivered again
    assert plan(first, svc) == runs  # joins its first run, whose targets all finished
    assert drain(svc, wait_seconds=0.3) == []  # so none is enqueued again
    # A duplicate of the event's items (the queue delivers at least once) is skipped by id.
    run = svc.ports.ledger.get_run(runs[0])
    for target in run.targets:
        svc.ports.queue.send(
            WorkItem(run_id=run.run_id, api=api, target=target, request=run.request)
        )
    outcomes = drain(svc, wait_seconds=0.3)
    assert len(outcomes) == len(run.targets)
    assert {o.message for o in outcomes} == {"event already processed"}
    assert fleet.connector(api, "a")["info"]["version"] == "1.0.0"
    assert [v for v, _ in version_shas(svc, api, "a")] == [1]
    assert len(fleet.cards()) == 1
    # a NEW event for the moved spec is not a duplicate
    plan(event(api), svc)
    assert {o.result for o in drain(svc, wait_seconds=0.3)} == {"updated"}
    assert fleet.connector(api, "b")["info"]["version"] == "2.0.0"


def results(svc, raw: dict) -> set[str]:
    """Plan one event and work its items off: the results they ended with."""
    plan(raw, svc)
    return {o.result for o in drain(svc, wait_seconds=0.3)}


def assert_superseded(svc, raw: dict) -> None:
    """The event is older than the one applied: every item ends unchanged, saying so."""
    plan(raw, svc)
    late = drain(svc, wait_seconds=0.3)
    assert {o.result for o in late} == {"unchanged"}
    assert all("older than the event already applied" in o.message for o in late)


def test_an_older_event_arriving_after_a_newer_one_does_not_roll_the_connector_back(
    fleet: Fleet,
):
    api = fleet.apis[0]
    v1, v2, v3 = (fleet.publish(api, n, live=False) for n in (1, 2, 3))
    svc = fleet.service()
    assert results(svc, event(api, time="2026-11-28T10:05:00Z", spec_url=v2, version="2.0.0")) == {
        "updated"
    }
    # Event Grid delivers the 10:00 deployment late
    assert_superseded(svc, event(api, time="2026-11-28T10:00:00Z", spec_url=v1, version="1.0.0"))
    for target in ("a", "b"):
        assert fleet.connector(api, target)["info"]["version"] == "2.0.0"
        assert [v for v, _ in version_shas(svc, api, target)] == [1]
    # a later event with different content wins
    plan(event(api, time="2026-11-28T10:07:00.1234567Z", spec_url=v3, version="3.0.0"), svc)
    assert {o.result for o in drain(svc, wait_seconds=0.3)} == {"updated"}
    assert fleet.connector(api, "a")["info"]["version"] == "3.0.0"
    state = svc.ports.ledger.state(api, "a")
    assert state.last_event_time == "2026-11-28T10:07:00.123456Z"
    # only the ledger's own fetches reached the server: the stale event fetched nothing
    assert fleet.server.count(fleet.version_path(api, 1)) == 0


def test_a_late_event_without_a_spec_location_does_not_lower_the_recorded_event_time(
    fleet: Fleet,
):
    """An event naming no spec is decided by content, so a late one applies what is live; it
    must not lower the recorded event time, or an even later-arriving older event naming a spec
    would pass the ordering check and roll the connector back (before 2026-12-06 it did)."""
    api = fleet.apis[0]
    v1, v2 = (fleet.publish(api, n, live=False) for n in (1, 2))
    fleet.publish(api, 3)  # live now
    svc = fleet.service()
    assert results(svc, event(api, time="2026-11-28T10:05:00Z", spec_url=v2, version="2.0.0")) == {
        "updated"
    }
    # late, no location: applies live v3
    assert results(svc, event(api, time="2026-11-28T09:00:00Z")) == {"updated"}
    assert svc.ports.ledger.state(api, "a").last_event_time.startswith("2026-11-28T10:05:00")
    assert_superseded(svc, event(api, time="2026-11-28T10:00:00Z", spec_url=v1, version="1.0.0"))
    for target in ("a", "b"):
        assert fleet.connector(api, target)["info"]["version"] == "3.0.0"


def test_events_without_a_spec_location_are_decided_by_the_fetched_content(fleet: Fleet):
    api = fleet.apis[0]
    fleet.publish(api, 1)
    svc = fleet.service()
    plan(event(api, time="2026-11-28T10:05:00Z"), svc)
    assert {o.result for o in drain(svc, wait_seconds=0.3)} == {"updated"}
    # an older event without a location still fetches what is live now: same content, no write
    plan(event(api, time="2026-11-28T09:00:00Z"), svc)
    assert {o.result for o in drain(svc, wait_seconds=0.3)} == {"unchanged"}
    # ... and a changed live spec is applied whatever the event's time says
    fleet.publish(api, 2)
    plan(event(api, time="2026-11-28T08:00:00Z"), svc)
    assert {o.result for o in drain(svc, wait_seconds=0.3)} == {"updated"}
    assert fleet.connector(api, "a")["info"]["version"] == "2.0.0"
    assert [v for v, _ in version_shas(svc, api, "a")] == [2, 1]


def test_a_worker_killed_between_connector_write_and_ledger_write_is_reconciled(
    fleet: Fleet, tmp_path: Path
):
    api = fleet.apis[0]
    fleet.publish(api, 1)
    svc = fleet.service()
    plan(event(api, event_id="evt-killed"), svc)
    settings = dataclasses.asdict(dataclasses.replace(fleet.settings, lease_seconds=1.0))
    settings["allow_private_hosts"] = sorted(settings["allow_private_hosts"])
    config = tmp_path / "worker-settings.json"
    config.write_text(json.dumps(settings))
    marker = tmp_path / "written"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.slow_worker", str(config), str(marker)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not marker.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), worker.stderr.read().decode() if worker.poll() is not None else ""
    finally:
        worker.kill()
        worker.wait(timeout=10)
    killed = next(t for t in ("a", "b") if fleet.folder(api, t).exists())
    written = fleet.folder(api, killed).stat().st_mtime_ns
    assert fleet.connector(api, killed) is not None  # the whole new file, never half of it
    state = svc.ports.ledger.state(api, killed)
    assert state.pending and state.version == 0  # a write was in flight, nothing recorded
    assert version_shas(svc, api, killed) == []
    # the queue makes the item visible again; the dead worker's lease expires; the next worker
    # sees the connector already holds the definition and only records the missing version
    outcomes = drain(svc, wait_seconds=2.5, visibility_timeout=2)
    mine = [o for o in outcomes if o.target == killed]
    assert [o.result for o in mine] == ["updated"], outcomes
    assert fleet.folder(api, killed).stat().st_mtime_ns == written  # not written twice
    state = svc.ports.ledger.state(api, killed)
    assert state.pending is None and state.version == 1
    [(number, sha)] = version_shas(svc, api, killed)
    from sync.spec.canonical import sha256_hex

    assert number == 1 and sha == sha256_hex(fleet.connector(api, killed))
    run = svc.ports.ledger.get_run(plan(event(api, event_id="evt-killed"), svc)[0])
    drain(svc, wait_seconds=0.3)  # the redelivered event (from plan above) is absorbed
    assert run is not None and run.complete
    assert len(fleet.cards()) == 1


def test_a_held_target_stays_held_whatever_arrives(fleet: Fleet):
    api = fleet.apis[0]
    fleet.publish(api, 1)
    svc = fleet.service()
    plan(event(api), svc)
    drain(svc, wait_seconds=0.3)
    ledger = svc.ports.ledger
    state = ledger.state(api, "a")
    hold = Hold(version=1, until="2099-01-01T00:00:00Z", by="ops@contoso")
    ledger.save_state(api, "a", state.evolve(hold=hold))
    before = fleet.folder(api, "a").stat().st_mtime_ns
    for n in (2, 3):
        url = fleet.publish(api, n)
        plan(event(api, spec_url=url, version=f"{n}.0.0", time=f"2026-11-28T1{n}:00:00Z"), svc)
        outcomes = {o.target: o for o in drain(svc, wait_seconds=0.3)}
        assert outcomes["a"].result == "held" and "ops@contoso" in outcomes["a"].message
        assert outcomes["b"].result == "updated"
    from sync.triggers import submit

    submit(SyncRequest(api=api, reason="drift"), svc.map, svc.ports)
    assert {o.target: o.result for o in drain(svc, wait_seconds=0.3)}["a"] == "held"
    assert fleet.folder(api, "a").stat().st_mtime_ns == before
    assert [v for v, _ in version_shas(svc, api, "a")] == [1]
    assert ledger.state(api, "a").hold == hold
    assert fleet.connector(api, "a") == json.loads(json.dumps(fleet.connector(api, "a")))
    assert fleet.connector(api, "a")["info"]["version"] == "1.0.0"
    assert spec_doc(api, 3)["info"]["version"] == fleet.connector(api, "b")["info"]["version"]
