"""The Functions surface: bindings checked once through ``app.get_functions()``, and every trigger
invoked through real azure-functions objects against the local stack."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json

import azure.functions as func
import pytest

import function_app
from sync import settings as names
from sync.models import RunSummary, SyncRequest, WorkItem
from sync.runs import run_inline
from tests.pipeline.conftest import ci_event

pytestmark = pytest.mark.azurite


@functools.cache
def functions() -> dict[str, func.Function]:
    # get_functions() may be called only once per FunctionApp (azure-functions-python-worker #1867)
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def bindings(name: str) -> list[dict]:
    return json.loads(functions()[name].get_function_json())["bindings"]


def call(name: str, *args):
    return functions()[name].get_user_function()(*args)


def test_the_app_exposes_exactly_these_triggers_with_these_bindings():
    assert set(functions()) == {
        "plan_event",
        "work_item",
        "poison_item",
        "drift_check",
        "sync_api",
        "run_status",
        "api_versions",
        "api_version",
        "api_rollback",
        "api_release",
        "health",
    }
    assert bindings("plan_event") == [
        {"direction": "IN", "type": "eventGridTrigger", "name": "event"}
    ]
    work = bindings("work_item")[0]
    assert work["type"] == "queueTrigger"
    assert work["queueName"] == f"%{names.WORK_QUEUE}%"
    assert work["connection"] == "AzureWebJobsStorage"
    assert bindings("poison_item")[0]["queueName"] == f"%{names.WORK_QUEUE}%-poison"
    timer = bindings("drift_check")[0]
    assert timer["type"] == "timerTrigger"
    assert timer["schedule"] == f"%{names.DRIFT_SCHEDULE}%"
    for name, route in (
        ("sync_api", "sync"),
        ("run_status", "runs/{id}"),
        ("api_versions", "apis/{api}/versions"),
        ("api_version", "apis/{api}/versions/{n}"),
        ("api_rollback", "apis/{api}/rollback"),
        ("api_release", "apis/{api}/release"),
        ("health", "health"),
    ):
        http = bindings(name)[0]
        assert http["route"] == route
        assert http["authLevel"] == "FUNCTION"  # function key on every route


def test_function_app_imports_no_azure_sdk_and_reads_no_setting(monkeypatch):
    import subprocess
    import sys

    code = (
        "import sys, function_app; "
        "print(sorted(m for m in sys.modules if m.startswith(('azure.identity', "
        "'azure.data', 'azure.keyvault', 'azure.storage', 'jsonschema', 'openapi_spec_validator'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "."},
    )
    assert out.stdout.strip() == "[]"


def test_planning_an_event_in_a_fresh_worker_loads_no_spec_engine_stage(env):
    """The Event Grid trigger's first event in a new worker (import, wiring, the map, the plan)
    needs the map's parser, not the engine that converts, validates and diffs: the stages load
    with the first work item. (Before, ``import sync.spec.parse`` imported all of them.)"""
    import os
    import subprocess
    import sys

    code = """
import datetime as dt, sys
import azure.functions as func
import function_app
event = func.EventGridEvent(
    id="eg-fresh", topic="/t", subject="contoso-invoicing",
    event_type="ConnectorSync.ApiDeployed", event_time=dt.datetime.now(dt.UTC),
    data_version="1.0", data={"api": "contoso-invoicing"},
)
[fn] = [f for f in function_app.app.get_functions() if f.get_function_name() == "plan_event"]
fn.get_user_function()(event)
stages = ("convert", "diff", "merge", "overlay", "refs", "validate")
print(sorted(m for m in sys.modules if m.startswith("sync.spec.") and m[10:] in stages))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": "."},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert len(received(env.service())) == 2  # the event was planned: both targets enqueued


def http(name, method, url, body=b"", route=None, params=None, headers=None):
    req = func.HttpRequest(
        method=method,
        url=url,
        body=body,
        route_params=route or {},
        params=params or {},
        headers=headers or {},
    )
    return call(name, req)


def received(svc):
    return svc.ports.queue.receive(max_messages=32, visibility_timeout=30)


