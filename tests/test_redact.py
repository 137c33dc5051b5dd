"""``redact_url``: what reaches logs, error messages and ledger rows of a URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sync.redact import REDACTED, UNPARSEABLE, redact_url

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://a.blob.core.windows.net/c/s.json?sv=1&sig=abc",
            f"https://a.blob.core.windows.net/c/s.json?sv=1&sig={REDACTED}",
        ),
        (
            "https://f.azurewebsites.net/api/swagger?code=KEY==&x=1",
            f"https://f.azurewebsites.net/api/swagger?code={REDACTED}&x=1",
        ),
        ("https://u:p@h.example/p?SIG=1", f"https://h.example/p?SIG={REDACTED}"),
        ("https://h.example/p#frag", "https://h.example/p"),
        ("https://h.example/p", "https://h.example/p"),
        ("https://[h.example/p?sig=abc", UNPARSEABLE),
        ("https://user:secret@\u2100.example/p", UNPARSEABLE),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_objects_are_redacted_by_their_text() -> None:
    class Url:
        def __str__(self) -> str:
            return "https://h.example/p?token=t0k"

    assert redact_url(Url()) == f"https://h.example/p?token={REDACTED}"


def test_the_planning_path_does_not_import_an_http_client() -> None:
    """The Event Grid trigger plans without HTTP: importing the app and the planner must not load
    httpx (it cost ~14 ms of every cold start while only a URL helper needed it)."""
    code = (
        "import sys, function_app, sync.events, sync.triggers\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
