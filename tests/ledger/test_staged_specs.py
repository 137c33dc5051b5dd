"""Staged specs in the ledger: content-addressed blobs a planner writes and a worker reads back,
so a caller's signed spec URL never travels in a queue message; and the message field that
names one, validated like every other field of a work item."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future

import pytest

from sync.adapters.read_only_ledger import EmptyLedger
from sync.errors import ConfigError
from sync.models import SyncRequest, WorkItem
from sync.run_row_first import RunRowFirst
from sync.triggers import parse_work_item

SPEC = b"openapi: 3.0.3\ninfo: {title: staged, version: '1'}\npaths: {}\n"
KEY = "sha256:" + hashlib.sha256(SPEC).hexdigest()


@pytest.mark.azurite
def test_a_staged_spec_is_content_addressed_and_reads_back(ledger) -> None:
    assert ledger.stage_spec(SPEC) == KEY
    assert ledger.stage_spec(SPEC) == KEY  # a redelivered event stages the same blob again
    assert ledger.staged_spec(KEY) == SPEC
    names = [b.name for b in ledger._blobs().list_blobs()]
    assert names == [f"_staged/{KEY[7:]}"]
    assert ledger.staged_spec("sha256:" + "0" * 64) is None  # expired, or never staged


@pytest.mark.azurite
def test_a_malformed_key_is_refused_before_any_blob_is_read(ledger) -> None:
    with pytest.raises(ValueError, match="not a staged spec key"):
        ledger.staged_spec("sha256:../../v1")


def test_the_read_only_ledger_refuses_to_stage_and_holds_nothing() -> None:
    with pytest.raises(ConfigError):
        EmptyLedger().stage_spec(SPEC)
    assert EmptyLedger().staged_spec(KEY) is None


def test_run_row_first_stages_after_the_run_row_and_reads_straight_through() -> None:
    calls: list[str] = []

    class Recording:
        def stage_spec(self, content: bytes) -> str:
            calls.append("stage")
            return KEY

        def staged_spec(self, key: str) -> bytes | None:
            calls.append("read")
            return SPEC

    row: Future[None] = Future()
    wrapped = RunRowFirst(Recording(), row)  # type: ignore[arg-type]
    assert wrapped.staged_spec(KEY) == SPEC  # a read: the run row need not be written yet
    row.set_exception(RuntimeError("run row failed"))
    with pytest.raises(RuntimeError):
        wrapped.stage_spec(SPEC)
    assert calls == ["read"]


def message(**request: object) -> str:
    base = SyncRequest(api="a", reason="manual", spec_url="https://x/s.yaml?sig=REDACTED")
    data = WorkItem(run_id="r" * 32, api="a", target="dev", request=base).to_dict()
    data["request"].update(request)
    return json.dumps(data)


def test_a_staged_spec_key_round_trips_through_a_message() -> None:
    item = parse_work_item(message(staged_spec=KEY))
    assert item is not None and item.request.staged_spec == KEY
    assert json.loads(message(staged_spec=KEY))["request"]["staged_spec"] == KEY
    plain = parse_work_item(message())  # a message from before the field: read as it was
    assert plain is not None and plain.request.staged_spec is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256:",
        "sha256:" + "A" * 64,  # upper case: not what the planner writes
        "sha256:" + "0" * 63,
        "md5:" + "0" * 32,
        "sha256:" + "0" * 64 + "\n",
        "sha256:../../" + "0" * 58,
        5,
        ["sha256:" + "0" * 64],
        True,
    ],
)
def test_a_malformed_staged_spec_makes_the_message_malformed(value: object) -> None:
    assert parse_work_item(message(staged_spec=value)) is None  # acknowledged, logged


def test_a_staged_spec_without_its_url_makes_the_message_malformed() -> None:
    assert parse_work_item(message(staged_spec=KEY, spec_url=None)) is None


@pytest.mark.azurite
def test_the_lifecycle_rule_spares_the_ledgers_own_blobs_whatever_the_api_is_named(
    ledger, monkeypatch
) -> None:
    """Large versions are stored as ``<api>/<target>/v....zlib`` in the same container; an API
    may be named ``staged``, so the rule's prefix starts with a character no API name can
    (found in review on 2026-12-07: with ``staged/``, such an API's versions would have gone
    after 8 days)."""
    import re
    from pathlib import Path

    from sync import staging
    from sync.adapters import ledger_codec as codec
    from sync.models import TargetState
    from tests.ledger import test_large_definitions as big

    bicep = (Path(__file__).parents[2] / "infra/app/storage.bicep").read_text()
    found = re.search(r"'\$\{ledgerContainerName\}/([^']*)'", bicep)
    assert found is not None and found.group(1) == staging.PREFIX
    for api in ("staged", "s"):
        monkeypatch.setattr(big, "API", api)
        up, ap = big._pair_near(codec.INLINE_LIMIT + 100_000)
        ledger.record_version(big._record(up, ap), TargetState(version=0), f"evt-{api}")
    names = [b.name for b in ledger._blobs().list_blobs()]
    assert any(name.startswith("staged/") for name in names)  # the API named "staged"
    assert not [name for name in names if name.startswith(staging.PREFIX)]