def host_cloud_event(ce: dict) -> func.CloudEvent:
    """``ci_event``'s event as the Functions host hands it to the Event Grid trigger."""
    return func.CloudEvent(
        id=ce["id"],
        source=ce["source"],
        type=ce["type"],
        specversion="1.0",
        data=ce["data"],
        time=dt.datetime.now(dt.UTC),
    )


def test_event_grid_trigger_plans_onto_the_queue_and_queue_trigger_runs_it(env):
    env.serve("openapi-v1.yaml")
    event = host_cloud_event(ci_event())
    assert call("plan_event", event) is None
    svc = env.service()
    messages = received(svc)
    assert sorted(item.target for item, _ in messages) == ["dev", "prod"]
    for item, handle in messages:
        text = base64.b64encode(json.dumps(item.to_dict()).encode())  # as the host stores it
        msg = func.QueueMessage(id="m", body=base64.b64decode(text))
        call("work_item", msg)
        svc.ports.queue.delete(handle)
    assert env.folder("dev").exists()
    assert env.folder("prod").exists()
    versions = svc.ports.ledger.versions("contoso-invoicing", "dev")
    assert [v.version for v in versions] == [1]


def test_event_grid_schema_event_is_planned_too(env):
    event = func.EventGridEvent(
        id="eg-1",
        topic="/subscriptions/x/resourceGroups/rg/providers/Microsoft.EventGrid/topics/ci",
        subject="contoso-invoicing",
        event_type="ConnectorSync.ApiDeployed",
        event_time=dt.datetime.now(dt.UTC),
        data_version="1.0",
        data={"api": "contoso-invoicing"},
    )
    call("plan_event", event)
    assert len(received(env.service())) == 2


def test_malformed_work_item_is_acknowledged_without_side_effect(env):
    call("work_item", func.QueueMessage(id="m", body=b"{not json"))
    call("work_item", func.QueueMessage(id="m", body=b'{"runId": "x"}'))
    assert not env.folder("dev").exists()


def test_poison_trigger_records_failure_and_notifies(env):
    item = WorkItem(
        run_id="r" * 32,
        api="contoso-invoicing",
        target="dev",
        request=__import__("sync.models", fromlist=["SyncRequest"]).SyncRequest(
            api="contoso-invoicing", reason="manual", targets=("dev",)
        ),
    )
    svc = env.service()

    svc.ports.ledger.start_run(
        RunSummary(run_id=item.run_id, api=item.api, request=item.request, targets=("dev",))
    )
    call(
        "poison_item",
        func.QueueMessage(id="p", body=json.dumps(item.to_dict()).encode()),
    )
    state = svc.ports.ledger.state("contoso-invoicing", "dev")
    assert state.last_outcome == "failed"
    run = svc.ports.ledger.get_run(item.run_id)
    assert run.complete
    assert run.outcomes[0].result == "failed"
    assert len(env.cards()) == 1


def test_http_dry_run_answers_what_would_change_and_writes_nothing(env):
    env.serve("openapi-v1.yaml")
    resp = http(
        "sync_api",
        "POST",
        "http://localhost/api/sync",
        json.dumps({"api": "contoso-invoicing", "dryRun": True}).encode(),
    )
    assert resp.status_code == 200, resp.get_body()
    body = json.loads(resp.get_body())
    assert {t["result"] for t in body["targets"]} == {"dry-run"}
    assert "ListInvoices" in body["targets"][0]["diff"]["added"]
    assert not env.folder("dev").exists()


