"""Corpus events (APIM, API Center, Blob) through planner -> Azurite queue -> worker -> folder."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sync.triggers import plan
from sync.worker_loop import drain
from tests.conftest import corpus_dir
from tests.sources.conftest import blob_container, blob_endpoint, demo_spec

pytestmark = pytest.mark.azurite


def sample(name: str) -> dict[str, Any]:
    data = json.loads((corpus_dir("events") / name).read_text())
    return data[0] if isinstance(data, list) else data


def topic(event: dict[str, Any]) -> str:
    return event.get("topic") or event["source"]


def api_block(spec: dict[str, Any], on: list[dict[str, Any]]) -> dict[str, Any]:
    return {"spec": spec, "on": on, "targets": [{"name": "dev", "folder": "connectors/dev"}]}


def run(stack, event: dict[str, Any]) -> list[Any]:
    svc = stack.service()
    runs = plan(event, svc)
    return [] if not runs else drain(svc, wait_seconds=0.3)


@pytest.mark.parametrize("name", ["eg-apim-api-updated.json", "ce-apim-api-updated.json"])
def test_apim_api_updated_exports_the_current_revision(stack, name):
    event = sample(name)
    service = topic(event)
    stack.arm.add_apim_api(service, "myapi", demo_spec())
    stack.write_map(
        {
            "myapi": api_block(
                {"apimExport": {"service": service, "api": "myapi"}},
                [{"apim": {"service": service, "api": "myapi"}}],
            )
        }
    )
    (outcome,) = run(stack, event)
    assert outcome.result == "updated", outcome.message
    doc = json.loads(stack.folder("dev").read_text())
    assert doc["swagger"] == "2.0" and "/invoices" in doc["paths"]
    svc = stack.service()
    (record,) = svc.ports.ledger.versions("myapi", "dev")
    assert record.source_url.endswith("/apis/myapi") and "sig=" not in record.source_url

    # an edit to a non-current revision: planned, but the export reads the current revision,
    # which did not change -> nothing written, no new version
    other = copy.deepcopy(event)
    other["id"] = "rev-2-edit"
    other["subject"] = "/apis/myapi;rev=2"
    (outcome,) = run(stack, other)
    assert outcome.result == "unchanged"
    assert [r.version for r in svc.ports.ledger.versions("myapi", "dev")] == [1]


def test_apim_release_created_and_expired_link(stack):
    event = sample("ce-apim-api-release-created.json")
    service = topic(event)
    stack.arm.add_apim_api(service, "{apiId}", demo_spec())
    stack.write_map(
        {
            "rel": api_block(
                {"apimExport": {"service": service, "api": "{apiId}"}},
                [{"apim": {"service": service, "api": "{apiId}"}}],
            )
        }
    )
    stack.arm.state.expire_links = 1  # the first link is dead: re-exported once, then fine
    (outcome,) = run(stack, event)
    assert outcome.result == "updated", outcome.message
    assert len(stack.arm.calls("/apis/")) == 2

    stack.arm.add_apim_api(service, "{apiId}", demo_spec("openapi-v2.yaml"))
    stack.arm.state.expire_links = 2  # dead twice: the run fails and says why
    again = dict(event, id="release-2")
    (outcome,) = run(stack, again)
    assert outcome.result == "failed"
    assert "refused twice with HTTP 403" in outcome.message and "sig=" not in outcome.message


@pytest.mark.parametrize(
    ("name", "mode", "polls"),
    [
        ("eg-apicenter-api-definition-added.json", "inline", 0),
        ("ce-apicenter-api-definition-updated.json", "link", 2),
    ],
)
def test_api_center_definition_event_exports_the_definition(stack, name, mode, polls):
    event = sample(name)
    definition_id = event["subject"]
    service = definition_id.split("/workspaces/")[0]
    parts = definition_id.split("/")
    stack.arm.add_definition(definition_id, demo_spec(), mode=mode, polls=polls)
    stack.write_map(
        {
            "center": api_block(
                {
                    "apiCenterExport": {
                        "service": service,
                        "workspace": parts[parts.index("workspaces") + 1],
                        "api": parts[parts.index("apis") + 1],
                        "version": parts[parts.index("versions") + 1],
                        "definition": parts[parts.index("definitions") + 1],
                    }
                },
                [{"apiCenter": {"service": service}}],
            )
        }
    )
    (outcome,) = run(stack, event)
    assert outcome.result == "updated", outcome.message
    assert "/invoices" in json.loads(stack.folder("dev").read_text())["paths"]
    assert len(stack.arm.calls("/operations/")) == (polls + 2 if polls else 0)


def blob_map(stack, azurite, event, *, prefix: str = "") -> str:
    container = event["subject"].split("/containers/")[1].split("/")[0]
    spec = {"blob": {"account": blob_endpoint(azurite), "container": container}}
    if prefix:
        spec["blob"]["prefix"] = prefix
    stack.write_map(
        {"blobapi": api_block(spec, [{"blob": {"account": topic(event), "container": container}}])}
    )
    return container


@pytest.mark.parametrize("name", ["eg-storage-blob-created.json", "ce-storage-blob-created.json"])
def test_blob_created_reads_the_blob_the_event_names(stack, azurite, name):
    event = sample(name)
    container = blob_map(stack, azurite, event)
    blob = event["subject"].split("/blobs/", 1)[1]
    blob_container(azurite, container).upload_blob(blob, demo_spec(), overwrite=True)
    (outcome,) = run(stack, event)
    assert outcome.result == "updated", outcome.message
    (record,) = stack.service().ports.ledger.versions("blobapi", "dev")
    assert record.source_url.endswith(f"/{container}/{blob}") and "sig=" not in record.source_url


def test_blob_outside_the_configured_prefix_is_refused(stack, azurite):
    event = sample("eg-storage-blob-created-sdk.json")
    container = blob_map(stack, azurite, event, prefix="specs/")
    blob_container(azurite, container).upload_blob("file1.txt", demo_spec(), overwrite=True)
    (outcome,) = run(stack, event)
    assert outcome.result == "failed"
    assert "not under the configured prefix 'specs/'" in outcome.message


def test_zero_length_and_data_lake_create_file_are_ignored(stack, azurite):
    adls = sample("eg-storage-blob-created-adls-gen2.json")  # CreateFile, contentLength 0
    blob_map(stack, azurite, adls)
    svc = stack.service()
    assert plan(adls, svc) == []
    empty = copy.deepcopy(adls)
    empty["data"]["api"] = "PutBlob"  # a completed blob, but of length 0
    assert plan(empty, svc) == []
    assert drain(svc, wait_seconds=0.2) == []
    assert not stack.folder("dev").exists()


def test_a_drift_check_of_a_prefix_source_keeps_to_the_recorded_spec(stack, azurite):
    """No event names a blob on the drift timer and there is no blobName: the check still looks
    for connector edits, against the spec recorded with the last version, instead of failing
    (and carding) on every tick."""
    from sync.models import SyncRequest
    from sync.runs import submit

    event = sample("eg-storage-blob-created.json")
    container = blob_map(stack, azurite, event)
    blob = event["subject"].split("/blobs/", 1)[1]
    blob_container(azurite, container).upload_blob(blob, demo_spec(), overwrite=True)

    def drift_check() -> Any:
        svc = stack.service()
        submit(SyncRequest(api="blobapi", reason="drift"), svc.map, svc.ports)
        (outcome,) = drain(svc, wait_seconds=0.3)
        return outcome

    waiting = drift_check()  # no event has named a blob yet: nothing to check, nothing failed
    assert waiting.result == "unchanged", waiting.message
    assert "nothing synced yet" in waiting.message
    (first,) = run(stack, event)
    assert first.result == "updated", first.message

    quiet = drift_check()
    assert quiet.result == "unchanged", quiet.message
    assert "no blob to read" in quiet.message and "checked against v1's spec" in quiet.message
    assert not quiet.drift

    path = stack.folder("dev")
    edited = json.loads(path.read_text())
    edited["info"]["description"] = "edited in the portal"
    path.write_text(json.dumps(edited))
    found = drift_check()
    assert found.result == "unchanged" and found.drift, found.message
    assert "edited outside the service" in found.message

    manual = stack.service()
    submit(SyncRequest(api="blobapi", reason="manual"), manual.map, manual.ports)
    (refused,) = drain(manual, wait_seconds=0.3)
    assert refused.result == "failed" and "no blob to read" in refused.message
