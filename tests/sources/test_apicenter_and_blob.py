"""API Center export (200, 202 polling, inline/link, failures) and Blob reads (Azurite, bearer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.adapters.apicenter_export import ApiCenterExportSource
from sync.adapters.blob_spec import BlobReader, blob_location
from sync.adapters.spec_sources import SpecSources
from sync.config import parse_map
from sync.errors import ConfigError, PermanentError, SpecError, SyncError, TransientError
from sync.models import SyncRequest
from sync.settings import Settings
from tests.sources.conftest import (
    CENTER_SERVICE,
    blob_container,
    blob_endpoint,
    demo_spec,
    local_settings,
)

SETTINGS = Settings(
    allow_private_hosts=frozenset({"127.0.0.1"}),
    fetch_budget_seconds=3.0,
    fetch_timeout_seconds=2.0,
)
DEFINITION = f"{CENTER_SERVICE}/workspaces/default/apis/orders/versions/v1/definitions/openapi"
REQUEST = SyncRequest(api="orders", reason="manual")


def center(arm, tmp_path: Path, settings: Settings = SETTINGS):
    raw = {
        "endpoints": {"resourceManager": arm.url},
        "apis": {
            "orders": {
                "spec": {
                    "apiCenterExport": {
                        "service": CENTER_SERVICE,
                        "api": "orders",
                        "version": "v1",
                        "definition": "openapi",
                    }
                },
                "targets": [{"name": "dev", "folder": "out"}],
            }
        },
    }
    sync_map = parse_map(raw, source="t", base_dir=tmp_path)
    waits: list[float] = []
    return SpecSources(settings, sync_map, sleep=waits.append), sync_map.api("orders"), waits


def test_inline_export_answers_at_once(arm, tmp_path):
    arm.add_definition(DEFINITION, demo_spec())
    src, api, _ = center(arm, tmp_path)
    fetched = src.fetch_for(api, REQUEST)
    assert fetched.content == demo_spec() and fetched.url == arm.url + DEFINITION
    (call,) = arm.calls("/exportSpecification")
    assert call.method == "POST" and call.query == {"api-version": "2024-03-01"}


def test_202_is_polled_with_retry_after_then_the_link_is_read(arm, tmp_path):
    arm.add_definition(DEFINITION, demo_spec(), mode="link", polls=3)
    src, api, waits = center(arm, tmp_path)
    assert src.fetch_for(api, REQUEST).content == demo_spec()
    assert waits == [0.0, 0.0, 0.0, 0.0]  # Retry-After: 0 honoured on every poll
    assert [c.path.rsplit("/", 1)[1] for c in arm.calls("/operations/")] == [
        "status",
        "status",
        "status",
        "status",
        "result",
    ]


def test_failed_operation_names_the_error(arm, tmp_path):
    arm.add_definition(DEFINITION, demo_spec(), polls=1, fail=True)
    src, api, _ = center(arm, tmp_path)
    with pytest.raises(PermanentError, match="export failed: ExportFailed"):
        src.fetch_for(api, REQUEST)


def test_polling_past_the_budget_is_transient(arm, tmp_path):
    arm.add_definition(DEFINITION, demo_spec(), polls=50)
    src, _, _ = center(arm, tmp_path)
    now = [0.0]  # a clock that each poll's wait moves on by a second

    def sleep(seconds: float) -> None:
        now[0] += 1.0

    source = ApiCenterExportSource(
        src.arm("apiCenterExport", None), src.urls, sleep=sleep, clock=lambda: now[0]
    )
    source.poll_interval = 1.0
    arm.state.centers[DEFINITION.lower()].polls = 50
    with pytest.raises(TransientError, match=r"within the fetch budget of 3s \(SYNC_FETCH_BUDGET"):
        source.fetch(
            {"service": CENTER_SERVICE, "api": "orders", "version": "v1", "definition": "openapi"},
            where="t",
        )


def test_polling_url_on_another_host_is_refused(arm, tmp_path):
    src, _, _ = center(arm, tmp_path)
    source = ApiCenterExportSource(src.arm("apiCenterExport", None), src.urls)
    with pytest.raises(PermanentError, match="refusing to send the token"):
        source._same_origin("http://203.0.113.9/operations/x", "t")


def test_empty_inline_spec_and_unknown_format_are_spec_errors(arm, tmp_path):
    arm.add_definition(DEFINITION, b"  ")
    src, api, _ = center(arm, tmp_path)
    with pytest.raises(SpecError, match="empty specification"):
        src.fetch_for(api, REQUEST)
    with pytest.raises(SpecError, match="expected format 'inline' or 'link'"):
        ApiCenterExportSource._result({"format": "zip", "value": "x"}, "t")


def test_link_refused_with_403_once_is_exported_again(arm, tmp_path):
    arm.add_definition(DEFINITION, demo_spec(), mode="link")
    arm.state.expire_links = 1
    src, api, _ = center(arm, tmp_path)
    assert src.fetch_for(api, REQUEST).content == demo_spec()
    assert len(arm.calls("/exportSpecification")) == 2
    assert [c.status for c in arm.calls("/export-blobs/")] == [403, 200]


def test_link_refused_twice_fails_without_the_signature(arm, tmp_path):
    arm.add_definition(DEFINITION, demo_spec(), mode="link")
    arm.state.expire_links = 5
    src, api, _ = center(arm, tmp_path)
    with pytest.raises(PermanentError, match="refused twice with HTTP 403") as caught:
        src.fetch_for(api, REQUEST)
    assert str(caught.value).startswith(arm.url + DEFINITION)
    assert len(arm.calls("/exportSpecification")) == 2
    for call in arm.calls("/export-blobs/"):
        assert call.query["sig"] not in str(caught.value)


def test_inline_spec_over_the_cap_is_refused(arm, tmp_path):
    arm.add_definition(DEFINITION, demo_spec())
    settings = Settings(allow_private_hosts=frozenset({"127.0.0.1"}), fetch_max_bytes=200)
    src, api, _ = center(arm, tmp_path, settings)
    with pytest.raises(SpecError, match="download cap"):
        src.fetch_for(api, REQUEST)


# --- blob ----------------------------------------------------------------------------------


def blob_params(**extra):
    return {"account": "https://acct.blob.core.windows.net", "container": "specs", **extra}


def event(subject: str) -> SyncRequest:
    return SyncRequest(
        api="a", reason="event", event_type="Microsoft.Storage.BlobCreated", subject=subject
    )


def test_blob_location_rules():
    subject = "/blobServices/default/containers/specs/blobs/v1/orders api.yaml"
    assert (
        blob_location(blob_params(prefix="v1/"), event(subject), default_account=None, where="w")
        == "https://acct.blob.core.windows.net/specs/v1/orders%20api.yaml"
    )
    with pytest.raises(PermanentError, match="container 'other'"):
        blob_location(
            blob_params(),
            event("/blobServices/default/containers/other/blobs/x.yaml"),
            default_account=None,
            where="w",
        )
    with pytest.raises(PermanentError, match=r"blobName is 'v1/a\.yaml'"):
        blob_location(
            blob_params(blobName="v1/a.yaml"), event(subject), default_account=None, where="w"
        )
    with pytest.raises(PermanentError, match="not a blob of the configured account"):
        blob_location(
            blob_params(),
            SyncRequest(
                api="a", reason="manual", spec_url="https://evil.example/specs/x.yaml?sig=s"
            ),
            default_account=None,
            where="w",
        )
    with pytest.raises(PermanentError, match="no blob to read"):
        blob_location(
            blob_params(), SyncRequest(api="a", reason="drift"), default_account=None, where="w"
        )
    with pytest.raises(ConfigError, match="no storage account"):
        blob_location({"container": "specs"}, REQUEST, default_account=None, where="w")
    assert (
        blob_location(
            {"container": "specs", "blobName": "a.json"},
            REQUEST,
            default_account="http://h/acct",
            where="w",
        )
        == "http://h/acct/specs/a.json"
    )


@pytest.mark.azurite
def test_blob_read_from_azurite_with_a_local_sas_and_etag(azurite):
    container = blob_container(azurite)
    container.upload_blob("orders.yaml", demo_spec())
    settings = local_settings(azurite)
    from sync.adapters.urlguard import guarded_client

    reader = BlobReader(settings, guarded_client(settings), tokens=None)
    url = f"{blob_endpoint(azurite)}/{container.container_name}/orders.yaml"
    first = reader.get(url)
    assert first.content == demo_spec() and first.etag and first.url == url
    assert reader.get(url, etag=first.etag).not_modified
    container.upload_blob("orders.yaml", demo_spec("openapi-v2.yaml"), overwrite=True)
    assert reader.get(url, etag=first.etag).content == demo_spec("openapi-v2.yaml")
    with pytest.raises(PermanentError, match="HTTP 404 BlobNotFound"):
        reader.get(f"{blob_endpoint(azurite)}/{container.container_name}/missing.yaml")
    container.upload_blob("empty.yaml", b"")
    with pytest.raises(SpecError, match="blob is empty"):
        reader.get(f"{blob_endpoint(azurite)}/{container.container_name}/empty.yaml")
    small = local_settings(azurite, fetch_max_bytes=100)
    with pytest.raises(SpecError, match="download cap"):
        BlobReader(small, guarded_client(small), tokens=None).get(url)


def test_blob_read_with_a_storage_token(arm, identity, tmp_path):
    url = arm.put_blob("specs", "orders.yaml", demo_spec())
    raw = {
        "apis": {
            "orders": {
                "spec": {
                    "blob": {
                        "account": f"{arm.url}/blobstore",
                        "container": "specs",
                        "blobName": "orders.yaml",
                    }
                },
                "targets": [{"name": "dev", "folder": "out"}],
            }
        }
    }
    sync_map = parse_map(raw, source="t", base_dir=tmp_path)
    src = SpecSources(SETTINGS, sync_map)
    fetched = src.fetch_for(sync_map.api("orders"), REQUEST)
    assert fetched.content == demo_spec() and fetched.url == url
    (call,) = arm.calls("/blobstore/")
    assert call.headers["x-ms-version"]
    claims = identity.decode(
        call.headers["authorization"][7:], audience="https://storage.azure.com"
    )
    assert claims["idtyp"] == "app"
    assert src.fetch_for(sync_map.api("orders"), REQUEST, etag=fetched.etag).not_modified
    arm.state.authorized = set()
    with pytest.raises(PermanentError, match="Storage Blob Data Reader"):
        src.fetch_for(sync_map.api("orders"), REQUEST)


@pytest.mark.parametrize("blob", ["v1/../../secrets/key.json", "v1/./x/../../other.yaml", "v1/.."])
def test_blob_event_with_dot_segments_cannot_leave_the_container_or_prefix(blob: str) -> None:
    """httpx removes dot segments from the URL path, so a subject 'v1/../../secrets/key.json'
    passed the container and prefix checks and then read /secrets/key.json with our token."""
    subject = f"/blobServices/default/containers/specs/blobs/{blob}"
    with pytest.raises(PermanentError, match=r"'\.' or '\.\.'"):
        blob_location(blob_params(prefix="v1/"), event(subject), default_account=None, where="w")


@pytest.mark.parametrize("header", ["Location", "Azure-AsyncOperation"])
@pytest.mark.parametrize(
    "value", ["https://management.azure.com:abc/op?sig=SECRETSIG", "http://[::1/op?sig=SECRETSIG"]
)
def test_a_polling_header_that_is_not_a_url_is_a_permanent_error(arm, tmp_path, header, value):
    src, api, _ = center(arm, tmp_path)
    arm.answer_next("/exportSpecification", 202, b"", {header: value, "Retry-After": "0"})
    with pytest.raises(PermanentError, match=f"{header} header") as caught:
        src.fetch_for(api, REQUEST)
    assert "SECRETSIG" not in str(caught.value)


DEEP = b"[" * 100_000 + b"]" * 100_000  # JSON nested past the recursion limit
NOT_JSON = b"<html><body>Bad Request</body></html>"


@pytest.mark.parametrize(
    ("where", "status", "error"),
    [
        ("/exportSpecification", 400, PermanentError),  # ARM's error body
        ("/exportSpecification", 200, SpecError),  # the result
        ("/status", 200, SpecError),  # the Azure-AsyncOperation status
    ],
)
def test_an_answer_nested_past_the_recursion_limit_fails_as_one_that_is_not_json(
    arm, tmp_path, where, status, error
):
    """A RecursionError escaped the ARM error parser and the export's own JSON reads: no
    SyncError, so the item crashed without a reason and was retried until poisoned."""
    src, api, _ = center(arm, tmp_path)
    failures = []
    for body in (NOT_JSON, DEEP):
        arm.add_definition(DEFINITION, demo_spec(), polls=1)
        arm.answer_next(where, status, body)
        with pytest.raises(SyncError) as caught:
            src.fetch_for(api, REQUEST)
        failures.append((type(caught.value), str(caught.value)))
    assert failures[0] == failures[1]
    assert failures[0][0] is error


def test_a_relative_location_is_polled_on_the_resource_manager(arm, tmp_path):
    """HTTP lets ``Location`` be relative to the request; it was refused as another host."""
    src, _, _ = center(arm, tmp_path)
    source = ApiCenterExportSource(src.arm("apiCenterExport", None), src.urls)
    where = f"{arm.url}{DEFINITION}/exportSpecification"
    assert source._same_origin("/operations/x/result", where, header="Location") == (
        f"{arm.url}/operations/x/result"
    )
    assert source._same_origin("../x", where) == f"{arm.url}{DEFINITION.rsplit('/', 1)[0]}/x"
    with pytest.raises(PermanentError, match="refusing to send the token"):
        source._same_origin("//203.0.113.9/operations/x", where)  # another host, scheme-relative


@pytest.mark.parametrize(
    "body",
    [b"{}", b'{"status": 3}', b'{"status": ""}', b"[]", b'"Succeeded"'],
    ids=["no-status", "a-number", "empty", "an-array", "a-string"],
)
def test_an_operation_status_without_a_status_is_a_spec_error(arm, tmp_path, body):
    """It counted as still running, so the item waited out its budget and was retried, to
    wait again."""
    arm.add_definition(DEFINITION, demo_spec(), polls=1)
    arm.answer_next("/status", 200, body)
    src, api, _ = center(arm, tmp_path)
    with pytest.raises(SpecError, match="has no 'status'"):
        src.fetch_for(api, REQUEST)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("versionid=2024-01-01T00:00:00.0000000Z", "versionid"),
        ("snapshot=2024-01-01T00:00:00.0000000Z", "snapshot"),
        ("VersionId=x&sv=2023-11-03&sig=s", "versionid"),
    ],
)
def test_a_blob_version_or_snapshot_url_is_refused_not_read_as_the_current_blob(query, named):
    """The blob is read by name, so the version was dropped and the latest spec synced in its
    place (found by review 2026-12-07)."""
    url = f"https://acct.blob.core.windows.net/specs/inv/openapi.yaml?{query}"
    request = SyncRequest(api="a", reason="manual", spec_url=url)
    with pytest.raises(PermanentError, match=f"names a blob {named}; only the current blob"):
        blob_location(blob_params(), request, default_account=None, where="w")
    plain = SyncRequest(api="a", reason="manual", spec_url=url.split("?")[0] + "?sv=1&sig=s")
    assert blob_location(blob_params(), plain, default_account=None, where="w").endswith(
        "/specs/inv/openapi.yaml"
    )
