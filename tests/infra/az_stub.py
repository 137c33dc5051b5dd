"""A strict stand-in for the Azure CLI and azd, installed on PATH as `az` and `azd` by the tests
(wrappers call `python az_stub.py az|azd ...`).

It follows the documented CLI contract for the few commands the postdeploy hook uses: unknown
commands or flags fail the way az does (exit 2, "unrecognized arguments"), required flags are
enforced, and event subscriptions persist in a JSON state file so a second run sees the first.
As in az, `create` is a PUT (it creates or replaces the whole subscription), `update` keeps every
filter field it is not given (so a stale subject filter survives it), `show` on a missing
subscription exits 3, `delete` needs --yes (no tty to confirm on), and `--query` takes a dotted
path into the ARM-shaped JSON `show` prints. Every call is appended to calls.jsonl. Behaviour is
set by files in $AZ_STUB_DIR:
  env.txt             what `azd env get-values` prints (`azd env set KEY VALUE` rewrites it;
                      azd calls are logged to azd_calls.jsonl)
  function_after      plan_event becomes visible on the Nth `function show` call (default 1)
  show_error          a topic name: `show` on that topic fails with exit 1 (no permission)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

STATE = Path(os.environ["AZ_STUB_DIR"])

COMMON = {"--output", "--query", "--subscription"}
SWITCHES = {"--yes"}  # flags that take no value
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
    ("eventgrid", "system-topic", "event-subscription", "delete"): {
        "--name",
        "--resource-group",
        "--system-topic-name",
        "--yes",
    },
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
            flags[token] = []
            current = None if token in SWITCHES else token
        elif current is None:
            fail(2, f"unrecognized arguments: {token}")
        else:
            if flags[current] and current not in MULTI:
                fail(2, f"unrecognized arguments: {token}")
            flags[current].append(token)
    for flag, values in flags.items():
        if not values and flag not in SWITCHES:
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


def arm_view(record: dict[str, list[str]]) -> dict:
    """The subscription as `az ... show` prints it (the fields the hook may query)."""
    advanced = record.get("--advanced-filter")
    return {
        "name": record["--name"][0],
        "destination": {
            "endpointType": "AzureFunction",
            "resourceId": record.get("--endpoint", [None])[0],
        },
        "filter": {
            "includedEventTypes": record.get("--included-event-types"),
            "subjectBeginsWith": record.get("--subject-begins-with", [""])[0],
            "advancedFilters": [
                {"key": advanced[0], "operatorType": advanced[1], "values": advanced[2:]}
            ]
            if advanced
            else None,
        },
        "eventDeliverySchema": record.get("--event-delivery-schema", [None])[0],
    }


def query(document: dict, path: str):
    """A dotted JMESPath field path (all the hook asks for); anything else is refused."""
    value = document
    for part in path.split("."):
        if not part.isidentifier() or not isinstance(value, dict):
            fail(2, f"stub: unsupported --query {path!r}")
        value = value.get(part)
    return value


def show(record: dict[str, list[str]], flags: dict[str, list[str]]) -> None:
    document = arm_view(record)
    if "--query" in flags:
        document = query(document, flags["--query"][0])
    if flags.get("--output") == ["none"]:
        return
    if flags.get("--output") == ["tsv"]:
        print("" if document is None else document)
        return
    print(json.dumps(document))


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
    blocked = STATE / "show_error"
    if blocked.exists() and flags.get("--system-topic-name") == [blocked.read_text().strip()]:
        fail(1, "(AuthorizationFailed) The client does not have authorization to perform action.")
    if verb == "show":
        if key not in subs:
            fail(3, f"(ResourceNotFound) Event subscription {flags['--name'][0]} not found.")
        show(subs[key], flags)
        return
    if verb == "delete":
        if "--yes" not in flags:
            fail(1, "Unable to prompt for confirmation as no tty available. Use --yes.")
        if key not in subs:
            fail(3, f"(ResourceNotFound) Event subscription {key} not found.")
        del subs[key]
        (STATE / "subscriptions.json").write_text(json.dumps(subs, indent=1))
        return
    for required in ("--endpoint", "--endpoint-type"):
        if required not in flags and verb == "create":
            fail(2, f"the following arguments are required: {required}")
    if verb == "update" and key not in subs:
        fail(3, f"Event subscription {key} not found.")
    # create is a PUT: the whole subscription is what this call says; update merges
    record = {} if verb == "create" else subs.get(key, {})
    record.update({k: v for k, v in flags.items() if k not in ("--output", "--query")})
    subs[key] = record
    (STATE / "subscriptions.json").write_text(json.dumps(subs, indent=1))


def azd(args: list[str]) -> None:
    with (STATE / "azd_calls.jsonl").open("a") as log:
        log.write(json.dumps(args) + "\n")
    env = STATE / "env.txt"
    if args == ["env", "get-values"]:
        sys.stdout.write(env.read_text())
        return
    if args[:2] == ["env", "set"] and len(args) == 4:
        key, value = args[2], args[3]
        lines = [line for line in env.read_text().splitlines() if not line.startswith(f"{key}=")]
        env.write_text("".join(f"{line}\n" for line in [*lines, f'{key}="{value}"']))
        return
    fail(2, f"stub azd: unsupported command {args}")


if __name__ == "__main__":
    tool, *rest = sys.argv[1:]
    (azd if tool == "azd" else az)(rest)
