"""Faults end to end (planner -> queue -> worker -> target -> ledger -> card): each ends in a
recorded outcome (retried and succeeded, or failed with the reason, poison-queued and notified)
and never in a half-written state."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync import worker_loop
from sync.adapters.ledger_tables import TableLedger
from sync.adapters.powerapps import PowerAppsTarget
from sync.adapters.queue_storage import StorageWorkQueue
from sync.adapters.teams import TeamsWebhookNotifier
from sync.clouds import cloud_for
from sync.errors import TargetError, TransientError
from sync.spec.canonical import sha256_hex
from sync.triggers import plan
from sync.worker_loop import drain
from tests.notify.receiver import Answer, webhook
from tests.powerplatform.conftest import ENV, DictSecrets, FakeTokens
from tests.reliability.conftest import Fleet, event, make_fleet, version_shas
from tests.simulators.powerplatform import Simulator, start_simulator
from tests.support.azurite import Azurite, start_azurite

pytestmark = [pytest.mark.reliability, pytest.mark.azurite]
QUICK = {"retry_total": 0, "connection_timeout": 1, "read_timeout": 1}


@pytest.fixture
def quick(azurite: Any, tmp_path: Path, fast_retries: None, monkeypatch) -> Iterator[Fleet]:
    """One API, two folder targets; the local loop poisons after two deliveries (the host: 5)."""
    monkeypatch.setattr(worker_loop, "HOST_MAX_DEQUEUE_COUNT", 2)
    fleet = make_fleet(azurite, tmp_path, 1, fetch_budget_seconds=0.5, fetch_timeout_seconds=0.5)
    try:
        yield fleet
    finally:
        fleet.server.stop()


def nothing_written(fleet: Fleet, svc: Any, api: str) -> None:
    for target in ("a", "b"):
        assert not fleet.folder(api, target).exists()
        assert version_shas(svc, api, target) == []


def test_spec_server_down_ends_failed_poisoned_and_notified(quick: Fleet):
    api = quick.apis[0]
    quick.publish(api, 1)
    quick.server.drop(quick.live_path(api), times=None)  # every connection dropped
    svc = quick.service()
    [run_id] = plan(event(api), svc)
    outcomes = drain(svc, wait_seconds=1.5, visibility_timeout=1)
    assert {o.target: o.result for o in outcomes} == {"a": "failed", "b": "failed"}
    assert all("gave up after 2 attempts" in o.message for o in outcomes)
    assert all("spec download" in o.message for o in outcomes), outcomes  # the reason
    nothing_written(quick, svc, api)
    run = svc.ports.ledger.get_run(run_id)
    assert run.complete and sorted(run.failed_targets) == ["a", "b"]
    assert run.notified == "written" and len(quick.cards()) == 1
    assert svc.ports.ledger.state(api, "a").last_outcome == "failed"


def test_spec_server_warming_up_is_retried_and_succeeds(quick: Fleet):
    api = quick.apis[0]
    quick.publish(api, 1)
    quick.server.warm_up(quick.live_path(api), times=2)
    svc = quick.service()
    plan(event(api), svc)
    outcomes = drain(svc, wait_seconds=0.5, visibility_timeout=1)
    assert {o.result for o in outcomes} == {"updated"}
    assert quick.connector(api, "a")["info"]["version"] == "1.0.0"


def test_spec_server_answering_an_html_page_fails_at_once_naming_it(quick: Fleet):
    api = quick.apis[0]
    quick.server.html_error(quick.live_path(api), status=200, title="Sign in to your account")
    svc = quick.service()
    plan(event(api), svc)
    outcomes = drain(svc, wait_seconds=0.5, visibility_timeout=1)
    assert {o.result for o in outcomes} == {"failed"}
    assert all("HTML" in o.message or "html" in o.message for o in outcomes), outcomes
    assert all("Sign in to your account" in o.message for o in outcomes), outcomes
    assert quick.server.count(quick.live_path(api)) == 2  # once per target, not retried
    nothing_written(quick, svc, api)
    assert len(quick.cards()) == 1


# --- Power Platform faults (the strict simulator) ----------------------------------------------


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = start_simulator()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def pp(quick: Fleet, sim: Simulator) -> Iterator[tuple[Fleet, Any]]:
    """The API's targets are PowerApps connectors in the simulator (tokens minted locally)."""
    api = quick.apis[0]
    doc = json.loads(quick.map_path.read_text())
    doc["endpoints"] = {"powerApps": sim.url}
    doc["credentials"] = {"func": {"managedIdentity": {}}}
    doc["apis"][api]["targets"] = [
        {"name": t, "powerapps": {"environment": ENV, "credential": "func", "oauthSecret": "none"}}
        for t in ("a", "b")
    ]
    quick.map_path.write_text(json.dumps(doc))
    cloud = cloud_for("public", {"powerApps": sim.url})
    with httpx.Client(timeout=1.0) as client:
        holder: dict[str, Any] = {}

        def targets(a: str, name: str) -> PowerAppsTarget:
            key = (a, name)
            if key not in holder:
                holder[key] = PowerAppsTarget(
                    api=a,
                    name=name,
                    params={"environment": ENV, "credential": "func", "oauthSecret": "none"},
                    cloud=cloud,
                    tokens=FakeTokens(),
                    secrets=DictSecrets(),
                    client=client,
                    get_state_connector_id=lambda: svc.ports.ledger.state(a, name).connector_id,
                    budget_seconds=2,
                    verify_seconds=2,
                )
            return holder[key]

        svc = quick.service(targets=targets)
        yield quick, svc


