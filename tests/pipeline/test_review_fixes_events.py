"""Review fixes on the planner's and the routes' input (review E, 2026-12).

- A restart event whose first delivery failed after its debounce row was written (start_run or
  the enqueue raised, so Event Grid redelivers it) was debounced by that row on redelivery: the
  deploy's sync was lost. The row now names the event that claimed it, and the same event id goes
  through; another event inside the window is still dropped.
- A body whose ``targets`` held two equal, deeply nested arrays made jsonschema's ``uniqueItems``
  comparison raise RecursionError out of ``read_json``: the host answered 500 on POST /api/sync
  (dry run), rollback and release. Such a body is now a 400 naming the body.
"""

from __future__ import annotations

import json
import time
from typing import Any

import azure.functions as func
import pytest

from sync import http_api
from sync.errors import TransientError
from sync.triggers import plan
from tests.pipeline.test_function_app import call

pytestmark = pytest.mark.azurite

API = "contoso-invoicing"
SITE = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Web/sites/contoso-invoicing"


def restart_event(event_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "topic": SITE,
        "subject": SITE,
        "eventType": "Microsoft.Web.AppUpdated",
        "eventTime": "2026-11-28T10:00:00Z",
        "dataVersion": "1",
        "data": {"appEventTypeDetail": {"action": "Restarted"}},
    }


class FailingSends:
    """The real queue, whose sends fail while ``failing`` (a storage hiccup at enqueue time)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failing = True

    def send(self, item: Any, **options: Any) -> None:
        if self.failing:
            raise TransientError("503 ServerBusy", where="queue.send")
        self.real.send(item, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def on_restarts(stack: Any) -> None:
    data = json.loads(stack.map_path.read_text())
    data["apis"][API]["on"] = [{"appService": SITE}]
    stack.map_path.write_text(json.dumps(data))


def queued_targets(queue: Any) -> list[tuple[str, str]]:
    return sorted((i.target, i.run_id) for i, _ in queue.receive(max_messages=32))


# --- 1. debounce and redelivery ----------------------------------------------------------------


def test_a_restart_event_redelivered_after_a_failed_enqueue_is_planned(stack):
    on_restarts(stack)
    real = stack.service()
    flaky = FailingSends(real.ports.queue)
    svc = stack.service(queue=flaky)

    with pytest.raises(TransientError):  # the trigger raises: Event Grid delivers it again
        plan(restart_event("restart-1"), svc)
    flaky.failing = False
    runs = plan(restart_event("restart-1"), svc)  # the redelivery of the same event

    assert len(runs) == 1
    assert queued_targets(real.ports.queue) == [("dev", runs[0]), ("prod", runs[0])]
    # another restart inside the window is still dropped, and so is its own redelivery
    assert plan(restart_event("restart-2"), svc) == []
    assert plan(restart_event("restart-2"), svc) == []
    assert queued_targets(real.ports.queue) == []


def test_a_restart_event_whose_process_died_after_the_debounce_row_is_planned_on_redelivery(stack):
    """The process died between the debounce row and the submit: nothing could undo the row, so
    the row itself must let the same event through."""
    on_restarts(stack)
    svc = stack.service()
    key = f"site:{SITE.lower()}"
    assert svc.ports.ledger.debounce(key, 120, claimant="restart-3") is True  # and then it died

    runs = plan(restart_event("restart-3"), svc)

    assert len(runs) == 1
    assert [t for t, _ in queued_targets(svc.ports.queue)] == ["dev", "prod"]


def test_the_debounce_row_lets_its_own_claimant_through_and_no_one_else(stack):
    ledger = stack.service().ports.ledger
    assert ledger.debounce("site:x", 60, claimant="a") is True
    assert ledger.debounce("site:x", 60, claimant="a") is True  # a's redelivery
    assert ledger.debounce("site:x", 60, claimant="b") is False
    assert ledger.debounce("site:x", 60) is False  # no claimant: a repeat, as before
    assert ledger.debounce("site:y", 60) is True
    assert ledger.debounce("site:y", 60, claimant="a") is False  # claimed without a name


# --- 2. deeply nested request bodies -------------------------------------------------------------

NESTED = "[" * 300 + "]" * 300

NESTED_BODIES = [
    (
        "sync_api",
        "http://localhost/api/sync",
        {},
        f'{{"api":"{API}","dryRun":true,"targets":[{NESTED},{NESTED}]}}',
    ),
    (
        "api_release",
        f"http://localhost/api/apis/{API}/release",
        {"api": API},
        f'{{"targets":[{NESTED},{NESTED}]}}',
    ),
    (
        "api_rollback",
        f"http://localhost/api/apis/{API}/rollback",
        {"api": API},
        f'{{"version":1,"targets":[{NESTED},{NESTED}]}}',
    ),
]


def post(name: str, url: str, route: dict[str, str], body: str) -> func.HttpResponse:
    req = func.HttpRequest(
        method="POST",
        url=url,
        body=body.encode(),
        route_params=route,
        params={},
        headers={"content-type": "application/json"},
    )
    return call(name, req)


@pytest.mark.parametrize(("name", "url", "route", "body"), NESTED_BODIES)
def test_a_deeply_nested_body_is_a_400_naming_the_body(env, name, url, route, body):
    resp = post(name, url, route, body)

    assert resp.status_code == 400, resp.get_body()
    answer = json.loads(resp.get_body())["error"]
    assert answer["code"] == "BadRequest"
    assert answer["message"] == f"body is nested deeper than {http_api.MAX_BODY_DEPTH} levels"


@pytest.mark.parametrize(("name", "url", "route", "body"), NESTED_BODIES)
def test_a_recursion_error_in_validation_is_a_400_too(env, monkeypatch, name, url, route, body):
    """The backstop: with the depth cap out of the way, the validator's own RecursionError."""
    monkeypatch.setattr(http_api, "MAX_BODY_DEPTH", 10_000)

    resp = post(name, url, route, body)

    assert resp.status_code == 400, resp.get_body()
    assert json.loads(resp.get_body())["error"]["message"] == "body is nested too deeply"


