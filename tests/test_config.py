"""The sync map: schema errors name the key path; references are checked; URLs compared safely."""

from __future__ import annotations

import json
import os
import time

import pytest

from sync.cli import main
from sync.config import load_map, load_map_file
from sync.errors import ConfigError

GOOD = """
apis:
  contoso-invoicing:
    spec: {url: "https://invoicing.contoso.example/swagger/v1/swagger.json"}
    allowedSpecUrls: ["https://invoicing.contoso.example/swagger/"]
    on:
      - custom: contoso-invoicing
    targets:
      - {name: dev, folder: connectors/dev}
      - name: prod
        powerapps: {environment: Default-11111111-2222-3333-4444-555555555555, credential: pp}
credentials:
  pp: {managedIdentity: {}}
"""


def write(tmp_path, text, name="map.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_valid_map_loads_with_typed_views(tmp_path):
    sync_map = load_map_file(write(tmp_path, GOOD))
    api = sync_map.api("contoso-invoicing")
    assert [t.name for t in api.targets] == ["dev", "prod"]
    assert api.targets[1].kind == "powerapps"
    assert api.on == ({"custom": "contoso-invoicing"},)  # a bare YAML `on:` key works
    assert sync_map.resolve("connectors/dev") == tmp_path / "connectors" / "dev"


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (("connectors/dev", "''"), "apis.contoso-invoicing.targets[0].folder", "non-empty"),
        (
            ('{url: "https://invoicing', '{url: "ftp://invoicing'),
            "apis.contoso-invoicing.spec.url",
            "does not match",
        ),
        (
            ("credential: pp}", "credential: nope}"),
            "targets[1].powerapps.credential",
            "not defined",
        ),
        (("name: prod", "name: dev"), "targets[1].name", "duplicate target name"),
        (
            ("contoso-invoicing:\n    spec", "Contoso_Invoicing:\n    spec"),
            "apis",
            "does not match",
        ),
        (("{name: dev, folder", "{name: dev, colour: red, folder"), "targets[0]", "colour"),
        (
            ("Default-11111111-2222-3333-4444-555555555555", "'bad env!'"),
            "powerapps.environment",
            "does not match",
        ),
    ],
)
def test_errors_name_the_key_path(tmp_path, change, path, message):
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(ConfigError) as info:
        load_map_file(write(tmp_path, text))
    assert path in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (("contoso-invoicing:\n    spec", '"contoso-invoicing\\n":\n    spec'), "apis"),
        (("{name: dev, folder", '{name: "dev\\n", folder'), "targets[0].name"),
        (('swagger.json"}', 'swagger.json\\n"}'), "apis.contoso-invoicing.spec.url"),
        (('swagger/"]', 'swagger/\\n"]'), "allowedSpecUrls[0]"),
        (("- custom: contoso-invoicing", '- custom: "contoso-invoicing\\n"'), "on[0].custom"),
        (("  pp: {managedIdentity", '  "pp\\n": {managedIdentity'), "credentials"),
        (
            (
                "Default-11111111-2222-3333-4444-555555555555",
                '"Default-11111111-2222-3333-4444-555555555555\\n"',
            ),
            "powerapps.environment",
        ),
        (
            ("credentials:", 'notify: {teams: {webhook: "kv:teams-hook\\n"}}\ncredentials:'),
            "notify.teams.webhook",
        ),
        (
            (
                "- custom: contoso-invoicing",
                '- appService: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites'
                '/app\\n"',
            ),
            "on[0]",
        ),
        (
            (
                "- custom: contoso-invoicing",
                '- appService: "/subscriptions/s/resourceGroups/r g/providers/Microsoft.Web/sites'
                '/app"',
            ),
            "on[0]",
        ),
        (
            (
                "folder: connectors/dev}",
                'folder: connectors/dev, overrides: {host: "a.example\\n"}}',
            ),
            "targets[0].overrides.host",
        ),
    ],
)
def test_a_final_newline_is_refused_naming_the_key_path(tmp_path, change, path):
    """jsonschema applies "pattern" with re.search, where "$" also matches before a final
    newline: "dev\\n" or a URL ending in "\\n" loaded, and failed only at run time, every run."""
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(ConfigError, match="does not match") as info:
        load_map_file(write(tmp_path, text))
    assert path in str(info.value)


