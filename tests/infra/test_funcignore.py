"""The deployment package holds the app and nothing else: ``.funcignore`` must keep out every
top-level entry that is not part of the app, including the caches tools leave in a working tree
(Hypothesis's example database was shipped: 109 files from a tree the tests had run in)."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {"function_app.py", "host.json", "requirements.txt", "sync", ".funcignore"}
# what the test command, the demo and the developer tools create beside the code
TOOL_LEFTOVERS = (
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".venv",
    ".venv-paconn",
    ".demo",
    "node_modules",
    "__pycache__",
)


def patterns() -> list[str]:
    lines = (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(name: str, is_dir: bool) -> bool:
    """Top-level matching as the packagers read .funcignore (gitignore rules, no negations)."""
    for pattern in patterns():
        if pattern.endswith("/"):
            if is_dir and fnmatch(name, pattern.rstrip("/")):
                return True
        elif fnmatch(name, pattern):
            return True
    return False


def test_tool_leftovers_are_kept_out_of_the_package() -> None:
    kept = [name for name in TOOL_LEFTOVERS if not ignored(name, is_dir=True)]
    assert kept == [], f".funcignore ships {kept}"


def test_every_top_level_entry_is_the_app_or_ignored() -> None:
    stray = sorted(
        entry.name
        for entry in ROOT.iterdir()
        if entry.name not in SHIPPED and not ignored(entry.name, entry.is_dir())
    )
    assert stray == [], f".funcignore ships {stray}"


def test_the_app_itself_is_not_ignored() -> None:
    for name in SHIPPED - {".funcignore"}:
        assert not ignored(name, (ROOT / name).is_dir()), name
