"""State rows, version rows and the one-transaction record_version, on the real Azurite."""

from __future__ import annotations

import hashlib
import zlib

import pytest

from sync.adapters.ledger_tables import (
    ConcurrencyError,
    DuplicateEventError,
    TableLedger,
    partition_key,
    version_row_key,
)
from sync.errors import PermanentError, TransientError
from sync.models import Hold, TargetState, VersionRecord
from sync.spec.canonical import sha256_hex
from tests.ledger.conftest import edit_row
from tests.ledger.docs import small_spec

pytestmark = pytest.mark.azurite

API, TARGET = "contoso-invoicing", "prod-dataverse"


def record(
    number: int, *, target: str = TARGET, created_at: str | None = None, **kw
) -> VersionRecord:
    up = kw.pop("upstream", small_spec(version=f"1.{number}"))
    ap = kw.pop("applied", small_spec(title="Invoicing (portal)", version=f"1.{number}"))
    return VersionRecord(
        api=API,
        target=target,
        version=number,
        reason="event",
        outcome="updated",
        run_id=f"run{number}",
        created_at=created_at or f"2026-01-01T00:00:{number:02d}Z",
        event_id=kw.pop("event_id", f"evt-{number}"),
        event_type="Contoso.ApiDeployed",
        event_time="2026-01-01T00:00:00Z",
        caller="cli:alice",
        source_url="https://contoso-invoicing.azurewebsites.net/swagger.json",
        info_version=f"1.{number}",
        commit="abc123",
        summary=kw.pop("summary", {"breaking": False, "added": ["GET /invoices"]}),
        upstream_sha256=sha256_hex(up) if up is not None else None,
        applied_sha256=sha256_hex(ap) if ap is not None else None,
        upstream=up,
        applied=ap,
        **kw,
    )


def commit(ledger: TableLedger, number: int, state: TargetState, **kw) -> TargetState:
    rec = record(number, **kw)
    return ledger.record_version(rec, state.evolve(version=number), rec.event_id)


def rows(ledger: TableLedger, target: str = TARGET) -> dict[str, dict]:
    pk = partition_key(API, target)
    return {
        e["RowKey"]: dict(e)
        for e in ledger._table().query_entities("PartitionKey eq @pk", parameters={"pk": pk})
    }


def test_missing_state_is_version_zero_without_etag(ledger):
    state = ledger.state(API, TARGET)
    assert state == TargetState()
    assert state.etag is None


def test_state_round_trips_every_field(ledger):
    state = TargetState(
        version=7,
        applied_sha256="a" * 64,
        upstream_sha256="b" * 64,
        spec_etag='"0x8D"',
        spec_last_modified="Wed, 21 Oct 2026 07:28:00 GMT",
        spec_info_version="2.1.0",
        connector_id="shared_contoso-5f",
        last_outcome="updated",
        last_message="v7 applied",
        last_run_id="run7",
        last_synced_at="2026-01-01T00:00:00Z",
        last_event_time="2026-01-01T00:00:00Z",
        hold=Hold(version=6, until="2026-02-01T00:00:00Z", by="cli:alice"),
        pending='{"run":"run7","sha256":"aa"}',
    )
    saved = ledger.save_state(API, TARGET, state)
    assert saved.etag
    loaded = ledger.state(API, TARGET)
    assert loaded == saved
    cleared = ledger.save_state(API, TARGET, loaded.evolve(pending=None, hold=None))
    again = ledger.state(API, TARGET)
    assert again.pending is None
    assert again.hold is None
    assert again.etag == cleared.etag != saved.etag


def test_create_when_row_exists_is_a_conflict(ledger):
    ledger.save_state(API, TARGET, TargetState(version=1))
    with pytest.raises(ConcurrencyError, match="expected none"):
        ledger.save_state(API, TARGET, TargetState(version=2))
    assert ledger.state(API, TARGET).version == 1


def test_stale_etag_save_is_refused(ledger):
    first = ledger.save_state(API, TARGET, TargetState(version=1))
    ledger.save_state(API, TARGET, first.evolve(last_message="other worker"))
    with pytest.raises(ConcurrencyError, match="stale ETag") as info:
        ledger.save_state(API, TARGET, first.evolve(version=2))
    assert isinstance(info.value, TransientError)
    assert ledger.state(API, TARGET).last_message == "other worker"


