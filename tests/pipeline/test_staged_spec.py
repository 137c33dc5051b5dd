"""A caller's credential in a ``specUrl`` (a SAS ``sig=``, a function ``code=``) never reaches a
queue message: the spec is downloaded when the run is planned, staged in the ledger container
under its sha256, and the work items carry the redacted URL and the blob's key. Found in review
on 2026-12-07: the worker downloaded with the URL, so the SAS sat in every message of the run
(and in the poison queue for 7 days). Real Azurite, real httpx against the local spec server."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from typing import Any

import azure.functions as func
import pytest

from sync.errors import TransientError
from tests.pipeline.conftest import SPEC_PATH, Stack, ci_event
from tests.pipeline.test_function_app import call, host_cloud_event, http, received

pytestmark = pytest.mark.azurite

API = "contoso-invoicing"


def signed_url(stack: Stack, canary: str) -> str:
    return f"{stack.server.url(SPEC_PATH)}?sv=2024-11-04&sr=b&sig={canary}"


def raw_messages(stack: Stack) -> list[dict[str, Any]]:
    """The work queue's messages as Azurite holds them (peeked: still there for the worker)."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient

    queue = QueueClient.from_connection_string(
        stack.settings.storage_connection_string, stack.settings.work_queue
    )
    try:
        texts = [m.content for m in queue.peek_messages(max_messages=32)]
    except ResourceNotFoundError:  # never created: nothing was ever sent
        return []
    return [json.loads(base64.b64decode(text)) for text in texts]


def container(stack: Stack) -> Any:
    from azure.storage.blob import ContainerClient

    return ContainerClient.from_connection_string(
        stack.settings.storage_connection_string, stack.settings.ledger_container
    )


def staged_blobs(stack: Stack) -> list[str]:
    box = container(stack)
    if not box.exists():
        return []
    return [b.name for b in box.list_blobs(name_starts_with="_staged/")]


def run_rows(stack: Stack) -> list[dict[str, Any]]:
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(
        stack.settings.storage_connection_string, table_name=stack.settings.ledger_table
    )
    try:
        return list(table.query_entities("PartitionKey eq 'runs'"))
    except Exception:  # the table was never created: no row either
        return []


def post(spec_url: str, **extra: Any) -> func.HttpResponse:
    body = {"api": API, "specUrl": spec_url, **extra}
    return http("sync_api", "POST", "http://localhost/api/sync", json.dumps(body).encode())


def work_all(env: Stack) -> None:
    svc = env.service()
    for item, handle in received(svc):
        call("work_item", func.QueueMessage(id="m", body=json.dumps(item.to_dict()).encode()))
        svc.ports.queue.delete(handle)


def downloads(stack: Stack) -> list[Any]:
    return [r for r in stack.server.state.requests if r.route == SPEC_PATH and r.method == "GET"]


def test_a_signed_spec_url_is_staged_when_planned_and_no_message_holds_the_sig(env) -> None:
    canary = "c4n4ry" + uuid.uuid4().hex
    env.serve("openapi-v1.yaml")
    accepted = post(signed_url(env, canary))
    assert accepted.status_code == 202, accepted.get_body()
    assert canary not in accepted.get_body().decode()

    messages = raw_messages(env)
    assert len(messages) == 2
    assert canary not in json.dumps(messages)
    spec = env.server.state.specs[SPEC_PATH].body
    key = "sha256:" + hashlib.sha256(spec).hexdigest()
    for message in messages:
        request = message["request"]
        assert request["staged_spec"] == key
        assert "sig=REDACTED" in request["spec_url"]  # kept for display and provenance
        assert "sv=2024-11-04" in request["spec_url"]
    assert staged_blobs(env) == [f"_staged/{hashlib.sha256(spec).hexdigest()}"]
    assert len(downloads(env)) == 1  # at planning time, with the signed URL
    assert canary in downloads(env)[0].path

    work_all(env)
    assert env.folder("dev").exists() and env.folder("prod").exists()
    assert len(downloads(env)) == 1  # the workers read the staged bytes, not the URL
    svc = env.service()
    [version] = svc.ports.ledger.versions(API, "dev", limit=1)
    assert version.source_url is not None and "sig=REDACTED" in version.source_url
    state = svc.ports.ledger.state(API, "dev")
    assert state.spec_etag is None  # staged bytes carry no validators
    run = svc.ports.ledger.get_run(json.loads(accepted.get_body())["runId"])
    assert run is not None and run.complete
    assert canary not in json.dumps(run.to_dict())