def test_http_sync_enqueues_and_answers_202_with_a_run_id(env):
    resp = http(
        "sync_api",
        "POST",
        "http://localhost/api/sync",
        json.dumps({"api": "contoso-invoicing", "targets": ["dev"]}).encode(),
    )
    assert resp.status_code == 202
    run_id = json.loads(resp.get_body())["runId"]
    assert resp.headers["Location"] == f"/api/runs/{run_id}"
    status = http("run_status", "GET", f"http://localhost/api/runs/{run_id}", route={"id": run_id})
    assert status.status_code == 200
    assert json.loads(status.get_body())["targets"] == ["dev"]
    assert [i.target for i, _ in received(env.service())] == ["dev"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"", 400, None),
        (b"not json", 400, None),
        (b"[1]", 400, None),
        (b'{"api": "Bad Name"}', 400, "api"),
        (b'{"api": "contoso-invoicing\\n"}', 400, "api"),  # "$" let a final newline pass
        (b'{"api": "contoso-invoicing", "extra": 1}', 400, None),
        (b'{"api": "contoso-invoicing", "targets": ["nope"]}', 400, "targets"),
        (b'{"api": "unknown-api"}', 404, "api"),
        (b'{"api": "contoso-invoicing", "specUrl": "http://169.254.169.254/x"}', 400, "specUrl"),
        (b'{"api": "contoso-invoicing", "dryRun": "yes"}', 400, "dryRun"),
        (b"\xff\xfe", 400, None),
        (b'{"api": "contoso-invoicing", "version": "1.0\\ud800"}', 400, "version"),
        (b'{"api": "contoso-invoicing", "commit": "\\udfff"}', 400, "commit"),
        (b'{"api": "' + b"a" * 70000 + b'"}', 413, None),
    ],
)
def test_http_sync_rejects_bad_input_naming_the_field(env, body, status, field):
    resp = http("sync_api", "POST", "http://localhost/api/sync", body)
    assert resp.status_code == status, resp.get_body()
    error = json.loads(resp.get_body())["error"]
    if field:
        assert field in (error.get("field") or "") + error["message"]
    assert not env.folder("dev").exists()


@pytest.mark.parametrize("suffix", ["\n", "\x00", "\x01", "\x1f", "\x7f"])
def test_a_spec_url_with_a_control_character_is_400_naming_spec_url(env, suffix: str) -> None:
    """A final newline ("$" matches before it) or a control character ("\\S" matches it) passed
    the body schema: the sync answered 202 and queued a run for every target, each of which then
    failed at fetch time as an invalid URL. It is refused up front, naming specUrl."""
    spec_url = env.server.url("/openapi.yaml") + suffix  # under allowedSpecUrls otherwise
    for extra in ({}, {"dryRun": True}):
        body = {"api": "contoso-invoicing", "specUrl": spec_url, **extra}
        resp = http("sync_api", "POST", "http://localhost/api/sync", json.dumps(body).encode())
        assert resp.status_code == 400, resp.get_body()
        assert json.loads(resp.get_body())["error"]["field"] == "specUrl"
    assert received(env.service()) == []


def test_broken_config_answers_500_with_the_key_path_and_planner_raises(env, monkeypatch):
    broken = env.root / "broken.yaml"
    broken.write_text(
        "apis:\n  contoso-invoicing:\n    spec: {url: 'ftp://nope'}\n    targets: []\n"
    )
    monkeypatch.setenv(names.SYNC_CONFIG, str(broken))
    resp = http("sync_api", "POST", "http://localhost/api/sync", b'{"api": "contoso-invoicing"}')
    assert resp.status_code == 500
    error = json.loads(resp.get_body())["error"]
    assert error["code"] == "ConfigError"
    assert "apis.contoso-invoicing" in error["path"]
    from sync.errors import ConfigError

    with pytest.raises(ConfigError):
        call(
            "plan_event",
            func.CloudEvent(
                id="1",
                source="/x",
                type="ConnectorSync.ApiDeployed",
                specversion="1.0",
                data={"api": "contoso-invoicing"},
            ),
        )


def test_versions_routes_page_newest_first(env):
    env.serve("openapi-v1.yaml")
    from sync.runs import run_inline

    svc = env.service()
    run_inline(SyncRequest(api="contoso-invoicing", reason="cli"), svc.map, svc.ports, svc.pipeline)
    env.serve("openapi-v2.yaml")
    run_inline(
        SyncRequest(api="contoso-invoicing", reason="cli", targets=("dev",)),
        svc.map,
        svc.ports,
        svc.pipeline,
    )
    resp = http(
        "api_versions",
        "GET",
        "http://localhost/api/apis/contoso-invoicing/versions",
        route={"api": "contoso-invoicing"},
        params={"target": "dev", "limit": "1"},
    )
    body = json.loads(resp.get_body())
    assert [v["version"] for v in body["versions"]] == [2]
    assert "before=2" in body["next"]
    one = http(
        "api_version",
        "GET",
        "http://localhost/x",
        route={"api": "contoso-invoicing", "n": "1"},
        params={"target": "dev", "include": "definition"},
    )
    detail = json.loads(one.get_body())
    assert detail["version"] == 1
    assert detail["applied"]["swagger"] == "2.0"
    missing = http(
        "api_version",
        "GET",
        "http://localhost/x",
        route={"api": "contoso-invoicing", "n": "9"},
        params={"target": "dev"},
    )
    assert missing.status_code == 404
    bad = http(
        "api_versions",
        "GET",
        "http://localhost/x",
        route={"api": "contoso-invoicing"},
        params={"limit": "zero"},
    )
    assert bad.status_code == 400