BLOCK_SCALARS = """
apis:
  orders:
    spec:
      url: {url}
        https://orders.contoso.example/openapi.json
    targets:
      - name: dev
        folder: out
notify:
  teams:
    webhook: {webhook}
      kv:teams-hook
"""


@pytest.mark.parametrize(
    ("url", "webhook", "path"),
    [(">", ">-", "apis.orders.spec.url"), ("|-", "|", "notify.teams.webhook")],
)
def test_a_yaml_block_scalar_keeping_its_newline_is_refused(tmp_path, url, webhook, path):
    """`url: >` and `webhook: |` keep a final newline (`>-` and `|-` strip it): the URL then
    failed at fetch time and the secret reference named no Key Vault secret."""
    text = BLOCK_SCALARS.format(url=url, webhook=webhook)
    with pytest.raises(ConfigError, match="does not match") as info:
        load_map_file(write(tmp_path, text))
    assert f"{tmp_path / 'map.yaml'}: {path}:" in str(info.value)
    assert "(and" not in str(info.value)  # the stripped one of the two is accepted


SPEC_SOURCES = {
    "apimExport": (
        "{service: /subscriptions/s/resourceGroups/r/providers/Microsoft.ApiManagement/service/c,"
        " api: orders, credential: CRED}"
    ),
    "apiCenterExport": (
        "{service: /subscriptions/s/resourceGroups/r/providers/Microsoft.ApiCenter/services/c,"
        " api: orders, version: v1, definition: openapi, credential: CRED}"
    ),
    "blob": "{account: 'https://acct.blob.core.windows.net', container: specs, credential: CRED}",
}


@pytest.mark.parametrize("kind", sorted(SPEC_SOURCES))
def test_a_spec_source_credential_must_be_defined(tmp_path, kind):
    """Checked for targets only: a typo in a spec source's credential passed `config validate`
    and failed every run at fetch time, with an error that did not name the API."""
    spec = "{" + kind + ": " + SPEC_SOURCES[kind] + "}"
    text = GOOD.replace('{url: "https://invoicing.contoso.example/swagger/v1/swagger.json"}', spec)
    assert text != GOOD
    good = write(tmp_path, text.replace("CRED", "pp"))
    assert load_map_file(good).api("contoso-invoicing").spec_kind == kind
    with pytest.raises(ConfigError, match="credential 'p' is not defined") as info:
        load_map_file(write(tmp_path, text.replace("CRED", "p")))
    assert (
        info.value.where
        == f"{tmp_path / 'map.yaml'}: apis.contoso-invoicing.spec.{kind}.credential"
    )


def test_missing_overlay_file_is_named(tmp_path):
    text = GOOD.replace("    on:", "    overlay: overlays/missing.yaml\n    on:")
    with pytest.raises(ConfigError, match=r"apis\.contoso-invoicing\.overlay.*missing\.yaml"):
        load_map_file(write(tmp_path, text))


@pytest.mark.parametrize("text", ["", "apis: [1, 2]", "a: 1\na: 2", "{{{", "- just\n- a list"])
def test_unreadable_maps_are_config_errors(tmp_path, text):
    with pytest.raises(ConfigError):
        load_map_file(write(tmp_path, text))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("map.json", '{"apis": {}, "x": ' + "1" * 5000 + "}"),
        ("map.yaml", GOOD + "debounce: " + "1" * 5000 + "\n"),
    ],
)
def test_a_number_python_cannot_convert_is_a_config_error_naming_the_file(tmp_path, name, text):
    """Past 4,300 digits int() raises a bare ValueError, which is no SyncError: `config validate`
    and the planner would crash with a traceback instead of naming the map."""
    path = write(tmp_path, text, name)
    with pytest.raises(ConfigError, match="number that cannot be read") as info:
        load_map_file(path)
    assert info.value.where == str(path)


