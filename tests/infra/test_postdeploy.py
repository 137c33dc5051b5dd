"""The azd postdeploy hook against a strict stub az/azd: waits for plan_event, creates the Event
Grid subscriptions once (system topics through `az rest`, since `az eventgrid system-topic
event-subscription create` has no identity dead-letter options), replaces them whole on later
runs (so a subject filter the map dropped does not linger), re-creates its own subscription whose
delivery schema Event Grid cannot change in place, deletes its own subscription on a topic the
map no longer names (and nobody else's), and fails loudly on bad input."""

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
DEADLETTER_ACCOUNT = (
    "/subscriptions/s-main/resourceGroups/rg-dev/providers/Microsoft.Storage/storageAccounts/stabc"
)
CI_TOPIC = (
    "/subscriptions/s-main/resourceGroups/rg-dev/providers/Microsoft.EventGrid/topics/evgt-ci-abc"
)
SYSTEM_TOPIC_NAMES = (
    "egst-appService-contoso",
    "egst-apim-contoso",
    "egst-apiCenter-contoso",
    "egst-blob-specs",
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

    def run(self, script: Path = HOOK_SH, **env: str) -> subprocess.CompletedProcess[str]:
        full_env = {
            "PATH": self.path,
            "AZ_STUB_DIR": str(self.state),
            "POLL_INTERVAL_SECONDS": "0",
            "POLL_ATTEMPTS": "5",
            "HOME": str(self.state),
            **env,
        }
        return subprocess.run(
            ["sh", str(script)],
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

    def puts(self) -> list[dict]:
        """The `az rest --method put` calls (each with the body it sent)."""
        return [
            c
            for c in self.calls()
            if c["command"] == ["rest"] and c["flags"].get("--method") == ["put"]
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
        """Stored subscriptions by system topic name (or the CI topic's id): the ARM
        `properties` of one written by `az rest`, the flags of one written by `create`."""
        found = {}
        for key, record in self.subscriptions().items():
            scope = key.rsplit("::", 1)[0]
            topic = scope if scope.startswith("/") else scope.split("/")[-1]
            found[topic] = record.get("properties", record)
        return found


@pytest.fixture
def hook(tmp_path: Path) -> Hook:
    return Hook(tmp_path)


def _stub(hook: Hook, *args: str) -> subprocess.CompletedProcess[str]:
    """One `az` call straight to the stub, on the hook's state."""
    return subprocess.run(
        [sys.executable, str(STUB), "az", *args],
        env={"AZ_STUB_DIR": str(hook.state)},
        capture_output=True,
        text=True,
        check=False,
    )


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
    puts = hook.puts()
    assert len(puts) == 4  # one per system topic
    creates = hook.verbs("create")
    assert [c["command"][:2] for c in creates] == [["eventgrid", "event-subscription"]]  # CI
    assert hook.verbs("update") == []
    assert all(c["command"][0] == "functionapp" for c in hook.calls()[:3])
    assert hook.calls().index(puts[0]) > 2
    assert len(hook.subscriptions()) == 5
    assert proc.stdout.count("postdeploy: create subscription") == 5


def _expected_body(event_types: list[str], **filter_: object) -> dict:
    """What the hook PUTs on a system topic: the settings it gave `create` before."""
    return {
        "properties": {
            "destination": {
                "endpointType": "AzureFunction",
                "properties": {"resourceId": f"{APP_ID}/functions/plan_event"},
            },
            "filter": {"includedEventTypes": event_types, **filter_},
            "eventDeliverySchema": "EventGridSchema",
            "retryPolicy": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440},
            "deadLetterWithResourceIdentity": {
                "identity": {"type": "SystemAssigned"},
                "deadLetterDestination": {
                    "endpointType": "StorageBlob",
                    "properties": {
                        "resourceId": DEADLETTER_ACCOUNT,
                        "blobContainerName": "eventgrid-deadletter",
                    },
                },
            },
        }
    }


def test_system_topic_subscriptions_are_put_whole_with_identity_dead_letter(hook: Hook) -> None:
    """Exactly the body the hook means, on the ARM URL of each topic's subscription."""
    assert hook.run().returncode == 0
    bodies = {}
    for call in hook.puts():
        url = call["flags"]["--url"][0]
        # relative: az rest puts the ARM endpoint of the signed-in cloud in front
        match = re.fullmatch(
            r"/subscriptions/s-api/resourceGroups/(rg-[a-z]+)/providers/Microsoft\.EventGrid/"
            r"systemTopics/([\w-]+)/eventSubscriptions/connector-sync\?api-version=2025-02-15",
            url,
        )
        assert match, url
        assert call["flags"]["--body"][0].startswith("@")  # a file: no quoting through a shell
        bodies[match[2]] = (match[1], call["body"])
    assert bodies["egst-appService-contoso"] == (
        "rg-api",
        _expected_body(["Microsoft.Web.SlotSwapCompleted", "Microsoft.Web.AppUpdated"]),
    )
    assert bodies["egst-apim-contoso"] == (
        "rg-apim",
        _expected_body(
            [
                "Microsoft.ApiManagement.APICreated",
                "Microsoft.ApiManagement.APIUpdated",
                "Microsoft.ApiManagement.APIReleaseCreated",
            ],
            subjectBeginsWith="/apis/invoicing",
        ),
    )
    assert bodies["egst-apiCenter-contoso"] == (
        "rg-apic",
        _expected_body(
            ["Microsoft.ApiCenter.ApiDefinitionAdded", "Microsoft.ApiCenter.ApiDefinitionUpdated"],
            advancedFilters=[
                {
                    "operatorType": "StringBeginsWith",
                    "key": "subject",
                    "values": ["/workspaces/default/apis/a", "/workspaces/default/apis/b"],
                }
            ],
        ),
    )
    assert bodies["egst-blob-specs"] == (
        "rg-specs",
        _expected_body(["Microsoft.Storage.BlobCreated"]),
    )
    # what `show` then reports is what was PUT (az flattens destination.properties)
    by_topic = hook.by_topic()
    for topic in SYSTEM_TOPIC_NAMES:
        assert by_topic[topic]["provisioningState"] == "Succeeded"
        assert by_topic[topic]["deadLetterWithResourceIdentity"]["identity"] == {
            "type": "SystemAssigned"
        }


def test_ci_topic_subscription_keeps_the_cli_with_identity_dead_letter(hook: Hook) -> None:
    """`az eventgrid event-subscription create` does take --deadletter-identity."""
    assert hook.run().returncode == 0
    ci = hook.by_topic()[CI_TOPIC]
    assert ci["--endpoint"] == [f"{APP_ID}/functions/plan_event"]
    assert ci["--endpoint-type"] == ["azurefunction"]
    assert ci["--deadletter-identity"] == ["systemassigned"]
    assert ci["--deadletter-identity-endpoint"] == [DEADLETTER]
    assert ci["--event-delivery-schema"] == ["cloudeventschemav1_0"]
    assert ci["--included-event-types"] == ["ConnectorSync.ApiDeployed"]
    assert ci["--max-delivery-attempts"] == ["30"]
    assert ci["--event-ttl"] == ["1440"]
    assert not any("key" in flag for flag in ci)


OLD_SYSTEM_TOPIC_CREATE = [
    "eventgrid",
    "system-topic",
    "event-subscription",
    "create",
    "--name",
    "connector-sync",
    "--resource-group",
    "rg-apim",
    "--system-topic-name",
    "egst-apim-contoso",
    "--subscription",
    "s-api",
    "--endpoint",
    f"{APP_ID}/functions/plan_event",
    "--endpoint-type",
    "azurefunction",
    "--included-event-types",
    "Microsoft.ApiManagement.APICreated",
    "--deadletter-identity",
    "systemassigned",
    "--deadletter-identity-endpoint",
    DEADLETTER,
    "--event-delivery-schema",
    "eventgridschema",
]


def test_the_old_system_topic_create_is_refused_like_real_az(hook: Hook) -> None:
    """Why the hook uses az rest: the command line it used before fails in azure-cli, whose
    system-topic create has no --deadletter-identity options (every system topic failed)."""
    proc = _stub(hook, *OLD_SYSTEM_TOPIC_CREATE)
    assert proc.returncode == 2
    assert "unrecognized arguments: --deadletter-identity" in proc.stderr
    assert hook.subscriptions() == {}
    without_identity = [
        arg
        for i, arg in enumerate(OLD_SYSTEM_TOPIC_CREATE)
        if not (
            arg.startswith("--deadletter")
            or OLD_SYSTEM_TOPIC_CREATE[i - 1].startswith("--deadletter")
        )
    ]
    assert _stub(hook, *without_identity).returncode == 0  # the rest of that line is valid


def test_hook_never_uses_system_topic_create_or_update(hook: Hook) -> None:
    assert hook.run().returncode == 0
    assert hook.run().returncode == 0
    assert [
        c
        for c in hook.calls()
        if c["command"][:2] == ["eventgrid", "system-topic"]
        and c["command"][-1] in ("create", "update")
    ] == []
    for hook_file in (HOOK_SH, HOOK_PS1):  # nor does any code line (comments may name it)
        code = [ln for ln in hook_file.read_text().splitlines() if not ln.lstrip().startswith("#")]
        assert not any("system-topic event-subscription create" in ln for ln in code), hook_file


def test_second_run_replaces_and_never_duplicates(hook: Hook) -> None:
    assert hook.run().returncode == 0
    before = hook.subscriptions()
    first_bodies = [c["body"] for c in hook.puts()]
    calls_first = len(hook.calls())
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    second = hook.calls()[calls_first:]
    verbs = [c["command"][-1] for c in second if c["command"][0] == "eventgrid"]
    assert verbs.count("create") == 1  # the CI topic; the system topics are PUT
    assert verbs.count("update") == verbs.count("delete") == 0
    assert [c["body"] for c in second if c["command"] == ["rest"]] == first_bodies
    assert proc.stdout.count("postdeploy: replace subscription") == 5
    assert "warning" not in proc.stderr
    assert hook.subscriptions() == before


PLANNER = f"{APP_ID}/functions/plan_event"
SUBJECT_FIELDS = ("subjectBeginsWith", "subjectEndsWith", "advancedFilters")


def _topics(**subjects: str) -> str:
    """TOPICS with other subject lists; a kind set to None drops that topic from the map."""
    entries = []
    for entry in TOPICS.split(";"):
        kind, sub, rg, topic, current = entry.split("|")
        value = subjects.get(kind, current)
        if value is not None:
            entries.append(f"{kind}|{sub}|{rg}|{topic}|{value}")
    return ";".join(entries)


def _filters(properties: dict) -> dict:
    return {
        field: properties["filter"][field]
        for field in SUBJECT_FIELDS
        if field in properties["filter"]
    }


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
        "subjectBeginsWith": "/workspaces/default/apis/a"
    }
    assert _filters(by_topic["egst-blob-specs"]) == {
        "advancedFilters": [
            {
                "operatorType": "StringBeginsWith",
                "key": "subject",
                "values": [
                    "/blobServices/default/containers/specs/blobs/x",
                    "/blobServices/default/containers/specs/blobs/y",
                ],
            }
        ]
    }
    assert _filters(by_topic["egst-appService-contoso"]) == {}
    for topic in SYSTEM_TOPIC_NAMES:  # the rest of the subscription is rewritten too, not lost
        sub = by_topic[topic]
        assert sub["destination"]["properties"]["resourceId"] == PLANNER
        dead_letter = sub["deadLetterWithResourceIdentity"]["deadLetterDestination"]
        assert dead_letter["properties"]["resourceId"] == DEADLETTER_ACCOUNT
        assert sub["retryPolicy"]["maxDeliveryAttempts"] == 30


def test_retry_settings_apply_to_existing_subscriptions(hook: Hook) -> None:
    assert hook.run().returncode == 0
    assert hook.run(EVENTGRID_MAX_DELIVERY_ATTEMPTS="10").returncode == 0
    by_topic = hook.by_topic()
    assert {by_topic[t]["retryPolicy"]["maxDeliveryAttempts"] for t in SYSTEM_TOPIC_NAMES} == {10}
    assert by_topic[CI_TOPIC]["--max-delivery-attempts"] == ["10"]


def test_retry_settings_must_be_whole_numbers(hook: Hook) -> None:
    """They go into the JSON body as numbers: anything else stops the hook before any call."""
    proc = hook.run(EVENTGRID_EVENT_TTL_MINUTES="1440; rm")
    assert proc.returncode != 0
    assert "must be whole numbers (got '1440; rm')" in proc.stderr
    assert hook.calls() == []


def test_retry_settings_with_leading_zeros_are_written_as_json_numbers(hook: Hook) -> None:
    """``030`` passed the whole-number check but made the body invalid JSON (found in review on
    2026-12-07); ``$((030))`` would read it as octal in sh."""
    proc = hook.run(EVENTGRID_MAX_DELIVERY_ATTEMPTS="030", EVENTGRID_EVENT_TTL_MINUTES="0090")
    assert proc.returncode == 0, proc.stderr
    retry = {json.dumps(hook.by_topic()[t]["retryPolicy"]) for t in SYSTEM_TOPIC_NAMES}
    assert retry == {'{"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 90}'}


@pytest.mark.parametrize(
    "subject", ["/blobServices/default/containers/specs/blobs/\u00e9quipe", "/a\tb"]
)
def test_a_subject_the_shell_cannot_escape_stops_the_hook_before_any_write(
    hook: Hook, subject: str
) -> None:
    """Only quotes and backslashes are escaped by the sh hook: a control character made the body
    invalid JSON, and a non-ASCII one can reach ARM as Latin-1 through az rest
    (Azure/azure-cli#30366). Found in review on 2026-12-07; the PowerShell hook escapes both."""
    subject = subject.encode().decode("unicode_escape")
    topics = TOPICS.replace("egst-blob-specs|", f"egst-blob-specs|{subject}")
    hook.set_env(_env_text(EVENTGRID_SYSTEM_TOPICS=topics))
    proc = hook.run()
    assert proc.returncode != 0
    assert "control or non-ASCII character" in proc.stderr
    assert "egst-blob-specs" not in json.dumps(hook.puts())


def test_powershell_hook_keeps_one_subject_an_array_and_escapes_non_ascii() -> None:
    """An ``if`` yielding one item unrolls it to a string, whose ``.Count`` StrictMode refuses
    and whose ``[0]`` is its first character (a filter of "/" matching every event); found in
    review on 2026-12-07. pwsh is not available here, so the text is checked."""
    ps1 = HOOK_PS1.read_text()
    assert (
        "$subjects = @(if ($fields.Count -ge 5 -and $fields[4]) { $fields[4].Split(',') })" in ps1
    )
    assert "ConvertTo-Json -Depth 10 -Compress -EscapeHandling EscapeNonAscii" in ps1


def test_dead_letter_container_id_must_name_a_container(hook: Hook) -> None:
    hook.set_env(_env_text(EVENTGRID_DEADLETTER_CONTAINER_ID=DEADLETTER_ACCOUNT))
    proc = hook.run()
    assert proc.returncode != 0
    assert "is not a blob container resource id" in proc.stderr
    assert hook.calls() == []


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


APIM_KEY = "s-api/rg-apim/egst-apim-contoso::connector-sync"


def _seed_apim(hook: Hook, endpoint: str, schema: str) -> None:
    """A `connector-sync` subscription on the APIM topic with that endpoint and schema flag."""
    hook.seed(
        APIM_KEY,
        **{"--name": "connector-sync", "--endpoint": endpoint, "--event-delivery-schema": schema},
    )


def test_own_subscription_with_another_schema_is_deleted_and_created_again(hook: Hook) -> None:
    """Event Grid refuses a PUT that changes the delivery schema: ours is re-created, loudly."""
    _seed_apim(hook, PLANNER.upper(), "cloudeventschemav1_0")  # ours: case-insensitively
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    assert (
        "warning: subscription connector-sync on system topic egst-apim-contoso delivers "
        "CloudEventSchemaV1_0, which Event Grid cannot change to EventGridSchema in place: "
        "deleting and creating it again" in proc.stderr
    )
    deletes = hook.verbs("delete")
    assert [d["flags"]["--system-topic-name"] for d in deletes] == [["egst-apim-contoso"]]
    assert hook.calls().index(deletes[0]) < hook.calls().index(
        next(c for c in hook.puts() if "egst-apim-contoso" in c["flags"]["--url"][0])
    )
    assert "recreate subscription connector-sync on system topic egst-apim-contoso" in proc.stdout
    apim = hook.by_topic()["egst-apim-contoso"]
    assert apim["eventDeliverySchema"] == "EventGridSchema"
    assert apim["destination"]["properties"]["resourceId"] == PLANNER
    # converged: the next run replaces in place, with no delete and no warning
    calls = len(hook.calls())
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    assert [c for c in hook.calls()[calls:] if c["command"][-1] == "delete"] == []
    assert "warning" not in proc.stderr


def test_foreign_subscription_with_another_schema_stops_the_hook(hook: Hook) -> None:
    """Not ours: the hook deletes nobody else's subscription, and says what to do."""
    other = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Web/sites/other/functions/f"
    _seed_apim(hook, other, "cloudeventschemav1_0")
    before = hook.subscriptions()[APIM_KEY]
    proc = hook.run()
    assert proc.returncode != 0
    assert (
        f"subscription connector-sync on system topic egst-apim-contoso delivers to {other} "
        "with schema CloudEventSchemaV1_0, and Event Grid cannot change the schema of an "
        "existing subscription" in proc.stderr
    )
    assert "set EVENTGRID_SUBSCRIPTION_NAME to another name" in proc.stderr
    assert hook.verbs("delete") == []
    assert not any("egst-apim-contoso" in c["flags"]["--url"][0] for c in hook.puts())
    assert hook.subscriptions()[APIM_KEY] == before
    assert hook.env_value("EVENTGRID_SUBSCRIBED_TOPICS") is None  # nothing recorded


def test_same_schema_foreign_subscription_is_taken_over_with_a_warning(hook: Hook) -> None:
    other = "/subscriptions/x/sites/other/functions/f"
    _seed_apim(hook, other, "eventgridschema")
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    assert f"delivered to {other}; it now delivers to this app" in proc.stderr
    assert hook.verbs("delete") == []
    assert (
        hook.by_topic()["egst-apim-contoso"]["destination"]["properties"]["resourceId"] == PLANNER
    )


def test_waits_while_the_subscription_is_being_provisioned(hook: Hook) -> None:
    """The PUT returns before Event Grid has validated plan_event: the hook waits, as create did."""
    (hook.state / "provisioning").write_text("egst-blob-specs Creating 2")
    proc = hook.run()
    assert proc.returncode == 0, proc.stderr
    waiting = (
        "waiting for subscription connector-sync on system topic egst-blob-specs to be provisioned"
    )
    assert f"{waiting} (1/5)" in proc.stdout
    assert f"{waiting} (2/5)" in proc.stdout and "(3/5)" not in proc.stdout


def test_failed_provisioning_stops_the_hook_without_recording_it(hook: Hook) -> None:
    (hook.state / "provisioning").write_text("egst-apim-contoso Failed")
    proc = hook.run()
    assert proc.returncode != 0
    assert (
        "subscription connector-sync on system topic egst-apim-contoso ended Failed" in proc.stderr
    )
    assert hook.env_value("EVENTGRID_SUBSCRIBED_TOPICS") is None


def test_provisioning_that_never_ends_stops_the_hook(hook: Hook) -> None:
    (hook.state / "provisioning").write_text("egst-appService-contoso Creating 99")
    proc = hook.run(POLL_ATTEMPTS="3")
    assert proc.returncode != 0
    assert (
        "system topic egst-appService-contoso was not provisioned after 3 checks; "
        "rerun 'azd hooks run postdeploy'" in proc.stderr
    )


def test_failed_put_stops_the_hook(hook: Hook) -> None:
    (hook.state / "show_error").write_text("egst-apim-contoso")  # no permission on that topic
    proc = hook.run()
    assert proc.returncode != 0
    assert "AuthorizationFailed" in proc.stderr
    assert (
        "could not write subscription connector-sync on system topic egst-apim-contoso"
        in proc.stderr
    )
    assert hook.env_value("EVENTGRID_SUBSCRIBED_TOPICS") is None


def test_times_out_when_plan_event_never_appears(hook: Hook) -> None:
    hook.function_appears_after(99)
    proc = hook.run(POLL_ATTEMPTS="4")
    assert proc.returncode != 0
    assert "plan_event did not appear in func-sync-abc after 4 checks" in proc.stderr
    assert hook.verbs("create") == [] and hook.puts() == []
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
    assert hook.verbs("create") == [] and hook.puts() == []


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


REST_URL = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/systemTopics/t/"
    "eventSubscriptions/connector-sync?api-version=2025-02-15"
)


