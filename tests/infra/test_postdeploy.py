"""The azd postdeploy hook against a strict stub az/azd: waits for plan_event, creates the Event
Grid subscriptions once, replaces them whole on later runs (so a subject filter the map dropped
does not linger), deletes its own subscription on a topic the map no longer names (and nobody
else's), and fails loudly on bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
HOOK_SH = ROOT / "infra" / "scripts" / "postdeploy.sh"
HOOK_PS1 = ROOT / "infra" / "scripts" / "postdeploy.ps1"
STUB = Path(__file__).with_name("az_stub.py")

APP_ID = "/subscriptions/s-main/resourceGroups/rg-dev/providers/Microsoft.Web/sites/func-sync-abc"
DEADLETTER = (
    "/subscriptions/s-main/resourceGroups/rg-dev/providers/Microsoft.Storage/storageAccounts/stabc"
    "/blobServices/default/containers/eventgrid-deadletter"
)
CI_TOPIC = (
    "/subscriptions/s-main/resourceGroups/rg-dev/providers/Microsoft.EventGrid/topics/evgt-ci-abc"
)
TOPICS = ";".join(
    [
        "appService|s-api|rg-api|egst-appService-contoso|",
        "apim|s-api|rg-apim|egst-apim-contoso|/apis/invoicing",
        "apiCenter|s-api|rg-apic|egst-apiCenter-contoso|/workspaces/default/apis/a,/workspaces/default/apis/b",
        "blob|s-api|rg-specs|egst-blob-specs|",
    ]
)


def _env_text(**overrides: str) -> str:
    values = {
        "AZURE_RESOURCE_GROUP": "rg-dev",
        "AZURE_FUNCTION_APP_NAME": "func-sync-abc",
        "AZURE_FUNCTION_APP_ID": APP_ID,
        "EVENTGRID_DEADLETTER_CONTAINER_ID": DEADLETTER,
        "EVENTGRID_SYSTEM_TOPICS": TOPICS,
        "EVENTGRID_CI_TOPIC_ID": CI_TOPIC,
        "AZURE_LOCATION": "westeurope",
    }
    values.update(overrides)
    return "".join(f'{k}="{v}"\n' for k, v in values.items())


class Hook:
    """Runs the hook with the stub on PATH and reads back what the stub recorded."""

    def __init__(self, tmp_path: Path) -> None:
        self.state = tmp_path / "state"
        self.state.mkdir()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for tool in ("az", "azd"):
            wrapper = bin_dir / tool
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STUB}" {tool} "$@"\n')
            wrapper.chmod(0o755)
        self.path = f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"
        self.set_env(_env_text())

    def set_env(self, text: str) -> None:
        (self.state / "env.txt").write_text(text)

    def function_appears_after(self, shows: int) -> None:
        (self.state / "function_after").write_text(str(shows))

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        full_env = {
            "PATH": self.path,
            "AZ_STUB_DIR": str(self.state),
            "POLL_INTERVAL_SECONDS": "0",
            "POLL_ATTEMPTS": "5",
            "HOME": str(self.state),
            **env,
        }
        return subprocess.run(
            ["sh", str(HOOK_SH)],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls(self) -> list[dict]:
        log = self.state / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def verbs(self, verb: str) -> list[dict]:
        return [
            c for c in self.calls() if c["command"][-1] == verb and c["command"][0] == "eventgrid"
        ]

    def subscriptions(self) -> dict[str, dict]:
        path = self.state / "subscriptions.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def seed(self, key: str, **flags: str) -> None:
        """Put a subscription there the way someone else (or an earlier run) left it."""
        subs = self.subscriptions()
        subs[key] = {flag: [value] for flag, value in flags.items()}
        (self.state / "subscriptions.json").write_text(json.dumps(subs))

    def env_value(self, key: str) -> str | None:
        for line in (self.state / "env.txt").read_text().splitlines():
            name, _, value = line.partition("=")
            if name == key:
                return value.strip('"')
        return None

    def by_topic(self) -> dict[str, dict]:
        return {
            (s.get("--system-topic-name") or s["--source-resource-id"])[0]: s
            for s in self.subscriptions().values()
        }


@pytest.fixture
def hook(tmp_path: Path) -> Hook:
    return Hook(tmp_path)


def test_shellcheck_passes() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install -y shellcheck; scripts/install.sh)")
    proc = subprocess.run(
        ["shellcheck", "-s", "sh", str(HOOK_SH)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout


def test_first_run_waits_for_plan_event_then_creates_every_subscription(hook: Hook) -> None:
    hook.function_appears_after(3)
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    shows = [c for c in hook.calls() if c["command"][:2] == ["functionapp", "function"]]
    assert len(shows) == 3
    assert shows[0]["flags"]["--function-name"] == ["plan_event"]
    assert proc.stdout.count("waiting for plan_event") == 2
    creates = hook.verbs("create")
    assert len(creates) == 5
    assert hook.verbs("update") == []
    first_create = hook.calls().index(creates[0])
    assert all(c["command"][0] == "functionapp" for c in hook.calls()[:3])
    assert first_create > 2
    assert len(hook.subscriptions()) == 5


def test_created_subscriptions_carry_endpoint_schema_filters_retry_and_dead_letter(
    hook: Hook,
) -> None:
    assert hook.run().returncode == 0
    by_topic = hook.by_topic()
    for sub in by_topic.values():
        assert sub["--endpoint"] == [f"{APP_ID}/functions/plan_event"]
        assert sub["--endpoint-type"] == ["azurefunction"]
        assert sub["--deadletter-identity"] == ["systemassigned"]
        assert sub["--deadletter-identity-endpoint"] == [DEADLETTER]
        assert sub["--max-delivery-attempts"] == ["30"]
        assert sub["--event-ttl"] == ["1440"]
        assert sub["--name"] == ["connector-sync"]
        assert not any("key" in flag for flag in sub)
    assert by_topic["egst-appService-contoso"]["--included-event-types"] == [
        "Microsoft.Web.SlotSwapCompleted",
        "Microsoft.Web.AppUpdated",
    ]
    apim = by_topic["egst-apim-contoso"]
    assert apim["--included-event-types"] == [
        "Microsoft.ApiManagement.APICreated",
        "Microsoft.ApiManagement.APIUpdated",
        "Microsoft.ApiManagement.APIReleaseCreated",
    ]
    assert apim["--subject-begins-with"] == ["/apis/invoicing"]
    apic = by_topic["egst-apiCenter-contoso"]
    assert apic["--included-event-types"] == [
        "Microsoft.ApiCenter.ApiDefinitionAdded",
        "Microsoft.ApiCenter.ApiDefinitionUpdated",
    ]
    assert apic["--advanced-filter"] == [
        "subject",
        "StringBeginsWith",
        "/workspaces/default/apis/a",
        "/workspaces/default/apis/b",
    ]
    assert by_topic["egst-blob-specs"]["--included-event-types"] == [
        "Microsoft.Storage.BlobCreated"
    ]
    assert "--subject-begins-with" not in by_topic["egst-blob-specs"]
    for name in ("egst-appService-contoso", "egst-apim-contoso", "egst-blob-specs"):
        assert by_topic[name]["--event-delivery-schema"] == ["eventgridschema"]
        assert by_topic[name]["--subscription"] == ["s-api"]
    assert by_topic["egst-apim-contoso"]["--resource-group"] == ["rg-apim"]
    ci = by_topic[CI_TOPIC]
    assert ci["--event-delivery-schema"] == ["cloudeventschemav1_0"]
    assert ci["--included-event-types"] == ["ConnectorSync.ApiDeployed"]


def test_second_run_replaces_and_never_duplicates(hook: Hook) -> None:
    assert hook.run().returncode == 0
    before = hook.subscriptions()
    calls_first = len(hook.calls())
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    second = hook.calls()[calls_first:]
    verbs = [c["command"][-1] for c in second if c["command"][0] == "eventgrid"]
    assert verbs.count("create") == 5  # a PUT: replaces the existing subscription whole
    assert verbs.count("update") == verbs.count("delete") == 0
    assert verbs.count("show") == 5
    assert proc.stdout.count("postdeploy: replace subscription") == 5
    assert "warning" not in proc.stderr
    assert hook.subscriptions() == before
    for call in second:
        if call["command"][-1] == "create":
            assert call["flags"]["--endpoint"] == [f"{APP_ID}/functions/plan_event"]


PLANNER = f"{APP_ID}/functions/plan_event"
SUBJECT_FLAGS = ("--subject-begins-with", "--advanced-filter")


def _topics(**subjects: str) -> str:
    """TOPICS with other subject lists; a kind set to None drops that topic from the map."""
    entries = []
    for entry in TOPICS.split(";"):
        kind, sub, rg, topic, current = entry.split("|")
        value = subjects.get(kind, current)
        if value is not None:
            entries.append(f"{kind}|{sub}|{rg}|{topic}|{value}")
    return ";".join(entries)


def _filters(sub: dict) -> dict:
    return {flag: sub[flag] for flag in SUBJECT_FLAGS if flag in sub}


def test_changed_subjects_leave_exactly_the_new_filter(hook: Hook) -> None:
    """One subject -> none, several -> one, none -> several: nothing of the old filter remains
    (through `update` the old prefix or advanced filter would survive and starve the new one)."""
    assert hook.run().returncode == 0
    hook.set_env(
        _env_text(
            EVENTGRID_SYSTEM_TOPICS=_topics(
                apim="",
                apiCenter="/workspaces/default/apis/a",
                blob="/blobServices/default/containers/specs/blobs/x,/blobServices/default/containers/specs/blobs/y",
            )
        )
    )
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    by_topic = hook.by_topic()
    assert _filters(by_topic["egst-apim-contoso"]) == {}
    assert _filters(by_topic["egst-apiCenter-contoso"]) == {
        "--subject-begins-with": ["/workspaces/default/apis/a"]
    }
    assert _filters(by_topic["egst-blob-specs"]) == {
        "--advanced-filter": [
            "subject",
            "StringBeginsWith",
            "/blobServices/default/containers/specs/blobs/x",
            "/blobServices/default/containers/specs/blobs/y",
        ]
    }
    assert _filters(by_topic["egst-appService-contoso"]) == {}
    for sub in by_topic.values():  # the rest of the subscription is rewritten too, not lost
        assert sub["--endpoint"] == [PLANNER]
        assert sub["--deadletter-identity-endpoint"] == [DEADLETTER]
        assert sub["--max-delivery-attempts"] == ["30"]


def test_retry_settings_apply_to_existing_subscriptions(hook: Hook) -> None:
    assert hook.run().returncode == 0
    assert hook.run(EVENTGRID_MAX_DELIVERY_ATTEMPTS="10").returncode == 0
    assert {s["--max-delivery-attempts"][0] for s in hook.subscriptions().values()} == {"10"}


def test_records_the_topics_it_subscribed(hook: Hook) -> None:
    assert hook.run().returncode == 0
    assert hook.env_value("EVENTGRID_SUBSCRIBED_TOPICS") == (
        "s-api|rg-api|egst-appService-contoso;s-api|rg-apim|egst-apim-contoso;"
        "s-api|rg-apic|egst-apiCenter-contoso;s-api|rg-specs|egst-blob-specs"
    )
    assert hook.run().returncode == 0
    sets = [c for c in map(json.loads, (hook.state / "azd_calls.jsonl").read_text().splitlines())]
    assert sets.count(["env", "get-values"]) == 2
    assert len([c for c in sets if c[:2] == ["env", "set"]]) == 1  # unchanged: not written again


def test_topic_removed_from_the_map_loses_only_our_subscription(hook: Hook) -> None:
    assert hook.run().returncode == 0
    apim = "s-api/rg-apim/egst-apim-contoso"
    hook.seed(f"{apim}::audit-feed", **{"--name": "audit-feed", "--endpoint": "/other/app"})
    hook.set_env(
        _env_text(
            EVENTGRID_SYSTEM_TOPICS=_topics(apim=None),
            EVENTGRID_SUBSCRIBED_TOPICS=hook.env_value("EVENTGRID_SUBSCRIBED_TOPICS") or "",
        )
    )
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    deletes = hook.verbs("delete")
    assert len(deletes) == 1
    assert deletes[0]["flags"]["--system-topic-name"] == ["egst-apim-contoso"]
    assert deletes[0]["flags"]["--subscription"] == ["s-api"]
    assert deletes[0]["flags"]["--resource-group"] == ["rg-apim"]
    assert deletes[0]["flags"]["--name"] == ["connector-sync"]
    subs = hook.subscriptions()
    assert f"{apim}::connector-sync" not in subs
    assert f"{apim}::audit-feed" in subs  # someone else's subscription on that topic stays
    assert len([k for k in subs if k.endswith("::connector-sync")]) == 4  # 3 topics + CI
    assert "delete subscription connector-sync on system topic egst-apim-contoso" in proc.stdout
    assert "egst-apim-contoso" not in (hook.env_value("EVENTGRID_SUBSCRIBED_TOPICS") or "")
    # converged: a third run deletes nothing more
    calls = len(hook.calls())
    assert hook.run().returncode == 0
    assert [c for c in hook.calls()[calls:] if c["command"][-1] == "delete"] == []


def test_removed_topic_whose_subscription_delivers_elsewhere_is_left(hook: Hook) -> None:
    """Same name, another app's endpoint (another environment on a shared source): not ours."""
    other = "/subscriptions/s-main/resourceGroups/rg-prod/providers/Microsoft.Web/sites/func-prod/functions/plan_event"
    hook.seed(
        "s-api/rg-old/egst-apim-old::connector-sync",
        **{"--name": "connector-sync", "--endpoint": other},
    )
    hook.set_env(_env_text(EVENTGRID_SUBSCRIBED_TOPICS="s-api|rg-old|egst-apim-old"))
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    assert hook.verbs("delete") == []
    assert "s-api/rg-old/egst-apim-old::connector-sync" in hook.subscriptions()
    assert f"it delivers to {other}, not this app" in proc.stdout


