"""A strict stand-in for the Azure CLI and azd, installed on PATH as `az` and `azd` by the tests
(wrappers call `python az_stub.py az|azd ...`).

It follows the documented CLI contract for the few commands the postdeploy hook uses: unknown
commands or flags fail the way az does (exit 2, "unrecognized arguments"), required flags are
enforced, and event subscriptions persist in a JSON state file so a second run sees the first.
Every call is appended to calls.jsonl. Behaviour is set by files in $AZ_STUB_DIR:
  env.txt             what `azd env get-values` prints
  function_after      plan_event becomes visible on the Nth `function show` call (default 1)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

STATE = Path(os.environ["AZ_STUB_DIR"])

COMMON = {"--output", "--query", "--subscription"}
SUB_FLAGS = {
    "--name",
    "--endpoint",
    "--endpoint-type",
    "--included-event-types",
    "--subject-begins-with",
    "--advanced-filter",
    "--deadletter-identity",
    "--deadletter-identity-endpoint",
}
CREATE_ONLY = {"--event-delivery-schema", "--max-delivery-attempts", "--event-ttl"}
COMMANDS = {
    ("functionapp", "function", "show"): {"--resource-group", "--name", "--function-name"},
    ("eventgrid", "system-topic", "event-subscription", "show"): {
        "--name",
        "--resource-group",
        "--system-topic-name",
    },
    ("eventgrid", "system-topic", "event-subscription", "create"): SUB_FLAGS
    | CREATE_ONLY
    | {"--resource-group", "--system-topic-name"},
    ("eventgrid", "system-topic", "event-subscription", "update"): SUB_FLAGS
    | {"--resource-group", "--system-topic-name"},
    ("eventgrid", "event-subscription", "show"): {"--name", "--source-resource-id"},
    ("eventgrid", "event-subscription", "create"): SUB_FLAGS
    | CREATE_ONLY
    | {"--source-resource-id"},
    ("eventgrid", "event-subscription", "update"): SUB_FLAGS | {"--source-resource-id"},
}
MULTI = {"--included-event-types", "--advanced-filter"}
ENUMS = {
    "--endpoint-type": {
        "webhook",
        "eventhub",
        "storagequeue",
        "hybridconnection",
        "servicebusqueue",
        "servicebustopic",
        "azurefunction",
    },
    "--event-delivery-schema": {"eventgridschema", "custominputschema", "cloudeventschemav1_0"},
    "--deadletter-identity": {"systemassigned", "userassigned"},
    "--output": {"json", "jsonc", "none", "table", "tsv", "yaml", "yamlc"},
}


def fail(code: int, message: str) -> None:
    sys.stderr.write(f"ERROR: {message}\n")
    sys.exit(code)


def parse(args: list[str]) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    for size in (4, 3):
        command = tuple(args[:size])
        if command in COMMANDS:
            break
    else:
        fail(2, f"'{' '.join(args[:4])}' is misspelled or not recognized by the system.")
    flags: dict[str, list[str]] = {}
    current = None
    for token in args[len(command) :]:
        if token.startswith("--"):
            if token not in COMMANDS[command] | COMMON:
                fail(2, f"unrecognized arguments: {token}")
            if token in flags:
                fail(2, f"argument {token}: specified twice")
            current = token
            flags[current] = []
        elif current is None:
            fail(2, f"unrecognized arguments: {token}")
        else:
            if flags[current] and current not in MULTI:
                fail(2, f"unrecognized arguments: {token}")
            flags[current].append(token)
    for flag, values in flags.items():
        if not values:
            fail(2, f"argument {flag}: expected one argument")
        if flag in ENUMS and values[0] not in ENUMS[flag]:
            fail(2, f"argument {flag}: invalid choice: '{values[0]}'")
    return command, flags


def subscription_key(flags: dict[str, list[str]]) -> str:
    scope = flags.get("--source-resource-id") or [
        "/".join(
            [
                flags["--subscription"][0],
                flags["--resource-group"][0],
                flags["--system-topic-name"][0],
            ]
        )
    ]
    return f"{scope[0]}::{flags['--name'][0]}"


def load(name: str, default):
    path = STATE / name
    return json.loads(path.read_text()) if path.exists() else default


def az(args: list[str]) -> None:
    command, flags = parse(args)
    with (STATE / "calls.jsonl").open("a") as log:
        log.write(json.dumps({"command": list(command), "flags": flags}) + "\n")
    if command[0] == "functionapp":
        shows = load("function_shows.json", 0) + 1
        (STATE / "function_shows.json").write_text(json.dumps(shows))
        ready_after = (
            int((STATE / "function_after").read_text())
            if (STATE / "function_after").exists()
            else 1
        )
        if shows < ready_after:
            fail(3, f"Function '{flags['--function-name'][0]}' not found.")
        print(flags["--function-name"][0])
        return
    if command[:2] == ("eventgrid", "system-topic") and "--subscription" not in flags:
        fail(
            2,
            "the following arguments are required: --subscription (stub: topics live in other subscriptions)",
        )
    subs = load("subscriptions.json", {})
    key = subscription_key(flags)
    verb = command[-1]
    if verb == "show":
        if key not in subs:
            fail(3, f"Event subscription {flags['--name'][0]} not found.")
        print(json.dumps(subs[key]))
        return
    for required in ("--endpoint", "--endpoint-type"):
        if required not in flags and verb == "create":
            fail(2, f"the following arguments are required: {required}")
    if verb == "create" and key in subs:
        fail(1, f"stub: {key} already exists; the hook should have updated it")
    if verb == "update" and key not in subs:
        fail(3, f"Event subscription {key} not found.")
    record = subs.get(key, {})
    record.update(flags)
    subs[key] = record
    (STATE / "subscriptions.json").write_text(json.dumps(subs, indent=1))


def azd(args: list[str]) -> None:
    if args != ["env", "get-values"]:
        fail(2, f"stub azd: unsupported command {args}")
    sys.stdout.write((STATE / "env.txt").read_text())


if __name__ == "__main__":
    tool, *rest = sys.argv[1:]
    (azd if tool == "azd" else az)(rest)
