"""Health on real parts: the local stack (Azurite), a stopped Azurite, the local HTTPS vault, a
closed port, broken configuration; through the Functions route and the CLI."""

from __future__ import annotations

import json
import logging
import socket
import ssl
from dataclasses import replace

import azure.functions as func
import httpx
import pytest

from sync import settings as names
from sync.bootstrap import build
from sync.cli import main
from sync.health import check_health, probe_vault
from sync.models import SyncRequest
from sync.runs import run_inline
from tests.support.azurite import start_azurite
from tests.support.local_vault import start_local_vault

pytestmark = [pytest.mark.azurite, pytest.mark.reliability]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def health_function():
    # get_functions() may be called only once per FunctionApp: reuse the pipeline tests' cache
    from tests.pipeline.test_function_app import functions

    return functions()["health"].get_user_function()


def get_health():
    req = func.HttpRequest(method="GET", url="http://localhost/api/health", body=b"")
    resp = health_function()(req)
    return resp.status_code, json.loads(resp.get_body())


def checks(body):
    return {c["name"]: c for c in body["checks"]}


def test_health_answers_200_on_the_local_stack_with_each_targets_outcome_and_age(env):
    status, body = get_health()
    assert status == 200, body
    by_name = checks(body)
    assert by_name["config"]["ok"] and by_name["ledger"]["ok"] and by_name["queue"]["ok"]
    assert by_name["target:contoso-invoicing/dev"]["reason"] == "never synced"

    env.serve("openapi-v1.yaml")
    svc = env.service()
    run_inline(SyncRequest(api="contoso-invoicing", reason="cli"), svc.map, svc.ports, svc.pipeline)
    status, body = get_health()
    dev = checks(body)["target:contoso-invoicing/dev"]
    assert status == 200 and body["status"] == "healthy"
    assert dev["lastOutcome"] == "updated" and dev["version"] == 1
    assert isinstance(dev["ageSeconds"], int) and dev["ageSeconds"] >= 0
    assert checks(body)["queue"]["queued"] == 0


def test_a_failed_target_is_degraded_not_down(env):
    env.server.set_spec("/openapi.yaml", b"- not an object", "application/yaml")
    svc = env.service()
    run_inline(SyncRequest(api="contoso-invoicing", reason="cli"), svc.map, svc.ports, svc.pipeline)
    status, body = get_health()
    assert status == 200
    assert body["status"] == "degraded"
    dev = checks(body)["target:contoso-invoicing/dev"]
    assert dev["ok"] is False and dev["lastOutcome"] == "failed"
    assert "top level must be an object" in dev["reason"]


def test_stopped_storage_answers_503_naming_ledger_and_queue(stack):
    azurite = start_azurite()
    try:
        settings = replace(stack.settings, storage_connection_string=azurite.connection_string)
        svc = build(settings)
        running = check_health(svc)
        assert running.ok, running.to_dict()  # the separate emulator works while it runs
    except BaseException:
        azurite.stop()
        raise
    with azurite.stopped_and_held():
        report = check_health(svc)
    body = report.to_dict()
    assert report.http_status == 503, body
    assert {"ledger", "queue"} <= set(report.failing), body
    reasons = {c.name: c.reason for c in report.checks}
    assert "unreachable" in reasons["ledger"], body
    assert not any(c.name.startswith("target:") for c in report.checks)  # not probed when down
    assert "AccountKey" not in json.dumps(body)


def test_unreachable_vault_answers_503_naming_the_vault(env, monkeypatch):
    monkeypatch.setenv(names.KEY_VAULT_URL, f"https://127.0.0.1:{closed_port()}")
    status, body = get_health()
    assert status == 503
    assert body["failing"] == ["keyVault"]
    assert "unreachable" in checks(body)["keyVault"]["reason"]


def test_local_vault_answers_the_anonymous_challenge_and_no_secret_is_read(stack):
    vault = start_local_vault()
    try:
        vault.put("teams-webhook", "https://example.invalid/hook?sig=never-read")
        client = httpx.Client(verify=ssl.create_default_context(cafile=vault.ca_pem_path))
        with client:
            check = probe_vault(vault.url, client)
            assert check.ok, check
            svc = build(replace(stack.settings, key_vault_url=vault.url))
            assert check_health(svc, vault_client=client).ok
        assert vault.requests and all(r.authorization is None for r in vault.requests)
        assert all(r.path == "/secrets" for r in vault.requests)  # listed nothing by name
        assert all(r.status == 401 for r in vault.requests)
    finally:
        vault.stop()


def test_a_server_that_is_not_a_vault_fails_the_vault_check(stack):
    stack.serve("openapi-v1.yaml")  # answers 404 on /secrets without a Bearer challenge
    check = probe_vault(stack.server.base_url)
    assert not check.ok
    assert "without a Bearer challenge" in check.reason


def test_broken_map_answers_503_naming_the_key_path(env, monkeypatch):
    broken = env.root / "broken.yaml"
    broken.write_text(
        "apis:\n  contoso-invoicing:\n    spec: {url: 'ftp://nope'}\n    targets: []\n"
    )
    monkeypatch.setenv(names.SYNC_CONFIG, str(broken))
    status, body = get_health()
    assert status == 503
    assert body["failing"] == ["config"]
    assert "apis.contoso-invoicing" in checks(body)["config"]["path"]


def test_bad_app_setting_answers_503_naming_the_setting(env, monkeypatch):
    monkeypatch.setenv(names.LEASE_SECONDS, "soon")
    status, body = get_health()
    assert status == 503
    assert checks(body)["config"]["path"] == names.LEASE_SECONDS


@pytest.fixture
def keep_root_logging():
    """``main`` installs the CLI's stderr handler on the root logger; give the next test its own."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_status_command_exit_codes_and_json(env, monkeypatch, capsys, keep_root_logging):
    assert main(["status", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["status"] == "healthy"

    monkeypatch.setenv(names.KEY_VAULT_URL, f"https://127.0.0.1:{closed_port()}")
    assert main(["status"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("unhealthy") and "FAIL keyVault" in out

    missing = env.root / "nope.yaml"
    assert main(["status", "--config", str(missing)]) == 2
    assert "config" in capsys.readouterr().out
