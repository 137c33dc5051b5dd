"""Drift end to end: the drift timer (through the Function App's timer trigger) re-checks the spec
with a conditional GET and each connector against the sha256 we recorded, on the local stack."""

from __future__ import annotations

import json

import pytest
from azure.functions.timer import TimerRequest

from sync.spec.canonical import sha256_hex
from sync.triggers import plan
from sync.worker_loop import drain
from tests.pipeline.conftest import ci_event
from tests.pipeline.test_function_app import functions
from tests.rollback.conftest import (
    API,
    card_texts,
    edit_connector,
    read_connector,
    serve_spec,
    sync_now,
    write_map,
)

pytestmark = pytest.mark.azurite


def drift_timer(svc) -> dict:
    """The timer trigger's body, then the queue drained as the queue trigger would."""
    functions()["drift_check"].get_user_function()(TimerRequest(past_due=False))
    return {o.target: o for o in drain(svc, wait_seconds=0.3)}


def add_portal_note(doc: dict) -> None:
    doc["info"]["description"] = "edited in the maker portal"
    doc["x-ms-connector-metadata"] = [
        {"propertyName": "Website", "propertyValue": "https://x.example"}
    ]


def synced(env, **drift):
    write_map(env, drift=drift)
    svc = env.service()
    serve_spec(env, "openapi-v1.yaml")
    assert {o.result for o in sync_now(svc).outcomes} == {"updated"}
    return svc


def versions(svc, target):
    return [v.version for v in svc.ports.ledger.versions(API, target)]


def test_unchanged_drift_run_sends_no_card_but_completes_its_run(env):
    svc = synced(env)
    cards = len(env.cards())
    outcomes = drift_timer(svc)
    assert {o.result for o in outcomes.values()} == {"unchanged"}
    assert all("304" in o.message and not o.drift for o in outcomes.values())
    assert len(env.cards()) == cards  # no news, no card
    assert versions(svc, "dev") == [1]


def test_drift_run_records_quietly_in_the_run_row(env):
    svc = synced(env)
    from sync.triggers import on_drift_timer

    (run_id,) = on_drift_timer()
    drain(svc, wait_seconds=0.3)
    run = svc.ports.ledger.get_run(run_id)
    assert run.complete and run.request.reason == "drift"
    assert run.notified == "skipped: drift run found nothing new"


def test_spec_changed_without_an_event_is_synced_by_the_drift_run(env):
    svc = synced(env)
    cards = len(env.cards())
    serve_spec(env, "openapi-v2.yaml")
    outcomes = drift_timer(svc)
    assert {(t, o.result, o.version) for t, o in outcomes.items()} == {
        ("dev", "updated", 2),
        ("prod", "updated", 2),
    }
    assert read_connector(env, "dev")["info"]["version"] == "2.0.0"
    assert svc.ports.ledger.version(API, "dev", 2).reason == "drift"
    assert len(env.cards()) == cards + 1


def test_adopt_keeps_the_edit_and_records_it_without_writing(env):
    svc = synced(env, dev="adopt")
    edited = edit_connector(env, "dev", add_portal_note)
    mtime = env.folder("dev").stat().st_mtime_ns
    outcomes = drift_timer(svc)
    dev = outcomes["dev"]
    assert dev.result == "updated" and dev.drift and dev.version == 2
    assert "kept (adopted)" in dev.message
    assert read_connector(env, "dev") == edited
    assert env.folder("dev").stat().st_mtime_ns == mtime  # already holds it: no write
    record = svc.ports.ledger.version(API, "dev", 2, include_definitions=True)
    assert record.reason == "drift: adopted connector edits" and record.applied == edited
    state = svc.ports.ledger.state(API, "dev")
    assert state.applied_sha256 == sha256_hex(edited) and state.drift_sha256 is None
    assert outcomes["prod"].result == "unchanged" and not outcomes["prod"].drift
    assert "edited outside the service" in card_texts(env.cards()[-1])
    # adopted: the next drift run finds nothing, and the edit survives the next deployment
    assert {o.result for o in drift_timer(svc).values()} == {"unchanged"}
    serve_spec(env, "openapi-v1.yaml", version="1.1.0")
    plan(ci_event(version="1.1.0"), svc)
    drain(svc, wait_seconds=0.3)
    after = read_connector(env, "dev")
    assert after["info"]["version"] == "1.1.0" and after["x-ms-connector-metadata"]


def test_overwrite_removes_the_edit(env):
    svc = synced(env, dev="overwrite")
    v1 = svc.ports.ledger.version(API, "dev", 1, include_definitions=True)
    edit_connector(env, "dev", add_portal_note)
    dev = drift_timer(svc)["dev"]
    assert dev.result == "updated" and dev.drift and "overwritten" in dev.message
    assert read_connector(env, "dev") == v1.applied
    record = svc.ports.ledger.version(API, "dev", 2)
    assert record.reason == "drift: overwrote connector edits"


def test_report_writes_nothing_and_reports_once(env):
    svc = synced(env)  # report is the default mode
    edited = edit_connector(env, "dev", add_portal_note)
    cards = len(env.cards())
    dev = drift_timer(svc)["dev"]
    assert dev.result == "unchanged" and dev.drift and not dev.drift_known
    assert "edited outside the service" in dev.message and "'report' writes nothing" in dev.message
    assert read_connector(env, "dev") == edited and versions(svc, "dev") == [1]
    state = svc.ports.ledger.state(API, "dev")
    assert state.drift_sha256 == sha256_hex(edited)
    assert state.last_message == dev.message and state.applied_sha256 != sha256_hex(edited)
    assert len(env.cards()) == cards + 1
    text = card_texts(env.cards()[-1])
    assert "Connector edited outside the service (drift)" in text
    # the same edit on the next timer run: still flagged, no second card
    again = drift_timer(svc)["dev"]
    assert again.drift and again.drift_known and again.result == "unchanged"
    assert len(env.cards()) == cards + 1
    # a different edit is news again
    edit_connector(env, "dev", lambda d: d["info"].update(title="Renamed by hand"))
    assert not drift_timer(svc)["dev"].drift_known
    assert len(env.cards()) == cards + 2


