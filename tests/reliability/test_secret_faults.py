"""Key Vault refusing access (403) on the local HTTPS vault with the real azure-keyvault-secrets
client: the sync still lands, the refusal is recorded naming vault and secret, never a value."""

from __future__ import annotations

import httpx
import pytest

from sync.adapters.keyvault import resolve_ref
from sync.adapters.teams import TeamsWebhookNotifier
from sync.triggers import plan
from sync.worker_loop import drain
from tests.credentials.conftest import (  # noqa: F401 (the local identity and vault fixtures)
    cloud,
    identity,
    store_for,
    vault,
)
from tests.reliability.conftest import Fleet, event, version_shas

pytestmark = [pytest.mark.reliability, pytest.mark.azurite]
CANARY = "https://prod-00.westeurope.logic.azure.com/workflows/canary-webhook-sig-0123"


def test_key_vault_403_for_the_webhook_secret_is_a_recorded_notification_failure(
    fleet: Fleet, request: pytest.FixtureRequest
):
    idp, kv, where = (request.getfixturevalue(n) for n in ("identity", "vault", "cloud"))
    kv.put("teams-webhook", CANARY)
    kv.forbidden.add("teams-webhook")
    store = store_for(idp, kv, where)
    api = fleet.apis[0]
    fleet.publish(api, 1)
    with httpx.Client(timeout=2) as client:
        notifier = TeamsWebhookNotifier(
            webhook_url_provider=lambda: resolve_ref("kv:teams-webhook", store),
            client=client,
            budget_seconds=1,
            wait_initial=0.01,
        )
        svc = fleet.service(notifier=notifier)
        [run_id] = plan(event(api), svc)
        outcomes = drain(svc, wait_seconds=0.3)
    assert {o.result for o in outcomes} == {"updated"}  # a notification never undoes a sync
    run = svc.ports.ledger.get_run(run_id)
    assert run.notified.startswith("failed"), run.notified
    assert "canary" not in run.notified
    assert [v for v, _ in version_shas(svc, api, "a")] == [1]
    assert len(kv.secret_requests("GET")) >= 1  # the refusal came from the vault itself