def test_the_depth_cap_counts_levels_as_the_spec_parser_does():
    """At the cap the body reaches the schema (its own 400), one level more is refused first."""
    cap = http_api.MAX_BODY_DEPTH

    def body(levels: int) -> bytes:  # {"api": ..., "targets": [[...["x"]...]]}: levels deep
        inner = "[" * (levels - 2) + '"x"' + "]" * (levels - 2)
        return f'{{"api":"{API}","targets":{inner}}}'.encode()

    with pytest.raises(http_api.BadRequest, match=r"^targets\.0: "):
        http_api.read_json(http_api.ApiRequest("POST", "/", body(cap)), http_api.SYNC_BODY_SCHEMA)
    with pytest.raises(http_api.BadRequest, match=r"^body is nested deeper than"):
        http_api.read_json(
            http_api.ApiRequest("POST", "/", body(cap + 1)), http_api.SYNC_BODY_SCHEMA
        )


def test_a_debounce_of_zero_seconds_plans_every_restart(stack):
    """``debounceSeconds: 0`` passes the map's schema and means no window; the ledger refuses a
    window of 0, so every restart event failed to plan (found by review 2026-12-07)."""
    data = json.loads(stack.map_path.read_text())
    data["apis"][API]["on"] = [{"appService": SITE}]
    data["apis"][API]["debounceSeconds"] = 0
    stack.map_path.write_text(json.dumps(data))
    svc = stack.service()

    first = plan(restart_event("restart-z1"), svc)
    second = plan(restart_event("restart-z2"), svc)

    assert len(first) == 1 and len(second) == 1 and first != second
    assert len(queued_targets(svc.ports.queue)) == 4


def test_the_same_event_id_from_another_source_is_another_event(stack):
    """CloudEvents: source and id together identify an event. Two pipelines numbering their
    deployments alike (build-42) are two events: by id alone the second joined the first one's
    finished run, and the ledger's event marker skipped it (found by review 2026-12-07)."""
    from sync.worker_loop import drain
    from tests.pipeline.conftest import ci_event

    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    first_event = ci_event("build-42")
    [first] = plan(first_event, svc)
    assert {o.result for o in drain(svc, wait_seconds=0.5)} == {"updated"}
    assert plan(first_event, svc) == [first]  # a redelivery is still the same run

    stack.serve("openapi-v2.yaml")
    other = {**ci_event("build-42"), "source": "/contoso/pipelines/other-repo"}
    [second] = plan(other, svc)
    assert second != first
    outcomes = drain(svc, wait_seconds=0.5)
    # v2 is worked on, not skipped as seen: dev takes it, prod's policy blocks its breaking change
    assert sorted((o.target, o.result) for o in outcomes) == [
        ("dev", "updated"),
        ("prod", "blocked"),
    ], [o.message for o in outcomes]


def test_validators_of_one_spec_url_are_not_trusted_for_another(stack):
    """A server with Last-Modified and no ETag: /a.yaml's date sent to /b.yaml made /b.yaml's
    server answer 304 for a document it had never been asked about, and the new spec was
    'unchanged' (found by review 2026-12-07). A 304 now counts only from the location that
    issued the validators."""
    from email.utils import formatdate

    from sync.models import SyncRequest
    from sync.runs import run_inline
    from tests.pipeline.conftest import EXAMPLES

    data = json.loads(stack.map_path.read_text())
    data["apis"][API]["allowedSpecUrls"] = [stack.server.base_url + "/"]
    stack.map_path.write_text(json.dumps(data))
    svc = stack.service()
    now = formatdate(usegmt=True)
    hour_ago = formatdate(timeval=time.time() - 3600, usegmt=True)
    stack.server.set_spec(
        "/a.yaml",
        (EXAMPLES / "openapi-v2.yaml").read_bytes(),
        "application/yaml",
        etag=None,
        last_modified=now,
    )
    stack.server.set_spec(
        "/b.yaml",
        (EXAMPLES / "openapi-v1.yaml").read_bytes(),
        "application/yaml",
        etag=None,
        last_modified=hour_ago,
    )

    def sync(path: str) -> list[str]:
        request = SyncRequest(
            api=API, reason="manual", spec_url=stack.server.url(path), targets=("dev",)
        )
        result = run_inline(request, svc.map, svc.ports, svc.pipeline)
        return [o.result for o in result.outcomes]

    assert sync("/a.yaml") == ["updated"]
    assert sync("/b.yaml") == ["updated"]
    assert sync("/b.yaml") == ["unchanged"]  # its own validators still give a 304
