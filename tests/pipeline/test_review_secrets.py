"""A spec URL may carry a SAS (``sig=``): it must not reach the ledger rows or the HTTP answers
(found in review: the version row's SourceUrl and the run row's request kept the signature)."""

from __future__ import annotations

import json

import pytest

from sync.http_api import ApiRequest, get_run, get_version
from sync.models import SyncRequest
from sync.runs import run_inline
from tests.pipeline.conftest import SPEC_PATH, sync_map

pytestmark = pytest.mark.azurite

CANARY = "c4n4ry-SAS-signature-0f9e"


def test_sas_signature_of_a_spec_url_is_not_recorded_or_answered(stack):
    sas = f"{stack.server.url(SPEC_PATH)}?sv=2024-05-04&sp=r&sig={CANARY}"
    config = sync_map(stack.server)
    config["apis"]["contoso-invoicing"]["spec"] = {"url": sas}
    stack.map_path.write_text(json.dumps(config))
    svc = stack.service()
    stack.serve("openapi-v1.yaml")
    result = run_inline(
        SyncRequest(api="contoso-invoicing", reason="manual", spec_url=sas, caller="oid:x"),
        svc.map,
        svc.ports,
        svc.pipeline,
    )
    assert {o.result for o in result.outcomes} == {"updated"}  # the SAS URL was fetched
    record = svc.ports.ledger.version("contoso-invoicing", "dev", 1, include_definitions=True)
    assert record.source_url and record.source_url.startswith(stack.server.url(SPEC_PATH))
    assert CANARY not in record.source_url
    version = get_version(
        ApiRequest(
            "GET",
            "/",
            query={"target": "dev"},
            route={"api": "contoso-invoicing", "n": "1"},
        ),
        svc,
    )
    assert version.status == 200 and "sourceUrl" in version.body
    assert CANARY not in json.dumps(version.body)
    run = get_run(ApiRequest("GET", "/", route={"id": result.run.run_id}), svc)
    assert run.status == 200 and run.body["request"]["spec_url"]  # the control: it is there
    assert CANARY not in json.dumps(run.body)
