"""The App Service managed identity over httpx (``sync.adapters.app_service_identity``), held to
azure-identity's ``ManagedIdentityCredential`` -- the client no one here wrote -- on the same local
identity endpoint: the same requests, the same tokens, the same verdicts on refusals."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sync.adapters import app_service_identity
from sync.adapters.app_service_identity import resource_of, serves
from sync.adapters.credentials import build_token_provider
from sync.clouds import CLOUDS, Cloud
from sync.errors import PermanentError, SyncError, TransientError
from tests.credentials.conftest import ARM_SCOPE, _Scripted, mi_failure
from tests.credentials.test_token_providers import PP_SCOPE, MemoryStore, claims
from tests.support.local_identity import LocalIdentity

USER_ASSIGNED = "0b7c6a59-4a2d-4c43-9d6e-3f0f3d6b2a11"


def ours(client_id: str | None = None, *, retries: int = 0) -> Any:
    spec = {"managedIdentity": {"clientId": client_id} if client_id else {}}
    return build_token_provider(
        "mi",
        spec,
        cloud=CLOUDS["public"],
        secrets=MemoryStore(),
        transport_options={"retry_total": retries, "retry_backoff_factor": 0.01},
    )


def theirs(client_id: str | None = None) -> Any:
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=client_id, retry_total=0)


def mi_requests(identity: LocalIdentity) -> list[Any]:
    return [r for r in identity.requests if r.path == "/msi/token"]


@pytest.mark.parametrize("client_id", [None, USER_ASSIGNED], ids=["system", "user-assigned"])
@pytest.mark.parametrize("scope", [PP_SCOPE, "https://service.powerapps.com//.default", ARM_SCOPE])
def test_the_same_request_and_the_same_token_as_azure_identity(
    identity: LocalIdentity, client_id: str | None, scope: str
) -> None:
    if client_id:
        identity.add_managed_identity(client_id)
    their_token = theirs(client_id).get_token(scope).token
    [their_request] = mi_requests(identity)
    our_token = ours(client_id).token(scope)
    [_, our_request] = mi_requests(identity)

    assert our_request.query == their_request.query
    assert our_request.headers["x-identity-header"] == their_request.headers["x-identity-header"]
    assert our_request.method == their_request.method == "GET"
    mine, yours = claims(our_token), claims(their_token)
    assert (mine["aud"], mine["oid"], mine["appid"]) == (yours["aud"], yours["oid"], yours["appid"])
    assert mine["aud"] == resource_of(scope)


def test_azure_identity_is_not_imported_for_it(identity: LocalIdentity) -> None:
    """Neither for a map's managed identity nor for the storage clients' credential, which the
    Storage SDKs call through azure-core's ``get_token``."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from sync.adapters.credentials import build_token_provider\n"
        "from sync.adapters.storage_clients import default_credential\n"
        "from sync.clouds import CLOUDS\n"
        "p = build_token_provider(\n"
        "    'mi', {'managedIdentity': {}}, cloud=CLOUDS['public'], secrets=None\n"
        ")\n"
        f"assert p.token({PP_SCOPE!r})\n"
        "access = default_credential().get_token('https://storage.azure.com/.default')\n"
        "assert access.token and access.expires_on > 0\n"
        "print(sorted(m for m in ('azure.identity', 'msal', 'requests') if m in sys.modules))\n"
    )
    import os

    done = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.strip() == "[]"


def test_the_expiry_is_the_endpoints(identity: LocalIdentity) -> None:
    identity.token_lifetime = 1234
    info = ours().access_token(PP_SCOPE)
    their = theirs().get_token(PP_SCOPE)
    assert abs(info.expires_on - their.expires_on) <= 2


# --- refusals: azure-identity's verdict, kept ---------------------------------------------------