def test_ownership_compares_the_endpoint_case_insensitively(hook: Hook) -> None:
    hook.seed(
        "s-api/rg-old/egst-apim-old::connector-sync",
        **{"--name": "connector-sync", "--endpoint": PLANNER.upper()},
    )
    hook.set_env(_env_text(EVENTGRID_SUBSCRIBED_TOPICS="s-api|rg-old|egst-apim-old"))
    assert hook.run().returncode == 0
    assert len(hook.verbs("delete")) == 1


def test_removed_topic_already_without_subscription_is_fine(hook: Hook) -> None:
    hook.set_env(_env_text(EVENTGRID_SUBSCRIBED_TOPICS="s-api|rg-old|egst-gone"))
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    assert hook.verbs("delete") == []
    assert "egst-gone is no longer in the map and has no subscription" in proc.stdout
    assert "egst-gone" not in (hook.env_value("EVENTGRID_SUBSCRIBED_TOPICS") or "")


def test_unreadable_removed_topic_fails_and_keeps_the_record(hook: Hook) -> None:
    """No permission to look: fail, delete nothing, and keep the record so a rerun retries."""
    hook.seed(
        "s-api/rg-old/egst-locked::connector-sync",
        **{"--name": "connector-sync", "--endpoint": PLANNER},
    )
    hook.set_env(_env_text(EVENTGRID_SUBSCRIBED_TOPICS="s-api|rg-old|egst-locked"))
    (hook.state / "show_error").write_text("egst-locked")
    proc = hook.run()
    assert proc.returncode != 0
    assert "could not read subscription connector-sync on system topic egst-locked" in proc.stderr
    assert "AuthorizationFailed" in proc.stderr
    assert hook.verbs("delete") == []
    assert hook.env_value("EVENTGRID_SUBSCRIBED_TOPICS") == "s-api|rg-old|egst-locked"


