"""A run row holds every target's outcome under the row's size limit: a fan-out whose targets
share one large diff stores it once, distinct large diffs lose only their non-breaking details,
and rows written in the earlier format are still read."""

from __future__ import annotations

import json
import random

import pytest

from sync.adapters import ledger_codec as codec
from sync.adapters import run_outcomes
from sync.adapters.ledger_codec import LedgerCorruptError
from sync.errors import PermanentError
from sync.models import RunSummary, SyncRequest, TargetOutcome, new_run_id

API = "contoso-invoicing"


def large_diff(seed: int, operations: int = 250) -> dict:
    """A diff of a big change, in spec.diff's JSON form, that compresses poorly (random text)."""
    rng = random.Random(seed)

    def text(n: int) -> str:
        return "".join(rng.choice("0123456789abcdef") for _ in range(n))

    changed = []
    for i in range(operations):
        changes = [{"kind": "response-field-removed", "message": text(40), "breaking": True}]
        changes += [
            {"kind": "description", "message": text(110), "breaking": False} for _ in range(4)
        ]
        changed.append({"operationId": f"Op{i}_{text(8)}", "changes": changes})
    return {
        "added": [f"New{i}_{text(6)}" for i in range(20)],
        "removed": [f"Gone{i}_{text(6)}" for i in range(5)],
        "changed": changed,
        "breaking": True,
    }


def outcome(target: str, diff: dict) -> TargetOutcome:
    return TargetOutcome(
        api=API,
        target=target,
        result="updated",
        message=f"v7 applied to {target} (breaking changes warned)",
        version=7,
        diff=diff,
        warnings=("x-ms-summary missing on 3 parameters",),
    )


def started(ledger, targets: list[str]) -> RunSummary:
    run = RunSummary(
        run_id=new_run_id(),
        api=API,
        request=SyncRequest(api=API, reason="event", event_id="evt-big", targets=tuple(targets)),
        targets=tuple(targets),
        created_at="2026-01-01T00:00:00Z",
    )
    ledger.start_run(run)
    return run


def old_encoding_size(outcomes: list[TargetOutcome]) -> int:
    plain = json.dumps([o.to_dict() for o in outcomes], separators=(",", ":")).encode()
    return len(codec.zlib_compress(plain))


@pytest.mark.azurite
def test_a_fan_out_sharing_one_large_diff_completes_and_reads_back_whole(ledger) -> None:
    targets = [f"env{i:02d}" for i in range(12)]
    shared = large_diff(seed=1)
    outcomes = [outcome(t, json.loads(json.dumps(shared))) for t in targets]  # equal, not same
    assert old_encoding_size(outcomes) > codec.INLINE_LIMIT  # the row refused this before
    run = started(ledger, targets)
    finished = [ledger.finish_item(run.run_id, o) for o in outcomes]
    assert finished[:-1] == [None] * (len(targets) - 1)
    assert finished[-1] is not None and finished[-1].complete
    stored = ledger.get_run(run.run_id)
    assert stored.outcomes == tuple(outcomes)  # lossless: every diff in full


@pytest.mark.azurite
def test_distinct_large_diffs_keep_every_operation_and_breaking_change(ledger) -> None:
    targets = [f"env{i:02d}" for i in range(12)]
    outcomes = [outcome(t, large_diff(seed=i)) for i, t in enumerate(targets)]
    nothing_to_drop = {"added": ["NewOp"], "removed": [], "changed": [], "breaking": False}
    outcomes.append(outcome("added-only", nothing_to_drop))
    outcomes.append(outcome("no-diff", None))
    run = started(ledger, [*targets, "added-only", "no-diff"])
    for o in outcomes:
        ledger.finish_item(run.run_id, o)
    stored = ledger.get_run(run.run_id)
    assert stored.complete
    *large, added_only, no_diff = stored.outcomes
    assert added_only.diff == nothing_to_drop  # nothing was left out, so nothing says so
    assert no_diff.diff is None
    for given, kept in zip(outcomes[:-2], large, strict=True):
        assert (kept.target, kept.result, kept.message, kept.version, kept.warnings) == (
            given.target,
            given.result,
            given.message,
            given.version,
            given.warnings,
        )
        assert kept.diff["detailsOmitted"] is True
        assert kept.diff["added"] == given.diff["added"]
        assert kept.diff["removed"] == given.diff["removed"]
        assert kept.diff["breaking"] is True
        assert [(e["operationId"], e["changes"]) for e in kept.diff["changed"]] == [
            (e["operationId"], [c for c in e["changes"] if c["breaking"]])
            for e in given.diff["changed"]
        ]