def test_a_query_parameter_cannot_override_the_version_in_the_path(env):
    env.serve("openapi-v1.yaml")
    svc = env.service()
    run_inline(SyncRequest(api="contoso-invoicing", reason="cli"), svc.map, svc.ports, svc.pipeline)
    resp = http(
        "api_version",
        "GET",
        "http://localhost/x",
        route={"api": "contoso-invoicing", "n": "1"},
        params={"target": "dev", "n": "7"},
    )
    assert resp.status_code == 200
    assert json.loads(resp.get_body())["version"] == 1


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"text"',
        b"1",
        b"[" * 100_000,
    ],
    ids=["array", "string", "number", "nested"],
)
def test_a_work_item_that_is_not_an_object_is_acknowledged_not_crashed_on(env, body):
    """A message of valid JSON that is not a work item object (an array, a string, nesting past
    the recursion limit) raised AttributeError/RecursionError out of the trigger: the host
    retried it five times and poisoned it, and the poison trigger crashed on it again."""
    call("work_item", func.QueueMessage(id="m", body=body))
    call("poison_item", func.QueueMessage(id="m", body=body))
    assert not env.folder("dev").exists()


def test_an_event_whose_version_has_no_utf8_form_is_acknowledged_not_retried(env):
    """JSON may carry a lone surrogate (``"\\ud800"``); such a version passed the event checks
    and the queue message's UTF-8 encoding raised UnicodeEncodeError, so Event Grid retried the
    event for 24 hours."""
    event = func.CloudEvent(
        id="1",
        source="/x",
        type="ConnectorSync.ApiDeployed",
        specversion="1.0",
        data={"api": "contoso-invoicing", "version": "1.0\ud800"},
    )
    assert call("plan_event", event) is None
    assert received(env.service()) == []


def test_a_version_number_past_ints_digit_limit_is_not_a_500(env):
    """int() refuses more than 4,300 digits (leading zeros counted) with ValueError, which
    escaped as a 500; too many digits is the range's 400, leading zeros still read as the number
    (no version 1 is recorded here: 404)."""

    def get(n: str):
        return http(
            "api_version",
            "GET",
            "http://localhost/x",
            route={"api": "contoso-invoicing", "n": n},
            params={"target": "dev"},
        )

    too_long = get("1" * 4301)
    assert too_long.status_code == 400, too_long.get_body()
    assert json.loads(too_long.get_body())["error"]["field"] == "n"
    assert get("0" * 5000 + "1").status_code == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dry_run", "no"),  # truthy: would have been a dry run nobody asked for
        ("dry_run", 0),  # falsy but not a bool
        ("targets", "dev"),  # tuple("dev") is ('d', 'e', 'v')
        ("targets", ["dev", 1]),
        ("rollback_to", "3"),
        ("rollback_to", True),  # a bool is an int to isinstance
        ("api", None),
        ("version", 2),
        ("event_time", {"at": "now"}),
    ],
)
def test_a_work_item_whose_request_has_a_wrong_type_is_refused(env, field, value):
    """The queue carries what ``SyncRequest.to_dict`` wrote; a message of that shape with a wrong
    type is refused by name, not read as another request."""
    env.serve("openapi-v1.yaml")
    request = {"api": "contoso-invoicing", "reason": "manual", "targets": ["dev"], field: value}
    body = {"runId": "r" * 32, "api": "contoso-invoicing", "target": "dev", "request": request}
    with pytest.raises(TypeError, match=f"request.{field} "):
        WorkItem.from_dict(body)
    call("work_item", func.QueueMessage(id="m", body=json.dumps(body).encode()))
    assert not env.folder("dev").exists()
    request.pop(field) if field != "api" else request.update(api="contoso-invoicing")
    WorkItem.from_dict(body)  # the same message with the field right is read
