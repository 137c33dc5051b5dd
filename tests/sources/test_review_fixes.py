"""Review fixes for the ARM and Blob spec sources: no bearer token over plain http, an undecodable
answer inside the error tree, and the function identity the rest of the app uses.

Against the ARM simulator (which also serves blobs) with real azure-identity tokens, through the
guarded httpx client."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.adapters.blob_spec import BlobReader
from sync.adapters.spec_sources import SpecSources
from sync.adapters.urlguard import UrlGuard, guarded_client
from sync.config import parse_map
from sync.errors import PermanentError, SyncError
from sync.models import SyncRequest
from sync.settings import Settings
from tests.fetch.conftest import LOCAL, fake_resolver
from tests.simulators.arm import ArmSimulator
from tests.sources.conftest import APIM_SERVICE, demo_spec
from tests.support.identity_env import AZURE_ENV
from tests.support.local_identity import LocalIdentity

SETTINGS = Settings(
    allow_private_hosts=LOCAL,
    fetch_budget_seconds=3.0,
    fetch_timeout_seconds=2.0,
)
REQUEST = SyncRequest(api="orders", reason="manual")


def port_of(arm: ArmSimulator) -> int:
    return httpx.URL(arm.url).port or 80


def named_client(name: str) -> httpx.Client:
    """A guarded client on which ``name`` resolves to the simulator's loopback address: the
    guard lets it through (127.0.0.1 is allow-listed), but ``name`` itself is not listed, so it
    stands for a public host reached over plain http."""
    return guarded_client(SETTINGS, guard=UrlGuard(LOCAL, resolver=fake_resolver({name: LOCAL})))


def mi_requests(identity: LocalIdentity) -> list[Any]:
    return [r for r in identity.requests if r.path.startswith("/msi")]


def apim_map(resource_manager: str, tmp_path: Path) -> Any:
    raw = {
        "endpoints": {"resourceManager": resource_manager},
        "apis": {
            "orders": {
                "spec": {"apimExport": {"service": APIM_SERVICE, "api": "orders"}},
                "targets": [{"name": "dev", "folder": "out"}],
            }
        },
    }
    return parse_map(raw, source="t", base_dir=tmp_path)


def blob_map(account: str, tmp_path: Path) -> Any:
    raw = {
        "apis": {
            "orders": {
                "spec": {
                    "blob": {"account": account, "container": "specs", "blobName": "orders.yaml"}
                },
                "targets": [{"name": "dev", "folder": "out"}],
            }
        }
    }
    return parse_map(raw, source="t", base_dir=tmp_path)


# --- 3. bearer tokens only over https (or to an allow-listed local host) -------------------------


def test_storage_bearer_is_not_sent_over_plain_http_to_an_unlisted_host(
    arm: ArmSimulator, identity: LocalIdentity, tmp_path: Path
) -> None:
    arm.put_blob("specs", "orders.yaml", demo_spec())
    account = f"http://storage.test:{port_of(arm)}/blobstore"
    sync_map = blob_map(account, tmp_path)
    src = SpecSources(SETTINGS, sync_map, client=named_client("storage.test"))
    with pytest.raises(PermanentError) as caught:
        src.fetch_for(sync_map.api("orders"), REQUEST)
    assert arm.calls("/blobstore/") == []  # nothing left the process...
    assert mi_requests(identity) == []  # ...and no token was even fetched
    message = str(caught.value)
    assert "http://storage.test" in message and "https" in message
    assert "SYNC_ALLOW_PRIVATE_HOSTS" in message and "spec.blob.account" in message


def test_arm_bearer_is_not_sent_over_plain_http_to_an_unlisted_host(
    arm: ArmSimulator, identity: LocalIdentity, tmp_path: Path
) -> None:
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec())
    sync_map = apim_map(f"http://arm.test:{port_of(arm)}", tmp_path)
    src = SpecSources(SETTINGS, sync_map, client=named_client("arm.test"))
    with pytest.raises(PermanentError) as caught:
        src.fetch_for(sync_map.api("orders"), REQUEST)
    assert arm.calls() == []
    assert mi_requests(identity) == []
    message = str(caught.value)
    assert "http://arm.test" in message and "endpoints.resourceManager" in message


def test_an_allow_listed_local_host_keeps_working_over_http(
    arm: ArmSimulator, identity: LocalIdentity, tmp_path: Path
) -> None:
    """SYNC_ALLOW_PRIVATE_HOSTS names the local simulators: plain http stays allowed there."""
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec())
    sync_map = apim_map(arm.url, tmp_path)
    assert SpecSources(SETTINGS, sync_map).fetch_for(sync_map.api("orders"), REQUEST).content
    arm.put_blob("specs", "orders.yaml", demo_spec())
    sync_map = blob_map(f"{arm.url}/blobstore", tmp_path)
    assert SpecSources(SETTINGS, sync_map).fetch_for(sync_map.api("orders"), REQUEST).content


# --- 6. an answer that cannot be decoded ---------------------------------------------------------

NOT_GZIP = {"Content-Encoding": "gzip", "Content-Type": "application/json"}


def test_an_undecodable_arm_answer_is_a_permanent_error(
    arm: ArmSimulator, identity: LocalIdentity, tmp_path: Path
) -> None:
    """httpx.DecodingError escaped ArmCaller.call (spec_http maps the same to SpecError)."""
    sync_map = apim_map(arm.url, tmp_path)
    arm.answer_next("/apis/orders", 200, b"this is not gzip", NOT_GZIP)
    with pytest.raises(SyncError) as caught:
        SpecSources(SETTINGS, sync_map).fetch_for(sync_map.api("orders"), REQUEST)
    assert isinstance(caught.value, PermanentError), repr(caught.value)
    assert "DecodingError" in str(caught.value)
    assert len(arm.calls("/apis/orders")) == 1  # not retried: the same bytes decode no better


def test_an_undecodable_blob_is_a_permanent_error(
    arm: ArmSimulator, identity: LocalIdentity
) -> None:
    url = arm.put_blob("specs", "orders.yaml", demo_spec())
    bodies = [b"this is not gzip", gzip.compress(b"ok")[:4] + b"junk" * 10]  # a broken header
    for body in bodies:
        arm.answer_next("/blobstore/", 200, body, NOT_GZIP)
    src = SpecSources(SETTINGS, _Map())
    reader = BlobReader(SETTINGS, src.client, tokens=lambda: src.tokens(None))
    for _ in bodies:
        with pytest.raises(SyncError) as caught:
            reader.get(url)
        assert isinstance(caught.value, PermanentError), repr(caught.value)
        assert url in str(caught.value)


class _Map:
    cloud = "public"
    endpoints = None
    credentials: dict[str, Any] = {}


# --- 7. the function identity is the one bootstrap uses ------------------------------------------


@pytest.mark.parametrize("on_azure", [True, False])
def test_spec_sources_use_the_app_function_identity(
    monkeypatch: pytest.MonkeyPatch, on_azure: bool, tmp_path
) -> None:
    """Off Azure, spec sources used a bare ManagedIdentityCredential while Key Vault, Storage and
    the rest of the app used DefaultAzureCredential (az login): an export worked in no local run.
    The composition root now hands them the app's function identity."""
    import json
    from dataclasses import replace

    from sync.bootstrap import build, function_identity
    from sync.clouds import cloud_for

    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    if on_azure:
        monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", "h")
    map_path = tmp_path / "sync-map.json"
    api = {
        "spec": {"url": "https://api.contoso.example/openapi.json"},
        "on": [{"custom": "a"}],
        "targets": [{"name": "t", "folder": "out"}],
    }
    map_path.write_text(json.dumps({"apis": {"a": api}}))
    src = build(replace(SETTINGS, config_path=str(map_path))).ports.specs
    assert src.tokens(None).kind == function_identity(cloud_for("public")).kind
    assert src.tokens(None).kind == ("managedIdentity" if on_azure else "default")