def test_oversized_state_field_is_refused_with_its_name(ledger):
    with pytest.raises(PermanentError, match="pending"):
        ledger.save_state(API, TARGET, TargetState(pending="x" * 40_000))
    long = ledger.save_state(API, TARGET, TargetState(last_message="m" * 40_000))
    assert len(ledger.state(API, TARGET).last_message) < 40_000
    assert long.etag


@pytest.mark.parametrize(("api", "target"), [("Bad", "t"), ("a", "x/y"), ("a", "t#1"), ("a", "")])
def test_bad_names_never_reach_storage(ledger, api, target):
    with pytest.raises(PermanentError, match="does not match"):
        ledger.state(api, target)


@pytest.mark.parametrize("number", [-1, 10_000_000_000])
def test_version_numbers_out_of_range_are_refused(number):
    with pytest.raises(PermanentError, match="outside"):
        version_row_key(number)


def test_record_version_writes_version_state_and_marker_together(ledger):
    state = commit(ledger, 1, TargetState())
    assert state.version == 1
    assert state.etag == ledger.state(API, TARGET).etag
    assert ledger.seen_event(API, TARGET, "evt-1")
    assert not ledger.seen_event(API, TARGET, "evt-2")
    got = ledger.version(API, TARGET, 1, include_definitions=True)
    expected = record(1)
    assert got == expected
    light = ledger.version(API, TARGET, 1)
    assert light.upstream is None
    assert light.applied is None
    assert light.summary == expected.summary
    assert ledger.version(API, TARGET, 2) is None


def test_stale_state_etag_writes_nothing(ledger):
    first = commit(ledger, 1, TargetState())
    ledger.save_state(API, TARGET, first.evolve(pending='{"run":"x"}'))  # someone else moved on
    before = rows(ledger)
    with pytest.raises(ConcurrencyError, match="stale ETag"):
        commit(ledger, 2, first)
    assert rows(ledger) == before
    assert ledger.version(API, TARGET, 2) is None
    assert not ledger.seen_event(API, TARGET, "evt-2")


def test_first_record_with_existing_state_row_writes_nothing(ledger):
    ledger.save_state(API, TARGET, TargetState(pending="p"))
    before = rows(ledger)
    with pytest.raises(ConcurrencyError, match="expected none"):
        commit(ledger, 1, TargetState())
    assert rows(ledger) == before


def test_redelivered_event_fails_atomically(ledger):
    state = commit(ledger, 1, TargetState(), event_id="evt-same")
    before = rows(ledger)
    with pytest.raises(DuplicateEventError, match="already recorded") as info:
        commit(ledger, 2, state, event_id="evt-same")
    assert isinstance(info.value, TransientError)  # retry -> seen_event -> skip
    assert rows(ledger) == before
    assert ledger.state(API, TARGET).version == 1


def test_same_version_number_twice_is_a_conflict(ledger):
    state = commit(ledger, 1, TargetState())
    with pytest.raises(ConcurrencyError, match="already recorded"):
        commit(ledger, 1, state, event_id="evt-other")
    assert not ledger.seen_event(API, TARGET, "evt-other")


def test_record_without_event_id_needs_no_marker(ledger):
    rec = record(1, event_id=None)
    ledger.record_version(rec, TargetState(version=1), None)
    assert [k for k in rows(ledger) if k.startswith("event~")] == []


def test_versions_newest_first_and_paging(ledger):
    state = TargetState()
    for n in range(1, 13):
        state = commit(ledger, n, state)
    page = ledger.versions(API, TARGET, limit=5)
    assert [r.version for r in page] == [12, 11, 10, 9, 8]
    assert all(r.upstream is None and r.applied is None for r in page)
    assert page[0].summary == {"breaking": False, "added": ["GET /invoices"]}
    nxt = ledger.versions(API, TARGET, limit=5, before=page[-1].version)
    assert [r.version for r in nxt] == [7, 6, 5, 4, 3]
    last = ledger.versions(API, TARGET, limit=5, before=3)
    assert [r.version for r in last] == [2, 1]
    assert ledger.versions(API, TARGET, limit=0) == []
    assert ledger.versions(API, "no-such-target") == []


