"""APIM "Api Export - Get" against the strict ARM simulator, with real azure-identity tokens."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sync.adapters.spec_http import DownloadRefused
from sync.adapters.spec_sources import SpecSources, is_forbidden
from sync.config import parse_map
from sync.errors import PermanentError, SpecError, SyncError
from sync.models import SyncRequest
from sync.settings import Settings
from tests.sources.conftest import APIM_SERVICE, demo_spec

SETTINGS = Settings(
    allow_private_hosts=frozenset({"127.0.0.1"}),
    fetch_budget_seconds=3.0,
    fetch_timeout_seconds=2.0,
)


def sources(arm, tmp_path: Path, **spec_extra) -> tuple[SpecSources, object]:
    raw = {
        "endpoints": {"resourceManager": arm.url},
        "apis": {
            "orders": {
                "spec": {"apimExport": {"service": APIM_SERVICE, "api": "orders", **spec_extra}},
                "targets": [{"name": "dev", "folder": "out"}],
            }
        },
    }
    sync_map = parse_map(raw, source="test", base_dir=tmp_path)
    return SpecSources(SETTINGS, sync_map), sync_map.api("orders")


REQUEST = SyncRequest(api="orders", reason="manual")


def test_export_downloads_the_linked_spec_with_an_arm_token(arm, identity, tmp_path, caplog):
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec())
    src, api = sources(arm, tmp_path)
    with caplog.at_level(logging.DEBUG):
        fetched = src.fetch_for(api, REQUEST)
    assert fetched.content == demo_spec()
    assert fetched.url == f"{arm.url}{APIM_SERVICE}/apis/orders"  # the resource, not the SAS link
    assert fetched.etag is None
    (call,) = arm.calls("/apis/orders")
    assert call.query == {
        "format": "openapi+json-link",
        "export": "true",
        "api-version": "2022-08-01",
    }
    token = call.headers["authorization"].removeprefix("Bearer ")
    claims = identity.decode(token, audience=arm.url)  # the cloud's Resource Manager audience
    assert claims["idtyp"] == "app"
    assert len(arm.calls("/export-blobs/")) == 1
    sig = arm.calls("/export-blobs/")[0].query["sig"]
    assert sig not in caplog.text


def test_swagger_format_is_requested_with_apims_request_name(arm, tmp_path):
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec())
    src, api = sources(arm, tmp_path, format="swagger-link-json")
    src.fetch_for(api, REQUEST)
    assert arm.calls("/apis/orders")[0].query["format"] == "swagger-link"


def test_link_refused_with_403_once_is_re_exported(arm, tmp_path):
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec())
    arm.state.expire_links = 1
    src, api = sources(arm, tmp_path)
    assert src.fetch_for(api, REQUEST).content == demo_spec()
    assert len(arm.calls("/apis/orders")) == 2
    assert [c.status for c in arm.calls("/export-blobs/")] == [403, 200]


def test_link_refused_twice_fails_clearly_without_the_signature(arm, tmp_path):
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec())
    arm.state.expire_links = 5
    src, api = sources(arm, tmp_path)
    with pytest.raises(PermanentError) as caught:
        src.fetch_for(api, REQUEST)
    assert "refused twice with HTTP 403" in str(caught.value)
    assert len(arm.calls("/apis/orders")) == 2
    for call in arm.calls("/export-blobs/"):
        assert call.query["sig"] not in str(caught.value)


def test_link_already_expired_on_arrival_is_re_exported_then_fails(arm, tmp_path):
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec())
    arm.state.link_lifetime = -60
    src, api = sources(arm, tmp_path)
    with pytest.raises(PermanentError, match="already expired twice"):
        src.fetch_for(api, REQUEST)
    assert len(arm.calls("/apis/orders")) == 2
    assert arm.calls("/export-blobs/") == []  # not downloaded: se= said it was dead


def test_unknown_api_names_the_arm_error_code(arm, tmp_path):
    src, api = sources(arm, tmp_path)
    with pytest.raises(PermanentError, match="HTTP 404 ResourceNotFound"):
        src.fetch_for(api, REQUEST)


def test_identity_without_the_role_gets_a_hint(arm, tmp_path):
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec())
    arm.state.authorized = set()
    src, api = sources(arm, tmp_path)
    with pytest.raises(PermanentError) as caught:
        src.fetch_for(api, REQUEST)
    assert "AuthorizationFailed" in str(caught.value)
    assert "API Management Service Reader Role" in str(caught.value)


def test_token_for_another_audience_is_refused(arm, tmp_path):
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec())
    arm.state.audience = "https://management.azure.com"  # the simulator now plays public ARM
    src, api = sources(arm, tmp_path)
    with pytest.raises(PermanentError, match="InvalidAuthenticationTokenAudience"):
        src.fetch_for(api, REQUEST)


def test_arm_throttling_is_retried_then_succeeds(arm, tmp_path, monkeypatch):
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec())
    src, api = sources(arm, tmp_path)
    calls = {"n": 0}
    real = src.client.send

    def throttled(request, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            import httpx

            return httpx.Response(429, headers={"Retry-After": "0"}, request=request)
        return real(request, **kwargs)

    monkeypatch.setattr(src.client, "send", throttled)
    assert src.fetch_for(api, REQUEST).content == demo_spec()
    assert calls["n"] == 3  # 429, export, link


@pytest.mark.parametrize(
    ("cloud", "host"),
    [
        ("public", "https://management.azure.com"),
        ("usgov", "https://management.usgovcloudapi.net"),
        ("china", "https://management.chinacloudapi.cn"),
    ],
)
def test_arm_host_and_scope_follow_the_cloud(tmp_path, cloud, host):
    raw = {
        "cloud": cloud,
        "apis": {
            "orders": {
                "spec": {"apimExport": {"service": APIM_SERVICE, "api": "orders"}},
                "targets": [{"name": "dev", "folder": "out"}],
            }
        },
    }
    src = SpecSources(SETTINGS, parse_map(raw, source="t", base_dir=tmp_path))
    caller = src.arm("apimExport", None)
    assert caller.url(APIM_SERVICE, "/apis/orders") == f"{host}{APIM_SERVICE}/apis/orders"
    assert caller.cloud.arm_scope() == f"{host}/.default"


def test_url_kind_keeps_the_event_spec_url(arm, tmp_path):
    """An allowed spec URL from an event wins for export kinds too (unchanged behaviour)."""
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec("openapi-v2.yaml"))
    src, api = sources(arm, tmp_path)
    link = src.arm("apimExport", None)  # a real link from the simulator, fetched as a URL
    from sync.adapters.apim_export import ApimExportSource

    url = ApimExportSource(link, src.urls).export_link(
        {"service": APIM_SERVICE, "api": "orders"}, where="t"
    )
    fetched = src.fetch_for(api, SyncRequest(api="orders", reason="event", spec_url=url))
    assert fetched.content == demo_spec("openapi-v2.yaml") and fetched.url == url


def test_only_a_403_status_counts_as_a_refused_link_not_the_words():
    """The re-export decision reads the status the downloader attached, never the message text."""
    assert is_forbidden(DownloadRefused("HTTP 403 Forbidden", where="x", status=403))
    assert not is_forbidden(DownloadRefused("HTTP 404 Not Found (was 403?)", where="x", status=404))
    assert not is_forbidden(PermanentError("HTTP 403 Forbidden", where="x"))


@pytest.mark.parametrize(
    "link",
    [
        "https://[::1/x?se=2030-01-01T00:00:00Z&sig=SECRETSIG",
        "https://[bad/x?sig=SECRETSIG",
        "https://acct.blob.core.windows.net:abc/x?sig=SECRETSIG",
    ],
)
def test_an_export_link_that_is_not_a_url_is_a_spec_error(arm, tmp_path, link):
    src, api = sources(arm, tmp_path)
    arm.answer_next("/apis/orders", 200, {"format": "openapi+json-link", "value": {"link": link}})
    with pytest.raises(SpecError, match=r"value\.link is not a URL") as caught:
        src.fetch_for(api, REQUEST)
    assert str(caught.value).startswith(arm.url + APIM_SERVICE)
    assert "SECRETSIG" not in str(caught.value)


DEEP = b"[" * 100_000 + b"]" * 100_000  # JSON nested past the recursion limit
NOT_JSON = b"<html><body>Bad Request</body></html>"


@pytest.mark.parametrize(("status", "error"), [(400, PermanentError), (200, SpecError)])
def test_an_answer_nested_past_the_recursion_limit_fails_as_one_that_is_not_json(
    arm, tmp_path, status, error
):
    """A RecursionError escaped the ARM error parser (the 400) and the export answer's (the
    200): no SyncError, so the item crashed without a reason and was retried until poisoned."""
    src, api = sources(arm, tmp_path)
    failures = []
    for body in (NOT_JSON, DEEP):
        arm.answer_next("/apis/orders", status, body)
        with pytest.raises(SyncError) as caught:
            src.fetch_for(api, REQUEST)
        failures.append((type(caught.value), str(caught.value)))
    assert failures[0] == failures[1]
    assert failures[0][0] is error
