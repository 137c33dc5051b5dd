"""Cards for every kind of run: Teams' limits, what they show, and the real adaptivecards parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.models import RESULTS, RunSummary, TargetOutcome
from sync.notify import MAX_MESSAGE_BYTES, build_card, build_message, encode_message, summarize
from sync.notify.cards import CANVAS_REMINDER, DRY_RUN_NOTE, plain, safe_url
from tests.conftest import corpus_dir
from tests.notify import runs
from tests.notify.checks import node_events, nodes, problems, shown, texts


def _card(run: RunSummary) -> dict[str, Any]:
    return build_card(run, maker_portal=runs.PORTAL)


# The helpers below give text as a reader sees it (markdown escapes resolved, see ``shown``):
# these tests are about what the card says; test_card_markdown.py is about how it is escaped.


def _header(card: dict[str, Any]) -> tuple[str, str]:
    head = card["body"][0]
    return head["style"], shown(head["items"][0]["text"])


def _facts(card: dict[str, Any]) -> dict[str, str]:
    return {f["title"]: shown(f["value"]) for n in nodes(card) for f in n.get("facts", [])}


def _colored(card: dict[str, Any], color: str) -> list[str]:
    return [
        shown(n["text"])
        for n in nodes(card)
        if n.get("type") == "TextBlock" and n.get("color") == color
    ]


def _shown_texts(card: dict[str, Any]) -> list[str]:
    return [shown(t) for t in texts(card)]


def _urls(card: dict[str, Any]) -> list[str]:
    return [n["url"] for n in nodes(card) if n.get("type") == "Action.OpenUrl"]


# --- the real library, once for every card ---------------------------------------------------------


def _all_messages() -> dict[str, dict[str, Any]]:
    messages = {
        name: build_message(make(), maker_portal=runs.PORTAL) for name, make in runs.SAMPLES.items()
    }
    messages["huge"] = build_message(runs.huge_run())
    messages["huge-tight"] = build_message(runs.huge_run(), max_bytes=6000)
    messages["incomplete"] = build_message(
        RunSummary("r1", "api", runs.request(), ("a", "b"), (runs.outcome("a", "updated"),))
    )
    messages["empty"] = build_message(RunSummary("r2", "api", runs.request(), ()))
    messages["details-omitted"] = build_message(_details_omitted_run())
    messages["counts-only"] = build_message(_counts_only_run())
    return messages


def _counts_only_run() -> RunSummary:
    """The last step of run_outcomes.SHORTER: a diff kept only as its numbers."""
    diff = {
        "added": [],
        "removed": [],
        "changed": [],
        "breaking": True,
        "detailsOmitted": True,
        "counts": {"added": 3, "removed": 0, "changed": 256},
    }
    return runs.run([runs.outcome("prod", "updated", diff=diff)])


def _details_omitted_run() -> RunSummary:
    """An outcome as a run row over its size limit keeps it (sync/adapters/run_outcomes.py)."""
    diff = {
        "added": ["NewOp"],
        "removed": [],
        "changed": [
            {"operationId": "GetItem", "changes": []},
            {
                "operationId": "ListItems",
                "changes": [
                    {"kind": "param-required", "message": "top is required", "breaking": True}
                ],
            },
        ],
        "breaking": True,
        "detailsOmitted": True,
    }
    return runs.run([runs.outcome("prod", "updated", diff=diff)])


@pytest.mark.cards
def test_every_card_passes_the_adaptivecards_library_and_our_rules() -> None:
    messages = _all_messages()
    cards = [m["attachments"][0]["content"] for m in messages.values()]
    events = node_events(cards)
    for (name, message), found in zip(messages.items(), events, strict=True):
        assert found == [], f"{name}: {found}"
        assert problems(message, canary=runs.CANARY) == [], name


@pytest.mark.cards
def test_cards_from_real_corpus_diffs_pass_the_library() -> None:
    folders = sorted(p for p in corpus_dir("connectors").iterdir() if (p / "meta.json").is_file())
    assert folders
    messages = [build_message(runs.corpus_run(f), maker_portal=runs.PORTAL) for f in folders]
    events = node_events([m["attachments"][0]["content"] for m in messages])
    for folder, message, found in zip(folders, messages, events, strict=True):
        assert found == [], f"{folder.name}: {found}"
        assert problems(message) == [], folder.name
    # Notion removed 6 operations: they show as breaking, by name
    notion = next(m for f, m in zip(folders, messages, strict=True) if f.name == "Notion")
    removed = [t for t in _colored(notion, "attention") if t.startswith("Removed, breaking (6)")]
    assert removed


@pytest.mark.cards
def test_validator_reports_a_broken_card() -> None:
    """The validator itself must be able to fail, or the test above proves nothing."""
    broken = {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [{"type": "Fancy.Unknown"}, {"type": "TextBlock", "text": "x", "color": "purple"}],
    }
    (events,) = node_events([broken])
    kinds = {e[1] for e in events}
    assert {"UnknownElementType", "InvalidPropertyValue"} <= kinds


def test_own_checks_catch_what_the_library_lets_through() -> None:
    message = build_message(runs.success_run())
    card = message["attachments"][0]["content"]
    card["version"] = "1.6"
    card["body"].append({"type": "TextBlock"})
    card["body"].append({"type": "ActionSet", "actions": [{"type": "Action.Submit"}]})
    card["body"].append(
        {"type": "ActionSet", "actions": [{"type": "Action.OpenUrl", "url": "javascript:x"}]}
    )
    found = problems(message)
    assert "card version 1.6 > 1.5" in found
    assert "TextBlock without text" in found
    assert "action Action.Submit" in found
    assert "bad url 'javascript:x'" in found


# --- what each card shows ---------------------------------------------------------------------------


def test_success_card_shows_versions_trigger_targets_links_and_reminder() -> None:
    card = _card(runs.success_run())
    style, title = _header(card)
    assert style == "good"
    assert title == "Connector updated: contoso-invoicing"
    facts = _facts(card)
    assert facts["Version"] == "2.3.1 → 2.4.0"
    assert facts["Trigger"] == "event: Contoso.Api.Deployed"
    assert facts["Deployment"] == "deploy-2026-11-01-0914"
    assert facts["Commit"].startswith("9b2e4f1c")
    assert facts["Caller"] == "ci:github-actions/contoso/invoicing"
    body = _shown_texts(card)
    assert "contoso-prod · prod" in body
    assert "folder" in body  # kind and name are the same word: shown once
    assert "Updated · version 6 → 7 · spec 2.3.1 → 2.4.0" in body
    assert "Unchanged · version 7 · spec 2.4.0" in body
    assert "Added (2): ListCreditNotes, GetCreditNote" in body
    breaking = _colored(card, "attention")
    assert any(
        "BREAKING CreateInvoice: parameter 'currency' (body) is now required" in t for t in breaking
    )
    assert not any("GetInvoice" in t for t in breaking)  # a non-breaking change is not red
    assert "Validation warnings (1):\n• operation GetInvoice has no summary" in body
    assert "Conversion losses (1):\n• oneOf in schema Payment flattened to its first branch" in body
    assert CANVAS_REMINDER in body
    assert runs.portal_url("contoso-prod", "shared_contoso-20invoicing-prod") in _urls(card)
    assert card["actions"][0]["url"] == runs.PORTAL
    assert card["version"] == "1.5"


def test_failed_card_is_distinct_and_lists_the_failure_first() -> None:
    card = _card(runs.failed_run())
    style, title = _header(card)
    assert (style, title) == ("attention", "Connector sync FAILED: contoso-invoicing")
    assert _facts(card)["Trigger"] == "manual"
    targets = [c for c in card["body"] if c.get("type") == "Container" and c.get("separator")]
    assert targets[0]["items"][1]["text"].startswith("Failed")
    assert targets[0]["items"][1]["color"] == "attention"


def test_secret_looking_query_strings_in_messages_are_cut() -> None:
    message = build_message(runs.failed_run())
    assert runs.CANARY.encode() not in encode_message(message)
    body = _shown_texts(message["attachments"][0]["content"])
    assert any("https://api.powerapps.com/providers/x?…" in t for t in body)


def test_blocked_card_names_removed_operations_and_conflicts() -> None:
    card = _card(runs.blocked_run())
    style, title = _header(card)
    assert (style, title) == ("attention", "Connector sync BLOCKED: contoso-invoicing")
    red = _colored(card, "attention")
    assert "Removed, breaking (2): DeleteInvoice, VoidInvoice" in red
    assert "Breaking change" in red
    assert any(t.startswith("Merge conflicts (1):") for t in red)
    assert CANVAS_REMINDER not in texts(card)  # nothing was updated


def test_held_card_uses_warning_style_and_says_why() -> None:
    card = _card(runs.held_run())
    assert _header(card) == ("warning", "Connector sync held: contoso-invoicing")
    assert any("held at version 6 until" in t for t in texts(card))


def test_dry_run_card_says_nothing_was_written() -> None:
    card = _card(runs.dry_run())
    assert _header(card)[0] == "accent"
    body = texts(card)
    assert DRY_RUN_NOTE in body
    assert CANVAS_REMINDER not in body
    assert "2 targets: 2 dry run" in body


def test_unchanged_run_has_no_reminder() -> None:
    run = runs.run([runs.outcome("prod", "unchanged", diff=None, version=6)])
    card = _card(run)
    assert _header(card) == ("default", "Connector already up to date: contoso-invoicing")
    assert CANVAS_REMINDER not in texts(card)


def test_incomplete_run_names_the_targets_without_result() -> None:
    run = RunSummary("r1", "api", runs.request(), ("a", "b", "c"), (runs.outcome("a", "updated"),))
    card = build_card(run)
    assert _header(card)[0] == "attention"
    assert "No result recorded for: b, c" in _colored(card, "attention")
    assert "incomplete" in summarize(run)


def test_empty_run_still_builds_a_card() -> None:
    card = build_card(RunSummary("r2", "api", runs.request(), ()))
    assert problems(build_message(RunSummary("r2", "api", runs.request(), ()))) == []
    assert "0 targets: no results yet" in texts(card)


def test_rollback_trigger_names_the_version() -> None:
    run = runs.run(
        [runs.outcome("prod", "updated")], reason="rollback", event_type=None, rollback_to=4
    )
    assert _facts(build_card(run))["Trigger"] == "rollback (to version 4)"


# --- size limits -------------------------------------------------------------------------------------


def test_huge_run_is_trimmed_under_the_limit_and_says_how_much_is_left_out() -> None:
    run = runs.huge_run(200, 300)
    message = build_message(run)
    size = len(encode_message(message))
    assert size <= MAX_MESSAGE_BYTES
    assert size > MAX_MESSAGE_BYTES // 4  # trimmed, not emptied
    card = message["attachments"][0]["content"]
    body = texts(card)
    more = [t for t in body if t.startswith("and ") and "more targets" in t]
    assert len(more) == 1
    shown = [c for c in card["body"] if c.get("type") == "Container" and c.get("separator")]
    assert int(more[0].split()[1]) + len(shown) == 200
    # problems first: the detailed targets are the failed ones
    assert all(c["items"][1]["text"].startswith("Failed") for c in shown)
    assert all(len(t) <= 2000 for t in body)


def test_tight_limits_show_fewer_targets_then_counts_only() -> None:
    for limit, detailed in ((6000, True), (2000, False)):
        message = build_message(runs.huge_run(200, 300), max_bytes=limit)
        assert len(encode_message(message)) <= limit
        card = message["attachments"][0]["content"]
        shown = [c for c in card["body"] if c.get("type") == "Container" and c.get("separator")]
        assert bool(shown) is detailed, limit
        assert any(f"and {200 - len(shown)} more targets" in t for t in texts(card))


def _most_detailed_that_fits(run: RunSummary, max_bytes: int) -> tuple[dict[str, Any], int, int]:
    """The card ``build_card`` promises, found the slow way: every candidate built afresh (no
    block shared between cards) and the targets counted down one by one (no bisection). Also
    returns the step it ended at and how many targets it details."""
    from sync.notify import cards

    cap = min(len(run.outcomes), cards.MAX_DETAILED_TARGETS)

    def card(items: int, targets: int, text: int) -> dict[str, Any]:
        return cards._card(run, cards._Detail(items, targets, text), runs.PORTAL, {})

    def fits(candidate: dict[str, Any]) -> bool:
        return len(encode_message(cards._envelope(candidate))) <= max_bytes

    for step, (items, text) in enumerate(cards._STEPS):
        last = step == len(cards._STEPS) - 1
        if fits(full := card(items, cap, text)):
            return full, step, cap
        low = 0 if last else min(cap, cards.MIN_DETAILED_TARGETS)
        if not last and not fits(card(items, low, text)):
            continue
        for n in range(cap - 1, low, -1):
            if fits(found := card(items, n, text)):
                return found, step, n
        return card(items, low, text), step, low
    raise AssertionError("the last step returns")


# (targets, operations) of runs.huge_run and a byte limit: together they end the search at every
# step, with every target detailed and with fewer (see the test after the next)
TRIMMED = [
    ((2, 3), 12_000),
    ((1, 5), MAX_MESSAGE_BYTES),  # not trimmed at all
    ((6, 3), 28_500),
    ((2, 3), 9_000),
    ((6, 3), 21_000),
    ((2, 8), 9_000),
    ((6, 3), 18_000),
    ((2, 3), 7_500),
    ((6, 3), 16_500),
    ((2, 3), 4_500),
    ((6, 3), 9_000),
    ((2, 3), 3_000),
    ((3, 30), MAX_MESSAGE_BYTES),
    ((20, 30), MAX_MESSAGE_BYTES),
    ((20, 30), 14_000),
    ((60, 12), 9_000),
    ((7, 300), 5_000),
    ((20, 30), 2_500),
]


@pytest.mark.parametrize(("size", "max_bytes"), TRIMMED)
def test_a_trimmed_card_is_the_most_detailed_one_that_fits(size, max_bytes) -> None:
    # the search shares target blocks between the cards it tries within a step: what it returns
    # must still be the card the slow way builds
    run = runs.huge_run(*size)
    card = build_card(run, maker_portal=runs.PORTAL, max_bytes=max_bytes)
    expected, _, _ = _most_detailed_that_fits(run, max_bytes)
    assert card == expected
    assert json.dumps(card) == json.dumps(expected)


def test_the_trimmed_cases_end_at_every_step() -> None:
    from sync.notify import cards

    ends = set()
    for size, max_bytes in TRIMMED:
        run = runs.huge_run(*size)
        _, step, shown = _most_detailed_that_fits(run, max_bytes)
        ends.add((step, shown == min(len(run.outcomes), cards.MAX_DETAILED_TARGETS)))
    steps = range(len(cards._STEPS))
    every = {(step, True) for step in steps[:-1]} | {(step, False) for step in steps}
    assert ends >= every, sorted(every - ends)


def test_long_operation_lists_end_with_and_n_more() -> None:
    ops = [f"Op{i}" for i in range(40)]
    run = runs.run(
        [runs.outcome("prod", "updated", diff={"added": ops, "removed": [], "changed": []})]
    )
    body = texts(build_card(run))
    assert any(t.startswith("Added (40): Op0, Op1") and t.endswith(", and 25 more") for t in body)


def test_huge_single_strings_are_capped() -> None:
    run = runs.run(
        [runs.outcome("p" * 5000, "failed", message="boom " * 10_000, environment="e" * 5000)]
    )
    run = RunSummary(run.run_id, "a" * 10_000, run.request, run.targets, run.outcomes)
    message = build_message(run)
    assert problems(message) == []
    assert all(len(t) <= 500 for t in texts(message["attachments"][0]["content"]))


# --- hostile and odd input ---------------------------------------------------------------------------


def test_unsafe_urls_never_become_buttons() -> None:
    for bad in (
        "javascript:alert(1)",
        "data:text/html,x",
        "ftp://h/x",
        "https://",
        "https://h/a b",
        "",
        None,
    ):
        run = runs.run([runs.outcome("prod", "updated", portal_url=bad)])
        card = build_card(run, maker_portal=bad)
        assert _urls(card) == [], bad
        assert "actions" not in card


def test_safe_url_accepts_portal_links() -> None:
    url = runs.portal_url("Default-1", "shared_x")
    assert safe_url(url) == url
    assert safe_url("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x"


def test_plain_strips_control_and_bidi_characters_and_caps() -> None:
    assert plain("a\x00b\x1b[31mc\u202ed\tx\r\ny", 100) == "ab[31mcd x\ny"
    assert plain("x" * 50, 10) == "x" * 9 + "…"
    assert plain("see https://h/p?sig=abc&x=1 now", 100) == "see https://h/p?… now"


def test_odd_diffs_do_not_break_the_card() -> None:
    odd = [
        None,
        "not a dict",
        {"added": [{"method": "get", "path": "/a"}, {"operationId": "B"}, {}], "removed": None},
        {"changed": ["junk", {"operationId": "X"}, {"operationId": "Y", "changes": ["junk", {}]}]},
    ]
    for diff in odd:
        run = runs.run([runs.outcome("prod", "updated", diff=diff)])  # type: ignore[arg-type]
        assert problems(build_message(run)) == [], diff
    body = texts(build_card(runs.run([runs.outcome("prod", "updated", diff=odd[2])])))  # type: ignore[arg-type]
    assert "Added (3): GET /a, B, ?" in body


def test_card_json_round_trips_and_is_plain_text() -> None:
    raw = encode_message(build_message(runs.success_run()))
    assert json.loads(raw.decode("utf-8"))["type"] == "message"
    assert b"&amp;" not in raw  # nothing HTML-escaped
    assert b"&lt;" not in raw


_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


@st.composite
def _runs(draw: st.DrawFn) -> RunSummary:
    n = draw(st.integers(0, 12))
    outcomes = []
    for i in range(n):
        ops = draw(st.lists(_texts, max_size=30))
        outcomes.append(
            TargetOutcome(
                api="a",
                target=f"t{i}",
                result=draw(st.sampled_from(RESULTS)),  # type: ignore[arg-type]
                message=draw(_texts),
                version=draw(st.none() | st.integers(0, 10**6)),
                previous_version=draw(st.none() | st.integers(0, 10**6)),
                info_version=draw(st.none() | _texts),
                previous_info_version=draw(st.none() | _texts),
                environment=draw(st.none() | _texts),
                portal_url=draw(st.none() | _texts),
                diff={
                    "added": ops,
                    "removed": ops[:3],
                    "changed": [
                        {"operationId": o, "changes": [{"message": o, "breaking": True}]}
                        for o in ops
                    ],
                },
                warnings=tuple(draw(st.lists(_texts, max_size=20))),
            )
        )
    return RunSummary(
        "r", draw(_texts), runs.request(), tuple(o.target for o in outcomes), tuple(outcomes)
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_runs())
def test_any_run_gives_a_card_within_teams_rules(run: RunSummary) -> None:
    assert problems(build_message(run, max_bytes=8000)) == []
    assert len(encode_message(build_message(run, max_bytes=8000))) <= 8000


def test_a_diff_kept_only_as_counts_shows_the_counts() -> None:
    body = texts(build_card(_counts_only_run()))
    assert "Operations 3 added, 256 changed" in body
    assert "Change details too large to keep: see the connector" in body
    assert "Breaking change" in body
    assert not any("Non-breaking change details" in t for t in body)


def test_a_diff_without_its_non_breaking_details_says_where_they_are() -> None:
    body = texts(build_card(_details_omitted_run()))
    assert "Non-breaking change details: see the version history" in body
    assert any("ListItems: top is required" in t for t in body)
    assert any("GetItem" in t for t in body)
    full = runs.run(
        [runs.outcome("prod", "updated", diff={"added": ["NewOp"], "removed": [], "changed": []})]
    )
    assert not any("Non-breaking change details" in t for t in texts(build_card(full)))
