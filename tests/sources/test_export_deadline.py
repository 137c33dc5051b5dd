"""One fetch budget for a whole export, against the ARM simulator answering slowly.

An export is many requests: API Center's action, its polls and its result, a linked blob, and
all of it again when the link had expired. Each step used to get SYNC_FETCH_BUDGET_SECONDS for
itself, so one fetch could hold a worker for several budgets (review 2026-12-07). These run the
real stack (SpecSources, the guarded httpx client, the transport's per-exchange deadline) with
real time: the simulator keeps the export running, or answers each request late.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sync.adapters.spec_sources import EXPORT_LABELS, SpecSources
from sync.config import parse_map
from sync.errors import TransientError
from sync.models import SyncRequest
from sync.settings import Settings
from tests.simulators.arm import ArmSimulator
from tests.sources.conftest import APIM_SERVICE, CENTER_SERVICE, demo_spec

pytestmark = pytest.mark.slow  # each waits out a 1.5 s budget in real time

BUDGET = 1.5
SETTINGS = Settings(
    allow_private_hosts=frozenset({"127.0.0.1"}),
    fetch_budget_seconds=BUDGET,
    fetch_timeout_seconds=5.0,
)
SLACK = 0.45  # scheduling on a busy machine; each over-run below is at least 0.6 s more
DEFINITION = f"{CENTER_SERVICE}/workspaces/default/apis/orders/versions/v1/definitions/openapi"
REQUEST = SyncRequest(api="billing", reason="manual")
CENTER = {"service": CENTER_SERVICE, "api": "orders", "version": "v1", "definition": "openapi"}


def sources(arm: ArmSimulator, tmp_path: Path, spec: dict[str, object]) -> SpecSources:
    """A map whose API ``billing`` reads ``spec``; its name differs from the service's API."""
    raw = {
        "endpoints": {"resourceManager": arm.url},
        "apis": {"billing": {"spec": spec, "targets": [{"name": "dev", "folder": "out"}]}},
    }
    return SpecSources(SETTINGS, parse_map(raw, source="t", base_dir=tmp_path))


def fetch_out_of_time(src: SpecSources) -> tuple[TransientError, float]:
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        src.fetch_for(src.map.api("billing"), REQUEST)
    return caught.value, time.monotonic() - started


def assert_budget_error(error: TransientError, kind: str) -> None:
    """The error names the API of the map (not the service's), the budget and its setting."""
    text = str(error)
    assert text.startswith(f"apis.billing.spec.{kind}: {EXPORT_LABELS[kind]} of API 'billing' ")
    assert "did not finish within the fetch budget of 1.5s (SYNC_FETCH_BUDGET_SECONDS)" in text


def test_an_api_center_export_that_keeps_running_ends_within_one_budget(arm, tmp_path):
    """The action's own time counted before the polls' budget began, and the poll in flight at
    the budget's end ran on: the fetch lasted the action + the budget + a poll."""
    arm.add_definition(DEFINITION, demo_spec(), polls=10**6)
    arm.slow("/exportSpecification", 0.6)
    arm.slow("/operations/", 0.6)
    error, took = fetch_out_of_time(sources(arm, tmp_path, {"apiCenterExport": CENTER}))
    assert took < BUDGET + SLACK, took
    assert_budget_error(error, "apiCenterExport")
    assert len(arm.calls("/operations/")) >= 1  # it did poll


def test_the_api_center_actions_retries_share_the_budget_with_the_polls(arm, tmp_path):
    """503s to the action were retried for a whole budget, then the polls had another."""
    arm.add_definition(DEFINITION, demo_spec(), polls=10**6)
    for _ in range(2):
        arm.answer_next("/exportSpecification", 503, b"", {"Retry-After": "0"})
    arm.slow("/exportSpecification", 0.4)
    arm.slow("/operations/", 0.4)
    error, took = fetch_out_of_time(sources(arm, tmp_path, {"apiCenterExport": CENTER}))
    assert took < BUDGET + SLACK, took
    assert_budget_error(error, "apiCenterExport")


def test_an_apim_re_export_does_not_start_a_second_budget(arm, tmp_path):
    """Export, expired link (403), export again, download: four slow answers, each within the
    budget, which together took more than two budgets and succeeded late."""
    arm.add_apim_api(APIM_SERVICE, "orders", demo_spec())
    arm.state.expire_links = 1
    arm.slow("/apis/orders", 0.6)
    arm.slow("/export-blobs/", 0.6)
    spec = {"apimExport": {"service": APIM_SERVICE, "api": "orders"}}
    error, took = fetch_out_of_time(sources(arm, tmp_path, spec))
    assert took < BUDGET + SLACK, took
    assert_budget_error(error, "apimExport")
    assert [c.status for c in arm.calls("/export-blobs/")] == [403]
    for call in arm.calls("/export-blobs/"):
        assert call.query["sig"] not in str(error)


def test_a_slow_link_download_ends_with_the_exports_budget(arm, tmp_path):
    """The linked blob's download had a budget of its own after the export's polls."""
    arm.add_definition(DEFINITION, demo_spec(), mode="link", polls=1)
    arm.slow("/operations/", 0.2)
    arm.slow("/export-blobs/", 3.0)
    error, took = fetch_out_of_time(sources(arm, tmp_path, {"apiCenterExport": CENTER}))
    assert took < BUDGET + SLACK, took
    assert_budget_error(error, "apiCenterExport")
    assert "the export link's download" in str(error)


def test_an_export_within_the_budget_still_succeeds(arm, tmp_path):
    arm.add_definition(DEFINITION, demo_spec(), mode="link", polls=2)
    arm.slow("/operations/", 0.1)
    src = sources(arm, tmp_path, {"apiCenterExport": CENTER})
    assert src.fetch_for(src.map.api("billing"), REQUEST).content == demo_spec()
