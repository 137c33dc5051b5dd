"""Per-cloud hosts and token scopes, chosen by the sync map's ``cloud`` key.

The maker-portal, PowerApps API and Entra hosts differ per sovereign cloud; a unit test pins this
table. ``endpoints`` in the sync map overrides single hosts (simulators, special tenants).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Cloud:
    name: str
    authority_host: str  # Entra ID
    powerapps_url: str  # PowerApps resource provider (paconn's "powerAppsUrl")
    powerapps_scope: str  # token scope for it
    resource_manager: str  # ARM (APIM / API Center exports)
    key_vault_suffix: str
    maker_portal: str
    storage_suffix: str

    def arm_scope(self) -> str:
        return self.resource_manager.rstrip("/") + "/.default"

    def dataverse_scope(self, org_url: str) -> str:
        return org_url.rstrip("/") + "/.default"


CLOUDS: dict[str, Cloud] = {
    "public": Cloud(
        "public",
        "https://login.microsoftonline.com",
        "https://api.powerapps.com",
        "https://service.powerapps.com/.default",
        "https://management.azure.com",
        "vault.azure.net",
        "https://make.powerapps.com",
        "core.windows.net",
    ),
    "usgov": Cloud(  # GCC
        "usgov",
        "https://login.microsoftonline.com",
        "https://gov.api.powerapps.us",
        "https://gov.service.powerapps.us/.default",
        "https://management.usgovcloudapi.net",
        "vault.usgovcloudapi.net",
        "https://make.gov.powerapps.us",
        "core.usgovcloudapi.net",
    ),
    "usgovhigh": Cloud(  # GCC High
        "usgovhigh",
        "https://login.microsoftonline.us",
        "https://high.api.powerapps.us",
        "https://high.service.powerapps.us/.default",
        "https://management.usgovcloudapi.net",
        "vault.usgovcloudapi.net",
        "https://make.high.powerapps.us",
        "core.usgovcloudapi.net",
    ),
    "dod": Cloud(
        "dod",
        "https://login.microsoftonline.us",
        "https://api.apps.appsplatform.us",
        "https://service.apps.appsplatform.us/.default",
        "https://management.usgovcloudapi.net",
        "vault.usgovcloudapi.net",
        "https://make.apps.appsplatform.us",
        "core.usgovcloudapi.net",
    ),
    "china": Cloud(
        "china",
        "https://login.chinacloudapi.cn",
        "https://api.powerapps.cn",
        "https://service.powerapps.cn/.default",
        "https://management.chinacloudapi.cn",
        "vault.azure.cn",
        "https://make.powerapps.cn",
        "core.chinacloudapi.cn",
    ),
}


def cloud_for(name: str, endpoints: dict[str, Any] | None = None) -> Cloud:
    """The cloud profile with the map's explicit endpoint overrides applied."""
    cloud = CLOUDS[name]
    overrides = endpoints or {}
    mapping = {
        "powerApps": "powerapps_url",
        "authorityHost": "authority_host",
        "resourceManager": "resource_manager",
        "makerPortal": "maker_portal",
    }
    changes = {mapping[k]: str(v).rstrip("/") for k, v in overrides.items() if k in mapping}
    return replace(cloud, **changes) if changes else cloud