def test_load_map_needs_the_setting_and_reloads_when_the_file_changes(tmp_path):
    with pytest.raises(ConfigError, match="SYNC_CONFIG is not set"):
        load_map(None)
    with pytest.raises(ConfigError, match="not found"):
        load_map(str(tmp_path / "absent.yaml"))
    path = write(tmp_path, GOOD)
    first = load_map(str(path))
    assert load_map(str(path)) is first  # validated once per process and file version
    path.write_text(GOOD.replace("name: prod", "name: test"))
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert [t.name for t in load_map(str(path)).api("contoso-invoicing").targets] == ["dev", "test"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://invoicing.contoso.example/swagger/v2/swagger.json", True),
        ("https://invoicing.contoso.example/swagger/", True),
        ("https://invoicing.contoso.example/swaggerx/v2.json", False),
        ("https://invoicing.contoso.example.evil.example/swagger/x", False),
        ("https://invoicing.contoso.example/swagger/../admin", False),
        ("https://invoicing.contoso.example/swagger/%2e%2e/admin", False),
        ("https://user@invoicing.contoso.example/swagger/x", False),
        ("http://invoicing.contoso.example/swagger/x", False),
        ("https://invoicing.contoso.example:8443/swagger/x", False),
        ("https://169.254.169.254/swagger/x", False),
        ("not a url", False),
    ],
)
def test_spec_urls_from_events_are_compared_by_parts(tmp_path, url, allowed):
    api = load_map_file(write(tmp_path, GOOD)).api("contoso-invoicing")
    assert api.allows_spec_url(url) is allowed


def test_cli_config_validate_exit_codes(tmp_path, capsys):
    assert main(["config", "validate", str(write(tmp_path, GOOD))]) == 0
    assert "valid (1 APIs, 2 targets)" in capsys.readouterr().out
    assert main(["config", "validate", str(write(tmp_path, "apis: {}", "bad.yaml"))]) == 2
    assert "bad.yaml" in capsys.readouterr().err


def test_schema_file_is_valid_json_schema_for_editors():
    from jsonschema import Draft202012Validator

    from sync.config import SCHEMA_PATH

    Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))


def test_no_schema_pattern_ends_with_a_dollar():
    """jsonschema runs "pattern" with re.search, where "$" also matches before a final newline;
    "(?![\\s\\S])" is the end of the string in Python and in ECMA-262 (editors) alike."""
    from sync.config import SCHEMA_PATH

    patterns: list[str] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern" and isinstance(value, str):
                    patterns.append(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(json.loads(SCHEMA_PATH.read_text()))
    assert len(patterns) > 10
    assert [p for p in patterns if "$" in p] == []


@pytest.mark.parametrize("name", ["sync-map.local.yaml", "sync-map.production.yaml"])
def test_the_shipped_example_maps_are_valid(name):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sync_map = load_map_file(root / "examples" / name)
    assert "contoso-invoicing" in sync_map.apis


def test_local_settings_example_names_only_known_settings():
    from pathlib import Path

    from sync import settings

    root = Path(__file__).resolve().parents[1]
    values = json.loads((root / "local.settings.example.json").read_text())["Values"]
    ours = {k for k in values if k.startswith("SYNC_")}
    assert ours <= set(settings.APP_SETTINGS) | set(settings.LOCAL_SETTINGS)
    assert (root / values["SYNC_CONFIG"]).is_file()


def test_more_targets_than_a_run_row_can_list_is_a_config_error(tmp_path):
    """A run row lists its targets in one Table property (64 KiB): past ~490 long names no run
    of the API could start, with nothing saying why (found by review 2026-12-07)."""
    names = [f"env-{i:03d}" for i in range(251)]
    text = GOOD.replace(
        "      - {name: dev, folder: connectors/dev}\n",
        "".join(f"      - {{name: {n}, folder: connectors/{n}}}\n" for n in names),
    )
    with pytest.raises(ConfigError) as caught:
        load_map_file(str(write(tmp_path, text)))
    assert caught.value.path.endswith("apis.contoso-invoicing.targets")
    assert "252 targets; an API may have at most 250" in str(caught.value)
    fewer = text.replace(f"      - {{name: {names[-1]}, folder: connectors/{names[-1]}}}\n", "")
    fewer = fewer.replace(f"      - {{name: {names[-2]}, folder: connectors/{names[-2]}}}\n", "")
    assert len(load_map_file(str(write(tmp_path, fewer))).api("contoso-invoicing").targets) == 250


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://invoicing.contoso.example/my%20api/v2.json", True),
        ("https://invoicing.contoso.example/my api/v2.json", True),
        ("https://invoicing.contoso.example:443/my%20api/v2.json", True),
        ("https://invoicing.contoso.example/my%20apix/v2.json", False),
        ("https://invoicing.contoso.example/other/v2.json", False),
        ("https://invoicing.contoso.example:99999/my%20api/v2.json", False),
    ],
)
def test_an_encoded_prefix_and_the_default_port_match_as_written(tmp_path, url, allowed):
    """A prefix with %20 (the schema allows no literal space) never matched: the URL's path was
    decoded, the prefix's not; nor did :443 under an https prefix (review 2026-12-07)."""
    text = GOOD.replace(
        'allowedSpecUrls: ["https://invoicing.contoso.example/swagger/"]',
        'allowedSpecUrls: ["https://invoicing.contoso.example/my%20api/"]',
    )
    api = load_map_file(write(tmp_path, text)).api("contoso-invoicing")
    assert api.allows_spec_url(url) is allowed