def test_the_same_staged_content_again_writes_nothing(env) -> None:
    """The content hash still decides: a second sync of the same signed URL finds it unchanged."""
    env.serve("openapi-v1.yaml")
    assert post(signed_url(env, "first")).status_code == 202
    work_all(env)
    before = env.folder("dev").stat().st_mtime_ns
    svc = env.service()
    state = svc.ports.ledger.state(API, "dev")
    assert post(signed_url(env, "rotated")).status_code == 202
    work_all(env)
    after = svc.ports.ledger.state(API, "dev")
    assert after.version == state.version == 1
    assert after.etag == state.etag  # not even the state row was written
    assert env.folder("dev").stat().st_mtime_ns == before
    assert len(staged_blobs(env)) == 1  # content-addressed: the same blob


def tamper(env: Stack, content: bytes | None) -> str:
    [name] = staged_blobs(env)
    if content is None:
        container(env).delete_blob(name)
    else:
        container(env).upload_blob(name, content, overwrite=True)
    return name


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"openapi: 3.0.0\n", "sha256"), (None, "missing")],
    ids=["tampered", "missing"],
)
def test_a_tampered_or_missing_staged_spec_fails_naming_the_run_and_the_blob(
    env, content: bytes | None, words: str
) -> None:
    env.serve("openapi-v1.yaml")
    accepted = post(signed_url(env, "s"), targets=["dev"])
    run_id = json.loads(accepted.get_body())["runId"]
    name = tamper(env, content)
    work_all(env)
    assert not env.folder("dev").exists()
    run = env.service().ports.ledger.get_run(run_id)
    assert run is not None
    [outcome] = run.outcomes
    assert outcome.result == "failed"
    assert run_id in outcome.message and name in outcome.message
    assert words in outcome.message
    if content is None:
        assert "expired" in outcome.message


def test_a_url_without_credentials_is_downloaded_by_the_worker_with_conditional_gets(env) -> None:
    env.serve("openapi-v1.yaml")
    url = env.server.url(SPEC_PATH) + "?v=1"
    assert post(url).status_code == 202
    messages = raw_messages(env)
    assert [m["request"]["spec_url"] for m in messages] == [url, url]
    assert all("staged_spec" not in m["request"] for m in messages)
    assert downloads(env) == []  # planning downloaded nothing
    work_all(env)
    assert env.folder("dev").exists()
    assert len(downloads(env)) == 1  # the run's targets share one download
    assert post(url).status_code == 202
    work_all(env)
    again = downloads(env)[1:]
    assert again and all("if-none-match" in r.headers for r in again)
    assert staged_blobs(env) == []


@pytest.mark.parametrize(("status", "answer"), [(403, 400), (410, 400), (503, 503)])
def test_a_spec_that_cannot_be_staged_is_refused_and_nothing_is_enqueued(
    env, status: int, answer: int
) -> None:
    canary = "c4n4ry" + uuid.uuid4().hex
    env.serve("openapi-v1.yaml")
    env.server.fail(SPEC_PATH, times=None, status=status)
    resp = post(signed_url(env, canary))
    assert resp.status_code == answer, resp.get_body()
    error = json.loads(resp.get_body())["error"]
    assert "specUrl" in (error.get("field") or "") + error["message"]
    assert "sig=REDACTED" in error["message"] and canary not in resp.get_body().decode()
    if answer == 503:
        assert resp.headers.get("Retry-After")
    assert raw_messages(env) == []
    assert run_rows(env) == []  # nothing half-written: no run row without its items
    assert staged_blobs(env) == []


def test_planning_gives_up_at_its_own_deadline_not_the_workers_fetch_budget(
    env, monkeypatch
) -> None:
    """The fetch budget is sized for a worker (120 s by default); planning answers an HTTP
    caller, and Event Grid sends a delivery again after 30 s without an answer. Here the budget
    is 3 s and the planning deadline 0.6 s: a spec server that answers after 2.5 s is a 503."""
    import time

    from sync import staging

    monkeypatch.setattr(staging, "PLAN_FETCH_SECONDS", 0.6)
    env.serve("openapi-v1.yaml")
    env.server.slow(SPEC_PATH, delay=2.5, times=None)
    started = time.monotonic()
    resp = post(signed_url(env, "c4n4ry" + uuid.uuid4().hex))
    took = time.monotonic() - started
    assert resp.status_code == 503, resp.get_body()
    assert env.settings.fetch_budget_seconds >= 3.0
    assert took < 2.0, f"planning took {took:.2f}s: the fetch budget, not its own deadline"
    assert raw_messages(env) == [] and run_rows(env) == []


def cloud_event(spec_url: str, event_id: str | None = None) -> func.CloudEvent:
    return host_cloud_event(ci_event(event_id, specUrl=spec_url))


def test_an_event_with_a_signed_url_is_staged_and_a_redelivery_stages_the_same_blob(env) -> None:
    env.serve("openapi-v1.yaml")
    event = cloud_event(signed_url(env, "evsig"), "ev-staged-1")
    assert call("plan_event", event) is None
    assert call("plan_event", event) is None  # redelivered: same run, same blob
    messages = raw_messages(env)
    assert len(messages) == 4 and "evsig" not in json.dumps(messages)
    assert len({m["runId"] for m in messages}) == 1
    assert len({m["request"]["staged_spec"] for m in messages}) == 1
    assert len(staged_blobs(env)) == 1
    work_all(env)
    assert env.folder("dev").exists() and env.folder("prod").exists()


