"""Events to real Power Platform adapters: the strict simulator (proven with paconn), the real
azure-identity managed-identity credential against a local token endpoint, the whole pipeline."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from sync.bootstrap import build
from sync.triggers import plan
from sync.worker_loop import drain
from tests.pipeline.conftest import ENV, SPEC_PATH, Stack, ci_event
from tests.powerplatform.conftest import settle
from tests.simulators.powerplatform import Simulator

pytestmark = pytest.mark.azurite
OAUTH_PROPS = {
    "properties": {
        "connectionParameters": {
            "token": {
                "type": "oauthSetting",
                "oAuthSettings": {
                    "identityProvider": "aad",
                    "clientId": "7c3bd0b4-8a55-4a63-9c59-1c0f4b6f1a11",
                    "scopes": [],
                    "redirectMode": "Global",
                    "properties": {"IsFirstParty": "False"},
                },
            }
        },
        "iconBrandColor": "#0f6cbd",
        "policyTemplateInstances": [
            {
                "templateId": "setheader",
                "title": "x",
                "parameters": {
                    "x-ms-apimTemplateParameter.name": "X-Source",
                    "x-ms-apimTemplateParameter.value": "power-platform",
                    "x-ms-apimTemplateParameter.existsAction": "override",
                    "x-ms-apimTemplate-policySection": "Request",
                },
            }
        ],
    }
}


def powerapps_map(stack: Stack, sim: Simulator, **target) -> None:
    api = {
        "spec": {"url": stack.server.url(SPEC_PATH)},
        "on": [{"custom": "contoso-invoicing"}],
        "breaking": "allow",
        "targets": [
            {"name": "prod", "powerapps": {"environment": ENV, "credential": "func", **target}}
        ],
    }
    stack.map_path.write_text(
        json.dumps(
            {
                "endpoints": {"powerApps": sim.url},
                "credentials": {"func": {"managedIdentity": {}}},
                "apis": {"contoso-invoicing": api},
                "notify": {"file": "cards.jsonl"},
            }
        )
    )


def test_event_creates_then_updates_a_powerapps_connector_keeping_its_members(
    stack, sim, identity, monkeypatch
):
    monkeypatch.setenv("SYNC_SECRET_INVOICING_OAUTH", "canary-client-secret-" + uuid.uuid4().hex)
    powerapps_map(stack, sim, oauthSecret="kv:invoicing-oauth")
    svc = build(replace(stack.settings, secrets_from_env=True))
    stack.serve("openapi-v1.yaml")
    plan(ci_event(), svc)
    [first] = drain(svc, wait_seconds=0.5)
    assert first.result == "updated", first.message
    created = svc.ports.ledger.state("contoso-invoicing", "prod").connector_id
    assert created
    held = sim.powerapps_connector(ENV, created)
    assert "[connector-sync:contoso-invoicing/prod]" in held["description"]
    assert held["definition"]["swagger"] == "2.0"

    # The connector gains OAuth settings and a policy in the portal; then v2 is deployed.
    sim.seed_powerapps(
        ENV, created, held["definition"], OAUTH_PROPS, description=held["description"]
    )
    stack.serve("openapi-v2.yaml")
    seen = len(sim.requests)
    plan(ci_event(), svc)
    [second] = drain(svc, wait_seconds=0.5)
    assert second.result == "updated", second.message
    assert second.version == 2
    after = sim.powerapps_connector(ENV, created)
    # The platform was asked about v2 once (early, while the connector was read), and what it
    # accepted is exactly what was written.
    settle()
    validated = [
        json.loads(r.body)
        for r in sim.requests[seen:]
        if r.method == "POST" and "validateApiSwagger" in r.path
    ]
    assert validated == [after["definition"]]
    assert "PayInvoice" in json.dumps(after["definition"])
    members = after["members"]
    assert (
        members["policyTemplateInstances"] == OAUTH_PROPS["properties"]["policyTemplateInstances"]
    )
    assert members["iconBrandColor"] == "#0f6cbd"
    assert after["secrets"]  # the client secret was re-injected on the update ...
    ledger_rows = json.dumps(
        [r.__dict__ for r in svc.ports.ledger.versions("contoso-invoicing")], default=str
    )
    assert "canary-client-secret" not in ledger_rows  # ... and stored nowhere of ours
    assert "canary-client-secret" not in (stack.root / "cards.jsonl").read_text()
    assert (
        len(sim.requests_to("POST", r"/providers/Microsoft.PowerApps/apis$")) == 1
    )  # created once, never duplicated


def test_app_only_token_refused_by_the_platform_is_a_clear_failure(stack, sim, identity):
    powerapps_map(stack, sim, oauthSecret="none")
    sim.faults.refuse_app_tokens = True
    svc = build(stack.settings)
    stack.serve("openapi-v1.yaml")
    plan(ci_event(), svc)
    [outcome] = drain(svc, wait_seconds=0.5)
    assert outcome.result == "failed"
    assert "InvalidAuthenticationToken" in outcome.message
    assert svc.ports.ledger.versions("contoso-invoicing", "prod") == []
    assert len(stack.cards()) == 1