def test_versions_across_targets_merge_by_time(ledger):
    a = b = TargetState()
    a = commit(ledger, 1, a, created_at="2026-01-01T00:00:01Z")
    b = commit(ledger, 1, b, target="test-folder", created_at="2026-01-01T00:00:02Z")
    a = commit(ledger, 2, a, created_at="2026-01-01T00:00:03Z")
    # another API whose name starts the same must not leak in
    other = VersionRecord(
        api="contoso-invoicing-v2",
        target=TARGET,
        version=1,
        reason="event",
        outcome="updated",
        run_id="r",
        created_at="2026-01-01T00:00:09Z",
    )
    ledger.record_version(other, TargetState(version=1), None)
    merged = ledger.versions(API, limit=10)
    assert [(r.target, r.version) for r in merged] == [
        (TARGET, 2),
        ("test-folder", 1),
        (TARGET, 1),
    ]
    assert len(ledger.versions(API, limit=2)) == 2


def test_big_summary_is_stored_compressed_and_read_back(ledger):
    summary = {"changes": [f"operation Op{i} changed its response schema" for i in range(2000)]}
    rec = record(1, summary=summary)
    ledger.record_version(rec, TargetState(version=1), rec.event_id)
    assert "SummaryZ" in rows(ledger)[version_row_key(1)]
    assert ledger.versions(API, TARGET)[0].summary == summary


@pytest.mark.parametrize("char", ["\U0001f680", "\u20ac"])
def test_non_ascii_summary_under_32k_characters_but_over_64_kib_is_stored(ledger, char):
    """The 32K limit is UTF-16 units / 64 KiB, not code points: 20,000 emoji (40,000 units) used to
    be sent as a string property, the transaction was refused with 400 and the applied update was
    left without its version row."""
    summary = {"changes": [f"{char * 100} operation {i}" for i in range(200)]}
    rec = record(1, summary=summary)
    ledger.record_version(rec, TargetState(version=1), rec.event_id)
    assert "SummaryZ" in rows(ledger)[version_row_key(1)]
    assert ledger.versions(API, TARGET)[0].summary == summary


HOLD = '{"version": 6, "until": "2026-02-01T00:00:00Z", "by": "cli:alice"}'
CORRUPT_STATE = {
    "hold-not-json": {"Hold": "hold v6"},
    "hold-an-array": {"Hold": "[6]"},
    "hold-a-number": {"Hold": 6},
    "hold-missing-keys": {"Hold": '{"version": 6}'},
    "hold-version-text": {"Hold": HOLD.replace('"version": 6', '"version": "six"')},
    "hold-until-without-zone": {"Hold": HOLD.replace("00:00Z", "00:00")},
    "hold-until-no-time": {"Hold": HOLD.replace("2026-02-01T00:00:00Z", "soon")},
    "version-text": {"Version": "seven"},
    "version-infinite": {"Version": float("inf")},
}


@pytest.mark.parametrize("change", CORRUPT_STATE.values(), ids=CORRUPT_STATE.keys())
def test_a_corrupt_state_row_is_a_permanent_error_naming_the_row(ledger, change):
    """JSONDecodeError, TypeError or ValueError out of state() ended the item without a reason
    and got it retried until poisoned; the row is named so it can be fixed by hand."""
    ledger.save_state(API, TARGET, TargetState(version=7))
    entity = {"PartitionKey": partition_key(API, TARGET), "RowKey": "state", **change}
    ledger._table().upsert_entity(entity, mode="merge")
    with pytest.raises(PermanentError, match=f"state row {partition_key(API, TARGET)}/state"):
        ledger.state(API, TARGET)


def test_a_hold_written_with_more_fields_by_a_newer_release_still_reads(ledger):
    ledger.save_state(API, TARGET, TargetState(version=7))
    hold = HOLD.replace("}", ', "reason": "audit"}')
    entity = {"PartitionKey": partition_key(API, TARGET), "RowKey": "state", "Hold": hold}
    ledger._table().upsert_entity(entity, mode="merge")
    assert ledger.state(API, TARGET).hold == Hold(6, "2026-02-01T00:00:00Z", "cli:alice")