def _put(hook: Hook, body: object, url: str = REST_URL) -> subprocess.CompletedProcess[str]:
    path = hook.state / "body.json"
    path.write_text(json.dumps(body))
    return _stub(hook, "rest", "--method", "put", "--url", url, "--body", f"@{path}")


def _good_body() -> dict:
    return _expected_body(["Microsoft.Storage.BlobCreated"], subjectBeginsWith="/x")


def test_stub_rest_put_is_stored_whole_and_read_back(hook: Hook) -> None:
    assert _put(hook, _good_body()).returncode == 0
    got = _stub(hook, "rest", "--method", "get", "--url", REST_URL)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["properties"] == {
        **_good_body()["properties"],
        "provisioningState": "Succeeded",
    }
    show = _stub(
        hook,
        *("eventgrid", "system-topic", "event-subscription", "show", "--name", "connector-sync"),
        *("--resource-group", "rg", "--system-topic-name", "t", "--subscription", "s"),
        *("--query", "destination.resourceId", "--output", "tsv"),
    )
    assert show.stdout.strip() == PLANNER  # az flattens destination.properties
    body = _good_body()
    del body["properties"]["filter"]["subjectBeginsWith"]
    assert _put(hook, body).returncode == 0  # a PUT replaces: the old prefix is gone
    assert (
        "subjectBeginsWith"
        not in hook.subscriptions()["s/rg/t::connector-sync"]["properties"]["filter"]
    )
    assert _stub(hook, "rest", "--method", "delete", "--url", REST_URL).returncode == 0
    gone = _stub(hook, "rest", "--method", "get", "--url", REST_URL)
    assert gone.returncode == 1 and "ResourceNotFound" in gone.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update(location="global"), "Could not find member 'location'"),
        (lambda b: b["properties"].update(topic="x"), "Could not find member 'topic'"),
        (
            lambda b: b["properties"]["filter"].update(subjectStartsWith="/x"),
            "Could not find member 'subjectStartsWith'",
        ),
        (
            lambda b: b["properties"].pop("destination"),
            "EventSubscriptionProperties.destination is required",
        ),
        (
            lambda b: b["properties"]["deadLetterWithResourceIdentity"]["deadLetterDestination"][
                "properties"
            ].pop("blobContainerName"),
            "StorageBlobDeadLetterDestinationProperties.blobContainerName is required",
        ),
        (
            lambda b: b["properties"]["deadLetterWithResourceIdentity"]["deadLetterDestination"][
                "properties"
            ].update(resourceId=DEADLETTER),
            "is not a storage account",
        ),
        (
            lambda b: b["properties"]["deadLetterWithResourceIdentity"].pop("identity"),
            "DeadLetterWithResourceIdentity.identity is required",
        ),
        (
            lambda b: b["properties"]["retryPolicy"].update(maxDeliveryAttempts="30"),
            "maxDeliveryAttempts must be a whole number",
        ),
        (
            lambda b: b["properties"].update(eventDeliverySchema="eventgridschema"),
            "is not valid",
        ),
    ],
)
def test_stub_rest_put_refuses_a_body_arm_would_refuse(hook: Hook, change, message: str) -> None:
    body = _good_body()
    change(body)
    proc = _put(hook, body)
    assert proc.returncode == 1
    assert "Bad Request(" in proc.stderr and message in proc.stderr
    assert hook.subscriptions() == {}


