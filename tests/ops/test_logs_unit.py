"""The JSON record factory, the correlation context, W3C traceparent handling and redaction."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from sync.errors import TargetError, TransientError
from sync.logs import (
    current_context,
    ensure_traceparent,
    install,
    log_context,
    redact,
    register_secret,
    set_stage,
    trace_id_of,
)

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (VALID, "4bf92f3577b34da6a3ce929d0e0e4736"),
        (VALID.upper(), "4bf92f3577b34da6a3ce929d0e0e4736"),
        (" " + VALID + " ", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),  # forbidden version
        ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", None),  # all-zero trace id
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01", None),  # all-zero parent
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),  # short trace id
        ("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", None),  # not hex
        ("not a traceparent", None),
        ("", None),
        (None, None),
        (42, None),
        (VALID + "x" * 300, None),
    ],
)
def test_traceparent_parsing(value, expected):
    assert trace_id_of(value) == expected


def test_ensure_traceparent_keeps_a_valid_one_and_replaces_a_bad_one():
    assert ensure_traceparent(VALID.upper()) == VALID
    fresh = ensure_traceparent("garbage")
    assert trace_id_of(fresh) is not None and fresh != ensure_traceparent(None)


def test_log_context_nests_and_resets_including_stages():
    with log_context(run_id="r1", api="a"):
        with log_context(target="t", api=None):
            set_stage("fetch")
            assert current_context() == {
                "run_id": "r1",
                "api": "a",
                "target": "t",
                "stage": "fetch",
            }
        assert current_context() == {"run_id": "r1", "api": "a"}
    assert current_context() == {}


@pytest.fixture
def lines():
    install()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield records
    root.removeHandler(handler)
    root.setLevel(old)


def test_sync_records_become_json_and_others_stay_untouched(lines):
    logging.getLogger("sync.demo").info("hello %s", "world", extra={"outcome": "updated"})
    other = logging.getLogger("thirdparty.sdk")
    other.setLevel(logging.INFO)
    other.info("sdk %s", "line")
    sync_record, sdk_record = lines
    data = json.loads(sync_record.getMessage())
    assert data["message"] == "hello world" and data["outcome"] == "updated"
    assert data["level"] == "INFO" and data["logger"] == "sync.demo"
    assert data["duration_ms"] is None and data["run_id"] is None
    assert sdk_record.getMessage() == "sdk line"


def test_install_is_idempotent():
    install()
    factory = logging.getLogRecordFactory()
    install()
    assert logging.getLogRecordFactory() is factory


def test_exception_is_folded_into_the_json_with_the_tracking_id(lines):
    logger = logging.getLogger("sync.demo")
    try:
        try:
            raise TargetError("refused", status=400, tracking_id="trk-42")
        except TargetError as inner:
            raise TransientError("wrapped") from inner
    except TransientError:
        logger.exception("write failed")
    record = lines[0]
    assert record.exc_info is None  # no traceback appended after the JSON by a formatter
    formatted = logging.Formatter("%(message)s").format(record)
    data = json.loads(formatted)
    assert data["tracking_id"] == "trk-42"
    assert data["error"] == "TransientError"
    assert "refused" in data["exception"]


def test_bad_format_arguments_do_not_lose_the_record(lines):
    logging.getLogger("sync.demo").info("two %s %s", "only-one")
    data = json.loads(lines[0].getMessage())
    assert "only-one" in data["message"]


def test_secrets_are_redacted_everywhere(lines, monkeypatch):
    monkeypatch.setenv("SYNC_SECRET_TEAMS_WEBHOOK", "canary-env-77aa")
    register_secret("canary-registered-99bb")
    logging.getLogger("sync.demo").warning(
        "env %s reg %s url %s conn %s auth %s",
        "canary-env-77aa",
        "canary-registered-99bb",
        "https://x.blob.core.windows.net/c/spec.yaml?sv=1&sig=canary-sig",
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=canary-key==;",
        "Bearer eyJhbGciOi.canary.token",
        extra={"detail": {"url": "https://h/p?code=canary-code"}},
    )
    text = lines[0].getMessage()
    assert "canary" not in text, text
    assert text.count("<redacted>") >= 5


@pytest.mark.parametrize(
    ("text", "canary"),
    [
        ('{"token_type": "Bearer", "access_token": "eyJ0.eyJ-CANARY-at.c2ln"}', "CANARY-at"),
        ('{"refresh_token": "0.AR-CANARY-rt", "expires_in": 3599}', "CANARY-rt"),
        (str({"refresh_token": "0.AR-CANARY-repr", "error": None}), "CANARY-repr"),
        ('{"client_secret" : "SP~CANARY-cs"}', "CANARY-cs"),
        ('{"password": "pa ss;CANARY \\"quoted\\" pw"}', "CANARY"),
        ("client_assertion=eyJhbGciOi.eyJzdWIi.CANARY-ca&client_id=1", "CANARY-ca"),
        ("grant_type=authorization_code&code=0.AQ-CANARY-code&redirect_uri=x", "CANARY-code"),
        ("password: CANARY-colon", "CANARY-colon"),
        ("fetch https://svc:CANARY-userinfo@specs.contoso.com/openapi.json failed", "CANARY"),
        ("Authorization: Basic c3ZjOkNBTkFSWS1iYXNpYw==", "c3ZjOkNBTkFSWS1iYXNpYw"),
    ],
)
def test_credential_forms_are_redacted(text, canary):
    """OAuth answers are JSON (or an MSAL result dict's repr), client assertions travel in form
    bodies, and specs can sit behind Basic auth or userinfo URLs: only ``key=value`` and Bearer
    were masked, so a logged token-endpoint answer showed the refresh token in the clear."""
    shown = redact(text)
    assert canary not in shown, shown
    assert "<redacted>" in shown


@pytest.mark.parametrize(
    "text",
    [
        '{"error": {"code": "InvalidSwagger", "message": "bad spec"}}',
        "{'error': 'invalid_grant', 'error_codes': [70000]}",
        '{"token_type": "Bearer", "expires_in": 3599, "scope": "https://x/.default"}',
        "GET https://specs.contoso.com/openapi.json -> 200",
        "spec at https://h/p/@latest/openapi.json",
        "password_hint=shown refresh_token_expires_in: 90",
        "Basic auth is not supported by this target",
        "Basic authentication is disabled; Basic Authentication too",
    ],
)
def test_redaction_keeps_error_codes_and_plain_urls(text):
    """Error codes and plain URLs are what an operator searches for; they stay readable."""
    assert redact(text) == text


def test_redact_keeps_harmless_text():
    assert redact("HTTP 409 (code EntityAlreadyExists) at https://h/p") == (
        "HTTP 409 (code EntityAlreadyExists) at https://h/p"
    )


def test_importing_the_app_installs_nothing():
    code = (
        "import logging, function_app, sync.logs, sync.triggers, sync.health; "
        "print(logging.getLogRecordFactory() is logging.LogRecord)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "."},
    )
    assert out.stdout.strip() == "True"


def test_the_log_level_setting_applies_on_every_trigger_call(monkeypatch):
    import logging

    from sync.logs import install

    monkeypatch.setenv("SYNC_LOG_LEVEL", "warning")
    install()
    assert logging.getLogger("sync").getEffectiveLevel() == logging.WARNING
    monkeypatch.setenv("SYNC_LOG_LEVEL", "DEBUG")
    install()
    assert logging.getLogger("sync").getEffectiveLevel() == logging.DEBUG
    monkeypatch.setenv("SYNC_LOG_LEVEL", "bogus")  # ignored, not a crash
    install()
    assert logging.getLogger("sync").getEffectiveLevel() == logging.DEBUG
    logging.getLogger("sync").setLevel(logging.NOTSET)
    logging.getLogger("function_app").setLevel(logging.NOTSET)


@pytest.fixture
def root_logging(monkeypatch):
    """``configure_logging`` replaces the root handlers; give them back (pytest's own included)."""
    monkeypatch.setattr("sync.logs._warned_levels", set())
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("sync").setLevel(logging.NOTSET)
    logging.getLogger("function_app").setLevel(logging.NOTSET)


@pytest.mark.parametrize("raw", ["verbose", "trace", "info,debug"])
def test_an_unknown_log_level_is_ignored_with_one_warning_on_both_paths(
    raw, monkeypatch, capsys, root_logging
):
    """The CLI used to hand SYNC_LOG_LEVEL to ``setLevel`` unchecked, so a value the Functions path
    ignores made every command die with a traceback; now both paths ignore it and say so once."""
    from sync.logs import configure_logging

    monkeypatch.setenv("SYNC_LOG_LEVEL", raw)
    configure_logging()
    install()  # the Functions path, on the next trigger call: same verdict, no second warning
    assert root_logging.level == logging.WARNING  # the CLI default
    assert logging.getLogger("sync").level == logging.NOTSET
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1, warning
    assert "SYNC_LOG_LEVEL" in warning[0] and repr(raw) in warning[0]


def test_a_log_level_is_read_stripped_and_in_any_case(monkeypatch, capsys, root_logging):
    """'info ' (a stray space from a portal paste) is INFO on the CLI as on the Functions path."""
    from sync.logs import configure_logging

    monkeypatch.setenv("SYNC_LOG_LEVEL", " info ")
    configure_logging()
    assert root_logging.level == logging.INFO
    assert logging.getLogger("sync").level == logging.INFO
    configure_logging("DEBUG")  # --verbose wins over the setting
    assert root_logging.level == logging.DEBUG
    assert capsys.readouterr().err == ""
