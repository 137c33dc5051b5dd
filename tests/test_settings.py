"""``_choice``: a setting with a fixed set of values reads exactly what Bicep's ``@allowed`` lets
through (case-sensitive), so a value is never accepted by one and refused by the other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sync import settings
from sync.errors import ConfigError
from sync.settings import EVENTGRID_WEBHOOK_AUTH, WEBHOOK_AUTH_MODES, Settings, _choice

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value", WEBHOOK_AUTH_MODES)
def test_each_allowed_value_is_read_as_is(value: str) -> None:
    assert _choice(value, EVENTGRID_WEBHOOK_AUTH, WEBHOOK_AUTH_MODES) == value
    assert _choice(f"  {value}\t", EVENTGRID_WEBHOOK_AUTH, WEBHOOK_AUTH_MODES) == value


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_unset_or_blank_is_the_default(raw: str | None) -> None:
    assert _choice(raw, EVENTGRID_WEBHOOK_AUTH, WEBHOOK_AUTH_MODES) == "key"


@pytest.mark.parametrize("raw", ["Entra", "KEY", "Off", "certificate", "key,entra", "en tra"])
def test_other_values_name_the_setting_the_value_and_the_choices(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _choice(raw, EVENTGRID_WEBHOOK_AUTH, WEBHOOK_AUTH_MODES)
    assert caught.value.path == EVENTGRID_WEBHOOK_AUTH
    message = caught.value.message
    assert EVENTGRID_WEBHOOK_AUTH in message
    assert repr(raw) in message
    assert "key, entra, off" in message


def test_a_long_bad_value_is_cut_in_the_message() -> None:
    with pytest.raises(ConfigError) as caught:
        _choice("x" * 500, EVENTGRID_WEBHOOK_AUTH, WEBHOOK_AUTH_MODES)
    assert "x" * 65 not in caught.value.message


def test_settings_from_env_reads_the_mode() -> None:
    assert Settings.from_env({}).eventgrid_webhook_auth == "key"
    assert Settings.from_env({EVENTGRID_WEBHOOK_AUTH: " off "}).eventgrid_webhook_auth == "off"
    with pytest.raises(ConfigError):
        Settings.from_env({EVENTGRID_WEBHOOK_AUTH: "Entra"})


@pytest.mark.parametrize("bicep", ["infra/main.bicep", "infra/app/function.bicep"])
def test_bicep_allows_exactly_the_modes_the_code_reads(bicep: str) -> None:
    text = (ROOT / bicep).read_text(encoding="utf-8")
    match = re.search(
        r"@allowed\(\[(?P<values>[^\]]*)\]\)\s*param eventGridWebhookAuth string = '(?P<default>\w+)'",
        text,
    )
    assert match, f"{bicep}: no @allowed list on eventGridWebhookAuth"
    assert tuple(re.findall(r"'([^']*)'", match["values"])) == settings.WEBHOOK_AUTH_MODES
    assert match["default"] == settings.WEBHOOK_AUTH_MODES[0]


# --- numeric settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        settings.LEASE_SECONDS,
        settings.FETCH_TIMEOUT_SECONDS,
        settings.FETCH_BUDGET_SECONDS,
        settings.FETCH_MAX_BYTES,
    ],
)
@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"])
def test_non_finite_numbers_are_a_config_error_naming_the_setting(name: str, raw: str) -> None:
    """``float()`` reads nan/inf (and 1e400 as inf), and ``nan <= 0`` is False: a NaN lease or an
    infinite timeout used to pass the check, and ``int()`` of them for the byte limit escaped as a
    bare ValueError/OverflowError (a traceback instead of a configuration error)."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: raw})
    assert caught.value.path == name
    assert name in caught.value.message and repr(raw) in caught.value.message


def test_the_byte_limit_is_a_positive_int() -> None:
    """A fraction that truncates to 0 bytes would disable every fetch; refused like 0 itself."""
    assert Settings.from_env({settings.FETCH_MAX_BYTES: "2048"}).fetch_max_bytes == 2048
    assert isinstance(Settings.from_env({settings.FETCH_MAX_BYTES: "1e6"}).fetch_max_bytes, int)
    with pytest.raises(ConfigError, match=settings.FETCH_MAX_BYTES):
        Settings.from_env({settings.FETCH_MAX_BYTES: "0.5"})
    assert Settings.from_env({settings.LEASE_SECONDS: "0.5"}).lease_seconds == 0.5


def test_private_hosts_are_refused_in_azure_naming_the_setting() -> None:
    """The local-development allowlist switches the URL guard off for those hosts: copied into
    a Function App's settings (local.settings.json published as is), it must stop the app."""
    env = {settings.ALLOW_PRIVATE_HOSTS: "127.0.0.1,localhost", settings.IN_AZURE: "abc123"}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.path == settings.ALLOW_PRIVATE_HOSTS
    assert "refused in Azure" in str(caught.value)
    assert "WEBSITE_INSTANCE_ID" in str(caught.value)


def test_private_hosts_are_read_locally_and_azure_without_them_is_fine() -> None:
    local = Settings.from_env({settings.ALLOW_PRIVATE_HOSTS: " 127.0.0.1 , LocalHost "})
    assert local.allow_private_hosts == frozenset({"127.0.0.1", "localhost"})
    in_azure = Settings.from_env({settings.ALLOW_PRIVATE_HOSTS: " ", settings.IN_AZURE: "abc"})
    assert in_azure.allow_private_hosts == frozenset()
