"""Review fixes of the health endpoint: a malformed ``SYNC_KEY_VAULT_URL`` is a failing keyVault
check naming an invalid URL (not the host's 500), and a probe that raises anything unexpected
becomes that probe's failed check, so ``GET /api/health`` always answers."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import httpx
import pytest

from sync import settings as names
from sync.bootstrap import build
from sync.health import check_health, probe_vault
from tests.ops.test_health import checks, get_health

pytestmark = [pytest.mark.azurite, pytest.mark.reliability]

CONNECTION_STRING_BY_MISTAKE = (
    "DefaultEndpointsProtocol=https;AccountName=kv;AccountKey=c2VjcmV0LWtleS1ub3QtcmVhbA=="
)


@pytest.mark.parametrize(
    "url",
    [
        "https://kv..vault.azure.net",  # an empty DNS label: UnicodeError from the idna codec
        "https://" + "k" * 70 + ".vault.azure.net",  # a label over 63: UnicodeError too
        "https://kv.vault.azure.net:abc",  # httpx.InvalidURL
        "kv.vault.azure.net",  # no scheme: httpx.UnsupportedProtocol
        CONNECTION_STRING_BY_MISTAKE,  # a value pasted into the wrong setting
    ],
)
def test_a_malformed_vault_url_is_a_failing_check_naming_an_invalid_url(url: str) -> None:
    check = probe_vault(url)
    assert check.name == "keyVault" and check.ok is False and check.critical
    assert check.reason.startswith("invalid URL"), check
    assert check.detail == {"path": names.KEY_VAULT_URL}  # the value itself is not echoed


def test_health_route_answers_503_for_a_malformed_vault_url(env, monkeypatch) -> None:
    monkeypatch.setenv(names.KEY_VAULT_URL, "https://kv..vault.azure.net")
    status, body = get_health()
    assert status == 503, body
    assert body["failing"] == ["keyVault"]
    vault = checks(body)["keyVault"]
    assert vault["reason"].startswith("invalid URL") and vault["path"] == names.KEY_VAULT_URL


def test_a_secret_in_the_vault_setting_is_not_echoed_by_health(env, monkeypatch) -> None:
    monkeypatch.setenv(names.KEY_VAULT_URL, CONNECTION_STRING_BY_MISTAKE)
    status, body = get_health()
    assert status == 503 and body["failing"] == ["keyVault"], body
    assert "AccountKey" not in json.dumps(body)


def test_a_probe_that_raises_unexpectedly_is_that_probes_failed_check(stack) -> None:
    """A closed httpx client raises RuntimeError, no httpx error: the report still comes back,
    with the other parts probed and only keyVault failing, its reason naming no message."""
    svc = build(replace(stack.settings, key_vault_url="https://kv.vault.azure.net"))
    closed = httpx.Client()
    closed.close()
    report = check_health(svc, vault_client=closed)
    by_name = {c.name: c for c in report.checks}
    assert report.http_status == 503 and report.failing == ["keyVault"], report.to_dict()
    assert by_name["keyVault"].reason == "probe failed (RuntimeError)"
    assert by_name["ledger"].ok and by_name["queue"].ok
    assert any(name.startswith("target:") for name in by_name)


def test_target_checks_that_raise_unexpectedly_are_one_informational_failed_check(stack) -> None:
    """The state rows are informational: a reader that breaks unexpectedly degrades the answer
    (200), it does not take the endpoint down."""
    svc = build(stack.settings)

    class BrokenLedger:
        def state(self, api: str, target: str) -> None:
            raise KeyError("PartitionKey")  # e.g. a row of an unexpected shape

    broken = SimpleNamespace(settings=svc.settings, map=svc.map, ports=SimpleNamespace())
    broken.ports.ledger = BrokenLedger()
    report = check_health(broken)
    body = report.to_dict()
    assert report.http_status == 200 and body["status"] == "degraded", body
    failed = [c for c in report.checks if not c.ok]
    assert [(c.name, c.critical, c.reason) for c in failed] == [
        ("targets", False, "probe failed (KeyError)")
    ]


def test_a_well_formed_wrong_vault_url_is_not_echoed_with_its_signature() -> None:
    """A storage SAS pasted into SYNC_KEY_VAULT_URL parsed as a URL, and /api/health answered
    it whole, signature and all (found by review 2026-12-07)."""
    import httpx

    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    check = probe_vault("https://acct.blob.core.windows.net/c?sv=2024&sig=SECRETSIG", client)
    assert check.ok is False
    assert "SECRETSIG" not in repr(check.to_dict())


def test_the_probes_share_one_storage_credential_and_its_token(monkeypatch):
    """Each probe made its own credential, so one health call fetched three storage tokens (the
    ledger and both queues) and every call fetched them again (found in review on 2026-12-07)."""
    from sync import health
    from sync.adapters import app_service_identity

    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "hdr-value-123456")
    monkeypatch.delenv("IDENTITY_SERVER_THUMBPRINT", raising=False)
    for name in (
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_USERNAME",
        "AZURE_CLIENT_CERTIFICATE_PATH",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(health, "_CREDENTIAL", [], raising=False)
    fetched: list[str] = []

    def fake_call(self, scope):
        fetched.append(scope)
        return "tok" + "x" * 20, 4_102_444_800.0

    monkeypatch.setattr(app_service_identity.AppServiceIdentity, "__call__", fake_call)
    for _ in range(3):  # three probes, or three health calls
        health._storage_credential(None).get_token("https://storage.azure.com/.default")
    assert len(fetched) == 1
