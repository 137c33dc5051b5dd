"""Bicep gates: checkov finds no failed check and no parsing error, every skip carries a reason,
and the function app's settings are exactly the names the code reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sync import settings
from tests.infra.bicep_tools import INFRA, parse_bicep, require_checkov, run_checkov

pytestmark = pytest.mark.infra

BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
SKIP_COMMENT = re.compile(r"checkov:skip=([A-Z0-9_]+)(:?)\s*(.*)")


@pytest.fixture(scope="module")
def parsed() -> dict[str, dict]:
    require_checkov()
    return parse_bicep(*BICEP_FILES)


def test_every_bicep_file_parses(parsed: dict[str, dict]) -> None:
    errors = {Path(k).name: v["error"] for k, v in parsed.items() if "error" in v}
    assert not errors
    assert len(parsed) == len(BICEP_FILES) >= 10


def test_checkov_finds_no_failed_checks_and_no_parsing_errors() -> None:
    require_checkov()
    report = run_checkov(INFRA)
    failed = [(c["check_id"], c["resource"]) for c in report.failed_checks]
    assert report.parsing_errors == 0
    assert failed == []
    assert report.passed > 0


def test_checkov_gate_reports_a_broken_file(tmp_path: Path) -> None:
    """A syntax error makes checkov exit 0; the gate must see it through parsing_errors."""
    require_checkov()
    (tmp_path / "broken.bicep").write_text(
        "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n  properties: {\n"
    )
    report = run_checkov(tmp_path)
    assert report.parsing_errors > 0


def test_checkov_gate_reports_an_insecure_resource(tmp_path: Path) -> None:
    require_checkov()
    (tmp_path / "weak.bicep").write_text(
        "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n"
        "  name: 'weak'\n  location: 'westeurope'\n  kind: 'StorageV2'\n"
        "  sku: {\n    name: 'Standard_LRS'\n  }\n"
        "  properties: {\n    minimumTlsVersion: 'TLS1_0'\n    supportsHttpsTrafficOnly: false\n  }\n}\n"
    )
    report = run_checkov(tmp_path)
    assert {"CKV_AZURE_3", "CKV_AZURE_44"} <= {c["check_id"] for c in report.failed_checks}


def test_every_checkov_skip_has_a_reason() -> None:
    for path in BICEP_FILES:
        for line in path.read_text().splitlines():
            if "checkov:skip" not in line:
                continue
            assert line.strip().startswith("//"), f"{path.name}: skip must be a // comment: {line}"
            match = SKIP_COMMENT.search(line)
            assert match, f"{path.name}: malformed skip: {line}"
            assert match.group(2) == ":" and len(match.group(3)) >= 20, (
                f"{path.name}: skip {match.group(1)} needs a reason: {line}"
            )


def _app_settings(parsed: dict[str, dict]) -> dict:
    """The appsettings config of the site (pycep flattens the nested child to "site__child")."""
    function = parsed[str(INFRA / "app" / "function.bicep")]["ok"]
    configs = [
        r["config"]
        for r in function["resources"].values()
        if r["type"] == "Microsoft.Web/sites/config" and r["config"].get("name") == "appsettings"
    ]
    assert len(configs) == 1, "function.bicep must have exactly one appsettings config resource"
    return configs[0]["properties"]


def test_function_app_sets_every_app_setting_the_code_reads(parsed: dict[str, dict]) -> None:
    names = set(_app_settings(parsed))
    missing = set(settings.APP_SETTINGS) - names
    assert not missing


def test_function_app_sets_no_local_or_unknown_settings(parsed: dict[str, dict]) -> None:
    names = set(_app_settings(parsed))
    assert not set(settings.LOCAL_SETTINGS) & names
    unknown_sync = {n for n in names if n.startswith("SYNC_")} - set(settings.APP_SETTINGS)
    assert not unknown_sync
    assert "FUNCTIONS_WORKER_RUNTIME" not in names


def test_function_app_platform_settings(parsed: dict[str, dict]) -> None:
    values = _app_settings(parsed)
    assert values["PYTHON_ISOLATE_WORKER_DEPENDENCIES"] == "1"
    assert values["AZURE_CLIENT_ID"] == "identityClientId"
    assert values["AzureWebJobsStorage__credential"] == "managedidentity"
    assert values["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert "AzureWebJobsStorage__queueServiceUri" in values
    assert values["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identityClientId};Authorization=AAD"
    )
    assert not any("ConnectionString" in k and k.startswith("AzureWebJobs") for k in values)


def test_flex_function_app_config(parsed: dict[str, dict]) -> None:
    function = parsed[str(INFRA / "app" / "function.bicep")]["ok"]
    site = function["resources"]["functionApp"]["config"]
    assert site["kind"] == "functionapp,linux"
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["alwaysOn"] is False
    config = props["functionAppConfig"]
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    assert config["runtime"]["name"] == "python"
    assert function["parameters"]["pythonVersion"]["default"] == "3.11"
    assert set(config["scaleAndConcurrency"]) == {"instanceMemoryMB", "maximumInstanceCount"}


def test_storage_and_vault_are_locked_down(parsed: dict[str, dict]) -> None:
    storage = parsed[str(INFRA / "app" / "storage.bicep")]["ok"]["resources"]["storage"]["config"]
    props = storage["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    vault = parsed[str(INFRA / "app" / "keyvault.bicep")]["ok"]
    vprops = vault["resources"]["vault"]["config"]["properties"]
    assert vprops["enableRbacAuthorization"] is True
    assert vprops["enableSoftDelete"] is True
    assert vault["parameters"]["enablePurgeProtection"]["default"] is True


def test_role_assignments_are_named_by_scope_principal_and_role() -> None:
    """guid(scope.id, principal, role), principalType set, and a comment naming each role GUID."""
    role_line = re.compile(r"'([0-9a-f-]{36})'( // (.+))?$")
    for path in BICEP_FILES:
        text = path.read_text()
        for block in re.findall(
            r"resource \w+ 'Microsoft\.Authorization/roleAssignments@[^']+' = .*?\n}", text, re.S
        ):
            assert re.search(r"name: guid\(\w+\.id, \w+, \w+(\.\w+)?\)", block), (path.name, block)
            assert "principalType:" in block, (path.name, block)
        for line in text.splitlines():
            match = role_line.search(line.strip())
            if match and "roleDefinitions" not in line:
                assert match.group(3), f"{path.name}: role id without a comment naming it: {line}"


def test_outputs_are_upper_snake(parsed: dict[str, dict]) -> None:
    outputs = parsed[str(INFRA / "main.bicep")]["ok"]["outputs"]
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in outputs)
    for needed in (
        "AZURE_FUNCTION_APP_NAME",
        "AZURE_FUNCTION_APP_ID",
        "AZURE_RESOURCE_GROUP",
        "AZURE_KEY_VAULT_URL",
        "SYNC_TABLE_ENDPOINT",
        "SYNC_QUEUE_ENDPOINT",
        "SYNC_BLOB_ENDPOINT",
        "EVENTGRID_DEADLETTER_CONTAINER_ID",
        "EVENTGRID_SYSTEM_TOPICS",
        "EVENTGRID_CI_TOPIC_ID",
    ):
        assert needed in outputs


def test_main_is_subscription_scoped_with_azd_conventions(parsed: dict[str, dict]) -> None:
    main = parsed[str(INFRA / "main.bicep")]["ok"]
    assert main["globals"]["scope"]["value"] == "subscription"
    params = main["parameters"]
    assert {"environmentName", "location", "principalId"} <= set(params)
    text = (INFRA / "main.bicep").read_text()
    assert "'azd-env-name': environmentName" in text
    assert "loadJsonContent('./abbreviations.json')" in text
    doc = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert doc["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert doc["location"]["value"] == "${AZURE_LOCATION}"
    assert doc["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    assert set(doc) <= set(params), (
        f"parameters.json names unknown params: {set(doc) - set(params)}"
    )
    abbreviations = json.loads((INFRA / "abbreviations.json").read_text())
    used = set(re.findall(r"abbrs\.(\w+)", text))
    assert used <= set(abbreviations)


def test_staged_specs_are_deleted_after_the_poison_queue_lets_go_of_their_messages(
    parsed: dict[str, dict],
) -> None:
    """A caller's signed spec is staged in the ledger container when its run is planned
    (``sync.staging``); a lifecycle rule deletes those blobs, and only those, 8 days after their
    last write: a message that names one lives 7 days in the poison queue at most."""
    storage = parsed[str(INFRA / "app" / "storage.bicep")]["ok"]["resources"]
    [policy] = [r["config"] for r in storage.values() if r["type"].endswith("/managementPolicies")]
    assert policy["name"] == "default"
    rule, dead_letters = policy["properties"]["policy"]["rules"]
    assert rule["enabled"] is True and rule["type"] == "Lifecycle"
    filters = rule["definition"]["filters"]
    assert filters["blobTypes"] == ["blockBlob"]
    assert filters["prefixMatch"] == ["${ledgerContainerName}/_staged/"]
    delete = rule["definition"]["actions"]["baseBlob"]["delete"]
    assert delete == {"daysAfterModificationGreaterThan": 8}
    # Dead-lettered events go too (one that failed to plan holds the caller's signed specUrl):
    # found in review on 2026-12-07, the container had no rule and kept them for ever.
    assert dead_letters["enabled"] is True and dead_letters["type"] == "Lifecycle"
    assert dead_letters["definition"]["filters"]["prefixMatch"] == ["${deadLetterContainerName}/"]
    kept = dead_letters["definition"]["actions"]["baseBlob"]["delete"]
    assert kept == {"daysAfterModificationGreaterThan": "deadLetterRetentionDays"}
