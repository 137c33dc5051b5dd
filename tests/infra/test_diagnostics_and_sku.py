"""Operator gaps closed in infra/, checked on the parsed Bicep (pycep, through the checkov venv):

* diagnostic settings send the resource logs an operator needs to the template's own Log
  Analytics workspace: Key Vault ``AuditEvent`` (who read which secret), the function app's
  ``FunctionAppLogs``, ``StorageRead``/``StorageWrite``/``StorageDelete`` of the blob, queue and
  table services, and Event Grid ``DeliveryFailures`` (plus ``PublishFailures`` on the CI topic);
  one switch (``enableDiagnostics``) turns them all off;
* the storage account's replication is a parameter of main.bicep (``storageSku``,
  ``SYNC_STORAGE_SKU``) that reaches the account, with the same allowed list at both levels;
* the workspace retention is a parameter (``logRetentionInDays``, ``SYNC_LOG_RETENTION_DAYS``).

Category names are the documented ones for each resource type (Azure Monitor "supported logs"
pages); a misspelt category fails the deployment, so they are spelt out here rather than derived.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.bicep_tools import INFRA, parse_bicep, require_checkov

pytestmark = pytest.mark.infra

DIAGNOSTICS = "Microsoft.Insights/diagnosticSettings"
STORAGE_CATEGORIES = ["StorageRead", "StorageWrite", "StorageDelete"]
SKUS = [
    "Standard_LRS",
    "Standard_ZRS",
    "Standard_GRS",
    "Standard_RAGRS",
    "Standard_GZRS",
    "Standard_RAGZRS",
]


@pytest.fixture(scope="module")
def parsed() -> dict[str, dict]:
    require_checkov()
    files = ("main.bicep", "app/diagnostics.bicep", "app/system-topic.bicep", "app/storage.bicep")
    paths = [INFRA / name for name in files if (INFRA / name).is_file()]
    result = parse_bicep(*paths)
    # a missing file parses to {} so each test fails on what it looks for, not in the fixture
    return {name: result.get(str(INFRA / name), {}).get("ok", {}) for name in files}


def _unwrap(config: dict[str, Any]) -> dict[str, Any]:
    """pycep nests a conditional resource/module as {condition, config}."""
    return config["config"] if "condition" in config and "config" in config else config


def _allowed(param: dict[str, Any]) -> list[str]:
    return next(d["argument"] for d in param["decorators"] if d["type"] == "allowed")


def _settings(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: _unwrap(resource["config"])
        for name, resource in template["resources"].items()
        if resource["type"] == DIAGNOSTICS
    }


def _categories(setting: dict[str, Any], variables: dict[str, Any]) -> list[str]:
    logs = setting["properties"]["logs"]
    if isinstance(logs, str):  # a variable built with a for-loop over a list of categories
        loop = variables[logs]["value"]
        assert loop["config"] == {
            "category": loop["loop_type"]["detail"]["item_name"],
            "enabled": True,
        }
        return list(variables[loop["loop_type"]["detail"]["array_name"]]["value"])
    assert all(entry["enabled"] is True for entry in logs)
    return [entry["category"] for entry in logs]


def _target(setting: dict[str, Any], template: dict[str, Any]) -> str:
    """Resource type (and, for a child, its name) the setting is scoped to."""
    scoped = template["resources"][setting["scope"]]
    return scoped["type"]


def test_every_diagnostic_setting_has_the_right_target_and_categories(
    parsed: dict[str, dict],
) -> None:
    diagnostics = parsed["app/diagnostics.bicep"]
    variables = diagnostics["variables"]
    found = {
        _target(setting, diagnostics): _categories(setting, variables)
        for setting in _settings(diagnostics).values()
    }
    assert found == {
        "Microsoft.KeyVault/vaults": ["AuditEvent"],
        "Microsoft.Web/sites": ["FunctionAppLogs"],
        "Microsoft.Storage/storageAccounts/blobServices": STORAGE_CATEGORIES,
        "Microsoft.Storage/storageAccounts/queueServices": STORAGE_CATEGORIES,
        "Microsoft.Storage/storageAccounts/tableServices": STORAGE_CATEGORIES,
        "Microsoft.EventGrid/topics": ["DeliveryFailures", "PublishFailures"],
    }


def test_storage_settings_sit_on_the_default_services_of_the_account(
    parsed: dict[str, dict],
) -> None:
    resources = parsed["app/diagnostics.bicep"]["resources"]
    for service in ("blobService", "queueService", "tableService"):
        config = resources[service]["config"]
        assert resources[service]["existing"] is True
        assert config == {"parent": "storage", "name": "default"}
    assert resources["storage"]["config"] == {"name": "storageAccountName"}


def test_every_setting_goes_to_the_workspace_in_resource_specific_tables(
    parsed: dict[str, dict],
) -> None:
    diagnostics = parsed["app/diagnostics.bicep"]
    assert diagnostics["variables"]["destinationType"]["value"] == "Dedicated"
    for setting in _settings(diagnostics).values():
        props = setting["properties"]
        assert props["workspaceId"] == "workspaceId"
        assert props["logAnalyticsDestinationType"] == "destinationType"
        assert setting["name"] == "name"
        # no storage account or event hub copy, no metrics export: the platform keeps metrics
        assert set(props) == {"workspaceId", "logAnalyticsDestinationType", "logs"}
    topic = _settings(parsed["app/system-topic.bicep"])
    assert len(topic) == 1
    (setting,) = topic.values()
    assert setting["scope"] == "created"  # a reused (foreign) topic is not modified
    assert setting["properties"]["workspaceId"] == "diagnosticsWorkspaceId"
    assert setting["properties"]["logAnalyticsDestinationType"] == "Dedicated"
    assert [log["category"] for log in setting["properties"]["logs"]] == ["DeliveryFailures"]


def _accessor(value: Any) -> list[str]:
    """monitoring.outputs.workspaceId -> ["monitoring", "outputs", "workspaceId"]."""
    if isinstance(value, str):
        return [value]
    operands = value["operator"]["operands"]
    return _accessor(operands["operand_1"]) + _accessor(operands["operand_2"])


def test_main_wires_the_workspace_and_the_switch(parsed: dict[str, dict]) -> None:
    main = parsed["main.bicep"]
    switch = main["parameters"]["enableDiagnostics"]
    assert (switch["type"], switch["default"]) == ("bool", True)
    module = main["modules"]["diagnostics"]
    assert module["detail"]["path"] == "./app/diagnostics.bicep"
    assert module["config"]["condition"] == "enableDiagnostics"
    params = module["config"]["config"]["params"]
    assert _accessor(params["workspaceId"]) == ["monitoring", "outputs", "workspaceId"]
    assert _accessor(params["keyVaultName"]) == ["keyVault", "outputs", "name"]
    assert _accessor(params["functionAppName"]) == ["functionApp", "outputs", "name"]
    assert _accessor(params["storageAccountName"]) == ["storage", "outputs", "name"]
    topics = main["modules"]["systemTopics"]["config"]["config"]["params"]
    workspace = topics["diagnosticsWorkspaceId"]["operator"]
    assert workspace["type"] == "conditional"
    assert workspace["operands"]["condition"] == "enableDiagnostics"
    assert _accessor(workspace["operands"]["true_value"]) == [
        "monitoring",
        "outputs",
        "workspaceId",
    ]
    assert workspace["operands"]["false_value"] == ""
    # the workspace is the one Application Insights already writes to
    monitoring = (INFRA / "app" / "monitoring.bicep").read_text()
    assert "WorkspaceResourceId: workspace.id" in monitoring


def test_retention_is_a_parameter_passed_to_the_workspace(parsed: dict[str, dict]) -> None:
    main = parsed["main.bicep"]
    retention = main["parameters"]["logRetentionInDays"]
    assert retention["type"] == "int"
    assert retention["default"] == 30
    assert main["modules"]["monitoring"]["config"]["params"]["retentionInDays"] == (
        "logRetentionInDays"
    )


def test_storage_sku_is_a_main_parameter_that_reaches_the_account(parsed: dict[str, dict]) -> None:
    main = parsed["main.bicep"]
    sku = main["parameters"]["storageSku"]
    assert sku["type"] == "string"
    assert sku["default"] == "Standard_LRS"  # what the account used before the parameter existed
    assert _allowed(sku) == SKUS
    assert main["modules"]["storage"]["config"]["params"]["skuName"] == "storageSku"
    storage = parsed["app/storage.bicep"]
    assert _allowed(storage["parameters"]["skuName"]) == SKUS
    assert storage["resources"]["storage"]["config"]["sku"] == {"name": "skuName"}


def test_dead_letter_retention_is_a_main_parameter_that_reaches_the_rule(
    parsed: dict[str, dict],
) -> None:
    """Found in review on 2026-12-07: the storage module had the parameter but main.bicep did
    not pass it, so no operator could change the 30 days."""
    main = parsed["main.bicep"]
    days = main["parameters"]["deadLetterRetentionDays"]
    assert days["type"] == "int" and days["default"] == 30
    params = main["modules"]["storage"]["config"]["params"]
    assert params["deadLetterRetentionDays"] == "deadLetterRetentionDays"
    assert parsed["app/storage.bicep"]["parameters"]["deadLetterRetentionDays"]["default"] == 30


def test_new_parameters_map_to_azd_environment_values() -> None:
    doc = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert doc["storageSku"]["value"] == "${SYNC_STORAGE_SKU=Standard_LRS}"
    assert doc["enableDiagnostics"]["value"] == "${SYNC_ENABLE_DIAGNOSTICS=true}"
    assert doc["logRetentionInDays"]["value"] == "${SYNC_LOG_RETENTION_DAYS=30}"
    assert doc["deadLetterRetentionDays"]["value"] == "${SYNC_DEADLETTER_RETENTION_DAYS=30}"


def test_deploy_doc_lists_the_new_values_and_a_secret_read_query() -> None:
    doc = (INFRA.parent / "docs" / "deploy.md").read_text()
    for needle in (
        "`SYNC_STORAGE_SKU`",
        "`SYNC_ENABLE_DIAGNOSTICS`",
        "`SYNC_LOG_RETENTION_DAYS`",
        "`SYNC_DEADLETTER_RETENTION_DAYS`",
        "AZKVAuditLogs",
        'OperationName == "SecretGet"',
        "StorageBlobLogs",
        "FunctionAppLogs",
        "AegDeliveryFailureLogs",
    ):
        assert needle in doc, needle
