"""Text from data renders literally: Teams treats TextBlock text and fact values as markdown.

A commit, version or deploymentId (POST /api/sync, CI events), an operationId or info.version
(the upstream spec) and error messages are written by someone else. Passed through as they are,
``[Sign in again](https://evil.example/login)`` would be a phishing link in our own card,
``<at>..</at>`` a mention, ``# x`` a heading. These tests hold the card to showing such text
escaped, still valid, still readable, and still under the byte limit.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.models import RunSummary
from sync.notify import MAX_MESSAGE_BYTES, build_card, build_message, encode_message
from sync.notify.cards import markdown_literal
from tests.notify import runs
from tests.notify.checks import node_events, nodes, problems, shown, texts

HOSTILE = "# h [x](https://evil.example) **b** <at>someone</at> https://evil.example/login"
LINK = "[Sign in again to fix the connector](https://evil.example/login)"  # the reviewer's
WJ = "\u2060"  # word joiner: invisible, breaks "https://" and "evil.example" for autolinkers
ESCAPED = (
    r"\# h \[x\](https:" + WJ + r"//evil." + WJ + r"example) \*\*b\*\* "
    "<" + WJ + "at>someone<" + WJ + "/at> https:" + WJ + "//evil." + WJ + "example/login"
)
MID = ESCAPED.removeprefix("\\")  # "# h" past a line's start is no heading: no backslash
ESCAPED_LINK = (
    r"\[Sign in again to fix the connector\](https:" + WJ + "//evil." + WJ + "example/login)"
)
# A character that marks up wherever it stands, not preceded by a backslash once escaped pairs
# are taken out; and a line-start marker (heading, quote, bullet, numbered item)
_UNESCAPED = re.compile(r"[`*_\[\]~]")
# read on the escaped text itself: taking escaped pairs out first would move a later character
# to the line's start ("\\--" -> "-") and flag a marker that is not there
_LINE_START = re.compile(r"(?m)^[ \u00a0]*([#>+\-]|\d{1,9}\.(\s|$))")


def _hostile_run(**req: Any) -> RunSummary:
    diff = {
        "added": [HOSTILE, "GetInvoice"],
        "removed": [],
        "changed": [
            {
                "operationId": HOSTILE,
                "changes": [{"kind": "x", "message": HOSTILE, "breaking": True}],
            }
        ],
    }
    return runs.run(
        [
            runs.outcome(
                "prod",
                "failed",
                message=f"spec rejected: {HOSTILE} {LINK}",
                info_version=HOSTILE,
                diff=diff,
                warnings=(HOSTILE,),
            )
        ],
        commit=HOSTILE,
        deployment_id=HOSTILE,
        **req,
    )


def _version_run() -> RunSummary:
    """No target reported an info.version, so the Version fact is the request's version."""
    return runs.run(
        [runs.outcome("prod", "failed", info_version=None, previous_info_version=None)],
        version=HOSTILE,
    )


def _data_strings(card: dict[str, Any]) -> list[str]:
    """Every TextBlock text and fact value that holds the hostile text."""
    found = [t for t in texts(card) if "evil" in t]
    found += [f["value"] for n in nodes(card) for f in n.get("facts", []) if "evil" in f["value"]]
    return found


def _facts(card: dict[str, Any]) -> dict[str, str]:
    return {f["title"]: f["value"] for n in nodes(card) for f in n.get("facts", [])}


def test_hostile_text_in_facts_and_text_blocks_is_escaped() -> None:
    """Every field someone else writes reaches the card escaped, exactly as markdown_literal
    says: commit, deployment id, request version, info.version, operationIds, error text."""
    card = build_card(_hostile_run(), maker_portal=runs.PORTAL)
    facts = _facts(card)
    assert facts["Commit"] == ESCAPED
    assert facts["Deployment"] == ESCAPED
    assert facts["Version"] == "2.3.1 → " + MID  # info.version of the target
    assert _facts(build_card(_version_run()))["Version"] == ESCAPED  # version of the request
    body = texts(card)
    assert f"spec rejected: {MID} {ESCAPED_LINK}" in body  # the error message
    spec = "Failed · version 6 · spec 2.3.1 → " + MID[:40]  # capped at 80 characters shown
    assert any(t.startswith(spec) and t.endswith("…") for t in body)
    assert (
        f"Added (2): {ESCAPED}, GetInvoice" in body
    )  # escaped as a list of its own  # an operationId
    assert any(t.startswith(f"• BREAKING {ESCAPED}: {MID}") for t in body)  # changed op
    assert any(t.endswith(f"• {ESCAPED}") for t in body)  # a validation warning


