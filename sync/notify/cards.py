"""One Adaptive Card per run, shaped for a Teams Workflows webhook.

Teams shows a card only within its own limits, so those are the rules here: schema 1.5 at most,
only ``Action.OpenUrl`` (a card posted by a Workflows flow has no bot behind it to receive
Submit/Execute), and a message of at most 20,000 bytes (Teams refuses cards somewhere around
21-28 KB). A big run is trimmed step by step (fewer operations listed, then fewer targets in
detail) so the card always arrives and says how much it left out ("and N more").

Card text comes from ``RunSummary`` only: no secret reaches this module. Free text is still
capped, stripped of control characters, and any URL query string in it is cut off, because error
messages sometimes quote the URL they failed on, and query strings carry SAS signatures. Teams
renders TextBlock text and fact values as markdown, so every string that comes from data is
also escaped to show literally (``markdown_literal``): no link, mention or heading from a commit
message, a spec or an error text. The card's own words carry no markdown.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sync.models import RunSummary, TargetOutcome

CARD_VERSION = "1.5"  # the newest schema Teams renders
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_MESSAGE_BYTES = 20_000

CANVAS_REMINDER = (
    "Canvas apps do not pick up connector changes by themselves: in each app that uses an "
    "updated connector, remove the connector from the app's data sources, add it again and "
    "republish the app."
)
DRY_RUN_NOTE = "Dry run: nothing was written. The card shows what a real run would change."

# Worst first: the run's headline is its worst target, and problem targets are listed first.
_SEVERITY: dict[str, int] = {
    "missing": 0,
    "failed": 1,
    "blocked": 2,
    "held": 3,
    "updated": 4,
    "dry-run": 5,
    "unchanged": 6,
}
_LABEL: dict[str, str] = {
    "missing": "No result",
    "failed": "Failed",
    "blocked": "Blocked",
    "held": "Held",
    "updated": "Updated",
    "dry-run": "Dry run",
    "unchanged": "Unchanged",
}
_COLOR: dict[str, str] = {
    "missing": "attention",
    "failed": "attention",
    "blocked": "attention",
    "held": "warning",
    "updated": "good",
    "dry-run": "accent",
    "unchanged": "default",
}
# (container style, title) per overall status
_HEADLINE: dict[str, tuple[str, str]] = {
    "missing": ("attention", "Connector sync incomplete"),
    "failed": ("attention", "Connector sync FAILED"),
    "blocked": ("attention", "Connector sync BLOCKED"),
    "held": ("warning", "Connector sync held"),
    "updated": ("good", "Connector updated"),
    "dry-run": ("accent", "Connector sync preview (dry run)"),
    "unchanged": ("default", "Connector already up to date"),
}

# Zero-width space and the bidi marks go; zero-width (non-)joiners stay: they shape Persian and
# Indic words and join emoji sequences (removing them changed what the text says).
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_URL_QUERY = re.compile(r"(?i)\b(https?://[^\s?#\"'<>]+)[?#][^\s\"'<>)]*")
# Characters that mark up wherever they stand: emphasis, code, links ("[x](u)" needs both
# brackets), strikethrough. The rest ("-", ".", "(", "#"...) only mean something at a line start
# (_LINE_MARKER, _LIST_NUMBER) or after "]", and stay as they are: Teams clients have shown
# backslash escapes literally (microsoft/AdaptiveCards#5590), so "contoso-invoicing" or "2.3.1"
# must not carry one.
_MARKDOWN = re.compile(r"[\\`*_\[\]~]")
_LINE_MARKER = re.compile(r"(?m)^( *)([#>+\-])")  # heading, quote, bullet
_LIST_NUMBER = re.compile(r"(?m)^( *\d{1,9})\.(?=\s|$)")  # "1. x" opens an ordered list
_INDENT = re.compile(r"(?m)^ +")  # four spaces open a code block
# "https://", "evil.example", "</at>": a word joiner after the ":", "." or "<" stops autolinking
_LINKABLE = re.compile(r"(?<=[:.<])(?=[^\W\d_]|/)")
WORD_JOINER = "\u2060"  # invisible; not one of the _CONTROL characters plain() strips


@dataclass(frozen=True)
class _Detail:
    """How much of a run one trimming step shows."""

    items: int  # entries listed per list (operations, warnings, ...)
    targets: int  # targets shown in detail; the rest are counted
    text: int  # characters kept of one free-text string


# (items, text) per step, most detail first; within a step the number of targets shown in detail
# is searched, so a big run keeps as many targets as fit rather than dropping to a fixed few.
_STEPS: tuple[tuple[int, int], ...] = ((15, 400), (8, 240), (5, 160), (3, 120), (0, 100), (0, 80))
MAX_DETAILED_TARGETS = 50
MIN_DETAILED_TARGETS = 5  # below this, list less per target before showing fewer targets


def plain(value: object, limit: int) -> str:
    """Text safe to show: no control or bidi characters, no URL query strings, at most ``limit``."""
    text = _CONTROL.sub("", str(value).replace("\r\n", "\n").replace("\t", " "))
    text = _URL_QUERY.sub(r"\1?…", text).strip()
    if len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "…"
    return text


def markdown_literal(text: str) -> str:
    """``text`` escaped so Teams shows it as written, for any string that comes from data.

    Teams renders TextBlock text and fact values as markdown, and a commit, version, operationId
    or error message is written by someone else: unescaped, ``[Sign in](https://evil.example)``
    is a link in our card, ``<at>x</at>`` a mention, ``# x`` a heading. So the characters that
    mark up anywhere get a backslash, as do a line's leading marker and the "." of a leading
    "1.", leading spaces become no-break spaces (no code block), and a word joiner goes after the
    ":" of "://", the "." before a letter and "<", so no URL, domain, e-mail address or tag is
    recognised. Nothing else is escaped: some clients show a backslash as it is. Escape after
    capping (``plain``) so no escape is cut in half; the card is measured after, so its size
    holds.
    """
    text = _MARKDOWN.sub(r"\\\g<0>", text)
    text = _LINE_MARKER.sub(r"\1\\\2", text)
    text = _LIST_NUMBER.sub(r"\1\\.", text)
    text = _INDENT.sub(lambda m: "\u00a0" * len(m.group()), text)
    return _LINKABLE.sub(WORD_JOINER, text)


def _data(value: object, limit: int) -> str:
    """Text from data as the card shows it: capped, cleaned (``plain``) and markdown-escaped."""
    return markdown_literal(plain(value, limit))


def safe_url(url: str | None) -> str | None:
    """The URL if a button may open it (http/https with a host), else None."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname:
        return None
    if len(url) > 2048 or _CONTROL.search(url) or any(c.isspace() for c in url):
        return None
    return url


def run_status(run: RunSummary) -> str:
    """The run's worst result ("missing" when a target never reported)."""
    results: list[str] = [o.result for o in run.outcomes]
    if set(run.targets) - {o.target for o in run.outcomes}:
        results.append("missing")
    if not results:
        return "missing"
    return min(results, key=lambda r: _SEVERITY.get(r, 0))


def summarize(run: RunSummary) -> str:
    """One line for logs and the file notifier: api, status and counts per result."""
    counts: Counter[str] = Counter(o.result for o in run.outcomes)
    missing = len(set(run.targets) - {o.target for o in run.outcomes})
    if missing:
        counts["missing"] = missing
    parts = ", ".join(
        f"{n} {_LABEL.get(r, r).lower()}" for r, n in sorted(counts.items(), key=_by_severity)
    )
    status = run_status(run)
    word = "incomplete" if status == "missing" else status
    return f"{plain(run.api, 120)}: {word} ({parts or 'no targets'}), run {run.run_id}"


def build_card(
    run: RunSummary, *, maker_portal: str | None = None, max_bytes: int = MAX_MESSAGE_BYTES
) -> dict[str, Any]:
    """The Adaptive Card for a run, trimmed until its webhook message fits ``max_bytes``."""
    cap = min(len(run.outcomes), MAX_DETAILED_TARGETS)
    cards: dict[_Detail, dict[str, Any]] = {}
    # The search builds up to ~8 cards that differ only in how many targets they detail; a
    # target's block depends on the step's items and text, not on that number, so each is made
    # once per step (a 20-target fan-out's card: ~32 ms of CPU before, ~half now).
    blocks: dict[tuple[int, int, int], dict[str, Any]] = {}

    def fits(detail: _Detail) -> bool:
        cards[detail] = _card(run, detail, maker_portal, blocks)
        return len(encode_message(_envelope(cards[detail]))) <= max_bytes

    for step, (items, text) in enumerate(_STEPS):
        last = step == len(_STEPS) - 1
        if fits(_Detail(items, cap, text)):
            return cards[_Detail(items, cap, text)]
        low = 0 if last else min(cap, MIN_DETAILED_TARGETS)
        if not last and not fits(_Detail(items, low, text)):
            continue
        while low < cap - 1:  # invariant: ``low`` fits, ``cap`` does not
            mid = (low + cap) // 2
            if fits(_Detail(items, mid, text)):
                low = mid
            else:
                cap = mid
        return cards.get(_Detail(items, low, text)) or _card(
            run, _Detail(items, low, text), maker_portal, blocks
        )
    raise AssertionError("unreachable: the last step always returns")  # pragma: no cover


def build_message(
    run: RunSummary, *, maker_portal: str | None = None, max_bytes: int = MAX_MESSAGE_BYTES
) -> dict[str, Any]:
    """The Workflows-webhook body: a message with the card as its one attachment."""
    return _envelope(build_card(run, maker_portal=maker_portal, max_bytes=max_bytes))


def encode_message(message: dict[str, Any]) -> bytes:
    """The exact bytes sent (and measured): compact UTF-8 JSON."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- building blocks ------------------------------------------------------------------------------


def _envelope(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def _by_severity(item: tuple[str, int]) -> int:
    return _SEVERITY.get(item[0], 0)


def _text(text: str, **props: Any) -> dict[str, Any]:
    """A wrapping TextBlock; never an empty one (Teams shows nothing and the schema wants text)."""
    return {"type": "TextBlock", "text": text.strip() or "(blank)", "wrap": True, **props}


def _card(
    run: RunSummary,
    detail: _Detail,
    maker_portal: str | None,
    blocks: dict[tuple[int, int, int], dict[str, Any]],
) -> dict[str, Any]:
    """The card at ``detail``; ``blocks`` keeps the target blocks made for earlier cards of the
    same run (by outcome, items and text), which this card then shares."""
    status = run_status(run)
    style, title = _HEADLINE[status]
    body: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": style,
            "bleed": True,
            "items": [
                _text(f"{title}: {_data(run.api, 120)}", style="heading", size="large"),
                _text(_counts_line(run), spacing="none", isSubtle=True),
            ],
        },
        {"type": "FactSet", "facts": _run_facts(run, detail)},
    ]
    outcomes = sorted(run.outcomes, key=lambda o: (_SEVERITY.get(o.result, 0), o.target))
    for outcome in outcomes[: detail.targets]:
        key = (id(outcome), detail.items, detail.text)  # the run holds its outcomes meanwhile
        block = blocks.get(key)
        if block is None:
            block = blocks[key] = _target_block(outcome, detail)
        body.append(block)
    rest = outcomes[detail.targets :]
    if rest:
        counts = Counter(o.result for o in rest)
        parts = ", ".join(f"{n} {r}" for r, n in sorted(counts.items(), key=_by_severity))
        body.append(_text(f"and {len(rest)} more targets ({parts})", separator=True, isSubtle=True))
    missing = sorted(set(run.targets) - {o.target for o in run.outcomes})
    if missing:
        body.append(
            _text(
                "No result recorded for: " + _listing(missing, max(detail.items, 3), detail.text),
                color="attention",
                separator=True,
            )
        )
    if run.request.dry_run or status == "dry-run":
        body.append(_text(DRY_RUN_NOTE, separator=True, color="accent"))
    if any(o.result == "updated" for o in run.outcomes):
        body.append(_text(CANVAS_REMINDER, separator=True, isSubtle=True, size="small"))
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "fallbackText": plain(summarize(run), 300),
        "body": body,
    }
    portal = safe_url(maker_portal)
    if portal:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": "Open Power Apps maker portal", "url": portal}
        ]
    return card


def _counts_line(run: RunSummary) -> str:
    counts = Counter(o.result for o in run.outcomes)
    parts = ", ".join(
        f"{n} {_LABEL.get(r, r).lower()}" for r, n in sorted(counts.items(), key=_by_severity)
    )
    total = len(run.targets)
    return f"{total} target{'s' if total != 1 else ''}: {parts or 'no results yet'}"


def _run_facts(run: RunSummary, detail: _Detail) -> list[dict[str, str]]:
    req = run.request
    trigger = req.reason
    if req.event_type:
        trigger = f"{req.reason}: {req.event_type}"
    if req.rollback_to is not None:
        trigger = f"{trigger} (to version {req.rollback_to})"
    facts: list[tuple[str, str | None]] = [
        ("API", run.api),
        ("Version", _run_version(run)),
        ("Trigger", trigger),
        ("Deployment", req.deployment_id),
        ("Commit", req.commit),
        ("Caller", req.caller),
        ("Event time", req.event_time),
        ("Run", run.run_id),
    ]
    shown = [(title, _data(value, min(detail.text, 200))) for title, value in facts if value]
    return [{"title": title, "value": value} for title, value in shown if value]


def _arrow(old: object, new: object) -> str | None:
    if old is None and new is None:
        return None
    if old is None:
        return f"{new} (new)"
    if new is None or old == new:
        return str(old)
    return f"{old} → {new}"


def _run_version(run: RunSummary) -> str | None:
    """The spec version, when every target is on the same one now (else it is per target)."""
    new = {o.info_version for o in run.outcomes if o.info_version}
    if len(new) > 1:
        return "differs per target (see below)"
    if not new:
        return run.request.version
    (current,) = new
    old = {
        o.previous_info_version
        for o in run.outcomes
        if o.previous_info_version and o.previous_info_version != current
    }
    if len(old) == 1:
        return _arrow(old.pop(), current)
    if old:
        return f"{' / '.join(sorted(old))} → {current}"
    return current


def _target_block(outcome: TargetOutcome, detail: _Detail) -> dict[str, Any]:
    parts = [p for p in (outcome.environment or outcome.target_kind, outcome.target) if p]
    where = " · ".join(_data(p, 120) for p in dict.fromkeys(parts))
    status = [_LABEL.get(outcome.result, outcome.result)]
    number = _arrow(outcome.previous_version, outcome.version)
    if number:
        status.append(f"version {number}")
    info = _arrow(outcome.previous_info_version, outcome.info_version)
    if info:
        status.append(f"spec {_data(info, 80)}")
    items: list[dict[str, Any]] = [
        _text(where, weight="bolder"),
        _text(
            " · ".join(status),
            color=_COLOR.get(outcome.result, "default"),
            spacing="none",
        ),
    ]
    if outcome.connector_id:
        items.append(
            _text(
                f"Connector {_data(outcome.connector_id, 120)}",
                isSubtle=True,
                size="small",
                spacing="none",
            )
        )
    if outcome.message:
        items.append(_text(_data(outcome.message, detail.text), isSubtle=True))
    if outcome.drift:  # sync.drift: the connector had been edited outside the service
        items.append(_text("Connector edited outside the service (drift)", color="warning"))
    items.extend(_diff_blocks(outcome.diff, detail))
    for heading, entries, color in (
        ("Merge conflicts", outcome.conflicts, "attention"),
        ("Validation warnings", outcome.warnings, "warning"),
        ("Conversion losses", outcome.losses, "default"),
    ):
        if entries:
            items.append(_list_block(heading, entries, detail, color))
    url = safe_url(outcome.portal_url)
    if url:
        items.append(
            {
                "type": "ActionSet",
                "actions": [
                    {
                        "type": "Action.OpenUrl",
                        "title": f"Open {plain(outcome.target, 40)} in the maker portal",
                        "url": url,
                    }
                ],
            }
        )
    return {"type": "Container", "separator": True, "spacing": "medium", "items": items}


def _op_name(entry: object) -> str:
    """An operation as the diff lists it: an operationId, or a dict naming one."""
    if isinstance(entry, dict):
        name = entry.get("operationId") or " ".join(
            str(entry[k]).upper() if k == "method" else str(entry[k])
            for k in ("method", "path")
            if entry.get(k)
        )
        return str(name or "?")
    return str(entry)


def _diff_blocks(diff: dict[str, Any] | None, detail: _Detail) -> list[dict[str, Any]]:
    if not isinstance(diff, dict):
        return []
    added = [_op_name(e) for e in diff.get("added") or ()]
    removed = [_op_name(e) for e in diff.get("removed") or ()]
    changed = [c for c in diff.get("changed") or () if isinstance(c, dict)]
    blocks: list[dict[str, Any]] = []
    if diff.get("breaking"):
        blocks.append(_text("Breaking change", weight="bolder", color="attention"))
    if added:
        blocks.append(_text(_counted("Added", added, detail)))
    if removed:
        blocks.append(_text(_counted("Removed, breaking", removed, detail), color="attention"))
    if changed:
        blocks.extend(_changed_blocks(changed, detail))
    counts = diff.get("counts")
    if isinstance(counts, dict):  # the last of run_outcomes.SHORTER: only the numbers were kept
        shown = [
            f"{n} {label}"
            for label in ("added", "removed", "changed")
            if isinstance(n := counts.get(label), int) and not isinstance(n, bool) and n > 0
        ]
        blocks.append(_text("Operations " + (", ".join(shown) or "unchanged")))
        blocks.append(_text("Change details too large to keep: see the connector", isSubtle=True))
    elif diff.get("detailsOmitted"):  # a row over its size limit (sync/adapters/run_outcomes)
        blocks.append(_text("Non-breaking change details: see the version history", isSubtle=True))
    return blocks


def _changed_blocks(changed: list[dict[str, Any]], detail: _Detail) -> list[dict[str, Any]]:
    def breaking_changes(entry: dict[str, Any]) -> list[dict[str, Any]]:
        return [c for c in entry.get("changes") or () if isinstance(c, dict) and c.get("breaking")]

    ordered = sorted(changed, key=lambda e: (not breaking_changes(e), _op_name(e)))
    n_breaking = sum(1 for e in changed if breaking_changes(e))
    head = f"Changed ({len(changed)}" + (f", {n_breaking} breaking)" if n_breaking else ")")
    if detail.items == 0:
        return [_text(head, color="attention" if n_breaking else "default")]
    blocks = [_text(head + ":", color="attention" if n_breaking else "default")]
    breaking_lines: list[str] = []
    other_lines: list[str] = []
    for entry in ordered[: detail.items]:
        found = breaking_changes(entry)
        shown = found or [c for c in entry.get("changes") or () if isinstance(c, dict)]
        what = "; ".join(plain(c.get("message") or c.get("kind") or "", 160) for c in shown[:3])
        if len(shown) > 3:
            what += f"; and {len(shown) - 3} more"
        line = _data(_op_name(entry) + (f": {what}" if what else ""), detail.text)
        if found:
            breaking_lines.append(f"• BREAKING {line}")
        else:
            other_lines.append(f"• {line}")
    if breaking_lines:
        blocks.append(_text("\n".join(breaking_lines), color="attention", spacing="none"))
    if other_lines:
        blocks.append(_text("\n".join(other_lines), spacing="none"))
    if len(ordered) > detail.items:
        blocks.append(_text(f"and {len(ordered) - detail.items} more", isSubtle=True))
    return blocks


def _list_block(
    heading: str, entries: Sequence[str], detail: _Detail, color: str
) -> dict[str, Any]:
    if detail.items == 0:
        return _text(f"{heading}: {len(entries)}", color=color)
    lines = [f"• {_data(e, detail.text)}" for e in entries[: detail.items]]
    if len(entries) > detail.items:
        lines.append(f"and {len(entries) - detail.items} more")
    return _text(f"{heading} ({len(entries)}):\n" + "\n".join(lines), color=color)


def _counted(heading: str, names: list[str], detail: _Detail) -> str:
    if detail.items == 0:
        return f"{heading}: {len(names)}"
    return f"{heading} ({len(names)}): " + _listing(names, detail.items, detail.text)


def _listing(names: Iterable[str], limit: int, text_limit: int) -> str:
    names = list(names)
    shown = ", ".join(plain(n, 80) for n in names[:limit])
    more = f", and {len(names) - limit} more" if len(names) > limit else ""
    return _data(shown, text_limit * 2) + more
