"""The SDKs a sync uses are imported on the thread that starts it, before the sync's own threads
(``sync.adapters.sdk_imports``): checked in fresh processes, a CLI run and the queue trigger's
first item, with an audit hook that records which thread first imports each SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync import settings as names
from sync.adapters.sdk_imports import import_sdks, needed
from sync.config import parse_map
from sync.settings import Settings
from tests.pipeline.conftest import Stack
from tests.pipeline.test_powerplatform_e2e import powerapps_map
from tests.simulators.powerplatform import Simulator
from tests.support.identity_env import AZURE_ENV

ROOT = Path(__file__).resolve().parents[2]
TABLES = "azure.data.tables"
IDENTITY = "azure.identity"
TRANSPORT = "azure.core.pipeline.transport._requests_basic"  # requests', for azure-identity
HTTPX_TRANSPORT = "azure.core.rest._http_response_impl"  # what the storage clients' transport uses

# Records, for each watched module, whether the main thread imported it first; printed when the
# process ends (sync.process_exit.finish skips the interpreter's teardown, so no atexit).
HOOK = f"""
import json, sys, threading
WATCH = {[TABLES, IDENTITY, TRANSPORT, HTTPX_TRANSPORT]!r}
first = {{}}

def hook(event, args):
    if event == "import" and args[0] in WATCH and args[0] not in first:
        first[args[0]] = threading.current_thread().name

sys.addaudithook(hook)

def report():
    sys.stderr.write("FIRST-IMPORTS " + json.dumps(first) + "\\n")
    sys.stderr.flush()
"""


def first_importers(code: str, env: dict[str, str]) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", HOOK + code],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [line] = [x for x in done.stderr.splitlines() if x.startswith("FIRST-IMPORTS ")]
    return json.loads(line.removeprefix("FIRST-IMPORTS "))


def app_env() -> dict[str, str]:
    """The process environment as the ``env`` fixture set it (the stack's app settings, beside
    the local managed identity's variables), with secrets read from it."""
    return {**os.environ, names.SECRETS_FROM_ENV: "1"}


# The map's credential for the connector, and the SDKs a first sync imports (all on the main
# thread): the App Service managed identity is ours (sync.adapters.app_service_identity), so
# azure-identity is not imported at all; the ``default`` kind goes through azure-identity.
CREDENTIALS = [
    pytest.param({"managedIdentity": {}}, {TABLES, HTTPX_TRANSPORT}, id="app-service-identity"),
    pytest.param(
        {"default": {}}, {TABLES, HTTPX_TRANSPORT, TRANSPORT, IDENTITY}, id="azure-identity"
    ),
]


def with_credential(stack: Stack, credential: dict) -> None:
    raw = json.loads(stack.map_path.read_text())
    raw["credentials"]["func"] = credential
    stack.map_path.write_text(json.dumps(raw))


@pytest.mark.azurite
@pytest.mark.parametrize(("credential", "imported"), CREDENTIALS)
def test_a_cli_run_imports_the_sdks_it_uses_on_its_main_thread(
    env: Stack, sim: Simulator, identity, credential: dict, imported: set[str]
) -> None:
    stack = env
    powerapps_map(stack, sim)
    with_credential(stack, credential)
    stack.serve("openapi-v1.yaml")
    code = (
        "import runpy, sync.process_exit as process_exit\n"
        "finish = process_exit.finish\n"
        "process_exit.finish = lambda code: (report(), finish(code))\n"
        "sys.argv = ['sync', 'run', '--json']\n"
        "runpy.run_module('sync', run_name='__main__')\n"
    )
    first = first_importers(code, app_env())
    assert first == dict.fromkeys(imported, "MainThread")
    state = stack.service().ports.ledger.state("contoso-invoicing", "prod")
    assert state.last_outcome == "updated"  # the run did its work after the imports


@pytest.mark.azurite
@pytest.mark.parametrize(("credential", "imported"), CREDENTIALS)
def test_the_queue_triggers_first_item_imports_the_sdks_it_uses_on_its_own_thread(
    env: Stack, sim: Simulator, identity, credential: dict, imported: set[str]
) -> None:
    """Without the import ahead, the connector read's thread imported azure-identity."""
    from sync.models import RunSummary, SyncRequest, WorkItem, iso, new_run_id, utcnow

    stack = env
    powerapps_map(stack, sim)
    with_credential(stack, credential)
    stack.serve("openapi-v1.yaml")
    request = SyncRequest(api="contoso-invoicing", reason="test")
    run_id = new_run_id()
    run = RunSummary(
        run_id=run_id, api=request.api, request=request, targets=("prod",), created_at=iso(utcnow())
    )
    stack.service().ports.ledger.start_run(run)  # as the planner does before it enqueues
    item = WorkItem(run_id=run_id, api=request.api, target="prod", request=request)
    code = f"from sync import triggers\ntriggers.on_work_item({json.dumps(item.to_dict())!r})\n"
    first = first_importers(code + "report()\n", app_env())
    assert first == dict.fromkeys(imported, "MainThread")
    state = stack.service().ports.ledger.state("contoso-invoicing", "prod")
    assert state.last_outcome == "updated"


PROXY_NAMES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "netrc")