def test_stub_rest_refuses_an_unknown_api_version(hook: Hook) -> None:
    proc = _put(hook, _good_body(), REST_URL.replace("2025-02-15", "2019-01-01"))
    assert proc.returncode == 1 and "InvalidApiVersionParameter" in proc.stderr


def test_stub_rest_put_cannot_change_the_delivery_schema(hook: Hook) -> None:
    """As Event Grid: an existing subscription keeps its delivery schema."""
    assert _put(hook, _good_body()).returncode == 0
    body = _good_body()
    body["properties"]["eventDeliverySchema"] = "CloudEventSchemaV1_0"
    proc = _put(hook, body)
    assert proc.returncode == 1
    assert (
        "The new event delivery schema value CloudEventSchemaV1_0 cannot be different from the "
        "already existing event delivery schema value EventGridSchema." in proc.stderr
    )
    stored = hook.subscriptions()["s/rg/t::connector-sync"]["properties"]
    assert stored["eventDeliverySchema"] == "EventGridSchema"


def test_powershell_hook_mirrors_the_shell_hook() -> None:
    """pwsh is not available here: check the .ps1 issues the same commands and values."""
    ps1 = HOOK_PS1.read_text()
    sh = HOOK_SH.read_text()
    for needle in (
        "plan_event",
        "az functionapp function show",
        "az eventgrid system-topic event-subscription show @ids --query destination.resourceId",
        "az eventgrid system-topic event-subscription show @ids --query eventDeliverySchema",
        "az eventgrid system-topic event-subscription show @Ids --query provisioningState",
        "az eventgrid event-subscription",
        'az rest --method put --url $url --body "@$BodyFile" --output none',
        "/providers/Microsoft.EventGrid/systemTopics/$topic/eventSubscriptions/",
        "?api-version=$EventGridApiVersion",
        "$EventGridApiVersion = '2025-02-15'",
        "$SystemTopicSchema = 'EventGridSchema'",
        "ConvertTo-Json -Depth 10 -Compress",
        "[System.IO.File]::WriteAllText($BodyFile",
        "endpointType = 'AzureFunction'; properties = [ordered]@{ resourceId = $PlannerId }",
        "includedEventTypes = @($EventTypes[$kind])",
        "operatorType = 'StringBeginsWith'; key = 'subject'; values = @($subjects)",
        "$filter['subjectBeginsWith'] = $subjects[0]",
        "maxDeliveryAttempts = [int]$MaxDeliveryAttempts; eventTimeToLiveInMinutes = [int]$EventTtlMinutes",
        "deadLetterWithResourceIdentity",
        "identity              = [ordered]@{ type = 'SystemAssigned' }",
        "endpointType = 'StorageBlob'",
        "resourceId = $DeadLetterAccountId; blobContainerName = $DeadLetterContainer",
        "cannot change to $SystemTopicSchema in place: deleting and creating it again",
        "set EVENTGRID_SUBSCRIPTION_NAME to another name",
        "$action = 'recreate'",
        "'Failed', 'Canceled'",
        "must be whole numbers",
        "is not a blob container resource id",
        "--endpoint-type', 'azurefunction'",
        "'--event-delivery-schema', 'cloudeventschemav1_0'",
        "'--deadletter-identity', 'systemassigned'",
        "--deadletter-identity-endpoint",
        "--max-delivery-attempts",
        "--event-ttl",
        "azd env get-values",
        "azd env set",
        "EVENTGRID_SUBSCRIBED_TOPICS",
        "delete @ids --yes",
        "$LASTEXITCODE -eq 3",
        "EVENTGRID_SYSTEM_TOPICS",
        "EVENTGRID_CI_TOPIC_ID",
        "EVENTGRID_DEADLETTER_CONTAINER_ID",
        "ConnectorSync.ApiDeployed",
    ):
        assert needle in ps1, needle
    for shared in (
        'EVENTGRID_API_VERSION="2025-02-15"',
        'SYSTEM_TOPIC_SCHEMA="EventGridSchema"',
        "az rest --method put",
        '"identity":{"type":"SystemAssigned"}',
        "cannot change to $SYSTEM_TOPIC_SCHEMA in place: deleting and creating it again",
    ):
        assert shared in sh, shared
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
