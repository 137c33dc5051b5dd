"""Review fixes for the token providers: the delegated rotation never overwrites a refresh token an
operator stored meanwhile, a managed-identity endpoint's unreadable 5xx is retried, and a refresh
token is never posted over plain http.

Against the local identity platform and the local Key Vault, through the real azure-identity,
azure-keyvault-secrets and httpx stacks."""

from __future__ import annotations

import logging
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from sync.adapters.credentials import build_token_provider
from sync.clouds import Cloud
from sync.errors import PermanentError, TransientError
from tests.credentials.conftest import ARM_SCOPE, _Scripted, mi_failure
from tests.credentials.test_token_providers import (
    PP_SCOPE,
    TENANT_B,
    MemoryStore,
    claims,
    delegated_setup,
)
from tests.support.local_identity import LocalIdentity, serve, shutdown
from tests.support.local_vault import LocalVault

CRM_SCOPE = "https://org.crm.dynamics.com/.default"


def grant_user(identity: LocalIdentity, token: str | None) -> str:
    assert token is not None
    return identity.refresh_tokens[token].user_oid


# --- 1. the rotation does not overwrite what `credential init` stored ------------------------------


def test_rotation_keeps_a_token_an_operator_stored_meanwhile(
    identity: LocalIdentity,
    vault: LocalVault,
    cloud: Cloud,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A running instance rotated user A's token; then `credential init` (another process, so
    this store's 5-minute cache still holds A's token) stored user B's. The next fetch wrote
    A's rotated token over B's: the operator's switch was silently undone."""
    caplog.set_level(logging.DEBUG)
    app, first, _store, tokens = delegated_setup(identity, vault, cloud)
    user_a = grant_user(identity, first)
    assert claims(tokens.token(PP_SCOPE))["oid"] == user_a
    rotated_a = vault.latest("pp-user-refresh")
    assert grant_user(identity, rotated_a) == user_a

    from_init = identity.issue_refresh_token(TENANT_B, app.client_id, user_oid="user-b")
    vault.put("pp-user-refresh", from_init)

    token = tokens.token(ARM_SCOPE)
    # The vault keeps user B's chain (init's token, or its own rotation), never A's again...
    assert grant_user(identity, vault.latest("pp-user-refresh")) == "user-b"
    written_after_init = [
        r.body["value"]
        for r in vault.secret_requests("PUT")[1:]
        if r.body and isinstance(r.body.get("value"), str)
    ]
    assert all(grant_user(identity, v) == "user-b" for v in written_after_init)
    # ...and the token handed out is already B's: after `credential init` the next fetch is
    # the new account's, not one more hour of the old one.
    assert claims(token)["oid"] == "user-b"
    assert "adopted" in caplog.text
    for value in (first, rotated_a, from_init, *identity.refresh_tokens):
        assert value not in caplog.text


