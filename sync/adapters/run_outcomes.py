"""How a run row stores its targets' outcomes: compressed JSON that must stay under the row's
size limit whatever the fan-out, or the run never completes and nobody gets a card.

The targets of a fan-out mostly report one diff (the same spec moving every environment from the
same definition to the same one), and a diff of a large change is hundreds of KB of JSON: zlib's
32 KB window cannot see that the third copy repeats the first, so 20 such outcomes used to pass
the limit, and the row refused the outcome of a target whose connector was already updated. So
each distinct diff is stored once and the outcomes refer to it (lossless). Only if the distinct
diffs are still too large are the details of non-breaking changes left out: every added, removed
and changed operation and every breaking change stays, so the card's counts and warnings hold.
Past that, each changed operation keeps its first breaking change, and last of all a diff keeps
only its breaking flag and counts (``SHORTER``). A version row's summary takes the same steps
(``fitting_summary``), so a change too large to describe is still recorded.

A run that fits is still written as a plain list of outcomes, the format every release reads;
only a run past the limit takes the shared-diff form, which releases before it cannot read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sync.adapters import ledger_codec as codec
from sync.adapters.ledger_codec import LedgerCorruptError
from sync.errors import PermanentError
from sync.lru import Lru
from sync.models import TargetOutcome

log = logging.getLogger(__name__)


def encode(outcomes: Sequence[TargetOutcome], *, limit: int, where: str) -> bytes:
    """The outcomes as compressed JSON of at most ``limit`` bytes (see the module docstring).
    A run that fits is written as before, a plain list, which every release reads (a rollback
    or a slot swap may leave older workers finishing the runs newer ones started)."""
    plain = codec.zlib_compress(b"[" + b",".join(_encoded(o) for o in outcomes) + b"]")
    if len(plain) <= limit:
        return plain
    dicts = [outcome.to_dict() for outcome in outcomes]
    shared = codec.zlib_compress(_document(dicts, SHORTER[0]))
    if len(shared) <= limit:
        return shared
    for shorten in SHORTER[1:]:
        shorter = codec.zlib_compress(_document(dicts, shorten))
        if len(shorter) <= limit:
            log.warning(
                "run row outcomes are %d bytes compressed, above %d: change details left out "
                "(%s, %d bytes)",
                len(shared),
                limit,
                shorten.__name__.strip("_"),
                len(shorter),
            )
            return shorter
    # Still too large: the outcomes' own text (a platform's error message runs to hundreds of
    # KB, the same one per target, past zlib's window) is cut too, so the run still completes.
    brief = codec.zlib_compress(_document([_brief(d) for d in dicts], SHORTER[-1]))
    if len(brief) <= limit:
        log.warning(
            "run row outcomes are %d bytes compressed, above %d: messages and findings cut "
            "(%d bytes)",
            len(shared),
            limit,
            len(brief),
        )
        return brief
    raise PermanentError(  # ~1 KB per target at most: reached only past ~600 targets
        f"run outcomes are {len(brief)} bytes compressed even with messages cut, above {limit}",
        where=where,
    )


MAX_BRIEF_MESSAGE_CHARS = 500
MAX_BRIEF_FINDINGS = 3  # of each of warnings, losses and conflicts


def _brief(outcome: dict[str, Any]) -> dict[str, Any]:
    """An outcome with its message cut and its findings reduced to the first few, each cut, and
    a count of the rest: what a card and ``GET /api/runs`` need to say what happened."""

    def cut(text: Any, limit: int) -> Any:
        if not isinstance(text, str) or len(text) <= limit:
            return text
        return f"{text[:limit]}... ({len(text):,} characters)"

    out = {**outcome, "message": cut(outcome.get("message"), MAX_BRIEF_MESSAGE_CHARS)}
    for key in ("warnings", "losses", "conflicts"):
        found = outcome.get(key)
        if isinstance(found, list) and found:
            kept = [cut(f, MAX_SHOWN_CHARS) for f in found[:MAX_BRIEF_FINDINGS]]
            if len(found) > MAX_BRIEF_FINDINGS:
                kept.append(f"... and {len(found) - MAX_BRIEF_FINDINGS} more")
            out[key] = kept
    return out


_ENCODED = Lru(64)  # outcome -> its compact JSON (Lru.for_object), see _encoded


def _encoded(outcome: TargetOutcome) -> bytes:
    """An outcome's JSON as an element of the plain list (``json.dumps`` of the list is its
    elements' JSON joined by commas), made once per outcome object: each of a fan-out's 20
    run-row rewrites holds every earlier outcome again (~8 KB of JSON each with its diff), and
    encoding them all each time cost ~1 ms per rewrite. Outcomes are frozen and their diffs
    never changed, so the JSON of an object stays right; a new object is encoded anew."""
    return _ENCODED.for_object(
        outcome, lambda o: json.dumps(o.to_dict(), separators=(",", ":")).encode()
    )


def decode(data: bytes, *, where: str) -> list[dict[str, Any]]:
    """The outcome dicts ``encode`` stored (or a row's plain list, from before this format)."""
    try:
        document = json.loads(codec.zlib_decompress(data, where=where))
    except ValueError as exc:
        raise LedgerCorruptError(f"run outcomes are not JSON: {exc}", where=where) from None
    if isinstance(document, list):
        return document
    if not isinstance(document, dict) or not isinstance(document.get("outcomes"), list):
        raise LedgerCorruptError("run outcomes have an unknown shape", where=where)
    diffs = document.get("diffs")
    if not isinstance(diffs, list):
        raise LedgerCorruptError("run outcomes have no list of diffs", where=where)
    out: list[dict[str, Any]] = []
    for entry in document["outcomes"]:
        if not isinstance(entry, dict):
            raise LedgerCorruptError("a run outcome is not an object", where=where)
        entry = dict(entry)
        ref = entry.pop("diffRef", None)
        if ref is not None:
            if type(ref) is not int or not 0 <= ref < len(diffs):
                raise LedgerCorruptError(f"a run outcome names diff {ref!r}", where=where)
            entry["diff"] = diffs[ref]
        out.append(entry)
    return out


def _document(
    outcomes: list[dict[str, Any]], shorten: Callable[[dict[str, Any]], dict[str, Any]]
) -> bytes:
    diffs: list[Any] = []
    seen: dict[str, int] = {}
    by_object: dict[int, int] = {}  # outcomes decoded from a row share their diff objects
    stored: list[dict[str, Any]] = []
    for outcome in outcomes:
        diff = outcome.get("diff")
        if not isinstance(diff, dict):
            stored.append(outcome)
            continue
        ref = by_object.get(id(diff))
        if ref is None:
            shown = shorten(diff)
            key = json.dumps(shown, separators=(",", ":"), sort_keys=True)
            ref = seen.get(key)
            if ref is None:
                ref = seen[key] = len(diffs)
                diffs.append(shown)
            by_object[id(diff)] = ref
        stored.append({**{k: v for k, v in outcome.items() if k != "diff"}, "diffRef": ref})
    document = {"diffs": diffs, "outcomes": stored}
    return json.dumps(document, separators=(",", ":")).encode()


def _as_is(diff: dict[str, Any]) -> dict[str, Any]:
    return diff


def _without_details(diff: dict[str, Any]) -> dict[str, Any]:
    """Every operation the diff names and every breaking change, without the other changes; the
    diff itself when it has none to leave out."""
    entries = diff.get("changed")
    if not isinstance(entries, list):
        return diff
    changed: list[Any] = []
    dropped = False
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            changed.append(entry)
            continue
        kept = [c for c in changes if isinstance(c, dict) and c.get("breaking")]
        dropped = dropped or len(kept) < len(changes)
        changed.append({**entry, "changes": kept})
    if not dropped:
        return diff
    return {**diff, "changed": changed, "detailsOmitted": True}


MAX_SHOWN_CHARS = 160  # of an operation name or a change message, once details are left out


def _one_breaking_change(diff: dict[str, Any]) -> dict[str, Any]:
    """Every operation the diff names (names cut to ``MAX_SHOWN_CHARS``), each changed one with
    its first breaking change only, its message cut: what a card counts (operations, breaking
    ones) stays right, in a few hundred bytes per operation whatever the spec held."""
    base = _without_details(diff)

    def cut(text: Any) -> Any:
        return text[:MAX_SHOWN_CHARS] if isinstance(text, str) else text

    changed = []
    for entry in base.get("changed") or ():
        if not isinstance(entry, dict):
            continue
        kept = [c for c in entry.get("changes") or () if isinstance(c, dict)][:1]
        changes = [{**c, "message": cut(c.get("message"))} for c in kept]
        changed.append({**entry, "operationId": cut(entry.get("operationId")), "changes": changes})
    return {
        **base,
        "added": [cut(name) for name in base.get("added") or ()],
        "removed": [cut(name) for name in base.get("removed") or ()],
        "changed": changed,
        "detailsOmitted": True,
    }


def _counts_only(diff: dict[str, Any]) -> dict[str, Any]:
    """The last step: whether the change breaks, and how many operations it touches."""
    return {
        "added": [],
        "removed": [],
        "changed": [],
        "breaking": bool(diff.get("breaking")),
        "detailsOmitted": True,
        "counts": {k: len(diff.get(k) or ()) for k in ("added", "removed", "changed")},
    }


# Each step shows less of a diff than the one before; the last always fits a row's limit.
SHORTER: tuple[Callable[[dict[str, Any]], dict[str, Any]], ...] = (
    _as_is,
    _without_details,
    _one_breaking_change,
    _counts_only,
)


def fitting_summary(diff: dict[str, Any], *, where: str) -> tuple[str, str | bytes]:
    """A version row's summary property (``codec.encode_json_property``), shortened by the
    steps of ``SHORTER`` until it fits: a change too large to describe in full must still be
    recorded once the connector holds it (its definitions are stored whole beside it)."""
    for shorten in SHORTER:
        try:
            encoded = codec.encode_json_property(shorten(diff))
        except PermanentError:
            continue
        if shorten is not _as_is:
            log.warning("%s: version summary too large; %s", where, shorten.__name__.strip("_"))
        return encoded
    raise PermanentError("version summary does not fit even as counts", where=where)
