"""A strict stand-in for the Azure CLI and azd, installed on PATH as `az` and `azd` by the tests
(wrappers call `python az_stub.py az|azd ...`).

It follows the documented CLI contract for the few commands the postdeploy hook uses: unknown
commands or flags fail the way az does (exit 2, "unrecognized arguments"), required flags are
enforced, and event subscriptions persist in a JSON state file so a second run sees the first.
As in az, `create` is a PUT (it creates or replaces the whole subscription), `update` keeps every
filter field it is not given (so a stale subject filter survives it), `show` on a missing
subscription exits 3, `delete` needs --yes (no tty to confirm on), and `--query` takes a dotted
path into the JSON `show` prints (the az view: `properties` flattened, `destination.resourceId`).
As in azure-cli's eventgrid module, `system-topic event-subscription create/update` have no
--deadletter-identity / --deadletter-identity-endpoint (only `event-subscription` has them).

`az rest` serves the ARM URL of a system topic's event subscription (relative, as az prefixes the
cloud's ARM endpoint, or on https://management.azure.com): PUT validates the body the way ARM
does (unknown keys, missing required fields and bad enums refused with a 400, exit 1) and stores
it whole, GET returns it, DELETE removes it. As in Event Grid, a PUT cannot change the
eventDeliverySchema of an existing subscription. A subscription written by PUT is stored as its
ARM document ({"properties": ...}); one written by `create` as its flags. Every call is appended
to calls.jsonl (`az rest` with its parsed body). Behaviour is set by files in $AZ_STUB_DIR:
  env.txt             what `azd env get-values` prints (`azd env set KEY VALUE` rewrites it;
                      azd calls are logged to azd_calls.jsonl)
  function_after      plan_event becomes visible on the Nth `function show` call (default 1)
  show_error          a topic name: `show` on that topic fails with exit 1 (no permission)
  provisioning        "topic state [reads]": a PUT on that topic ends in `state` (Failed,
                      Canceled), or stays `state` (Creating) for `reads` provisioningState reads
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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
}
# azure-cli registers these for `eventgrid event-subscription` only; its system-topic commands
# pass None for them, so `system-topic event-subscription create` rejects them
IDENTITY_FLAGS = {"--deadletter-identity", "--deadletter-identity-endpoint"}
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
    | IDENTITY_FLAGS
    | CREATE_ONLY
    | {"--source-resource-id"},
    ("eventgrid", "event-subscription", "update"): SUB_FLAGS
    | IDENTITY_FLAGS
    | {"--source-resource-id"},
    ("rest",): {"--method", "--url", "--uri", "--body", "--headers"},
}
MULTI = {"--included-event-types", "--advanced-filter", "--headers"}
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
    "--method": {"delete", "get", "head", "options", "patch", "post", "put"},
}
# `az eventgrid` flag values and the ARM enum names they stand for
SCHEMAS = {
    "eventgridschema": "EventGridSchema",
    "cloudeventschemav1_0": "CloudEventSchemaV1_0",
    "custominputschema": "CustomInputSchema",
}


def fail(code: int, message: str) -> None:
    sys.stderr.write(f"ERROR: {message}\n")
    sys.exit(code)


def parse(args: list[str]) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    for size in (4, 3, 1):
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


def flags_properties(record: dict[str, list[str]]) -> dict:
    """The ARM properties of a subscription written by `az eventgrid ... create` (its flags)."""
    advanced = record.get("--advanced-filter")
    filter_: dict = {"includedEventTypes": record.get("--included-event-types")}
    if "--subject-begins-with" in record:
        filter_["subjectBeginsWith"] = record["--subject-begins-with"][0]
    if advanced:
        filter_["advancedFilters"] = [
            {"operatorType": advanced[1], "key": advanced[0], "values": advanced[2:]}
        ]
    properties = {
        "destination": {
            "endpointType": "AzureFunction",
            "properties": {"resourceId": record.get("--endpoint", [None])[0]},
        },
        "filter": filter_,
        "provisioningState": "Succeeded",
    }
    if "--event-delivery-schema" in record:
        properties["eventDeliverySchema"] = SCHEMAS[record["--event-delivery-schema"][0]]
    return properties


def arm_properties(record: dict) -> dict:
    """The ARM `properties` of a stored subscription, however it was written."""
    return record["properties"] if "properties" in record else flags_properties(record)


def cli_view(name: str, properties: dict) -> dict:
    """The subscription as `az eventgrid ... show` prints it: the SDK model, whose destination
    and dead-letter destination carry their `properties` flattened (`destination.resourceId`)."""

    def flat(endpoint: dict) -> dict:
        return {"endpointType": endpoint["endpointType"], **endpoint.get("properties", {})}

    view = {"name": name, **properties}
    if properties.get("destination"):
        view["destination"] = flat(properties["destination"])
    identity_dead_letter = properties.get("deadLetterWithResourceIdentity")
    if identity_dead_letter:
        view["deadLetterWithResourceIdentity"] = {
            "identity": identity_dead_letter["identity"],
            "deadLetterDestination": flat(identity_dead_letter["deadLetterDestination"]),
        }
    return view


def query(document, path: str):
    """A dotted JMESPath field path (all the hook asks for); anything else is refused."""
    value = document
    for part in path.split("."):
        if not part.isidentifier() or not isinstance(value, dict):
            fail(2, f"stub: unsupported --query {path!r}")
        value = value.get(part)
    return value


def output(document, flags: dict[str, list[str]]) -> None:
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


def save(subs: dict) -> None:
    (STATE / "subscriptions.json").write_text(json.dumps(subs, indent=1))


def check_blocked(topic: str | None) -> None:
    blocked = STATE / "show_error"
    if blocked.exists() and topic == blocked.read_text().strip():
        fail(1, "(AuthorizationFailed) The client does not have authorization to perform action.")


def schema_conflict(existing: dict, new_schema: str | None) -> str | None:
    """Event Grid refuses to change the delivery schema of an existing subscription."""
    old_schema = arm_properties(existing).get("eventDeliverySchema")
    if old_schema and new_schema and old_schema != new_schema:
        return (
            f"The new event delivery schema value {new_schema} cannot be different from the "
            f"already existing event delivery schema value {old_schema}."
        )
    return None


# --- az rest: the ARM API of a system topic's event subscriptions -----------------------------

SUBSCRIPTION_URL = re.compile(
    r"^(?:https://management\.azure\.com)?/subscriptions/(?P<sub>[^/]+)/resourceGroups/"
    r"(?P<rg>[^/]+)/providers/Microsoft\.EventGrid/systemTopics/(?P<topic>[^/]+)/"
    r"eventSubscriptions/(?P<name>[^/]+)$"
)
API_VERSIONS = {"2022-06-15", "2025-02-15"}  # GA versions with deadLetterWithResourceIdentity
STORAGE_ACCOUNT_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/"
    r"[^/]+$",
    re.IGNORECASE,
)
PROPERTIES = {
    "destination",
    "filter",
    "eventDeliverySchema",
    "retryPolicy",
    "deadLetterDestination",
    "deadLetterWithResourceIdentity",
    "deliveryWithResourceIdentity",
    "labels",
    "expirationTimeUtc",
}
FILTER = {
    "includedEventTypes",
    "subjectBeginsWith",
    "subjectEndsWith",
    "isSubjectCaseSensitive",
    "enableAdvancedFilteringOnArrays",
    "advancedFilters",
}
FUNCTION_DESTINATION = {
    "resourceId",
    "maxEventsPerBatch",
    "preferredBatchSizeInKilobytes",
    "deliveryAttributeMappings",
}
STRING_OPERATORS = {
    "StringBeginsWith",
    "StringEndsWith",
    "StringContains",
    "StringIn",
    "StringNotIn",
    "StringNotBeginsWith",
    "StringNotEndsWith",
    "StringNotContains",
}


def http_error(status: str, code: str, message: str) -> None:
    """How `az rest` reports an HTTP error: the status and the response body, exit 1."""
    body = json.dumps({"error": {"code": code, "message": message}})
    fail(1, f"{status}({body})")


def bad_request(message: str) -> None:
    http_error("Bad Request", "InvalidRequest", message)


def members(where: str, value, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        bad_request(f"{where} must be a JSON object.")
    unknown = sorted(set(value) - allowed)
    if unknown:
        bad_request(f"Could not find member '{unknown[0]}' on object of type '{where}'.")
    for name in required:
        if name not in value:
            bad_request(f"{where}.{name} is required.")
    return value


def string_list(where: str, value, limit: int) -> None:
    if not isinstance(value, list) or not value or len(value) > limit:
        bad_request(f"{where} must be a list of 1 to {limit} strings.")
    if not all(isinstance(item, str) and item for item in value):
        bad_request(f"{where} must hold non-empty strings.")


def whole_number(where: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        bad_request(f"{where} must be a whole number from {low} to {high}.")


def check_dead_letter(where: str, destination) -> None:
    members(where, destination, {"endpointType", "properties"}, ("endpointType", "properties"))
    if destination["endpointType"] != "StorageBlob":
        bad_request(f"{where}.endpointType must be StorageBlob.")
    blob = members(
        "StorageBlobDeadLetterDestinationProperties",
        destination["properties"],
        {"resourceId", "blobContainerName"},
        ("resourceId", "blobContainerName"),
    )
    if not isinstance(blob["resourceId"], str) or not STORAGE_ACCOUNT_ID.match(blob["resourceId"]):
        bad_request(f"The dead letter resourceId {blob['resourceId']!r} is not a storage account.")
    if not isinstance(blob["blobContainerName"], str) or not blob["blobContainerName"]:
        bad_request("blobContainerName must be a non-empty string.")


def check_body(body) -> dict:
    """The EventSubscription document of a PUT, checked the way ARM does; returns properties."""
    members("EventSubscription", body, {"properties"}, ("properties",))
    if (
        isinstance(body["properties"], dict)
        and "deliveryWithResourceIdentity" in body["properties"]
    ):
        fail(2, "stub: deliveryWithResourceIdentity is not modelled")
    properties = members(
        "EventSubscriptionProperties", body["properties"], PROPERTIES, ("destination",)
    )
    destination = members(
        "EventSubscriptionDestination",
        properties.get("destination"),
        {"endpointType", "properties"},
        ("endpointType", "properties"),
    )
    if destination["endpointType"] != "AzureFunction":
        fail(2, f"stub: destination endpointType {destination['endpointType']!r} is not modelled")
    function = members(
        "AzureFunctionEventSubscriptionDestinationProperties",
        destination["properties"],
        FUNCTION_DESTINATION,
        ("resourceId",),
    )
    if not isinstance(function["resourceId"], str) or "/functions/" not in function["resourceId"]:
        bad_request("The destination resourceId must be the resource id of a function.")
    filter_ = members("EventSubscriptionFilter", properties.get("filter", {}), FILTER)
    if "includedEventTypes" in filter_:
        string_list("includedEventTypes", filter_["includedEventTypes"], 100)
    for field in ("subjectBeginsWith", "subjectEndsWith"):
        if field in filter_ and not isinstance(filter_[field], str):
            bad_request(f"{field} must be a string.")
    advanced = filter_.get("advancedFilters", [])
    if not isinstance(advanced, list):
        bad_request("advancedFilters must be a list.")
    for item in advanced:
        members("AdvancedFilter", item, {"operatorType", "key", "values"}, ("operatorType", "key"))
        if item["operatorType"] not in STRING_OPERATORS:
            fail(2, f"stub: advanced filter operator {item['operatorType']!r} is not modelled")
        string_list("advancedFilters.values", item.get("values"), 25)
    schema = properties.get("eventDeliverySchema", "EventGridSchema")
    if schema not in SCHEMAS.values():
        bad_request(f"The event delivery schema {schema!r} is not valid.")
    retry = members(
        "RetryPolicy",
        properties.get("retryPolicy", {}),
        {"maxDeliveryAttempts", "eventTimeToLiveInMinutes"},
    )
    if "maxDeliveryAttempts" in retry:
        whole_number("maxDeliveryAttempts", retry["maxDeliveryAttempts"], 1, 30)
    if "eventTimeToLiveInMinutes" in retry:
        whole_number("eventTimeToLiveInMinutes", retry["eventTimeToLiveInMinutes"], 1, 1440)
    if "deadLetterDestination" in properties and "deadLetterWithResourceIdentity" in properties:
        bad_request("Specify deadLetterDestination or deadLetterWithResourceIdentity, not both.")
    if "deadLetterDestination" in properties:
        check_dead_letter("DeadLetterDestination", properties["deadLetterDestination"])
    if "deadLetterWithResourceIdentity" in properties:
        with_identity = members(
            "DeadLetterWithResourceIdentity",
            properties["deadLetterWithResourceIdentity"],
            {"identity", "deadLetterDestination"},
            ("identity", "deadLetterDestination"),
        )
        identity = members(
            "EventSubscriptionIdentity",
            with_identity["identity"],
            {"type", "userAssignedIdentity"},
            ("type",),
        )
        if identity["type"] not in ("SystemAssigned", "UserAssigned"):
            bad_request(f"The identity type {identity['type']!r} is not valid.")
        if identity["type"] == "UserAssigned" and not identity.get("userAssignedIdentity"):
            bad_request("userAssignedIdentity is required with the identity type UserAssigned.")
        check_dead_letter("DeadLetterDestination", with_identity["deadLetterDestination"])
    return {**properties, "eventDeliverySchema": schema}


def read_body(flags: dict[str, list[str]]):
    if "--body" not in flags:
        bad_request("The request content was empty.")
    text = flags["--body"][0]
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            fail(1, f"[Errno 2] No such file or directory: '{text[1:]}'")
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        bad_request(f"The request content was invalid and could not be deserialized: {error}.")


def provisioning(topic: str) -> tuple[str, int]:
    """What a PUT on `topic` ends in (the `provisioning` file), and for how many reads."""
    path = STATE / "provisioning"
    if path.exists():
        words = path.read_text().split()
        if words and words[0] == topic:
            return words[1], int(words[2]) if len(words) > 2 else 0
    return "Succeeded", 0


def rest(flags: dict[str, list[str]], body) -> None:
    """`az rest` on the URL of a system topic's event subscription (`body`: what a PUT sends)."""
    urls = flags.get("--url") or flags.get("--uri")
    if not urls or ("--url" in flags and "--uri" in flags):
        fail(2, "the following arguments are required: --url/--uri")
    parts = urlsplit(urls[0])
    target = SUBSCRIPTION_URL.match(
        f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path
    )
    if target is None:
        fail(
            2, f"stub: az rest is only modelled for a system topic's event subscription: {urls[0]}"
        )
    versions = parse_qs(parts.query).get("api-version", [])
    if len(versions) != 1 or versions[0] not in API_VERSIONS:
        http_error(
            "Bad Request",
            "InvalidApiVersionParameter",
            f"The api-version '{','.join(versions)}' is invalid.",
        )
    check_blocked(target["topic"])
    key = f"{target['sub']}/{target['rg']}/{target['topic']}::{target['name']}"
    subs = load("subscriptions.json", {})
    method = flags.get("--method", ["get"])[0]
    if method == "get":
        if key not in subs:
            http_error("Not Found", "ResourceNotFound", f"Event subscription {key} not found.")
        output({"name": target["name"], "properties": arm_properties(subs[key])}, flags)
        return
    if method == "delete":
        subs.pop(key, None)  # ARM: 204 No Content when it is already gone
        save(subs)
        return
    if method != "put":
        fail(2, f"stub: az rest --method {method} is not modelled")
    properties = check_body(body)
    if key in subs:
        conflict = schema_conflict(subs[key], properties["eventDeliverySchema"])
        if conflict:
            bad_request(conflict)
    state, reads = provisioning(target["topic"])
    record: dict = {"properties": {**properties, "provisioningState": state}}
    if state == "Creating":
        record = {"properties": {**properties, "provisioningState": "Succeeded"}, "creating": reads}
    subs[key] = record  # a PUT: the whole subscription is this body
    save(subs)
    output(
        {"name": target["name"], "properties": {**properties, "provisioningState": "Creating"}},
        flags,
    )


