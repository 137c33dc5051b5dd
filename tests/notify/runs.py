"""Realistic runs to build cards from: one per result, a huge one, and corpus-derived diffs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sync.models import RunSummary, SyncRequest, TargetOutcome

CANARY = "sig=CANARY-5ecret-value"
PORTAL = "https://make.powerapps.com"


def portal_url(env: str, connector: str) -> str:
    return f"{PORTAL}/environments/{env}/customconnectors/{connector}"


def _diff(added: list[str], removed: list[str], changed: list[dict[str, Any]]) -> dict[str, Any]:
    breaking = bool(removed) or any(
        c.get("breaking") for entry in changed for c in entry.get("changes", [])
    )
    return {"added": added, "removed": removed, "changed": changed, "breaking": breaking}


INVOICING_DIFF = _diff(
    ["ListCreditNotes", "GetCreditNote"],
    [],
    [
        {
            "operationId": "CreateInvoice",
            "changes": [
                {
                    "kind": "parameter-required",
                    "message": "parameter 'currency' (body) is now required",
                    "breaking": True,
                }
            ],
        },
        {
            "operationId": "GetInvoice",
            "changes": [
                {
                    "kind": "response-property-added",
                    "message": "response 200 gained property 'dueDate'",
                    "breaking": False,
                }
            ],
        },
    ],
)

BLOCKING_DIFF = _diff(
    ["ListCreditNotes"],
    ["DeleteInvoice", "VoidInvoice"],
    [
        {
            "operationId": "CreateInvoice",
            "changes": [
                {
                    "kind": "parameter-type",
                    "message": "parameter 'amount' changed type string -> number",
                    "breaking": True,
                }
            ],
        }
    ],
)


def request(**changes: Any) -> SyncRequest:
    values: dict[str, Any] = {
        "api": "contoso-invoicing",
        "reason": "event",
        "event_id": "4f1c9a2e-1b1d-4a57-9d0e-2f8d2e0c5a11",
        "event_type": "Contoso.Api.Deployed",
        "event_time": "2026-11-01T09:14:03Z",
        "caller": "ci:github-actions/contoso/invoicing",
        "commit": "9b2e4f1c0d7a5e3b8c6f1a2d4e5f6a7b8c9d0e1f",
        "deployment_id": "deploy-2026-11-01-0914",
        "version": "2.4.0",
    }
    values.update(changes)
    return SyncRequest(**values)


def outcome(target: str, result: str, **changes: Any) -> TargetOutcome:
    env = changes.pop("environment", "contoso-prod")
    values: dict[str, Any] = {
        "api": "contoso-invoicing",
        "target": target,
        "result": result,
        "version": 7 if result == "updated" else 6,
        "previous_version": 6,
        "info_version": "2.4.0",
        "previous_info_version": "2.3.1",
        "target_kind": "powerapps",
        "environment": env,
        "connector_id": f"shared_contoso-20invoicing-{target}",
        "portal_url": portal_url(env, f"shared_contoso-20invoicing-{target}"),
        "diff": INVOICING_DIFF,
    }
    values.update(changes)
    return TargetOutcome(**values)


def run(outcomes: list[TargetOutcome], **req: Any) -> RunSummary:
    return RunSummary(
        run_id="run-0f3c2a",
        api="contoso-invoicing",
        request=request(**req),
        targets=tuple(o.target for o in outcomes),
        outcomes=tuple(outcomes),
        created_at="2026-11-01T09:14:05Z",
    )


def success_run() -> RunSummary:
    return run(
        [
            outcome(
                "prod",
                "updated",
                warnings=("operation GetInvoice has no summary",),
                losses=("oneOf in schema Payment flattened to its first branch",),
            ),
            outcome(
                "test",
                "unchanged",
                environment="contoso-test",
                version=7,
                previous_version=7,
                previous_info_version="2.4.0",
                diff=None,
            ),
            outcome(
                "folder",
                "updated",
                target_kind="folder",
                environment=None,
                connector_id=None,
                portal_url=None,
            ),
        ]
    )


def held_run() -> RunSummary:
    return run(
        [
            outcome(
                "prod",
                "held",
                message="target held at version 6 until 2026-11-03T00:00:00Z by ops@contoso.com",
            ),
            outcome("test", "updated", environment="contoso-test"),
        ]
    )


def blocked_run() -> RunSummary:
    return run(
        [
            outcome(
                "prod",
                "blocked",
                message="breaking change refused by policy 'block' (3 breaking changes)",
                diff=BLOCKING_DIFF,
                conflicts=(
                    "x-ms-summary of CreateInvoice edited on both sides; kept the connector's",
                ),
            ),
        ]
    )


def failed_run() -> RunSummary:
    return run(
        [
            outcome(
                "prod",
                "failed",
                message=(
                    "PowerApps API refused the write (HTTP 400 InvalidSwagger) while updating "
                    f"https://api.powerapps.com/providers/x?api-version=2016-11-01&{CANARY}"
                ),
                diff=None,
                version=None,
            ),
            outcome("test", "updated", environment="contoso-test"),
        ],
        reason="manual",
        event_type=None,
        event_id=None,
        caller="oid:1b2c3d4e-0000-4000-8000-00000000abcd",
    )


def dry_run() -> RunSummary:
    return run(
        [
            outcome("prod", "dry-run", version=None),
            outcome("test", "dry-run", version=None, environment="contoso-test"),
        ],
        dry_run=True,
        reason="manual",
    )


def huge_run(targets: int = 200, operations: int = 300) -> RunSummary:
    """200 targets x 300 operations: the card must trim itself under the byte limit."""
    ops = [f"OperationNumber{i:04d}WithALongishName" for i in range(operations)]
    changed = [
        {
            "operationId": op,
            "changes": [
                {
                    "kind": "parameter-required",
                    "message": f"parameter p{i} is now required " * 3,
                    "breaking": i % 2 == 0,
                },
                {
                    "kind": "response-changed",
                    "message": "response 200 schema changed",
                    "breaking": False,
                },
            ],
        }
        for i, op in enumerate(ops)
    ]
    diff = _diff(ops, ops, changed)
    results = ["updated", "failed", "blocked", "held", "unchanged", "dry-run"]
    outcomes = [
        outcome(
            f"target-{i:03d}",
            results[i % len(results)],
            environment=f"environment-{i:03d}-" + "x" * 40,
            diff=diff,
            message="m" * 2000,
            warnings=tuple(f"warning {j} " * 10 for j in range(300)),
            losses=tuple(f"loss {j} " * 10 for j in range(300)),
        )
        for i in range(targets)
    ]
    return run(outcomes)


SAMPLES = {
    "success": success_run,
    "held": held_run,
    "blocked": blocked_run,
    "failed": failed_run,
    "dry-run": dry_run,
}


def corpus_run(folder: Path) -> RunSummary:
    """A run whose diff is what the corpus says changed between two real connector versions."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8-sig"))
    ops = meta["operations"]

    def info_version(side: str) -> str | None:
        doc = json.loads(
            (folder / side / "apiDefinition.swagger.json").read_text(encoding="utf-8-sig")
        )
        return (doc.get("info") or {}).get("version")

    changed = [
        {
            "operationId": op,
            "changes": [{"kind": "parameters", "message": "parameters changed", "breaking": True}],
        }
        for op in ops.get("parameters_changed", [])
    ] + [
        {
            "operationId": op,
            "changes": [{"kind": "responses", "message": "responses changed", "breaking": False}],
        }
        for op in ops.get("responses_changed", [])
        if op not in ops.get("parameters_changed", [])
    ]
    diff = _diff(list(ops.get("added", [])), list(ops.get("removed", [])), changed)
    name = folder.name
    return RunSummary(
        run_id=f"run-{name.lower()}",
        api=name,
        request=request(api=name),
        targets=("prod",),
        outcomes=(
            TargetOutcome(
                api=name,
                target="prod",
                result="updated",
                version=2,
                previous_version=1,
                info_version=info_version("after"),
                previous_info_version=info_version("before"),
                environment="contoso-prod",
                portal_url=portal_url("contoso-prod", name),
                diff=diff,
            ),
        ),
    )
