"""Small hand-written connector documents for the adapter tests."""

from __future__ import annotations

import copy
from typing import Any

DEFINITION: dict[str, Any] = {
    "swagger": "2.0",
    "info": {"title": "Contoso Invoicing", "description": "Invoices of Contoso.", "version": "1.0"},
    "host": "contoso-invoicing.azurewebsites.net",
    "basePath": "/api",
    "schemes": ["https"],
    "paths": {
        "/invoices": {
            "get": {
                "operationId": "ListInvoices",
                "summary": "List invoices",
                "responses": {"200": {"description": "OK"}},
            }
        }
    },
}

OAUTH_PROPERTIES: dict[str, Any] = {
    "connectionParameters": {
        "token": {
            "type": "oauthSetting",
            "oAuthSettings": {
                "identityProvider": "oauth2",
                "clientId": "client-id-1",
                "scopes": ["read"],
                "redirectMode": "Global",
                "redirectUrl": "https://global.consent.azure-apim.net/redirect",
                "properties": {"IsFirstParty": "False"},
                "customParameters": {
                    "authorizationUrl": {"value": "https://idp.example/authorize"}
                },
            },
        }
    },
    "iconBrandColor": "#da3b01",
    "capabilities": [],
    "policyTemplateInstances": [
        {
            "templateId": "setheader",
            "title": "x-api-version",
            "parameters": {
                "x-ms-apimTemplateParameter.name": "x-api-version",
                "x-ms-apimTemplateParameter.value": "2",
                "x-ms-apimTemplateParameter.existsAction": "override",
                "x-ms-apimTemplate-policySection": "Request",
            },
        }
    ],
    "scriptOperations": ["ListInvoices"],
    "publisher": "Contoso",
    "stackOwner": "Contoso",
}

APIKEY_PROPERTIES: dict[str, Any] = {
    "connectionParameters": {
        "api_key": {
            "type": "securestring",
            "uiDefinition": {
                "displayName": "API Key",
                "description": "The key",
                "tooltip": "Provide your key",
                "constraints": {"tabIndex": 2, "clearText": False, "required": "true"},
            },
        }
    },
    "iconBrandColor": "#da3b01",
    "capabilities": [],
}


def changed(definition: dict[str, Any]) -> dict[str, Any]:
    """The same API with one more operation (what a new deployment looks like)."""
    doc = copy.deepcopy(definition)
    doc["info"]["version"] = "1.1"
    doc["paths"]["/invoices/{id}"] = {
        "get": {
            "operationId": "GetInvoice",
            "summary": "Get an invoice",
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "type": "string",
                    "x-ms-url-encoding": "single",
                }
            ],
            "responses": {"200": {"description": "OK"}},
        }
    }
    return doc