@pytest.mark.parametrize("key", ["010", "0x1f", "1e3"])
def test_a_number_like_api_name_is_kept_as_written(tmp_path, key):
    """YAML 1.1 reads 010 as the octal 8: the API was stored as '8' and the CLI could not find
    'its' name (review 2026-12-07)."""
    text = GOOD.replace("  contoso-invoicing:\n", f"  {key}:\n").replace(
        "custom: contoso-invoicing", f"custom: '{key}'"
    )
    assert list(load_map_file(write(tmp_path, text)).apis) == [key]


def test_a_number_like_name_the_schema_refuses_is_named_as_written(tmp_path):
    text = GOOD.replace("  contoso-invoicing:\n", "  1_000:\n")
    with pytest.raises(ConfigError, match="1_000"):  # was read as 1000, which would pass
        load_map_file(write(tmp_path, text))


@pytest.mark.parametrize(
    "argv", [["--max-items", "-5"], ["--max-items", "0"], ["--concurrency", "0"]]
)
def test_worker_counts_below_one_are_usage_errors(argv, capsys):
    """``worker --max-items -5`` exited 0 having done nothing (review 2026-12-07)."""
    with pytest.raises(SystemExit) as usage:
        main(["worker", *argv, "--wait", "0"])
    assert usage.value.code == 2
    assert "is less than 1" in capsys.readouterr().err


EMPTY_HOSTS = ["https://:99/x", "https:///x", "https://user@:99/x", "https://@/x", "https://[]/x"]


def _with_url(url: str, where: str) -> str:
    """GOOD with ``url`` written at ``where``: spec.url, an allowedSpecUrls entry, the
    resourceManager endpoint or (without its ``/x`` path) a dataverse org."""
    if where == "spec.url":
        return GOOD.replace("https://invoicing.contoso.example/swagger/v1/swagger.json", url)
    if where == "allowedSpecUrls[0]":
        return GOOD.replace('["https://invoicing.contoso.example/swagger/"]', f'["{url}"]')
    if where == "endpoints.resourceManager":
        return GOOD + f'endpoints: {{resourceManager: "{url}"}}\n'
    org = f'{{org: "{url.removesuffix("/x")}", credential: pp}}'  # an org URL has no path
    return GOOD.replace("{name: dev, folder: connectors/dev}", f"{{name: dev, dataverse: {org}}}")