def test_report_mode_deleted_connector_is_reported(env):
    svc = synced(env)
    env.folder("dev").unlink()
    dev = drift_timer(svc)["dev"]
    assert dev.drift and "deleted outside the service" in dev.message
    assert not env.folder("dev").exists()


def test_a_deleted_connector_is_news_once_for_the_drift_timer(env):
    """A deletion has no sha to remember, and the state row's None meant "never reported": each
    timer run (four a day by default) posted the same card again. Found in review."""
    svc = synced(env)
    env.folder("dev").unlink()
    cards = len(env.cards())
    first = drift_timer(svc)["dev"]
    assert first.drift and not first.drift_known
    assert len(env.cards()) == cards + 1
    again = drift_timer(svc)["dev"]
    assert again.drift and again.drift_known
    assert len(env.cards()) == cards + 1  # no news, no card
    restored = {**read_connector(env, "prod"), "x-note": "restored by hand"}
    env.folder("dev").write_text(json.dumps(restored))
    assert not drift_timer(svc)["dev"].drift_known  # a new state of the connector is news again
    assert len(env.cards()) == cards + 2


def test_a_deployment_event_still_lands_on_a_report_target_and_overwrite_applies_on_events(env):
    svc = synced(env, prod="overwrite")
    edit_connector(env, "dev", add_portal_note)
    edit_connector(env, "prod", add_portal_note)
    serve_spec(env, "openapi-v1.yaml", version="1.2.0")
    plan(ci_event(version="1.2.0"), svc)
    outcomes = {o.target: o for o in drain(svc, wait_seconds=0.3)}
    assert outcomes["dev"].result == "updated" and outcomes["dev"].drift
    assert outcomes["prod"].result == "updated" and outcomes["prod"].drift
    dev, prod = read_connector(env, "dev"), read_connector(env, "prod")
    assert dev["info"]["version"] == prod["info"]["version"] == "1.2.0"
    assert "x-ms-connector-metadata" in dev  # report/adopt: the merge keeps the edit
    assert "x-ms-connector-metadata" not in prod  # overwrite: upstream wins
    assert svc.ports.ledger.version(API, "dev", 2).reason == "event"


def test_held_target_is_not_news_for_the_drift_timer(env):
    from sync.cli import main

    svc = synced(env)
    serve_spec(env, "openapi-v1.yaml", version="1.0.1")
    sync_now(svc)
    assert main(["rollback", "--api", API, "--version", "1"]) == 0
    cards = len(env.cards())
    outcomes = drift_timer(svc)
    assert {o.result for o in outcomes.values()} == {"held"}
    assert len(env.cards()) == cards


def test_dry_run_sees_drift_but_records_nothing(env):
    from sync.models import SyncRequest
    from sync.runs import run_inline

    svc = synced(env)
    edit_connector(env, "dev", add_portal_note)
    request = SyncRequest(api=API, reason="drift", targets=("dev",), dry_run=True)
    (dev,) = run_inline(request, svc.map, svc.ports, svc.pipeline).outcomes
    assert dev.drift and dev.result == "unchanged"
    assert svc.ports.ledger.state(API, "dev").drift_sha256 is None


# --- review fixes, 2026-12-07 ---------------------------------------------------------------


def test_an_unannounced_spec_after_a_reported_edit_is_news_again(env):
    """The drift timer is the safety net for deployments nobody announced: with an edit already
    reported, a new spec served without an event was swallowed (drift_known, no card)."""
    svc = synced(env)  # report mode
    edit_connector(env, "dev", add_portal_note)
    assert not drift_timer(svc)["dev"].drift_known
    cards = len(env.cards())
    serve_spec(env, "openapi-v1.yaml", version="1.5.0")  # no event
    dev = drift_timer(svc)["dev"]
    assert dev.result == "unchanged" and dev.drift and not dev.drift_known
    assert "the upstream spec changed too and was not applied" in dev.message
    assert len(env.cards()) == cards + 1
    assert svc.ports.ledger.state(API, "dev").last_message == dev.message
    again = drift_timer(svc)["dev"]  # the same edit and the same unapplied spec: not news
    assert again.drift_known and len(env.cards()) == cards + 1


def test_adopt_on_the_drift_timer_does_not_recreate_a_deleted_connector(env):
    """Adopt keeps what someone did to the connector; a deletion has nothing to keep, and the
    drift run recreated it while saying the edits were kept (found by review 2026-12-07)."""
    svc = synced(env, dev="adopt")
    env.folder("dev").unlink()
    dev = drift_timer(svc)["dev"]
    assert dev.result == "unchanged" and dev.drift and not dev.drift_known
    assert "deleted outside the service" in dev.message
    assert "'adopt' does not create it again on a drift run" in dev.message
    assert not env.folder("dev").exists() and versions(svc, "dev") == [1]
    assert drift_timer(svc)["dev"].drift_known  # news once


def test_a_sync_that_recreates_a_deleted_connector_says_so(env):
    svc = synced(env, dev="overwrite")
    env.folder("dev").unlink()
    dev = drift_timer(svc)["dev"]
    assert dev.result == "updated" and env.folder("dev").exists()
    assert dev.message.endswith(
        "; the connector had been deleted outside the service and was created again"
    )
    assert svc.ports.ledger.version(API, "dev", 2).reason == (
        "drift: created the deleted connector again"
    )
