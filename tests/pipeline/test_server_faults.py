"""A failure on the service's side is a 500, never a 400 that blames the caller's request.

Found in review on 2026-12-07: storage refusing the app (a role not yet granted after a deploy, a
wrong key locally) and a stored row the service cannot read were ``PermanentError``s, which the
HTTP layer answered 400; Event Grid never retries a 400, so a webhook delivery met by either was
dead-lettered or lost. A malformed storage endpoint setting escaped as a bare 500 from the host,
without the configuration error that names the setting. Real Azurite, real azure.functions
objects."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sync import settings as names
from tests.pipeline.test_function_app import http

pytestmark = pytest.mark.azurite

API = "contoso-invoicing"


def post_sync() -> Any:
    body = json.dumps({"api": API, "targets": ["dev"]}).encode()
    return http("sync_api", "POST", "http://localhost/api/sync", body)


def test_storage_refusing_the_app_is_a_500_naming_the_ledger_call(env, monkeypatch) -> None:
    env.serve("openapi-v1.yaml")
    good = env.settings.storage_connection_string
    parts = dict(p.split("=", 1) for p in good.split(";") if p)
    parts["AccountKey"] = base64.b64encode(b"w" * 64).decode()  # storage now answers 403
    monkeypatch.setenv(
        names.STORAGE_CONNECTION_STRING, ";".join(f"{k}={v}" for k, v in parts.items())
    )
    for resp in (
        http("run_status", "GET", "http://localhost/api/runs/abc", route={"id": "abc"}),
        post_sync(),
    ):
        assert resp.status_code == 500, resp.get_body()
        error = json.loads(resp.get_body())["error"]
        assert error["code"] == "StorageError"
        assert "storage answered HTTP 403" in error["message"]
        assert error["field"].startswith("ledger.")


def test_a_run_row_the_service_cannot_read_is_a_500(env) -> None:
    from azure.data.tables import TableClient, UpdateMode

    env.serve("openapi-v1.yaml")
    run_id = json.loads(post_sync().get_body())["runId"]
    table = TableClient.from_connection_string(
        env.settings.storage_connection_string, table_name=env.settings.ledger_table
    )
    row = table.get_entity("runs", run_id)
    row["Targets"] = "not json"  # a hand edit, or a row another release left
    table.update_entity(row, mode=UpdateMode.REPLACE)
    resp = http("run_status", "GET", f"http://localhost/api/runs/{run_id}", route={"id": run_id})
    assert resp.status_code == 500, resp.get_body()
    assert json.loads(resp.get_body())["error"]["code"] == "LedgerCorruptError"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        (names.TABLE_ENDPOINT, "https://[acct.table.core.windows.net"),
        (names.TABLE_ENDPOINT, "https://"),
    ],
)
def test_a_malformed_storage_endpoint_is_a_configuration_error_naming_it(
    env, monkeypatch, setting: str, value: str
) -> None:
    monkeypatch.delenv(names.STORAGE_CONNECTION_STRING)
    for each in (names.TABLE_ENDPOINT, names.QUEUE_ENDPOINT, names.BLOB_ENDPOINT):
        monkeypatch.setenv(each, f"https://127.0.0.1:1/{each.lower()}")
    monkeypatch.setenv(setting, value)
    env.serve("openapi-v1.yaml")
    resp = post_sync()
    assert resp.status_code == 500, resp.get_body()
    error = json.loads(resp.get_body())["error"]
    assert error["code"] == "ConfigError" and error["path"] == setting