def test_an_event_whose_spec_is_refused_is_acknowledged_and_logged_redacted(env, caplog) -> None:
    env.serve("openapi-v1.yaml")
    env.server.fail(SPEC_PATH, times=None, status=403)
    with caplog.at_level(logging.WARNING):
        assert call("plan_event", cloud_event(signed_url(env, "evsig403"))) is None
    assert raw_messages(env) == [] and run_rows(env) == []
    assert "evsig403" not in caplog.text
    assert any(
        "not planned" in r.getMessage() and SPEC_PATH in r.getMessage() for r in caplog.records
    )


def test_an_event_whose_spec_fails_transiently_fails_the_trigger_for_redelivery(env) -> None:
    env.serve("openapi-v1.yaml")
    env.server.fail(SPEC_PATH, times=None, status=503)
    with pytest.raises(TransientError):
        call("plan_event", cloud_event(signed_url(env, "evsig503")))
    assert raw_messages(env) == [] and run_rows(env) == []


def test_a_dry_run_with_a_signed_url_stages_nothing(env) -> None:
    env.serve("openapi-v1.yaml")
    resp = post(signed_url(env, "drysig"), dryRun=True)
    assert resp.status_code == 200, resp.get_body()
    assert staged_blobs(env) == [] and raw_messages(env) == []


@pytest.mark.parametrize("signed", [False, True], ids=["plain-url", "signed-url"])
def test_a_redelivery_after_a_failed_enqueue_queues_the_run_without_downloading_again(
    env, monkeypatch, signed: bool
) -> None:
    """The first delivery wrote the run row and failed to queue; by the redelivery the SAS has
    expired (the spec server refuses). The run's items must be queued from what was staged.
    Found in review on 2026-12-07: the redelivery downloaded again, got 403 and acknowledged
    the event, leaving the run without items or card for good."""
    from sync import runs

    env.serve("openapi-v1.yaml")
    url = signed_url(env, "evsig") if signed else env.server.url(SPEC_PATH) + "?v=1"
    event = cloud_event(url, "ev-redeliver-1")
    real = runs.enqueue

    def failing(items: Any, queue: Any) -> None:
        raise TransientError("queue unavailable")

    monkeypatch.setattr(runs, "enqueue", failing)
    with pytest.raises(TransientError):
        call("plan_event", event)
    monkeypatch.setattr(runs, "enqueue", real)
    assert len(run_rows(env)) == 1 and raw_messages(env) == []
    before = len(downloads(env))

    env.server.fail(SPEC_PATH, times=None, status=403)  # the SAS expired meanwhile
    call("plan_event", event)
    messages = raw_messages(env)
    assert len(messages) == 2 and len(run_rows(env)) == 1
    if signed:
        assert len(downloads(env)) == before  # staged once, used again
        assert len(staged_blobs(env)) == 1
        [key] = {m["request"]["staged_spec"] for m in messages}
        assert staged_blobs(env) == ["_staged/" + key.removeprefix("sha256:")]
        assert "evsig" not in json.dumps(messages)


def test_a_spec_url_with_a_fragment_is_refused_before_anything_is_queued(env) -> None:
    """A fragment is never sent, but it was queued as written (only a query parameter or
    userinfo credential is staged): ``#access_token=...`` reached the work queue in clear.
    Found in review on 2026-12-07; custom events already refused a fragment."""
    env.serve("openapi-v1.yaml")
    canary = "c4n4ry" + uuid.uuid4().hex
    resp = post(env.server.url(SPEC_PATH) + "#access_token=" + canary)
    assert resp.status_code == 400, resp.get_body()
    error = json.loads(resp.get_body())["error"]
    assert error.get("field") == "specUrl" and "fragment" in error["message"]
    assert canary not in resp.get_body().decode()
    assert raw_messages(env) == [] and run_rows(env) == []


def test_an_http_run_does_not_look_for_an_earlier_staging(env, monkeypatch) -> None:
    """An HTTP run's id is new every time, so the lookup a redelivered event needs would be a
    wasted ledger read for it (found in review on 2026-12-07)."""
    from sync.adapters.ledger_tables import TableLedger

    looked: list[str] = []
    original = TableLedger.get_run

    def get_run(self: Any, run_id: str) -> Any:
        looked.append(run_id)
        return original(self, run_id)

    monkeypatch.setattr(TableLedger, "get_run", get_run)
    env.serve("openapi-v1.yaml")
    accepted = post(signed_url(env, "c4n4ry" + uuid.uuid4().hex))
    assert accepted.status_code == 202, accepted.get_body()
    assert looked == []
    assert len(raw_messages(env)) == 2