def az(args: list[str]) -> None:
    command, flags = parse(args)
    entry: dict = {"command": list(command), "flags": flags}
    body = None
    if command == ("rest",) and flags.get("--method") == ["put"]:
        body = entry["body"] = read_body(flags)  # logged parsed: a body file is gone afterwards
    with (STATE / "calls.jsonl").open("a") as log:
        log.write(json.dumps(entry) + "\n")
    if command == ("rest",):
        rest(flags, body)
        return
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
    check_blocked((flags.get("--system-topic-name") or [None])[0])
    if verb == "show":
        if key not in subs:
            fail(3, f"(ResourceNotFound) Event subscription {flags['--name'][0]} not found.")
        record = subs[key]
        properties = arm_properties(record)
        if record.get("creating"):  # still being provisioned for this many more reads
            record["creating"] -= 1
            properties = {**properties, "provisioningState": "Creating"}
            save(subs)
        output(cli_view(flags["--name"][0], properties), flags)
        return
    if verb == "delete":
        if "--yes" not in flags:
            fail(1, "Unable to prompt for confirmation as no tty available. Use --yes.")
        if key not in subs:
            fail(3, f"(ResourceNotFound) Event subscription {key} not found.")
        del subs[key]
        save(subs)
        return
    for required in ("--endpoint", "--endpoint-type"):
        if required not in flags and verb == "create":
            fail(2, f"the following arguments are required: {required}")
    if verb == "update" and key not in subs:
        fail(3, f"Event subscription {key} not found.")
    if key in subs and "properties" in subs[key] and verb == "update":
        fail(2, "stub: `update` of a subscription written by az rest is not modelled")
    if verb == "create" and key in subs:
        new_schema = flags.get("--event-delivery-schema")
        conflict = schema_conflict(subs[key], SCHEMAS[new_schema[0]] if new_schema else None)
        if conflict:
            fail(1, f"(InvalidRequest) {conflict}")
    # create is a PUT: the whole subscription is what this call says; update merges
    record = {} if verb == "create" else subs.get(key, {})
    record.update({k: v for k, v in flags.items() if k not in ("--output", "--query")})
    subs[key] = record
    save(subs)


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
    tool, *arguments = sys.argv[1:]
    (azd if tool == "azd" else az)(arguments)
