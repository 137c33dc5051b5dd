"""The W3C trace crosses every door: CloudEvents extension attribute (Functions trigger object),
HTTP ``traceparent`` header, and onto the queued work item."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from sync.logs import trace_id_of
from tests.pipeline.conftest import ci_event

pytestmark = pytest.mark.azurite

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def call(name, *args):
    from tests.pipeline.test_function_app import functions

    return functions()[name].get_user_function()(*args)


def queued(env):
    svc = env.service()
    return [item for item, _ in svc.ports.queue.receive(max_messages=32, visibility_timeout=30)]


def test_cloudevent_traceparent_extension_reaches_the_work_items(env):
    ce = ci_event()
    event = func.CloudEvent(
        id=ce["id"],
        source=ce["source"],
        type=ce["type"],
        specversion="1.0",
        data=ce["data"],
        traceparent=TRACEPARENT,
    )
    call("plan_event", event)
    items = queued(env)
    assert len(items) == 2
    assert {i.request.traceparent for i in items} == {TRACEPARENT}


def test_http_traceparent_header_reaches_the_work_item(env):
    req = func.HttpRequest(
        method="POST",
        url="http://localhost/api/sync",
        body=json.dumps({"api": "contoso-invoicing", "targets": ["dev"]}).encode(),
        headers={"traceparent": TRACEPARENT.upper()},
    )
    resp = call("sync_api", req)
    assert resp.status_code == 202, resp.get_body()
    (item,) = queued(env)
    assert item.request.traceparent == TRACEPARENT


def test_a_bad_traceparent_starts_a_new_trace_instead_of_failing(env):
    event = {**ci_event(), "traceparent": "00-zzzz-not-valid"}
    from sync.triggers import plan

    plan(event, env.service())
    items = queued(env)
    assert len(items) == 2
    (trace,) = {trace_id_of(i.request.traceparent) for i in items}
    assert trace is not None
