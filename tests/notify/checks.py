"""The project's own card checks (the adaptivecards library is lenient) and the node validator."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sync.notify import MAX_MESSAGE_BYTES, encode_message

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "tests" / "support" / "cards.js"
BUNDLE = ROOT / "node_modules" / "adaptivecards" / "dist" / "adaptivecards.js"


def nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every object in a card, depth first."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from nodes(child)


def texts(card: dict[str, Any]) -> list[str]:
    return [n["text"] for n in nodes(card) if n.get("type") == "TextBlock"]


def shown(text: str) -> str:
    """What a reader sees of card text: markdown escapes resolved, the invisible word joiners
    and leading no-break spaces that keep data from autolinking or indenting turned back."""
    text = re.sub(r"\\(.)", r"\1", text, flags=re.S).replace("\u2060", "")
    return re.sub(r"(?m)^\u00a0+", lambda m: " " * len(m.group()), text)


def problems(message: dict[str, Any], *, canary: str | None = None) -> list[str]:
    """What breaks Teams' rules in a webhook message (empty list = fine)."""
    found: list[str] = []
    raw = encode_message(message)
    if len(raw) > MAX_MESSAGE_BYTES:
        found.append(f"message is {len(raw)} bytes")
    if canary and canary.encode() in raw:
        found.append("canary secret in message")
    if message.get("type") != "message" or len(message.get("attachments", [])) != 1:
        found.append("not a one-attachment message")
        return found
    attachment = message["attachments"][0]
    if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
        found.append("wrong contentType")
    card = attachment["content"]
    major, minor = (int(x) for x in str(card.get("version")).split("."))
    if (major, minor) > (1, 5):
        found.append(f"card version {card.get('version')} > 1.5")
    for node in nodes(card):
        kind = str(node.get("type", ""))
        if kind.startswith("Action.") and kind != "Action.OpenUrl":
            found.append(f"action {kind}")
        if kind == "Action.OpenUrl" and not str(node.get("url", "")).startswith(
            ("https://", "http://")
        ):
            found.append(f"bad url {node.get('url')!r}")
        if kind == "TextBlock" and not (isinstance(node.get("text"), str) and node["text"]):
            found.append("TextBlock without text")
        if kind == "FactSet":
            for fact in node.get("facts", []):
                if not (fact.get("title") and isinstance(fact.get("value"), str) and fact["value"]):
                    found.append(f"bad fact {fact!r}")
    return found


def node_events(cards: list[dict[str, Any]]) -> list[list[list[str]]]:
    """Run the real adaptivecards library once over all cards; per card, its events."""
    node = shutil.which("node")
    if not node:
        pytest.skip("node not installed: cannot run the adaptivecards validator")
    if not BUNDLE.is_file():
        pytest.skip(f"adaptivecards not installed at {BUNDLE} (npm ci)")
    done = subprocess.run(
        [node, str(VALIDATOR)],
        input=json.dumps(cards),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = json.loads(done.stdout)
    assert len(events) == len(cards)
    return events
