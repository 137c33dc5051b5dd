"""The docs stay true to the tree: links resolve, and every app setting the code reads is documented.

Docs drift silently (a renamed module, a moved heading, a new setting); these checks make the drift
a test failure instead of a reader's dead end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sync import settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "RELIABILITY.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) and ![alt](target); skips the optional "title" after the target
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    """Markdown without code (a link-shaped string inside code is not a link)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _relative_links(path: Path) -> list[str]:
    links = LINK.findall(_prose(path.read_text(encoding="utf-8")))
    return [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:", link, re.I)]


def test_the_doc_list_is_not_empty() -> None:
    assert (ROOT / "README.md").is_file()
    assert len(DOCS) > 2


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for link in _relative_links(doc):
        target, _, anchor = link.partition("#")
        file = (doc.parent / target).resolve() if target else doc
        if not file.exists():
            broken.append(
                f"{link} (no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file})"
            )
        elif anchor and file.suffix == ".md" and anchor.lower() not in _anchors(file):
            broken.append(f"{link} (no heading #{anchor} in {file.name})")
    assert not broken, f"{doc.relative_to(ROOT)} has broken links: {broken}"


def test_the_link_checker_sees_a_broken_link(tmp_path: Path) -> None:
    """Guards the checker itself: a missing file and a missing anchor are both found."""
    (tmp_path / "a.md").write_text("# Title\n[x](b.md) [y](#nope) [z](#title) `[c](code.md)`\n")
    links = _relative_links(tmp_path / "a.md")
    assert links == ["b.md", "#nope", "#title"]
    assert _anchors(tmp_path / "a.md") == {"title"}


def test_slugs_follow_github() -> None:
    assert _slug("Granting the identity access to Power Platform") == (
        "granting-the-identity-access-to-power-platform"
    )
    assert _slug("`SYNC_CONFIG` and the map: what's read") == "sync_config-and-the-map-whats-read"


@pytest.mark.parametrize("name", settings.APP_SETTINGS + settings.LOCAL_SETTINGS)
def test_every_setting_is_in_the_readme(name: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"\b{re.escape(name)}\b", readme), f"README.md does not mention {name}"


def test_every_doc_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {link.partition("#")[0] for link in _relative_links(ROOT / "README.md")}
    missing = [
        f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in linked
    ]
    assert not missing, f"README.md does not link {missing}"
    assert readme
