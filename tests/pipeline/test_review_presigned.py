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
    stack.serve("openapi-v1.yaml")  # a signed URL is downloaded when the run is planned
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
    assert run.body["request"]["staged_spec"].startswith("sha256:")  # staged, not queued


def test_a_spec_that_does_not_parse_names_its_url_without_the_signature(stack) -> None:
    """The parse error names the document by its URL: the outcome, the state row's last message
    and the card carried a SAS ``sig`` (found in review: ``_prepare`` passed the raw location)."""
    from sync.models import SyncRequest
    from sync.runs import run_inline
    from tests.pipeline.conftest import SPEC_PATH, sync_map

    doc = sync_map(stack.server)
    signed = f"{stack.server.url(SPEC_PATH)}?sv=2024-11-04&sig={CANARY}"
    doc["apis"]["contoso-invoicing"]["spec"] = {"url": signed}
    stack.map_path.write_text(json.dumps(doc))
    stack.server.set_spec(SPEC_PATH, b"{not: [valid", "application/json")
    svc = stack.service()
    request = SyncRequest(api="contoso-invoicing", reason="manual")
    result = run_inline(request, svc.map, svc.ports, svc.pipeline)
    assert [o.result for o in result.outcomes] == ["failed", "failed"]
    assert "sv=2024-11-04" in result.outcomes[0].message  # the control: the URL is named
    state = svc.ports.ledger.state("contoso-invoicing", "dev")
    seen = json.dumps([o.message for o in result.outcomes]) + state.last_message
    assert CANARY not in seen + json.dumps(stack.cards())
