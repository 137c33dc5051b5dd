"""1,000 events (redeliveries included, shuffled) for 10 APIs x 2 folder targets through the real
planner, the Azurite queue and ledger, the spec server and several worker threads.

It checks the end state (every connector at its newest spec, one ledger row per applied spec,
no errors) and prints the figures recorded in RELIABILITY.md.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sync.models import TargetOutcome
from sync.spec.canonical import sha256_hex
from sync.triggers import plan
from sync.worker_loop import drain
from tests.reliability.conftest import TARGETS, event, make_fleet, spec_doc, version_shas

pytestmark = [pytest.mark.reliability, pytest.mark.azurite, pytest.mark.slow]

N_APIS = 10
VERSIONS = 4  # distinct specs per API
EVENTS = 1_000
DISTINCT = 600  # the other 400 are redeliveries of these
WORKERS = 4
PLANNERS = 2  # Event Grid delivers several events at once
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def _events(fleet: Any, rng: random.Random) -> list[dict[str, Any]]:
    """Per API: deployments in time order, each naming the version it deployed (the newest
    event deploys the newest version); then redeliveries; then everything shuffled."""
    urls = {(api, n): fleet.publish(api, n, live=False) for api in fleet.apis for n in range(1, 5)}
    per_api = DISTINCT // N_APIS
    distinct = []
    for api in fleet.apis:
        for i in range(per_api):
            n = 1 + i * VERSIONS // per_api
            when = (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
            distinct.append(
                event(
                    api,
                    event_id=f"{api}-deploy-{i}",
                    time=when,
                    spec_url=urls[(api, n)],
                    version=f"{n}.0.0",
                )
            )
    batch = distinct + [rng.choice(distinct) for _ in range(EVENTS - DISTINCT)]
    rng.shuffle(batch)
    return batch


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))])


def test_a_thousand_shuffled_events_converge_with_no_error(azurite: Any, tmp_path: Path):
    fleet = make_fleet(azurite, tmp_path, N_APIS)
    try:
        rng = random.Random(7)
        batch = _events(fleet, rng)
        svc = fleet.service()
        svc.ports.queue.receive(max_messages=1, visibility_timeout=1)  # create queue and table
        svc.ports.ledger.state(fleet.apis[0], "a")
        started = time.monotonic()
        cpu0 = time.process_time()
        runs: list[str] = []
        outcomes: list[TargetOutcome] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        planned_at: list[float] = []

        def planner(share: list[dict[str, Any]]) -> None:  # deliveries overlap the work
            try:
                for ev in share:
                    planned_runs = plan(ev, svc)
                    with lock:
                        runs.extend(planned_runs)
            except BaseException as exc:
                errors.append(exc)
            with lock:
                planned_at.append(time.monotonic())

        def worker() -> None:
            try:
                done = drain(svc, max_items=10_000, wait_seconds=1.5, visibility_timeout=2)
            except BaseException as exc:  # any escape is a failure of the run
                with lock:
                    errors.append(exc)
                return
            with lock:
                outcomes.extend(done)

        threads = [
            threading.Thread(target=planner, args=(batch[i::PLANNERS],)) for i in range(PLANNERS)
        ]
        threads += [threading.Thread(target=worker) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        finished = time.monotonic() - 1.5  # the workers' final idle wait is not work
        planned = max(planned_at)

        assert not errors, [f"{exc!r} where={getattr(exc, 'where', None)}" for exc in errors]
        results = Counter(o.result for o in outcomes)
        assert set(results) <= {"updated", "unchanged"}, results
        items = DISTINCT * len(TARGETS)  # each run's targets at least once
        # at most every delivery's targets: a redelivered event enqueues only those that had not
        # finished when it was planned again
        most = len(runs) * len(TARGETS)
        redelivered = sum(
            o.message == "event already processed" or "recorded by an earlier attempt" in o.message
            for o in outcomes
        )
        # Every item ended (retries of a leased target are not outcomes). Delivery is at least
        # once: on a loaded machine a message whose 2 s visibility ran out mid-item is received
        # again, and that second run finds the event marker (and reports what the first
        # recorded) without writing, so any outcome beyond one per item is such a redelivery.
        assert items <= len(outcomes) <= most + redelivered, (len(outcomes), items, redelivered)
        for api in fleet.apis:
            newest = spec_doc(api, VERSIONS)
            for target in TARGETS:
                held = fleet.connector(api, target)
                assert held is not None and held["info"] == newest["info"], (api, target)
                assert held["paths"].keys() == newest["paths"].keys()
                rows = version_shas(svc, api, target)
                shas = [sha for _, sha in rows]
                assert len(shas) == len(set(shas)), (api, target, rows)  # one row per spec
                assert rows[0][1] == sha256_hex(held)  # the newest row is what it holds
                assert [v for v, _ in rows] == list(range(len(rows), 0, -1))
                assert 1 <= len(rows) <= VERSIONS
        assert fleet.server.count(f"/{fleet.apis[0]}/openapi.json") == 0  # specUrl honoured
        assert len(set(runs)) == DISTINCT
        cards = fleet.cards()
        assert len(cards) == DISTINCT  # one card per run, redeliveries add none

        why = Counter(
            "event marker (redelivery)"
            if o.message == "event already processed"
            else "superseded (older event)"
            if "older than the event already applied" in o.message
            else "applied"
            if o.result == "updated"
            else "same content (hash/304)"
            for o in outcomes
        )
        rows_total = sum(len(version_shas(svc, a, t)) for a in fleet.apis for t in TARGETS)
        durations = [o.duration_ms for o in outcomes]
        wall = finished - started
        print(
            "\nLOAD FIGURES "
            f"events={EVENTS} distinct={DISTINCT} duplicates={EVENTS - DISTINCT} "
            f"apis={N_APIS} targets={N_APIS * len(TARGETS)} planners={PLANNERS} workers={WORKERS} "
            f"work_items={len(outcomes)} outcomes={dict(results)} ledger_versions={rows_total} "
            f"cards={len(cards)} plan_s={planned - started:.2f} "
            f"wall_s={wall:.2f} "
            f"events_per_s={EVENTS / wall:.1f} items_per_s={len(outcomes) / wall:.1f} "
            f"item_ms_p50={_pct(durations, 0.5):.0f} item_ms_p95={_pct(durations, 0.95):.0f} "
            f"item_ms_mean={statistics.fmean(durations):.0f} "
            f"python_cpu_s={time.process_time() - cpu0:.1f} why={dict(why)}"
        )
    finally:
        fleet.server.stop()