def test_replacing_a_subscription_that_delivered_elsewhere_says_so(hook: Hook) -> None:
    hook.seed(
        "s-api/rg-apim/egst-apim-contoso::connector-sync",
        **{"--name": "connector-sync", "--endpoint": "/subscriptions/x/sites/other/functions/f"},
    )
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    assert (
        "warning: subscription connector-sync on system topic egst-apim-contoso delivered to "
        "/subscriptions/x/sites/other/functions/f" in proc.stderr
    )


def test_times_out_when_plan_event_never_appears(hook: Hook) -> None:
    hook.function_appears_after(99)
    proc = hook.run(POLL_ATTEMPTS="4")
    assert proc.returncode != 0
    assert "plan_event did not appear in func-sync-abc after 4 checks" in proc.stderr
    assert hook.verbs("create") == []
    assert len(hook.calls()) == 4


def test_missing_output_is_named(hook: Hook) -> None:
    hook.set_env(_env_text(AZURE_FUNCTION_APP_ID=""))
    proc = hook.run()
    assert proc.returncode != 0
    assert "AZURE_FUNCTION_APP_ID is missing from the azd environment" in proc.stderr
    assert hook.calls() == []


def test_unknown_source_kind_is_rejected(hook: Hook) -> None:
    hook.set_env(_env_text(EVENTGRID_SYSTEM_TOPICS="ftp|s|rg|topic|"))
    proc = hook.run()
    assert proc.returncode != 0
    assert "unknown event source kind 'ftp'" in proc.stderr
    assert hook.verbs("create") == []


