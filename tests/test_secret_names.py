"""Every secret name, and where it is masked: in a URL's query (``redact_url``) and as the key of
a ``key=value`` / JSON / dict-repr pair in log text (``sync.logs.redact``).

One table for both, so that a name added to (or dropped from) the shared list shows here as a
change of behaviour in one place or the other, never silently."""

from __future__ import annotations

import pytest

from sync import logs, redact
from sync.logs import redact as redact_log_text
from sync.redact import redact_url

CANARY = "c4n4ry-0f9e"

# name -> (masked in a URL, masked as name=value in log text, masked as a JSON/repr pair in logs).
# "widened": masked in log text since the log filter took its names from ``SECRET_NAMES``.
EXPECTED: dict[str, tuple[bool, bool, bool]] = {
    # exact names
    "access_token": (True, True, True),
    "accountkey": (True, True, True),
    "api-key": (True, True, True),  # widened: was masked in URLs only
    "api_key": (True, True, True),  # widened: was masked in URLs only
    "apikey": (True, True, True),  # widened: was masked in URLs only
    "client_assertion": (True, True, True),
    "client_secret": (True, True, True),
    "code": (True, True, False),  # JSON "code" is an error code: it stays readable in logs
    "key": (True, False, False),
    "password": (True, True, True),
    "refresh_token": (True, True, True),
    "secret": (True, True, True),  # widened: was masked in URLs only
    "sharedaccesskey": (True, True, True),
    "sharedaccesssignature": (True, True, True),
    "sig": (True, True, True),
    "signature": (True, True, True),  # widened: was masked in URLs only
    "subscription-key": (True, True, True),  # widened: was masked in URLs only
    "token": (True, False, False),
    # named by a suffix (the examples of ``SECRET_QUERY_SUFFIXES``)
    "aeg-sas-key": (True, False, False),
    "aeg-sas-token": (True, False, False),
    "id_token": (True, False, False),
    "x-amz-credential": (True, False, False),
    "x-amz-security-token": (True, False, False),
    "x-amz-signature": (True, True, False),  # widened in name=value, as "signature" after "-"
    "x-goog-signature": (True, True, False),  # widened in name=value, as "signature" after "-"
}


def _masked_in_url(name: str) -> bool:
    return CANARY not in redact_url(f"https://h.example/p?{name}={CANARY}&x=1")


def _masked_in_log(text: str) -> bool:
    return CANARY not in redact_log_text(text)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_where_each_secret_name_is_masked(name: str) -> None:
    url, pair, json_pair = EXPECTED[name]
    for spelling in (name, name.upper()):
        assert _masked_in_url(spelling) is url, spelling
        assert _masked_in_log(f"answer {spelling}={CANARY} then") is pair, spelling
        assert _masked_in_log(f'{{"{spelling}": "{CANARY}", "n": 1}}') is json_pair, spelling
        assert _masked_in_log(f"{{'{spelling}': '{CANARY}', 'n': 1}}") is json_pair, spelling


def test_the_table_covers_every_listed_name() -> None:
    assert set(EXPECTED) >= redact.SECRET_NAMES


def test_the_log_filter_masks_every_secret_name_but_its_few_ordinary_words() -> None:
    """The exceptions are names of the shared list (so they cannot drift from it), and every
    other name of it is masked in log text as in URLs."""
    assert logs._NOT_IN_LOG_TEXT < redact.SECRET_NAMES
    for name in redact.SECRET_NAMES - logs._NOT_IN_LOG_TEXT:
        assert EXPECTED[name] == (True, True, True), name