def map_of(raw: dict) -> object:
    return parse_map(raw, source="test", base_dir=Path("."))


def api(targets: list[dict], spec: dict | None = None) -> dict:
    return {"spec": spec or {"url": "https://a.example/s.json"}, "targets": targets}


PP = {"name": "prod", "powerapps": {"environment": "Default-1", "credential": "pp"}}
FOLDER = {"name": "dev", "folder": "out"}
GUID = "7c3bd0b4-8a55-4a63-9c59-1c0f4b6f1a11"
APIM = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/m"
STORAGE = Settings(storage_connection_string="UseDevelopmentStorage=true")


@pytest.mark.parametrize(
    ("settings", "raw", "expected"),
    [
        pytest.param(
            STORAGE,
            {"apis": {"a": api([PP])}, "credentials": {"pp": {"managedIdentity": {}}}},
            ["tables", "identity"],
            id="managed-identity-target",
        ),
        pytest.param(
            STORAGE,
            {"apis": {"a": api([FOLDER])}},
            ["tables"],
            id="folder-target",
        ),
        pytest.param(
            Settings(),
            {"apis": {"a": api([FOLDER])}},
            [],
            id="dry-run-without-storage",
        ),
        pytest.param(
            Settings(table_endpoint="https://acct.table.core.windows.net"),
            {"apis": {"a": api([FOLDER])}},
            ["tables", "identity"],
            id="ledger-by-endpoint-signs-in",
        ),
        pytest.param(
            STORAGE,
            {
                "apis": {"a": api([PP])},
                "credentials": {
                    "pp": {"delegated": {"tenant": "t", "clientId": GUID, "refreshToken": "kv:r"}}
                },
            },
            ["tables"],
            id="delegated-grant-is-ours",
        ),
        pytest.param(
            STORAGE,
            {
                "apis": {
                    "a": api(
                        [FOLDER],
                        spec={"apimExport": {"service": APIM, "api": "orders"}},
                    )
                }
            },
            ["tables", "identity"],
            id="arm-export-uses-the-function-identity",
        ),
    ],
)
def test_needed_names_what_the_wiring_will_import(settings, raw, expected, no_identity_env) -> None:
    assert needed(settings, map_of(raw), ["a"]) == expected


@pytest.fixture
def no_identity_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No platform identity variables, whatever the shell running the tests has."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def app_service_env(no_identity_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:8081/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "header-value")


@pytest.mark.parametrize(
    ("credential", "expected"),
    [
        pytest.param({"managedIdentity": {}}, ["tables"], id="managed-identity"),
        pytest.param({"default": {}}, ["tables", "identity"], id="default"),
        pytest.param(
            {"federated": {"tenant": "t", "clientId": GUID}},
            ["tables", "identity"],
            id="federated-exchange",
        ),
    ],
)
def test_an_app_service_managed_identity_needs_no_azure_identity(
    credential, expected, app_service_env
) -> None:
    raw = {"apis": {"a": api([PP])}, "credentials": {"pp": credential}}
    assert needed(STORAGE, map_of(raw), ["a"]) == expected


def test_the_function_identity_needs_no_azure_identity_on_app_service(app_service_env) -> None:
    raw = {"apis": {"a": api([FOLDER], spec={"apimExport": {"service": APIM, "api": "orders"}})}}
    assert needed(STORAGE, map_of(raw), ["a"]) == ["tables"]
    by_endpoint = Settings(table_endpoint="https://acct.table.core.windows.net")
    assert needed(by_endpoint, map_of({"apis": {"a": api([FOLDER])}}), ["a"]) == ["tables"]


def test_service_fabric_keeps_azure_identity(app_service_env, monkeypatch) -> None:
    """Service Fabric sets the same two variables, plus a thumbprint only azure-identity checks."""
    monkeypatch.setenv("IDENTITY_SERVER_THUMBPRINT", "AB" * 20)
    raw = {"apis": {"a": api([PP])}, "credentials": {"pp": {"managedIdentity": {}}}}
    assert needed(STORAGE, map_of(raw), ["a"]) == ["tables", "identity"]


def test_needed_ignores_an_api_the_map_does_not_have(no_identity_env) -> None:
    raw = {"apis": {"a": api([PP])}, "credentials": {"pp": {"managedIdentity": {}}}}
    assert needed(STORAGE, map_of(raw), ["missing"]) == ["tables"]


def test_import_sdks_imports_only_what_it_is_asked_for() -> None:
    code = (
        "import json, sys\n"
        "from sync.adapters.sdk_imports import import_sdks\n"
        "import_sdks(['tables'])\n"
        f"print(json.dumps([m in sys.modules for m in {[TABLES, HTTPX_TRANSPORT, TRANSPORT, IDENTITY, 'requests']!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k.lower() not in PROXY_NAMES},
    )
    assert json.loads(done.stdout) == [True, True, False, False, False]


def test_an_unknown_sdk_name_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        import_sdks(["nope"])
