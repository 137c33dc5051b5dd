"""Rollback with a hold, end to end on the local stack: HTTP routes through real azure-functions
objects, the Azurite queue drained by the worker loop, folder connectors, ledger and cards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

from sync.cli import main
from sync.models import Hold, iso
from sync.spec.canonical import sha256_hex
from sync.triggers import plan
from sync.worker_loop import drain
from tests.pipeline.conftest import ci_event
from tests.pipeline.test_function_app import functions
from tests.rollback.conftest import (
    API,
    card_texts,
    read_connector,
    serve_spec,
    sync_now,
    write_map,
)

pytestmark = pytest.mark.azurite


def call(name: str, *args):
    # get_functions() may be called once per FunctionApp and process: share the one cache
    return functions()[name].get_user_function()(*args)


def post(name: str, route: str, body: object, api: str = API) -> func.HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = func.HttpRequest(
        method="POST",
        url=f"http://localhost/api/apis/{api}/{route}",
        body=raw,
        route_params={"api": api},
        params={},
        headers={},
    )
    return call(name, req)


def get_version(n: int, target: str, include: str | None = None) -> func.HttpResponse:
    params = {"target": target, **({"include": include} if include else {})}
    req = func.HttpRequest(
        method="GET",
        url="http://localhost/x",
        body=b"",
        route_params={"api": API, "n": str(n)},
        params=params,
    )
    return call("api_version", req)


def two_versions(env):
    """dev at v2 (spec 2.0.0), prod at v1 (spec 1.0.0)."""
    write_map(env)
    svc = env.service()
    serve_spec(env, "openapi-v1.yaml")
    assert {o.result for o in sync_now(svc).outcomes} == {"updated"}
    serve_spec(env, "openapi-v2.yaml")
    assert sync_now(svc, "dev").outcomes[0].version == 2
    return svc


def test_rollback_holds_until_release_then_the_next_event_syncs(env):
    svc = two_versions(env)
    v1 = svc.ports.ledger.version(API, "dev", 1, include_definitions=True)
    cards_before = len(env.cards())

    resp = post("api_rollback", "rollback", {"version": 1, "targets": ["dev"], "holdHours": 2})
    assert resp.status_code == 202, resp.get_body()
    body = json.loads(resp.get_body())
    assert body["targets"] == ["dev"] and body["version"] == 1
    assert resp.headers["Location"] == f"/api/runs/{body['runId']}"
    outcomes = drain(svc, wait_seconds=0.3)
    assert [(o.target, o.result, o.version) for o in outcomes] == [("dev", "updated", 3)]

    v3 = svc.ports.ledger.version(API, "dev", 3, include_definitions=True)
    assert v3.reason == "rollback to v1"
    assert v3.caller == "local:auth-disabled"  # the caller goes on the record...
    assert v3.applied == v1.applied and v3.applied_sha256 == v1.applied_sha256
    assert v3.upstream_sha256 == v1.upstream_sha256  # the merge base stays the recorded upstream
    assert read_connector(env, "dev") == v1.applied
    state = svc.ports.ledger.state(API, "dev")
    assert state.version == 3 and state.hold is not None
    assert state.hold.version == 3 and state.hold.by == "local:auth-disabled"  # ...and the hold
    until = datetime.fromisoformat(state.hold.until.replace("Z", "+00:00"))
    assert timedelta(hours=1.9) < until - datetime.now(UTC) <= timedelta(hours=2)
    assert state.spec_etag is None  # the next fetch after release must not be a 304
    run = svc.ports.ledger.get_run(body["runId"])
    assert run.complete and run.notified == "written"
    card = card_texts(env.cards()[-1])
    assert "to version 1" in card and len(env.cards()) == cards_before + 1
    assert svc.ports.ledger.state(API, "prod").hold is None  # only the named target

    # a new deployment arrives: dev is held (connector untouched, card says so)
    serve_spec(env, "openapi-v2.yaml", version="3.0.0")
    plan(ci_event(version="3.0.0"), svc)
    outcomes = {o.target: o for o in drain(svc, wait_seconds=0.3)}
    assert outcomes["dev"].result == "held"
    assert "held at v3" in outcomes["dev"].message
    assert outcomes["prod"].result == "updated"  # not held: it syncs
    assert read_connector(env, "dev") == v1.applied
    assert svc.ports.ledger.state(API, "dev").last_outcome == "held"
    assert [v.version for v in svc.ports.ledger.versions(API, "dev")] == [3, 2, 1]
    held_card = card_texts(env.cards()[-1])
    assert "Held" in held_card and "held at v3" in held_card

    # release: the hold goes, and the next event syncs dev to the new spec
    resp = post("api_release", "release", {"targets": ["dev"]})
    assert resp.status_code == 200, resp.get_body()
    released = json.loads(resp.get_body())["targets"]
    assert (
        released
        == [
            {"target": "dev", "released": True, "hold": released[0]["hold"]},
        ]
        and released[0]["hold"]["version"] == 3
        and released[0]["hold"]["active"] is True
    )
    state = svc.ports.ledger.state(API, "dev")
    assert state.hold is None and "released by local:auth-disabled" in state.last_message
    plan(ci_event(version="3.0.0"), svc)
    outcomes = {o.target: o for o in drain(svc, wait_seconds=0.3)}
    assert outcomes["dev"].result == "updated" and outcomes["dev"].version == 4
    assert read_connector(env, "dev")["info"]["version"] == "3.0.0"
    assert outcomes["prod"].result == "unchanged"


def test_a_second_release_finds_no_hold(env):
    two_versions(env)
    resp = post("api_release", "release", b"")  # empty body: every target
    assert resp.status_code == 200
    assert json.loads(resp.get_body())["targets"] == [
        {"target": "dev", "released": False, "hold": None},
        {"target": "prod", "released": False, "hold": None},
    ]


def test_an_expired_hold_lets_the_next_event_sync_and_is_dropped(env, capsys):
    svc = two_versions(env)
    assert main(["rollback", "--api", API, "--version", "1", "--target", "dev"]) == 0
    assert "held until" in capsys.readouterr().out
    state = svc.ports.ledger.state(API, "dev")
    assert state.hold.active()
    past = iso(datetime.now(UTC) - timedelta(minutes=1))
    svc.ports.ledger.save_state(  # time passes: the hold's end is now behind us
        API, "dev", state.evolve(hold=Hold(version=state.hold.version, until=past, by="x"))
    )
    serve_spec(env, "openapi-v2.yaml", version="3.0.0")
    plan(ci_event(version="3.0.0"), svc)
    outcomes = {o.target: o for o in drain(svc, wait_seconds=0.3)}
    assert outcomes["dev"].result == "updated" and outcomes["dev"].version == 4
    assert svc.ports.ledger.state(API, "dev").hold is None


def test_rollback_to_the_definition_the_connector_already_holds_still_records_and_holds(env):
    svc = two_versions(env)
    before = env.folder("prod").stat().st_mtime_ns
    assert main(["rollback", "--api", API, "--version", "1", "--target", "prod"]) == 0
    record = svc.ports.ledger.version(API, "prod", 2)
    assert record.reason == "rollback to v1" and record.caller.startswith("cli:")
    assert svc.ports.ledger.state(API, "prod").hold.version == 2
    assert env.folder("prod").stat().st_mtime_ns == before  # nothing to write


def test_cli_rollback_and_release_json(env, capsys):
    svc = two_versions(env)
    assert main(["rollback", "--api", API, "--version", "1", "--hold-hours", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert {t["target"]: t["result"] for t in report["targets"]} == {
        "dev": "updated",
        "prod": "updated",
    }
    assert svc.ports.ledger.state(API, "dev").hold.until == report["holdUntil"]
    assert main(["release", "--api", API, "--target", "prod", "--json"]) == 0
    released = json.loads(capsys.readouterr().out)
    assert [r["target"] for r in released if r["released"]] == ["prod"]
    assert svc.ports.ledger.state(API, "dev").hold is not None  # only prod was released


def test_rollback_to_a_missing_version_is_404_and_cli_exit_1(env, capsys):
    svc = two_versions(env)
    resp = post("api_rollback", "rollback", {"version": 2})  # prod has only v1
    assert resp.status_code == 404
    error = json.loads(resp.get_body())["error"]
    assert error["field"] == "version" and "prod (latest: v1)" in error["message"]
    assert svc.ports.queue.receive(max_messages=5, visibility_timeout=1) == []  # nothing queued
    assert main(["rollback", "--api", API, "--version", "9", "--target", "dev"]) == 1
    assert "version 9 is not recorded" in capsys.readouterr().err
    assert svc.ports.ledger.state(API, "dev").hold is None


@pytest.mark.parametrize(
    ("route", "body", "status", "field"),
    [
        ("rollback", {}, 400, "version"),
        ("rollback", {"version": 0}, 400, "version"),
        ("rollback", {"version": "1"}, 400, "version"),
        ("rollback", {"version": True}, 400, "version"),
        ("rollback", {"version": 1, "holdHours": 0}, 400, "holdHours"),
        ("rollback", {"version": 1, "holdHours": 721}, 400, "holdHours"),
        ("rollback", {"version": 1, "holdHours": 1.5}, 400, "holdHours"),
        ("rollback", {"version": 1, "targets": []}, 400, "targets"),
        ("rollback", {"version": 1, "targets": ["nope"]}, 400, "targets"),
        ("rollback", {"version": 1, "extra": 1}, 400, None),
        ("rollback", b"not json", 400, None),
        ("rollback", b"", 400, None),
        ("release", {"targets": ["Bad Name"]}, 400, "targets"),
        ("release", {"targets": ["nope"]}, 400, "targets"),
        ("release", [1], 400, None),
    ],
)
def test_bad_rollback_and_release_bodies_are_refused_naming_the_field(
    env, route, body, status, field
):
    two_versions(env)
    resp = post(f"api_{route}", route, body)
    assert resp.status_code == status, resp.get_body()
    error = json.loads(resp.get_body())["error"]
    if field:
        assert field in (error.get("field") or "") + error["message"]
    assert env.service().ports.ledger.state(API, "dev").hold is None


def test_unknown_api_is_404_on_both_routes(env):
    write_map(env)
    for route in ("rollback", "release"):
        resp = post(f"api_{route}", route, {"version": 1}, api="nope")
        assert resp.status_code == 404
        assert json.loads(resp.get_body())["error"]["field"] == "api"


@pytest.mark.parametrize(
    "argv",
    [
        ["rollback", "--api", API, "--version", "0"],
        ["rollback", "--api", API, "--version", "x"],
        ["rollback", "--api", API, "--version", "1", "--hold-hours", "0"],
        ["rollback", "--api", API, "--version", "1", "--hold-hours", "721"],
        ["rollback", "--api", API],
        ["release"],
    ],
)
def test_cli_usage_errors_exit_2(env, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_cli_rollback_of_an_unknown_api_is_a_configuration_error(env, capsys):
    write_map(env)
    assert main(["rollback", "--api", "nope", "--version", "1"]) == 2
    assert "unknown API 'nope'" in capsys.readouterr().err


def test_version_detail_with_diff_against_the_previous_version(env):
    svc = two_versions(env)
    resp = get_version(2, "dev", include="diff,definition")
    assert resp.status_code == 200
    body = json.loads(resp.get_body())
    assert body["diff"]["against"] == 1
    assert "PayInvoice" in body["diff"]["added"] and "SendReminder" in body["diff"]["removed"]
    assert body["diff"]["breaking"] is True
    assert sha256_hex(body["applied"]) == body["appliedSha256"]
    assert body["summary"]["added"] == body["diff"]["added"]  # no hand edits: the two agree
    first = json.loads(get_version(1, "dev", include="diff").get_body())
    assert first["diff"]["against"] is None and "upstream" not in first
    assert "ListInvoices" in first["diff"]["added"]
    assert get_version(1, "dev", include="everything").status_code == 400
    assert get_version(7, "dev", include="diff").status_code == 404
    assert svc.ports.ledger.version(API, "dev", 2) is not None


def test_a_rollback_that_lands_while_an_event_fetches_is_not_written_over(env, monkeypatch):
    """The event's item read the state row (no hold yet) and is fetching the new spec when an
    operator's rollback of dev completes. Under the lease the row has moved and holds: the event
    must end "held", not write the new spec over the rollback (before the evening of 2026-12-06
    it did, and the row still said "held at v3" with v4 on the connector)."""
    from sync.pipeline import Pipeline
    from sync.rollback import rollback_request
    from sync.runs import run_inline

    svc = two_versions(env)  # dev at v2
    v1 = svc.ports.ledger.version(API, "dev", 1, include_definitions=True)
    serve_spec(env, "openapi-v2.yaml", version="3.0.0")  # a new deployment is live
    plan(ci_event(version="3.0.0"), svc)  # and its event is queued
    original = Pipeline._precheck
    rolled: list[str] = []

    def precheck(self, item, *args, **kwargs):
        if item.target == "dev" and item.request.rollback_to is None and not rolled:
            request = rollback_request(API, 1, caller="oid:alice", targets=("dev",))
            done = run_inline(request, svc.map, svc.ports, svc.pipeline)
            rolled.extend(o.result for o in done.outcomes)
        return original(self, item, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "_precheck", precheck)
    outcomes = {o.target: o for o in drain(svc, wait_seconds=0.3)}
    assert rolled == ["updated"]
    assert outcomes["dev"].result == "held", outcomes["dev"].message
    assert read_connector(env, "dev") == v1.applied
    state = svc.ports.ledger.state(API, "dev")
    assert state.version == 3 and state.hold is not None and state.hold.version == 3
    assert outcomes["prod"].result != "held"  # only the rolled-back target is held


def test_a_rollback_item_delivered_again_rolls_back_once(env):
    """A rollback records a version even when the connector already holds the definition, so a
    redelivered item (storage blinked at the fan-in; the queue's at-least-once delivery) made a
    second version and moved the hold, and a late one undid the release and the deployment
    after it (found by review 2026-12-07). The run id is the rollback's once-only key."""
    svc = two_versions(env)
    resp = post("api_rollback", "rollback", {"version": 1, "targets": ["dev"]})
    assert resp.status_code == 202, resp.get_body()
    [(item, handle)] = svc.ports.queue.receive(max_messages=32)
    svc.ports.queue.delete(handle)
    svc.ports.queue.send(item)
    svc.ports.queue.send(item)  # the same message, delivered twice
    outcomes = {o.result: o for o in drain(svc, wait_seconds=0.3)}
    assert sorted(outcomes) == ["unchanged", "updated"]
    assert outcomes["updated"].version == 3
    assert outcomes["unchanged"].message == "rollback already processed"
    assert [v.version for v in svc.ports.ledger.versions(API, "dev")] == [3, 2, 1]

    # released, then a new deployment: a copy of the rollback arriving late changes nothing
    assert post("api_release", "release", {"targets": ["dev"]}).status_code == 200
    serve_spec(env, "openapi-v2.yaml", version="3.0.0")
    plan(ci_event(version="3.0.0"), svc)
    drain(svc, wait_seconds=0.3)
    assert read_connector(env, "dev")["info"]["version"] == "3.0.0"
    svc.ports.queue.send(item)
    [late] = drain(svc, wait_seconds=0.3)
    assert (late.result, late.message) == ("unchanged", "rollback already processed")
    assert read_connector(env, "dev")["info"]["version"] == "3.0.0"
    assert [v.version for v in svc.ports.ledger.versions(API, "dev")] == [4, 3, 2, 1]
    assert svc.ports.ledger.state(API, "dev").hold is None


def test_a_cli_rollback_that_held_nothing_does_not_say_held(env, capsys):
    """A target that failed is not held: the line and the JSON said "held until" all the same."""
    svc = two_versions(env)
    svc.ports.ledger.acquire_lease(API, "dev", "someone-else", 30)
    assert main(["rollback", "--api", API, "--version", "1", "--target", "dev"]) == 1
    out = capsys.readouterr().out
    assert "held until" not in out and "someone-else" in out
    assert svc.ports.ledger.state(API, "dev").hold is None
    assert main(["rollback", "--api", API, "--version", "1", "--target", "dev", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["holdUntil"] is None and report["held"] == []


@pytest.mark.parametrize(
    ("argv", "code", "said"),
    [
        (["--target", "nope"], 1, "has no target(s) nope"),
        (["--limit", "-3"], 2, "-3 is not in 1..100"),
        (["--limit", "101"], 2, "101 is not in 1..100"),
        (["--limit", "x"], 2, "'x' is not a whole number"),
    ],
)
def test_cli_history_refuses_what_http_refuses(env, capsys, argv, code, said):
    two_versions(env)
    try:
        exit_code = main(["history", "--api", API, *argv])
    except SystemExit as usage:  # argparse's usage errors
        exit_code = usage.code
    assert exit_code == code
    assert said in capsys.readouterr().err