@pytest.mark.parametrize("url", EMPTY_HOSTS)
@pytest.mark.parametrize(
    "where",
    [
        "apis.contoso-invoicing.spec.url",
        "apis.contoso-invoicing.allowedSpecUrls[0]",
        "endpoints.resourceManager",
        "apis.contoso-invoicing.targets[0].dataverse.org",
    ],
)
def test_a_url_without_a_host_is_refused_by_the_schema_naming_the_field(tmp_path, url, where):
    """``https://:99/x`` passed the schema (``[^\\s/]+`` took ":99" for a host) and failed only
    when the URL was used, with a less clear error (review 2026-12-07)."""
    from sync.config import map_check
    from sync.spec.parse import load_object

    path = write(tmp_path, _with_url(url, where.removeprefix("apis.contoso-invoicing.")))
    with pytest.raises(ConfigError) as info:
        load_map_file(path)
    assert f": {where}" in str(info.value) and "does not match" in str(info.value)
    assert not map_check.passes(load_object(path.read_bytes(), source="t"))  # the shipped check


@pytest.mark.parametrize(
    "url",
    [
        "https://invoicing.contoso.example:8443/swagger/v1/swagger.json",
        "http://127.0.0.1:7071/api/swagger.json",
        "https://[2001:db8::1]/x",
        "https://[2001:db8::1]:8443/x",
        "https://invoicing.contoso.example",
        "https://invoicing.contoso.example?api-version=1",
    ],
)
def test_urls_with_a_host_still_pass_the_schema(tmp_path, url):
    from sync.config import map_check
    from sync.spec.parse import load_object

    for where in ("spec.url", "allowedSpecUrls[0]", "endpoints.resourceManager"):
        path = write(tmp_path, _with_url(url, where))
        assert load_map_file(path).api("contoso-invoicing")
        assert map_check.passes(load_object(path.read_bytes(), source="t"))  # the quick yes


@pytest.mark.parametrize(
    ("written", "read_as"),
    [("010", "the number 8"), ("0x1f", "the number 31"), ("true", "the boolean true")],
)
@pytest.mark.parametrize(
    ("before", "after", "path"),
    [
        ("{name: dev, folder", "{name: {v}, folder", "apis.contoso-invoicing.targets[0].name"),
        ("custom: contoso-invoicing", "custom: {v}", "apis.contoso-invoicing.on[0].custom"),
    ],
)
def test_an_unquoted_number_like_name_is_refused_as_written(
    tmp_path, written, read_as, before, after, path
):
    """``name: 010`` was refused as "8 is not of type 'string'": a value the user never wrote
    (review 2026-12-07). The error names the field, shows the text and says to quote it."""
    text = GOOD.replace(before, after.replace("{v}", written))
    with pytest.raises(ConfigError) as info:
        load_map_file(write(tmp_path, text))
    message = str(info.value)
    assert f"{path}: {written} is not a string" in message
    assert f"reads as {read_as}; quote it ('{written}')" in message


@pytest.mark.parametrize("written", ["010", "0x1f", "1e3", "true"])
def test_a_quoted_number_like_name_loads_as_written(tmp_path, written):
    text = GOOD.replace("{name: dev, folder", f"{{name: '{written}', folder")
    names = [t.name for t in load_map_file(write(tmp_path, text)).api("contoso-invoicing").targets]
    assert names == [written, "prod"]


def test_1e3_unquoted_is_already_text_in_yaml_1_1(tmp_path):
    """PyYAML's float needs a dot (``1.0e+3``): an unquoted 1e3 is the string it looks like."""
    text = GOOD.replace("{name: dev, folder", "{name: 1e3, folder")
    assert load_map_file(write(tmp_path, text)).api("contoso-invoicing").targets[0].name == "1e3"


def test_a_json_map_number_is_shown_as_written(tmp_path):
    raw = {
        "apis": {
            "orders": {
                "spec": {"url": "https://invoicing.contoso.example/swagger.json"},
                "targets": [{"name": "NAME", "folder": "out"}],
            }
        }
    }
    text = json.dumps(raw).replace('"NAME"', "1e3")  # json reads 1000.0
    with pytest.raises(ConfigError, match=r"targets\[0\]\.name: 1e3 is not a string"):
        load_map_file(write(tmp_path, text, "map.json"))