def test_rotation_still_writes_when_the_vault_holds_what_this_process_wrote(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    _app, first, _store, tokens = delegated_setup(identity, vault, cloud)
    tokens.token(PP_SCOPE)
    rotated_1 = vault.latest("pp-user-refresh")
    tokens.token(ARM_SCOPE)
    rotated_2 = vault.latest("pp-user-refresh")
    assert len({first, rotated_1, rotated_2}) == 3
    used = [r.form["refresh_token"] for r in identity.token_requests("refresh_token")]
    assert used == [first, rotated_1]


def test_a_revoked_memory_copy_finds_the_operators_token_despite_the_store_cache(
    identity: LocalIdentity, vault: LocalVault, cloud: Cloud
) -> None:
    """The retry with the stored token read through the store's cache, which still held the
    token this process wrote: it equalled the revoked one, so the error was raised although
    the vault held a good token."""
    app, _first, _store, tokens = delegated_setup(identity, vault, cloud)
    tokens.token(PP_SCOPE)
    in_memory = vault.latest("pp-user-refresh")
    assert in_memory is not None
    identity.revoke_refresh_token(in_memory)
    from_init = identity.issue_refresh_token(TENANT_B, app.client_id, user_oid="user-b")
    vault.put("pp-user-refresh", from_init)
    assert claims(tokens.token(ARM_SCOPE))["oid"] == "user-b"
    used = [r.form["refresh_token"] for r in identity.token_requests("refresh_token")]
    assert used[-2:] == [in_memory, from_init]


# --- 2. the managed-identity endpoint's unreadable 5xx / 429 -------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        (503, "text/html", b"<html><body>Service Unavailable</body></html>"),
        (500, "text/plain", b""),
        (502, "text/html", b"<html>Bad Gateway</html>"),
        (429, "application/json", b'{"error":"throttled"}'),
        (503, "application/json", b'{"message":"busy"}'),
    ],
    ids=["503-html", "500-empty", "502-html", "429-json-no-status", "503-json-no-status"],
)
def test_managed_identity_answer_without_a_status_is_transient(
    cloud: Cloud, scripted_endpoint: type[_Scripted], answer: tuple[int, str, bytes]
) -> None:
    """azure-identity raises a bare JSONDecodeError for a body that is not JSON, and "Token
    request error: (invalid_scope) None, ..." for JSON without statusCode: both were
    PermanentError, so a passing outage of the identity endpoint ended the item."""
    error = mi_failure(cloud, answer, scripted_endpoint)
    assert isinstance(error, TransientError), error
    assert "'(function identity)' (managedIdentity)" in str(error)


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ((400, "application/json", b'{"statusCode":400,"message":"bad resource"}'), "bad resource"),
        ((503, "application/json", b'{"statusCode":503,"message":"busy"}'), "HTTP 503"),
    ],
)
def test_managed_identity_answer_with_a_status_keeps_its_class(
    cloud: Cloud,
    scripted_endpoint: type[_Scripted],
    answer: tuple[int, str, bytes],
    match: str,
) -> None:
    error = mi_failure(cloud, answer, scripted_endpoint)
    expected = TransientError if answer[0] >= 500 else PermanentError
    assert isinstance(error, expected), error  # a RetryableStatus is a TransientError
    assert match in str(error)


def test_an_aadsts_refusal_without_a_status_stays_permanent() -> None:
    """The status-less message is transient only when nothing says the tenant refused."""
    from azure.identity import CredentialUnavailableError

    from sync.adapters.credentials import translate_error

    refused = CredentialUnavailableError(
        "App Service managed identity configuration not found in environment. "
        "Token request error: (invalid_scope) None, AADSTS700016: application not found"
    )
    unavailable = CredentialUnavailableError(
        "App Service managed identity configuration not found in environment. "
    )
    for exc in (refused, unavailable):
        error = translate_error(exc, name="mi", kind="managedIdentity", scrub=lambda t: t)
        assert type(error) is PermanentError, error


# --- 3. a refresh token never goes over plain http -----------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        type(self).seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"access_token":"AT","expires_in":3600}')


def test_refresh_token_is_not_posted_to_a_plain_http_authority(cloud: Cloud) -> None:
    handler = type("Recorder", (_Recorder,), {"seen": []})
    server = serve(handler, tls=False)
    try:
        authority = f"http://127.0.0.1:{server[0].server_address[1]}"
        tokens = build_token_provider(
            "pp-user",
            {"delegated": {"tenant": "t", "clientId": "c", "refreshToken": "kv:pp-user-refresh"}},
            cloud=replace(cloud, authority_host=authority),
            secrets=MemoryStore(pp_user_refresh="rt-SECRET-REFRESH"),
        )
        with pytest.raises(PermanentError) as caught:
            tokens.token(PP_SCOPE)
    finally:
        shutdown(*server)
    assert handler.seen == []
    message = str(caught.value)
    assert "endpoints.authorityHost" in message and "https" in message
    assert authority in message
    assert "rt-SECRET-REFRESH" not in message