def test_no_data_string_keeps_live_markdown() -> None:
    """Each place the hostile text lands: no unescaped markdown, no mention, no linkable URL."""
    card = build_card(_hostile_run(), maker_portal=runs.PORTAL)
    found = _data_strings(card)
    assert len(found) >= 8  # commit, deployment, version, spec, message, added, changed, warning
    for text in found:
        assert "https://" not in text, text
        assert "evil.example" not in text, text  # a bare domain autolinks too
        assert "<at>" not in text and "</at>" not in text, text
        assert not re.search(r"(?<!\\)\]\(", text) and "**" not in text, text
        # what is left once the card's own words and escaped pairs are taken out: no markdown
        data = re.sub(r"\\.", "", text, flags=re.S)
        for own in ("Added (2):", "(2)", "→", "• BREAKING", "Validation warnings (1):"):
            data = data.replace(own, "")
        assert not _UNESCAPED.search(data) and not _LINE_START.search(text), text
        # a reader still sees exactly what was sent (or its start, where it is capped)
        assert HOSTILE in shown(text) or (HOSTILE[:30] in shown(text) and text.endswith("…"))


def test_links_the_service_adds_stay_buttons() -> None:
    """Escaping data must not touch the links the service means: the maker-portal buttons."""
    card = build_card(_hostile_run(), maker_portal=runs.PORTAL)
    urls = [n["url"] for n in nodes(card) if n.get("type") == "Action.OpenUrl"]
    assert urls == [runs.portal_url("contoso-prod", "shared_contoso-20invoicing-prod"), runs.PORTAL]


@pytest.mark.cards
def test_escaped_cards_pass_the_adaptivecards_library_and_our_rules() -> None:
    """Backslashes, word joiners and no-break spaces must still make a card Teams accepts."""
    messages = [
        build_message(_hostile_run(), maker_portal=runs.PORTAL),
        build_message(_version_run()),
        build_message(_hostile_run(), max_bytes=3000),
    ]
    events = node_events([m["attachments"][0]["content"] for m in messages])
    for message, found in zip(messages, events, strict=True):
        assert found == []
        assert problems(message) == []


def test_escaping_stays_within_the_byte_limit() -> None:
    """Escaping makes text longer than it shows (``\\<`` plus a word joiner for ``<``): the card
    must still be trimmed by what it encodes to, at every limit."""
    heavy = "<*[" * 700
    big = runs.huge_run(60, 100)
    outcomes = tuple(
        o.__class__(**{**o.__dict__, "message": heavy, "warnings": (heavy,) * 50})
        for o in big.outcomes
    )
    run = RunSummary(big.run_id, big.api, big.request, big.targets, outcomes)
    for limit in (MAX_MESSAGE_BYTES, 6000, 2000):
        message = build_message(run, max_bytes=limit)
        assert len(encode_message(message)) <= limit, limit
        assert problems(message) == []


def test_markdown_literal_escapes_list_markers_at_line_starts() -> None:
    """A list needs its marker at a line start; "2.4.0" or "a 1. b" is no list and stays as is."""
    assert markdown_literal("1. first\n  2. second") == "1\\. first\n\u00a0\u00a02\\. second"
    assert markdown_literal("- a\n+ b\n> c") == "\\- a\n\\+ b\n\\> c"
    assert markdown_literal("a\\b") == "a\\\\b"
    assert markdown_literal("version 2.4.0 of x") == "version 2.4.0 of x"  # nothing to escape
    # mid-line, "-", "(", "#", "!" and "." mean nothing: no backslash for a client to show
    assert markdown_literal("contoso-invoicing (v2) #3 ok!") == "contoso-invoicing (v2) #3 ok!"


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\u2060\u00a0"),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(_text)
def test_markdown_literal_loses_nothing_and_leaves_no_markdown(text: str) -> None:
    """For any text: a reader sees it unchanged, and no markdown character is left unescaped."""
    out = markdown_literal(text)
    assert shown(out) == text
    data = re.sub(r"\\.", "", out, flags=re.S)
    assert not _UNESCAPED.search(data) and not _LINE_START.search(out)
    assert "://" not in out


@pytest.mark.parametrize(
    "text",
    [
        "deploy by \U0001f469\u200d\U0001f4bb team",  # one emoji: woman + ZWJ + laptop
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, a ZWNJ shapes the word
        "\u0915\u094d\u200d\u0937",  # Devanagari, a ZWJ picks the half form
    ],
)
def test_zero_width_joiners_are_kept_in_card_text(text: str) -> None:
    """They change what the text says; only the zero-width space and bidi controls go (found by
    review 2026-12-07: the emoji became two, the words other words)."""
    from sync.notify.cards import plain

    assert plain(text, 200) == text
    assert plain("a\u200bb\u200ec\u202ed", 200) == "abcd"