@pytest.mark.azurite
def test_a_run_that_fits_is_stored_as_a_plain_list_every_release_reads(ledger) -> None:
    run = started(ledger, ["dev", "prod"])
    given = outcome("dev", large_diff(seed=5, operations=3))
    ledger.finish_item(run.run_id, given)
    entity = ledger._table().get_entity(run_partition(), run.run_id)
    packed = codec.join_chunks(entity, entity["OutChunks"], where="test", prefix="Out")
    assert json.loads(codec.zlib_decompress(packed, where="test")) == [given.to_dict()]


def run_partition() -> str:
    from sync.adapters.ledger_tables import RUNS_PARTITION

    return RUNS_PARTITION


@pytest.mark.azurite
def test_a_row_written_in_the_earlier_format_is_still_read(ledger) -> None:
    targets = ["dev", "prod"]
    run = started(ledger, targets)
    outcomes = (outcome("dev", large_diff(seed=3, operations=3)), outcome("prod", None))
    entity = ledger._run_entity(run)
    for name in [k for k in entity if k.startswith("Out")]:
        del entity[name]
    plain = json.dumps([o.to_dict() for o in outcomes], separators=(",", ":")).encode()
    packed = codec.zlib_compress(plain)  # a plain list: the format before diffs were shared
    chunks = codec.chunk_properties(packed, prefix="Out")
    entity.update(chunks, OutChunks=len(chunks), OutBytes=len(packed))
    ledger._table().upsert_entity(entity)
    assert ledger.get_run(run.run_id).outcomes == outcomes


def test_outcomes_too_large_even_as_counts_are_refused_with_their_size() -> None:
    outcomes = [outcome(f"env{i}", large_diff(seed=i)) for i in range(3)]
    with pytest.raises(PermanentError, match=r"bytes compressed even with messages cut"):
        run_outcomes.encode(outcomes, limit=100, where="test")


def every_change_breaking(diff: dict) -> dict:
    changed = [
        {**e, "changes": [dict(c, breaking=True) for c in e["changes"]]} for e in diff["changed"]
    ]
    return {**diff, "changed": changed}


def step_sizes(outcomes: list[TargetOutcome]) -> list[int]:
    dicts = [o.to_dict() for o in outcomes]
    return [
        len(codec.zlib_compress(run_outcomes._document(dicts, step)))
        for step in run_outcomes.SHORTER
    ]


def test_past_the_breaking_details_each_operation_keeps_one_breaking_change() -> None:
    """Distinct diffs whose breaking changes alone pass the limit (before, the run row refused
    the outcome of a target already written, and the run never completed)."""
    outcomes = [outcome(f"env{i}", every_change_breaking(large_diff(seed=i))) for i in range(3)]
    full, without_details, one_each, counts = step_sizes(outcomes)
    assert full == without_details > one_each > counts  # nothing but breaking changes
    limit = (without_details + one_each) // 2

    stored = run_outcomes.decode(run_outcomes.encode(outcomes, limit=limit, where="t"), where="t")

    for given, kept in zip(outcomes, stored, strict=True):
        diff = kept["diff"]
        assert diff["detailsOmitted"] is True and diff["breaking"] is True
        assert diff["added"] == given.diff["added"] and diff["removed"] == given.diff["removed"]
        assert [e["operationId"] for e in diff["changed"]] == [
            e["operationId"] for e in given.diff["changed"]
        ]
        for entry, was in zip(diff["changed"], given.diff["changed"], strict=True):
            [change] = entry["changes"]
            assert change == was["changes"][0]


def test_last_of_all_an_outcome_keeps_the_breaking_flag_and_the_counts() -> None:
    outcomes = [outcome(f"env{i}", large_diff(seed=i)) for i in range(3)]
    *_, one_each, counts = step_sizes(outcomes)
    limit = (one_each + counts) // 2

    stored = run_outcomes.decode(run_outcomes.encode(outcomes, limit=limit, where="t"), where="t")

    assert [o["diff"] for o in stored] == [
        {
            "added": [],
            "removed": [],
            "changed": [],
            "breaking": True,
            "detailsOmitted": True,
            "counts": {"added": 20, "removed": 5, "changed": 250},
        }
    ] * 3
    assert [o["target"] for o in stored] == ["env0", "env1", "env2"]


def test_a_version_summary_too_large_to_store_is_shortened_until_it_fits() -> None:
    """The version row's summary takes the same steps: its property holds 61,440 compressed
    bytes, and a change past that used to fail the recording after the connector was written."""
    huge = every_change_breaking(large_diff(seed=7, operations=256))  # the platform's most
    huge["changed"] = [{**e, "changes": e["changes"] * 3} for e in huge["changed"]]
    long_name = "Op" + "x" * 1_000
    huge["added"].append(long_name)
    with pytest.raises(PermanentError, match="property limit"):
        codec.encode_json_property(huge)

    suffix, value = run_outcomes.fitting_summary(huge, where="api/dev")

    stored = codec.decode_json_property({"Summary" + suffix: value}, "Summary", where="t")
    assert stored["detailsOmitted"] is True and stored["breaking"] is True
    assert [e["operationId"] for e in stored["changed"]] == [
        e["operationId"] for e in huge["changed"]
    ]
    assert [e["changes"] for e in stored["changed"]] == [
        [{**e["changes"][0], "message": e["changes"][0]["message"][:160]}] for e in huge["changed"]
    ]
    assert stored["added"] == [*huge["added"][:-1], long_name[:160]]