def test_malformed_topic_entry_is_rejected(hook: Hook) -> None:
    hook.set_env(_env_text(EVENTGRID_SYSTEM_TOPICS="apim|s-api"))
    proc = hook.run()
    assert proc.returncode != 0
    assert "malformed EVENTGRID_SYSTEM_TOPICS entry 'apim|s-api'" in proc.stderr


def test_no_topics_and_no_ci_topic_only_polls(hook: Hook) -> None:
    hook.set_env(_env_text(EVENTGRID_SYSTEM_TOPICS="", EVENTGRID_CI_TOPIC_ID=""))
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    assert [c["command"][0] for c in hook.calls()] == ["functionapp"]


def test_missing_az_is_reported(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["sh", str(HOOK_SH)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if shutil.which("az", path="/usr/bin:/bin"):
        pytest.skip("a real az is installed in /usr/bin")
    assert proc.returncode != 0
    assert "the Azure CLI (az) is not on PATH" in proc.stderr


def test_stub_rejects_unknown_flags(hook: Hook) -> None:
    """The stub is strict, so a typo in the hook cannot pass unnoticed."""
    proc = subprocess.run(
        [
            sys.executable,
            str(STUB),
            "az",
            "eventgrid",
            "event-subscription",
            "create",
            "--bogus",
            "x",
        ],
        env={"AZ_STUB_DIR": str(hook.state)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "unrecognized arguments: --bogus" in proc.stderr


def test_stub_update_keeps_filters_it_is_not_given(hook: Hook) -> None:
    """The az behaviour the hook's PUT avoids: `update` merges, so an old prefix survives."""
    key = "s/rg/t::connector-sync"
    hook.seed(key, **{"--name": "connector-sync", "--subject-begins-with": "/apis/old"})
    command = ["eventgrid", "system-topic", "event-subscription", "update", "--name"]
    command += ["connector-sync", "--resource-group", "rg", "--system-topic-name", "t"]
    command += ["--subscription", "s", "--endpoint", "e"]
    proc = subprocess.run(
        [sys.executable, str(STUB), "az", *command],
        env={"AZ_STUB_DIR": str(hook.state)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert hook.subscriptions()[key]["--subject-begins-with"] == ["/apis/old"]


def test_powershell_hook_mirrors_the_shell_hook() -> None:
    """pwsh is not available here: check the .ps1 issues the same commands and values."""
    ps1 = HOOK_PS1.read_text()
    sh = HOOK_SH.read_text()
    for needle in (
        "plan_event",
        "az functionapp function show",
        "az eventgrid system-topic event-subscription",
        "az eventgrid event-subscription",
        "--function-name",
        "--endpoint-type', 'azurefunction'",
        "'--event-delivery-schema', 'eventgridschema'",
        "'--event-delivery-schema', 'cloudeventschemav1_0'",
        "'--deadletter-identity', 'systemassigned'",
        "--deadletter-identity-endpoint",
        "--advanced-filter', 'subject', 'StringBeginsWith'",
        "--subject-begins-with",
        "--max-delivery-attempts",
        "--event-ttl",
        "azd env get-values",
        "azd env set",
        "EVENTGRID_SUBSCRIBED_TOPICS",
        "--query destination.resourceId",
        "delete @ids --yes",
        "$LASTEXITCODE -eq 3",
        "EVENTGRID_SYSTEM_TOPICS",
        "EVENTGRID_CI_TOPIC_ID",
        "EVENTGRID_DEADLETTER_CONTAINER_ID",
        "ConnectorSync.ApiDeployed",
    ):
        assert needle in ps1, needle
    for event_type in (
        "Microsoft.Web.SlotSwapCompleted",
        "Microsoft.Web.AppUpdated",
        "Microsoft.ApiManagement.APICreated",
        "Microsoft.ApiManagement.APIUpdated",
        "Microsoft.ApiManagement.APIReleaseCreated",
        "Microsoft.ApiCenter.ApiDefinitionAdded",
        "Microsoft.ApiCenter.ApiDefinitionUpdated",
        "Microsoft.Storage.BlobCreated",
    ):
        assert event_type in ps1 and event_type in sh, event_type
    assert "show" in ps1 and "delete" in ps1 and "'replace'" in ps1 and "'create'" in ps1
    assert " update " not in ps1 and " update " not in sh  # update keeps stale filters


def test_powershell_hook_has_no_accidental_scoped_variable() -> None:
    """In a PowerShell string "$topic: x" is a (broken) drive-qualified variable: use ${topic}."""
    ps1 = HOOK_PS1.read_text()
    assert re.findall(r"\$(?!env:)[A-Za-z_]\w*:(?!:)", ps1) == []


def test_azure_yaml_declares_service_and_both_hooks() -> None:
    import yaml

    doc = yaml.safe_load((ROOT / "azure.yaml").read_text())
    api = doc["services"]["api"]
    assert api == {"project": ".", "language": "python", "host": "function"}
    post = doc["hooks"]["postdeploy"]
    assert post["posix"]["run"] == "./infra/scripts/postdeploy.sh"
    assert post["posix"]["shell"] == "sh"
    assert post["windows"]["run"] == "./infra/scripts/postdeploy.ps1"
    assert post["windows"]["shell"] == "pwsh"
    assert (ROOT / post["posix"]["run"]).is_file() and (ROOT / post["windows"]["run"]).is_file()