def their_verdict(answer: tuple[int, str, bytes], endpoint: type[_Scripted]) -> Any:
    """The class the same answer got before: azure-identity's ManagedIdentityCredential behind
    the same cache and the same ``translate_error``, as the kind was wired until 2026-12-07."""
    from sync.adapters.credentials import CachedTokenProvider, _from_credential

    endpoint.answer = answer
    tokens = CachedTokenProvider(
        "(function identity)", "managedIdentity", _from_credential(lambda: theirs())
    )
    with pytest.raises(SyncError) as caught:
        tokens.token(ARM_SCOPE)
    return caught.value


def test_a_status_written_as_text_is_still_the_endpoints_refusal(
    cloud: Cloud, scripted_endpoint: type[_Scripted]
) -> None:
    answer = (400, "application/json", b'{"statusCode":"400","message":"No identity found"}')
    failure = mi_failure(cloud, answer, scripted_endpoint)
    assert type(failure) is PermanentError and "No identity found" in str(failure)


def test_storage_keeps_a_credential_the_environment_names_first(
    identity: LocalIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DefaultAzureCredential signs in with AZURE_* service-principal variables (or a workload
    identity token file) before the managed identity; storage by endpoint does so still."""
    from sync.adapters.storage_clients import default_credential

    assert type(default_credential()).__name__ == "CachedTokenProvider"
    monkeypatch.setenv("AZURE_TENANT_ID", "t")
    monkeypatch.setenv("AZURE_CLIENT_ID", USER_ASSIGNED)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s3cret-value")
    assert type(default_credential()).__name__ == "DefaultAzureCredential"


REFUSALS = [
    (400, "application/json", b'{"statusCode":400,"message":"No managed identity found"}'),
    (401, "application/json", b'{"statusCode":401,"message":"X-IDENTITY-HEADER is missing"}'),
    (404, "text/html", b"<html>Not Found</html>"),
    (500, "text/plain", b""),
    (503, "text/html", b"<html><body>Service Unavailable</body></html>"),
    (429, "application/json", b'{"error":"throttled"}'),
    (503, "application/json", b'{"statusCode":503,"message":"busy"}'),
    (200, "text/html", b"<html>a captive portal</html>"),
]


@pytest.mark.parametrize(
    "answer", REFUSALS, ids=[f"{a[0]}-{a[1]}-{i}" for i, a in enumerate(REFUSALS)]
)
def test_every_refusal_gets_azure_identitys_verdict(
    cloud: Cloud, scripted_endpoint: type[_Scripted], answer: tuple[int, str, bytes]
) -> None:
    mine = mi_failure(cloud, answer, scripted_endpoint)
    yours = their_verdict(answer, scripted_endpoint)
    assert isinstance(mine, TransientError) == isinstance(yours, TransientError), (mine, yours)
    assert isinstance(mine, PermanentError) == isinstance(yours, PermanentError), (mine, yours)
    assert "'(function identity)' (managedIdentity)" in str(mine)
    assert str(answer[0]) in str(mine)


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (b'{"token_type":"Bearer"}', TransientError, "without an access_token"),
        (b'{"access_token":"eyJ","expires_on":"NaN"}', PermanentError, "not a finite"),
        (b'{"access_token":"eyJ","expires_on":"soon"}', PermanentError, "not a finite"),
        (b'{"access_token":"eyJ","expires_on":"1e400"}', PermanentError, "not a finite"),
        (b'{"access_token":"eyJ"}', PermanentError, "not a finite"),
        (b"[1, 2]", TransientError, "not JSON"),
    ],
    ids=["no-token", "nan", "text", "infinite", "no-expiry", "json-array"],
)
def test_a_200_without_a_usable_token_names_what_is_wrong(
    cloud: Cloud, scripted_endpoint: type[_Scripted], body: bytes, error: type, match: str
) -> None:
    failure = mi_failure(cloud, (200, "application/json", body), scripted_endpoint)
    assert type(failure) is error, failure
    assert match in str(failure)


def test_an_answer_with_expires_in_only_is_read(
    cloud: Cloud, scripted_endpoint: type[_Scripted]
) -> None:
    import time

    scripted_endpoint.answer = (200, "application/json", b'{"access_token":"eyJ","expires_in":600}')
    info = ours().access_token(ARM_SCOPE)
    assert info.token == "eyJ"
    assert 590 <= info.expires_on - time.time() <= 601


def test_the_header_never_reaches_an_error_or_a_log(
    cloud: Cloud,
    scripted_endpoint: type[_Scripted],
    identity: LocalIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An endpoint (or a front end) that echoes the request's header in its refusal."""
    secret = identity.identity_header
    scripted_endpoint.answer = (
        400,
        "application/json",
        f'{{"statusCode":400,"message":"bad header {secret}"}}'.encode(),
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(PermanentError) as caught:
        ours().token(ARM_SCOPE)
    assert secret not in str(caught.value)
    assert "bad header ***" in str(caught.value)
    assert secret not in caplog.text


def test_transient_refusals_are_retried(identity: LocalIdentity) -> None:
    identity.fail_next(503, times=2, path_contains="/msi/")
    assert claims(ours(retries=2).token(PP_SCOPE))["aud"] == "https://service.powerapps.com"
    assert [r.status for r in mi_requests(identity)] == [503, 503, 200]


def test_a_proxy_in_the_environment_never_sees_the_header(
    identity: LocalIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint is on the instance: a proxy variable must not route the request (and its
    header) elsewhere. 127.0.0.1:9 refuses every connection, so a proxied request would fail."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert ours().token(PP_SCOPE)


def test_a_dead_endpoint_is_transient(identity: LocalIdentity, monkeypatch) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token")
    with pytest.raises(TransientError, match=r"'mi' \(managedIdentity\).*connection failed"):
        ours().token(PP_SCOPE)


# --- which environments it serves --------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"IDENTITY_ENDPOINT": "http://x/msi", "IDENTITY_HEADER": "h"}, True),
        ({"IDENTITY_ENDPOINT": "http://x/msi"}, False),  # Azure Arc (with IMDS_ENDPOINT)
        (
            {
                "IDENTITY_ENDPOINT": "https://x:2377/msi",
                "IDENTITY_HEADER": "h",
                "IDENTITY_SERVER_THUMBPRINT": "AB" * 20,
            },
            False,
        ),  # Service Fabric
        ({"MSI_ENDPOINT": "http://x/msi", "MSI_SECRET": "s"}, False),  # Azure ML
        ({}, False),  # IMDS (VMs, CI agents)
    ],
    ids=["app-service", "arc", "service-fabric", "azure-ml", "imds"],
)
def test_it_serves_the_app_service_protocol_only(env: dict[str, str], expected: bool) -> None:
    assert serves(env) is expected


def test_elsewhere_the_managed_identity_is_azure_identitys(
    identity: LocalIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off App Service, the kind is azure-identity's ManagedIdentityCredential, as before."""
    calls: list[Any] = []

    class Spy:
        def __init__(self, **kwargs: Any) -> None:
            raise AssertionError("the App Service client must not be built off App Service")

    monkeypatch.setattr(app_service_identity, "AppServiceIdentity", Spy)
    monkeypatch.setattr(app_service_identity, "serves", lambda environ=None: calls.append(1))
    # serves() says no, so azure-identity's credential answers (on the same local endpoint)
    assert claims(ours().token(PP_SCOPE))["aud"] == "https://service.powerapps.com"
    assert calls == [1]


@pytest.mark.parametrize(
    ("scope", "resource"),
    [
        ("https://service.powerapps.com/.default", "https://service.powerapps.com"),
        ("https://service.powerapps.com//.default", "https://service.powerapps.com/"),
        ("https://vault.azure.net", "https://vault.azure.net"),
    ],
)
def test_a_scope_becomes_the_resource_azure_identity_sends(scope: str, resource: str) -> None:
    from azure.identity._internal import _scopes_to_resource

    assert resource_of(scope) == resource == _scopes_to_resource(scope)