def test_a_version_summary_that_fits_is_stored_as_it_is() -> None:
    small = large_diff(seed=8, operations=3)
    assert run_outcomes.fitting_summary(small, where="t") == codec.encode_json_property(small)


@pytest.mark.parametrize(
    "document",
    [
        {"outcomes": [{"target": "a", "diffRef": 1}], "diffs": [{}]},
        {"outcomes": [{"target": "a", "diffRef": "0"}], "diffs": [{}]},
        {"outcomes": [{"target": "a", "diffRef": True}], "diffs": [{}]},
        {"outcomes": [{"target": "a"}]},
        {"outcomes": ["a"], "diffs": []},
        {"diffs": []},
        "outcomes",
    ],
)
def test_a_damaged_outcomes_document_is_reported_as_corrupt(document: object) -> None:
    data = codec.zlib_compress(json.dumps(document).encode())
    with pytest.raises(LedgerCorruptError):
        run_outcomes.decode(data, where="ledger.run(test)")


def test_outcomes_that_are_not_json_are_reported_as_corrupt() -> None:
    with pytest.raises(LedgerCorruptError, match="not JSON"):
        run_outcomes.decode(codec.zlib_compress(b"{not json"), where="ledger.run(test)")


def test_a_plain_row_is_the_json_of_the_list_and_each_outcome_is_encoded_once(monkeypatch):
    """The plain form stays byte for byte what releases before wrote (``json.dumps`` of the
    list), while a fan-out's rewrites encode each outcome object once, not once per rewrite."""
    diff = large_diff(7, operations=3)
    outcomes = [outcome(f"env{i}", diff) for i in range(5)]
    expected = json.dumps([o.to_dict() for o in outcomes], separators=(",", ":")).encode()
    encoded = run_outcomes.encode(outcomes, limit=codec.INLINE_LIMIT, where="test")
    assert codec.zlib_decompress(encoded, where="test") == expected

    calls: list[str] = []
    real = TargetOutcome.to_dict
    monkeypatch.setattr(
        TargetOutcome, "to_dict", lambda self: calls.append(self.target) or real(self)
    )
    grown = [*outcomes, outcome("env5", diff)]
    for count in range(1, len(grown) + 1):  # the rewrites of a run, one more outcome each
        run_outcomes.encode(grown[:count], limit=codec.INLINE_LIMIT, where="test")
    assert calls == ["env5"]  # the five encoded above are reused
    copy = TargetOutcome(**{**grown[0].__dict__})  # an equal but new object is encoded anew
    run_outcomes.encode([copy], limit=codec.INLINE_LIMIT, where="test")
    assert calls == ["env5", "env0"]


@pytest.mark.azurite
def test_a_fan_out_failing_with_a_huge_platform_message_still_completes(ledger) -> None:
    """34 targets refused with the same 226 KB validation message (the platform's JSON error is
    passed on whole): zlib's window cannot see the repeats, so from the 32nd outcome the row
    was refused, the run never completed and no card was sent (found by review 2026-12-07)."""
    rng = random.Random(7)
    lines = "".join(
        f"Error at '#/paths/~1{rng.getrandbits(128):032x}/get': bad parameter type\n"
        for _ in range(3000)
    )
    assert len(lines) > 220_000
    targets = [f"env{i:02d}" for i in range(34)]
    outcomes = [
        TargetOutcome(
            api=API,
            target=t,
            result="failed",
            message=f"{t}: validateApiSwagger refused the definition: {lines}",
            warnings=tuple(f"warning {n} " * 20 for n in range(200)),
        )
        for t in targets
    ]
    run = started(ledger, targets)
    finished = [ledger.finish_item(run.run_id, o) for o in outcomes]
    assert finished[-1] is not None and finished[-1].complete
    stored = {o.target: o for o in ledger.get_run(run.run_id).outcomes}
    assert set(stored) == set(targets)
    last = stored["env33"]
    assert last.result == "failed" and last.message.startswith("env33: validateApiSwagger")
    assert last.message.endswith(f"({len(outcomes[-1].message):,} characters)")
    assert len(last.message) < 600
    assert last.warnings[-1] == "... and 197 more" and len(last.warnings) == 4