def connectors(sim: Simulator) -> list[dict[str, Any]]:
    return [sim.powerapps_connector(ENV, cid) for cid in sim.powerapps_ids(ENV)]


def connectors_by_target(sim: Simulator) -> dict[str, list[dict[str, Any]]]:
    """The simulator's connectors grouped by description (each carries its target's marker)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for connector in connectors(sim):
        grouped.setdefault(connector["description"], []).append(connector)
    return grouped


def create_without_resend(sim: Simulator, timeout: float) -> None:
    """One create POST through the shared retry, as the PowerApps target sends it (never sent
    again once it may have been carried out)."""
    from sync.adapters.pp_errors import send

    url = f"{sim.url}/providers/Microsoft.PowerApps/apis?api-version=2016-11-01"
    with httpx.Client(timeout=timeout) as client:
        send(
            client,
            "POST",
            url,
            service="PowerApps API",
            where="t",
            budget_seconds=5,
            json_body={"properties": {}},
            resend_unanswered=False,
        )


def test_platform_429_with_retry_after_is_waited_out_and_the_sync_succeeds(pp, sim: Simulator):
    fleet, svc = pp
    api = fleet.apis[0]
    fleet.publish(api, 1)
    sim.faults.add(status=429, method="POST", path=r"/apis$", retry_after=1, times=2)
    plan(event(api), svc)
    outcomes = drain(svc, wait_seconds=0.5, visibility_timeout=1)
    assert {o.result for o in outcomes} == {"updated"}, outcomes
    assert len(connectors(sim)) == 2  # one per target, never duplicated by the retries
    assert len(sim.requests_to("POST", r"/apis$")) == 4  # 2 throttled + 2 created


def test_platform_500_every_time_ends_failed_with_the_status_and_no_connector(pp, sim):
    fleet, svc = pp
    api = fleet.apis[0]
    fleet.publish(api, 1)
    sim.faults.add(status=500, method="POST", path=r"/apis$", times=1000)
    [run_id] = plan(event(api), svc)
    outcomes = drain(svc, wait_seconds=1.5, visibility_timeout=1)
    assert {o.result for o in outcomes} == {"failed"}, outcomes
    assert all(
        "gave up after 2 attempts" in o.message and "HTTP 500" in o.message for o in outcomes
    )
    assert connectors(sim) == []
    assert version_shas(svc, api, "a") == []
    assert svc.ports.ledger.get_run(run_id).notified == "written"
    assert len(fleet.cards()) == 1


def test_an_unanswered_create_is_not_sent_again_by_the_shared_retry(sim: Simulator, fast_retries):
    """A POST that times out may still have created the connector; resending it makes a twin."""
    sim.faults.add(status=None, method="POST", path=r"/apis$", delay=1.5, times=1)
    with pytest.raises(TransientError) as caught:
        create_without_resend(sim, timeout=0.5)
    assert "not sent again" in str(caught.value) and "ReadTimeout" in str(caught.value)
    assert len(sim.requests_to("POST", r"/apis$")) == 1


@pytest.mark.parametrize("status", [502, 504, 500, 408])
def test_a_create_answered_with_a_gateway_error_is_not_sent_again_by_the_shared_retry(
    sim: Simulator, fast_retries, status: int
):
    """A gateway's 5xx may follow a create the service carried out (reference F3): resending it
    made a twin connector (found by review: one write left two marked connectors)."""
    sim.faults.add(status=status, method="POST", path=r"/apis$", acted=True)
    with pytest.raises(TransientError) as caught:
        create_without_resend(sim, timeout=5)
    assert "not sent again" in str(caught.value) and f"HTTP {status}" in str(caught.value)
    assert len(sim.requests_to("POST", r"/apis$")) == 1


def test_a_throttled_create_is_still_retried_in_place(sim: Simulator, fast_retries):
    sim.faults.add(status=429, retry_after=0.1, method="POST", path=r"/apis$")
    with pytest.raises(TargetError, match="401"):  # the second POST reaches the service,
        create_without_resend(sim, timeout=5)  # which wants a token
    assert len(sim.requests_to("POST", r"/apis$")) == 2


def test_a_gateway_error_after_the_create_ends_with_one_connector(pp, sim: Simulator):
    """Through the pipeline: the create lands, the gateway answers 502; the queue's retry finds
    the marked connector and adopts it."""
    fleet, svc = pp
    api = fleet.apis[0]
    fleet.publish(api, 1)
    sim.faults.add(status=502, method="POST", path=r"/apis$", acted=True, times=2)
    plan(event(api), svc)
    outcomes = drain(svc, wait_seconds=3.5, visibility_timeout=1)
    results = {o.target: o.result for o in outcomes}
    assert results == {"a": "updated", "b": "updated"}, outcomes
    by_target = connectors_by_target(sim)
    assert len(by_target) == 2 and all(len(v) == 1 for v in by_target.values()), by_target


def test_platform_timeouts_are_retried_by_the_queue_then_succeed(pp, sim: Simulator):
    fleet, svc = pp
    api = fleet.apis[0]
    fleet.publish(api, 1)
    sim.faults.add(
        status=None, method="POST", path=r"/apis$", delay=1.5, times=8
    )  # beyond the 1 s timeout
    plan(event(api), svc)
    # A create that timed out is not resent by the HTTP retry policy (it may have been carried
    # out); the queue retries the item once the platform has finished (both items are received at
    # t=0 and time out one after the other at t=1 and t=2, so b's create lands at t=2.5; the
    # visibility timeout of 3 s, like the host's 30 s, is longer than that), and the retry adopts
    # the connector the timed-out create made instead of creating a twin.
    outcomes = drain(svc, wait_seconds=3.5, visibility_timeout=3)
    results = {o.target: o.result for o in outcomes}
    assert set(results) == {"a", "b"}, outcomes
    assert set(results.values()) <= {"updated", "failed"}, outcomes
    # whatever the platform did with the slow POSTs, each target holds at most one connector
    by_target = connectors_by_target(sim)
    assert all(len(v) == 1 for v in by_target.values()), by_target


# --- storage unavailable (a dedicated Azurite, paused with SIGSTOP) ----------------------------


@pytest.fixture
def own_azurite() -> Iterator[Azurite]:
    emulator = start_azurite()
    try:
        yield emulator
    finally:
        os.kill(emulator.process.pid, signal.SIGCONT)
        emulator.stop()


@contextmanager
def paused(emulator: Azurite) -> Iterator[None]:
    os.kill(emulator.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(emulator.process.pid, signal.SIGCONT)


class PauseAfterWrite:
    """A real folder target that pauses the ledger's storage for a while right after the first
    connector write (the ledger write that follows times out), and counts writes."""

    def __init__(self, inner: Any, emulator: Azurite, writes: list[str]) -> None:
        self._inner = inner
        self._emulator = emulator
        self._writes = writes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write(self, definition: dict[str, Any], current: Any) -> str | None:
        result = self._inner.write(definition, current)
        self._writes.append(self._inner.name)
        if len(self._writes) == 1:
            os.kill(self._emulator.process.pid, signal.SIGSTOP)
            pid = self._emulator.process.pid
            threading.Timer(2.5, lambda: os.kill(pid, signal.SIGCONT)).start()
        return result


def test_table_storage_lost_after_the_connector_write_is_reconciled_not_rewritten(
    azurite: Any, tmp_path: Path, own_azurite: Azurite, fast_retries: None
):
    fleet = make_fleet(azurite, tmp_path, 1, lease_seconds=1.0)
    try:
        api = fleet.apis[0]
        fleet.publish(api, 1)
        ledger = TableLedger(
            connection_string=own_azurite.connection_string,
            table_name="ledgerdown",
            container="ledger-down",
            client_options=QUICK,
        )
        base = fleet.service(ledger=ledger)
        writes: list[str] = []
        svc = fleet.service(
            ledger=ledger,
            targets=lambda a, name: PauseAfterWrite(
                base.ports.targets(a, name), own_azurite, writes
            ),
        )
        plan(event(api, event_id="evt-storage"), svc)
        outcomes = drain(svc, wait_seconds=2.5, visibility_timeout=2)
        assert {o.target for o in outcomes} == {"a", "b"}, outcomes
        # the timed-out transaction may still have landed once storage resumed: then the retry
        # finds the event recorded; either way the ledger holds exactly one version
        for o in outcomes:
            assert o.result == "updated" or o.message == "event already processed", o
        assert sorted(writes) == ["a", "b"]  # the interrupted target was not written twice
        for target in ("a", "b"):
            [(number, sha)] = version_shas(svc, api, target)
            assert number == 1 and sha == sha256_hex(fleet.connector(api, target))
            assert ledger.state(api, target).pending is None
        assert len(fleet.cards()) == 1
    finally:
        fleet.server.stop()


def test_queue_storage_unavailable_makes_the_planner_raise_and_redelivery_recovers(
    azurite: Any, tmp_path: Path, own_azurite: Azurite
):
    fleet = make_fleet(azurite, tmp_path, 1)
    try:
        api = fleet.apis[0]
        fleet.publish(api, 1)
        queue = StorageWorkQueue(
            connection_string=own_azurite.connection_string,
            queue_name="work-down",
            client_options=QUICK,
        )
        svc = fleet.service(queue=queue)
        queue.receive(max_messages=1, visibility_timeout=1)  # created while storage is up
        ev = event(api, event_id="evt-queue-down")
        with paused(own_azurite), pytest.raises(TransientError) as caught:
            plan(ev, svc)  # Event Grid sees the failure and redelivers
        assert "queue" in str(caught.value)
        runs = plan(ev, svc)  # the redelivery
        outcomes = drain(svc, wait_seconds=0.5, visibility_timeout=2)
        # a send that timed out may still have landed when storage resumed: at-least-once, and
        # the extra copy is absorbed by the event marker
        assert sorted(o.target for o in outcomes if o.result == "updated") == ["a", "b"]
        for o in outcomes:
            assert o.result == "updated" or o.message == "event already processed", o
        for target in ("a", "b"):
            assert [v for v, _ in version_shas(svc, api, target)] == [1]
        assert svc.ports.ledger.get_run(runs[0]).complete
        assert len(fleet.cards()) == 1
    finally:
        fleet.server.stop()


# --- notification faults -------------------------------------------------------------------------


def test_teams_500_never_fails_the_sync_and_the_failure_is_recorded(fleet: Fleet):
    api = fleet.apis[0]
    fleet.publish(api, 1)
    answers = [Answer(status=500, body=b"boom")]
    with webhook(answers, sig="sig=canary") as receiver, httpx.Client(timeout=2) as client:
        notifier = TeamsWebhookNotifier(
            webhook_url_provider=lambda: receiver.url,
            client=client,
            budget_seconds=1,
            wait_initial=0.01,
        )
        svc = fleet.service(notifier=notifier)
        [run_id] = plan(event(api), svc)
        outcomes = drain(svc, wait_seconds=0.3)
    assert {o.result for o in outcomes} == {"updated"}
    run = svc.ports.ledger.get_run(run_id)
    assert run.notified.startswith("failed") and "500" in run.notified
    assert "canary" not in run.notified  # the webhook signature is a secret
    assert len(receiver.received) >= 1
    assert [v for v, _ in version_shas(svc, api, "a")] == [1]
