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


CANARY = "c4n4ry-presigned-0f9e"


@pytest.mark.parametrize(
    "key",
    [
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "X-Amz-Credential",
        "x-amz-signature",
        "X-Goog-Signature",
        "X-Goog-Credential",
        "aeg-sas-key",
        "aeg-sas-token",
        "refresh_token",
        "client_assertion",
        "access_token",
        "id_token",
    ],
)
def test_presigned_credentials_of_other_clouds_are_redacted(key: str) -> None:
    """An S3 or GCS presigned URL (or an Event Grid SAS, an OAuth token) carries its credential in
    parameters other than ``sig``: they reached the run row and GET /api/runs/{id} in clear."""
    shown = redact_url(f"https://b.example/spec.json?{key}={CANARY}&X-Amz-Expires=900")
    assert CANARY not in shown
    assert f"{key}={REDACTED}" in shown
    assert "X-Amz-Expires=900" in shown  # the control: harmless parameters stay


def test_harmless_parameters_that_look_like_key_names_stay() -> None:
    """Only credentials are redacted: a version or a key *name* still helps whoever reads the log."""
    url = "https://h.example/p?api-version=2024-01-01&keyName=primary&tokenType=jwt&sv=1"
    assert redact_url(url) == url


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


@pytest.mark.parametrize(
    ("url", "carries"),
    [
        ("https://acct.blob.core.windows.net/specs/a.yaml?sv=2024-11-04&sig=abc", True),
        ("https://app.azurewebsites.net/api/spec?code=abc", True),
        ("https://s3.example/x.yaml?X-Amz-Signature=abc", True),
        ("https://user:secret@host/x.yaml", True),
        ("https://host/x.yaml?sig=", True),  # an empty value is still the parameter
        ("https://host/x.yaml?api-version=2024-01-01&keyName=k", False),
        ("https://host/x.yaml?v=1", False),
        ("https://host/x.yaml#sig=abc", False),  # a fragment is never sent
        ("not a url", False),
    ],
)
def test_carries_credential_says_whether_the_url_holds_what_redact_url_takes_out(
    url: str, carries: bool
) -> None:
    """What decides whether a spec is staged when its run is planned (``sync.staging``)."""
    from sync.redact import carries_credential

    assert carries_credential(url) is carries