def _deep_pair() -> dict:
    """Definitions whose stored bytes hash right but nest past the recursion limit."""
    deep = b"[" * 100_000 + b"]" * 100_000
    payload = zlib.compress(deep)
    return {
        "Def00": payload,
        "DefChunks": 1,
        "DefBytes": len(payload),
        "DefUpstreamLen": len(deep),
        "DefAppliedLen": -1,
        "DefUpstreamSha256": hashlib.sha256(deep).hexdigest(),
        "DefAppliedSha256": None,
    }


# (change, listed): listed = the versions listing reads the property too, not only version()
CORRUPT_VERSION = {
    "number-text": ({"Number": "one"}, True),
    "number-digits-as-text": ({"Number": "1"}, True),
    "number-a-double": ({"Number": 1.5}, True),
    "number-infinite": ({"Number": float("inf")}, True),
    "number-negative": ({"Number": -1}, True),
    "no-number": ({"Number": None}, True),
    "no-api": ({"Api": None}, True),
    "no-target": ({"Target": None}, True),
    "api-a-number": ({"Api": 5}, True),
    "reason-a-number": ({"Reason": 5}, True),
    "summary-an-array": ({"Summary": "[1]"}, True),
    "summary-not-json": ({"Summary": "{nope"}, True),
    "def-chunks-text": ({"DefChunks": "one"}, False),
    "def-chunks-past-the-row": ({"DefChunks": 2**31 - 1}, False),
    "def-bytes-text": ({"DefBytes": "many"}, False),
    "def-upstream-len-text": ({"DefUpstreamLen": "all"}, False),
    "def-blob-a-number": ({"DefBlob": 5}, False),
    "definitions-not-zlib": ({"Def00": b"not zlib", "DefChunks": 1, "DefBytes": 8}, False),
    "definitions-nested-too-deep": (_deep_pair(), False),
}


@pytest.mark.parametrize(("change", "listed"), CORRUPT_VERSION.values(), ids=CORRUPT_VERSION.keys())
def test_a_corrupt_version_row_is_a_permanent_error_naming_the_row(ledger, change, listed):
    """KeyError, TypeError, ValueError, OverflowError or RecursionError out of version() and
    versions() ended the item (or the versions API call) without a reason; the row is named so
    it can be fixed by hand."""
    commit(ledger, 1, TargetState())
    edit_row(ledger, partition_key(API, TARGET), version_row_key(1), change)
    named = f"version row {partition_key(API, TARGET)}/{version_row_key(1)} cannot be read"
    with pytest.raises(PermanentError, match=named):
        ledger.version(API, TARGET, 1, include_definitions=True)
    if listed:
        with pytest.raises(PermanentError, match=named):
            ledger.versions(API, TARGET)
        with pytest.raises(PermanentError, match=named):
            ledger.version(API, TARGET, 1)
    else:  # the metadata stays readable without the definitions
        assert [r.version for r in ledger.versions(API, TARGET)] == [1]


def test_a_version_number_stored_as_int64_still_reads(ledger):
    """A hand edit may choose Edm.Int64, which the SDK reads back as an EntityProperty."""
    from azure.data.tables import EdmType, EntityProperty, UpdateMode

    commit(ledger, 1, TargetState())
    table = ledger._table()
    row = table.get_entity(partition_key(API, TARGET), version_row_key(1))
    row["Number"] = EntityProperty(1, EdmType.INT64)
    table.update_entity(row, mode=UpdateMode.REPLACE)
    assert ledger.version(API, TARGET, 1, include_definitions=True).version == 1


@pytest.mark.azurite
def test_a_version_past_int32_is_refused_naming_the_limit(ledger) -> None:
    """The SDK sends a plain int as Edm.Int32: version 2**31 raised a TypeError about
    "operations" from inside the transaction instead of saying what is wrong (found by review
    2026-12-07; only a hand-edited state row could get there)."""
    rec = record(2**31, created_at="2026-01-01T00:00:00Z")
    with pytest.raises(PermanentError, match=r"version 2147483648 is past 2,147,483,647"):
        ledger.record_version(rec, TargetState(version=2**31), None)
    assert ledger.versions(API, TARGET) == []
