"""A spec URL may be an S3 or GCS presigned URL: its credentials must not reach the run row nor
GET /api/runs/{id} (found in review: ``redact_url`` only knew Azure's ``sig=``, so
``X-Amz-Signature`` and ``X-Amz-Security-Token`` were stored and answered in clear)."""

from __future__ import annotations

import json

import pytest

from sync.http_api import ApiRequest, get_run, post_sync

pytestmark = pytest.mark.azurite

CANARY = "c4n4ry-presigned-signature-0f9e"


def test_presigned_credentials_of_a_spec_url_are_not_recorded_or_answered(stack) -> None:
    svc = stack.service()
    query = (
        f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA{CANARY}%2F20261201%2Fs3"
        f"&X-Amz-Security-Token={CANARY}&X-Amz-Signature={CANARY}&X-Goog-Signature={CANARY}"
    )
    spec_url = f"{stack.server.url('/openapi.yaml')}?{query}"
    body = json.dumps({"api": "contoso-invoicing", "specUrl": spec_url, "targets": ["dev"]})
    queued = post_sync(ApiRequest("POST", "/", body=body.encode()), svc, caller="oid:x")
    assert queued.status == 202, queued.body
    run = get_run(ApiRequest("GET", "/", route={"id": queued.body["runId"]}), svc)
    assert run.status == 200
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in run.body["request"]["spec_url"]  # the control
    assert CANARY not in json.dumps(run.body)
