"""An inline run (the CLI, a dry run over HTTP, a rollback) whose fan-in fails for one target:
the sync of that target stands, so its outcome is still reported, with why the run row and the
card lack it, and the run is not ok. Before, the ledger's error ended the whole call and the
report of every target was lost."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sync.cli import main
from sync.errors import TransientError
from sync.models import SyncRequest
from sync.runs import run_inline
from tests.pipeline.conftest import Stack

pytestmark = pytest.mark.azurite
API = "contoso-invoicing"


class FanInFails:
    """The real ledger, except ``finish_item`` for one target fails as storage would after the
    SDK's own retries."""

    def __init__(self, inner: Any, target: str) -> None:
        self._inner, self._target = inner, target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def finish_item(self, run_id: str, outcome: Any, **kwargs: Any) -> Any:
        if outcome.target == self._target:
            raise TransientError("storage unavailable", where="ledger.finish_item")
        return self._inner.finish_item(run_id, outcome, **kwargs)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_failed_fan_in_keeps_the_targets_outcome_and_fails_the_run(stack: Stack, concurrency):
    stack.serve("openapi-v1.yaml")
    ledger = stack.service().ports.ledger
    svc = stack.service(ledger=FanInFails(ledger, "prod"))

    result = run_inline(
        SyncRequest(api=API, reason="cli"),
        svc.map,
        svc.ports,
        svc.pipeline,
        concurrency=concurrency,
    )

    by_target = {o.target: o for o in result.outcomes}
    assert [by_target[t].result for t in ("dev", "prod")] == ["updated", "updated"]
    assert "storage unavailable" in by_target["prod"].message
    assert "run row" in by_target["prod"].message
    assert "storage unavailable" not in by_target["dev"].message
    assert not result.ok
    assert stack.folder("prod").exists()  # the connector was written: the outcome says so
    assert ledger.versions(API, "prod")[0].version == 1
    run = ledger.get_run(result.run.run_id)
    assert [o.target for o in run.outcomes] == ["dev"]  # what the row could record
    assert stack.cards() == []  # the run never completed on the row: no card


def test_the_cli_prints_every_target_and_exits_1(env: Stack, monkeypatch, capsys):
    from sync import bootstrap

    env.serve("openapi-v1.yaml")
    real_build = bootstrap.build

    def build(settings, sync_map=None, **overrides):
        svc = real_build(settings, sync_map, **overrides)
        return bootstrap.with_ports(svc, ledger=FanInFails(svc.ports.ledger, "prod"))

    monkeypatch.setattr(bootstrap, "build", build)
    assert main(["run", "--json"]) == 1
    [report] = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert {t["target"]: t["result"] for t in report["targets"]} == {
        "dev": "updated",
        "prod": "updated",
    }
