"""The per-cloud host table, endpoint overrides, and the lazy-import promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sync.adapters.credentials import KNOWN_AUTHORITY_HOSTS, _authority_kwargs
from sync.clouds import CLOUDS, cloud_for

ROOT = Path(__file__).resolve().parents[2]

# cloud: (authority, powerapps API, powerapps scope, ARM, Key Vault suffix, maker portal)
EXPECTED = {
    "public": (
        "https://login.microsoftonline.com",
        "https://api.powerapps.com",
        "https://service.powerapps.com/.default",
        "https://management.azure.com",
        "vault.azure.net",
        "https://make.powerapps.com",
    ),
    "usgov": (
        "https://login.microsoftonline.com",
        "https://gov.api.powerapps.us",
        "https://gov.service.powerapps.us/.default",
        "https://management.usgovcloudapi.net",
        "vault.usgovcloudapi.net",
        "https://make.gov.powerapps.us",
    ),
    "usgovhigh": (
        "https://login.microsoftonline.us",
        "https://high.api.powerapps.us",
        "https://high.service.powerapps.us/.default",
        "https://management.usgovcloudapi.net",
        "vault.usgovcloudapi.net",
        "https://make.high.powerapps.us",
    ),
    "dod": (
        "https://login.microsoftonline.us",
        "https://api.apps.appsplatform.us",
        "https://service.apps.appsplatform.us/.default",
        "https://management.usgovcloudapi.net",
        "vault.usgovcloudapi.net",
        "https://make.apps.appsplatform.us",
    ),
    "china": (
        "https://login.chinacloudapi.cn",
        "https://api.powerapps.cn",
        "https://service.powerapps.cn/.default",
        "https://management.chinacloudapi.cn",
        "vault.azure.cn",
        "https://make.powerapps.cn",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cloud_table_is_pinned(name: str) -> None:
    c = CLOUDS[name]
    actual = (
        c.authority_host,
        c.powerapps_url,
        c.powerapps_scope,
        c.resource_manager,
        c.key_vault_suffix,
        c.maker_portal,
    )
    assert actual == EXPECTED[name]
    assert c.arm_scope() == EXPECTED[name][3] + "/.default"
    # sovereign authorities are known to MSAL: instance discovery stays on for them
    assert _authority_kwargs(c) == {"authority": c.authority_host}


def test_no_cloud_is_missing_from_the_pin() -> None:
    assert set(CLOUDS) == set(EXPECTED)
    assert {v[0] for v in EXPECTED.values()} == KNOWN_AUTHORITY_HOSTS


def test_endpoint_overrides() -> None:
    c = cloud_for(
        "usgovhigh",
        {
            "authorityHost": "https://127.0.0.1:8443/",
            "powerApps": "http://127.0.0.1:9000",
            "resourceManager": "https://arm.local/",
            "makerPortal": "https://maker.local",
        },
    )
    assert c.authority_host == "https://127.0.0.1:8443"
    assert c.powerapps_url == "http://127.0.0.1:9000"
    assert c.resource_manager == "https://arm.local"
    assert c.maker_portal == "https://maker.local"
    assert c.powerapps_scope == EXPECTED["usgovhigh"][2]  # the scope is not an endpoint
    assert _authority_kwargs(c) == {
        "authority": "https://127.0.0.1:8443",
        "disable_instance_discovery": True,
    }
    assert cloud_for("public") is CLOUDS["public"]
    assert cloud_for("china").dataverse_scope("https://org.crm.dynamics.cn/") == (
        "https://org.crm.dynamics.cn/.default"
    )


def test_importing_the_adapters_loads_no_azure_sdk() -> None:
    code = (
        "import sys, sync.adapters.credentials, sync.adapters.keyvault, "
        "sync.adapters.secrets_env, sync.credential_cli\n"
        "print(sorted(m for m in sys.modules if m.startswith(('azure', 'msal'))))"
    )
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
    assert "azure.identity" not in out.stderr
    assert "azure.keyvault" not in out.stderr
