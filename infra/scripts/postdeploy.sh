#!/bin/sh
# azd postdeploy hook: subscribe the planner function (plan_event) to every Event Grid topic.
#
# Why here and not in Bicep: an AzureFunction endpoint can only be validated once the code is
# deployed and the host has indexed plan_event. Converges: each subscription is written whole
# (a PUT, so an existing one is replaced, never duplicated, and keeps no stale subject filter),
# and the subscription this hook made on a system topic the map no longer names is deleted, but
# only when it still delivers to this app's plan_event. The topics it subscribed are remembered in
# the azd environment (EVENTGRID_SUBSCRIBED_TOPICS) for the next run to compare.
#
# System-topic subscriptions are written with `az rest` (the ARM API), not `az eventgrid
# system-topic event-subscription create`: that command has no --deadletter-identity options
# (azure-cli does not register them for system topics), and the subscriptions dead-letter with the
# topic's own managed identity. `az rest` sends the relative URL to the Resource Manager endpoint of
# the signed-in cloud.
#
# Reads values from `azd env get-values` (outputs of infra/main.bicep). Tunables (environment):
#   POLL_ATTEMPTS (60), POLL_INTERVAL_SECONDS (10)  wait for plan_event to be indexed, and for
#                                                   each system-topic subscription to be provisioned
#   EVENTGRID_SUBSCRIPTION_NAME (connector-sync)     name of each subscription
#   EVENTGRID_MAX_DELIVERY_ATTEMPTS (30), EVENTGRID_EVENT_TTL_MINUTES (1440)
set -eu

PLANNER_FUNCTION="plan_event"
POLL_ATTEMPTS="${POLL_ATTEMPTS:-60}"
POLL_INTERVAL_SECONDS="${POLL_INTERVAL_SECONDS:-10}"
SUBSCRIPTION_NAME="${EVENTGRID_SUBSCRIPTION_NAME:-connector-sync}"
MAX_DELIVERY_ATTEMPTS="${EVENTGRID_MAX_DELIVERY_ATTEMPTS:-30}"
EVENT_TTL_MINUTES="${EVENTGRID_EVENT_TTL_MINUTES:-1440}"
CI_EVENT_TYPE="ConnectorSync.ApiDeployed"
# Microsoft.EventGrid API version of the system-topic subscription PUT (GA)
EVENTGRID_API_VERSION="2025-02-15"
# What the system-topic subscriptions deliver; Event Grid cannot change it on an existing one
SYSTEM_TOPIC_SCHEMA="EventGridSchema"

fail() {
  echo "postdeploy: $*" >&2
  exit 1
}

command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is not on PATH; install it and run 'azd hooks run postdeploy'"
command -v azd >/dev/null 2>&1 || fail "azd is not on PATH"

ENV_FILE=$(mktemp)
ERR_FILE=$(mktemp)
BODY_FILE=$(mktemp)
trap 'rm -f "$ENV_FILE" "$ERR_FILE" "$BODY_FILE"' EXIT
azd env get-values >"$ENV_FILE" || fail "'azd env get-values' failed; select an environment with 'azd env select'"

# Value of KEY from `azd env get-values` (lines look like KEY="value"); never eval'd.
env_value() {
  sed -n "s/^$1=\"\(.*\)\"\$/\1/p" "$ENV_FILE" | head -n 1
}

require() {
  value=$(env_value "$1")
  [ -n "$value" ] || fail "$1 is missing from the azd environment (run 'azd provision' first)"
  printf '%s' "$value"
}

RESOURCE_GROUP=$(require AZURE_RESOURCE_GROUP)
FUNCTION_APP_NAME=$(require AZURE_FUNCTION_APP_NAME)
FUNCTION_APP_ID=$(require AZURE_FUNCTION_APP_ID)
DEADLETTER_CONTAINER_ID=$(require EVENTGRID_DEADLETTER_CONTAINER_ID)
SYSTEM_TOPICS=$(env_value EVENTGRID_SYSTEM_TOPICS)
CI_TOPIC_ID=$(env_value EVENTGRID_CI_TOPIC_ID)
# "subscription|resourceGroup|topic" entries joined with ";": what the last run subscribed
SUBSCRIBED_KEY="EVENTGRID_SUBSCRIBED_TOPICS"
PREVIOUS_TOPICS=$(env_value "$SUBSCRIBED_KEY")
PLANNER_ID="$FUNCTION_APP_ID/functions/$PLANNER_FUNCTION"

# The REST body names the storage account and the container apart.
case "$DEADLETTER_CONTAINER_ID" in
  /subscriptions/*/providers/Microsoft.Storage/storageAccounts/*/blobServices/default/containers/?*) ;;
  *) fail "EVENTGRID_DEADLETTER_CONTAINER_ID '$DEADLETTER_CONTAINER_ID' is not a blob container resource id" ;;
esac
DEADLETTER_ACCOUNT_ID=${DEADLETTER_CONTAINER_ID%/blobServices/default/containers/*}
DEADLETTER_CONTAINER=${DEADLETTER_CONTAINER_ID##*/}
for number in "$MAX_DELIVERY_ATTEMPTS" "$EVENT_TTL_MINUTES"; do
  case "$number" in
    "" | *[!0-9]*) fail "EVENTGRID_MAX_DELIVERY_ATTEMPTS and EVENTGRID_EVENT_TTL_MINUTES must be whole numbers (got '$number')" ;;
  esac
done
# JSON numbers have no leading zeros (030 would make the body invalid; $((030)) is octal in sh)
without_leading_zeros() {
  n=$1
  while [ "${#n}" -gt 1 ] && [ "${n#0}" != "$n" ]; do n=${n#0}; done
  printf '%s' "$n"
}
MAX_DELIVERY_ATTEMPTS=$(without_leading_zeros "$MAX_DELIVERY_ATTEMPTS")
EVENT_TTL_MINUTES=$(without_leading_zeros "$EVENT_TTL_MINUTES")

lower() {
  printf '%s' "$1" | tr '[:upper:]' '[:lower:]'
}

# Runs the command "$4"... until it succeeds: at most POLL_ATTEMPTS times, POLL_INTERVAL_SECONDS
# apart, saying "waiting for $1" in between; when the tries run out, fails with "$2 after N
# checks; $3".
poll() {
  waiting=$1 timeout=$2 advice=$3
  shift 3
  attempt=1
  until "$@"; do
    if [ "$attempt" -ge "$POLL_ATTEMPTS" ]; then
      fail "$timeout after $POLL_ATTEMPTS checks; $advice"
    fi
    echo "postdeploy: waiting for $waiting ($attempt/$POLL_ATTEMPTS)"
    attempt=$((attempt + 1))
    sleep "$POLL_INTERVAL_SECONDS"
  done
}

plan_event_indexed() {
  az functionapp function show --resource-group "$RESOURCE_GROUP" --name "$FUNCTION_APP_NAME" \
    --function-name "$PLANNER_FUNCTION" --query name --output tsv >/dev/null 2>&1
}

# 1. Wait until the host has indexed plan_event (Event Grid validates the endpoint on create).
poll "$PLANNER_FUNCTION to be indexed" "function $PLANNER_FUNCTION did not appear in $FUNCTION_APP_NAME" \
  "see the deployment logs" plan_event_indexed
echo "postdeploy: $PLANNER_FUNCTION is indexed"

# Event types that mean "an API was deployed", per source kind.
event_types() {
  case "$1" in
    appService) echo "Microsoft.Web.SlotSwapCompleted Microsoft.Web.AppUpdated" ;;
    apim) echo "Microsoft.ApiManagement.APICreated Microsoft.ApiManagement.APIUpdated Microsoft.ApiManagement.APIReleaseCreated" ;;
    apiCenter) echo "Microsoft.ApiCenter.ApiDefinitionAdded Microsoft.ApiCenter.ApiDefinitionUpdated" ;;
    blob) echo "Microsoft.Storage.BlobCreated" ;;
    *) fail "unknown event source kind '$1' in EVENTGRID_SYSTEM_TOPICS (expected appService, apim, apiCenter or blob)" ;;
  esac
}

# Say so when the subscription about to be replaced delivers somewhere else (another app or
# environment using the same name on a shared source): the replacement takes it over.
warn_if_foreign() {
  endpoint=$1 where=$2
  if [ -n "$endpoint" ] && [ "$(lower "$endpoint")" != "$(lower "$PLANNER_ID")" ]; then
    echo "postdeploy: warning: subscription $SUBSCRIPTION_NAME on $where delivered to $endpoint; it now delivers to this app" >&2
  fi
}

# $1 with backslashes and double quotes escaped for a JSON string (the values are one line).
json_escape() {
  printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'
}

# A JSON array of the strings in $1, separated by the character $2.
json_array() {
  printf '["%s"]' "$(json_escape "$1" | sed "s/$2/\",\"/g")"
}

# The whole subscription for event types $1 (space-separated) and subjects $2 (comma-separated):
# the same settings `az eventgrid ... create` was given before, as the ARM document.
subscription_body() {
  filter="\"includedEventTypes\":$(json_array "$1" ' ')"
  case "$2" in
    "") ;;
    *,*) filter="$filter,\"advancedFilters\":[{\"operatorType\":\"StringBeginsWith\",\"key\":\"subject\",\"values\":$(json_array "$2" ',')}]" ;;
    *) filter="$filter,\"subjectBeginsWith\":\"$(json_escape "$2")\"" ;;
  esac
  printf '{"properties":{'
  printf '"destination":{"endpointType":"AzureFunction","properties":{"resourceId":"%s"}},' "$(json_escape "$PLANNER_ID")"
  printf '"filter":{%s},' "$filter"
  printf '"eventDeliverySchema":"%s",' "$SYSTEM_TOPIC_SCHEMA"
  printf '"retryPolicy":{"maxDeliveryAttempts":%s,"eventTimeToLiveInMinutes":%s},' "$MAX_DELIVERY_ATTEMPTS" "$EVENT_TTL_MINUTES"
  printf '"deadLetterWithResourceIdentity":{"identity":{"type":"SystemAssigned"},'
  printf '"deadLetterDestination":{"endpointType":"StorageBlob","properties":{"resourceId":"%s","blobContainerName":"%s"}}}' \
    "$(json_escape "$DEADLETTER_ACCOUNT_ID")" "$(json_escape "$DEADLETTER_CONTAINER")"
  printf '}}\n'
}

# Succeeds once the subscription on system topic $topic ("$@" identify it) is provisioned, and
# stops the hook if provisioning failed (Event Grid validates plan_event while provisioning).
subscription_provisioned() {
  state=$(az eventgrid system-topic event-subscription show "$@" --query provisioningState --output tsv) ||
    fail "could not read subscription $SUBSCRIPTION_NAME on system topic $topic after writing it"
  case "$state" in
    Succeeded) return 0 ;;
    Failed | Canceled)
      fail "subscription $SUBSCRIPTION_NAME on system topic $topic ended $state (Event Grid could not validate $PLANNER_ID?); see the topic's activity log" ;;
  esac
  return 1
}

# 2. One subscription per system topic: "kind|subscription|resourceGroup|topic|subject,subject".
# A PUT of the whole subscription: on an existing one it replaces filters, retry policy and
# dead-lettering whole, so a subject the map dropped does not linger the way it would through
# `update` (which keeps every filter field it is not given and cannot remove an advanced filter).
# Event Grid refuses a PUT that changes the delivery schema of an existing subscription: one of
# ours (delivering to this app's plan_event) with another schema is deleted and created again; one
# delivering elsewhere stops the hook, which deletes nobody else's subscription.
upsert_system_topic_subscription() {
  kind=$1 sub=$2 rg=$3 topic=$4 subjects=$5
  # json_escape handles quotes and backslashes only: a control character would make the body
  # invalid JSON, and a non-ASCII one may reach ARM as Latin-1 (az rest hands requests the body as
  # text; Azure/azure-cli#30366). The PowerShell hook escapes both.
  if printf '%s' "$subjects" | LC_ALL=C grep -q '[^ -~]'; then
    fail "subjects of system topic $topic hold a control or non-ASCII character ('$subjects'); use an ASCII prefix, or run postdeploy.ps1 (PowerShell 7), which escapes it"
  fi
  types=$(event_types "$kind")
  url="/subscriptions/$sub/resourceGroups/$rg/providers/Microsoft.EventGrid/systemTopics/$topic/eventSubscriptions/$SUBSCRIPTION_NAME?api-version=$EVENTGRID_API_VERSION"
  # Positional parameters hold the argument list (POSIX sh has no arrays).
  set -- --name "$SUBSCRIPTION_NAME" --resource-group "$rg" --system-topic-name "$topic" --subscription "$sub"
  if endpoint=$(az eventgrid system-topic event-subscription show "$@" --query destination.resourceId --output tsv 2>/dev/null); then
    action=replace
    schema=$(az eventgrid system-topic event-subscription show "$@" --query eventDeliverySchema --output tsv 2>/dev/null) || schema=""
    if [ -n "$schema" ] && [ "$(lower "$schema")" != "$(lower "$SYSTEM_TOPIC_SCHEMA")" ]; then
      if [ "$(lower "$endpoint")" != "$(lower "$PLANNER_ID")" ]; then
        fail "subscription $SUBSCRIPTION_NAME on system topic $topic delivers to $endpoint with schema $schema, and Event Grid cannot change the schema of an existing subscription; it is not this app's, so it was left alone: delete it, or set EVENTGRID_SUBSCRIPTION_NAME to another name"
      fi
      echo "postdeploy: warning: subscription $SUBSCRIPTION_NAME on system topic $topic delivers $schema, which Event Grid cannot change to $SYSTEM_TOPIC_SCHEMA in place: deleting and creating it again (events raised in between are not delivered)" >&2
      az eventgrid system-topic event-subscription delete "$@" --yes --output none ||
        fail "could not delete subscription $SUBSCRIPTION_NAME on system topic $topic to change its delivery schema"
      action=recreate
    else
      warn_if_foreign "$endpoint" "system topic $topic"
    fi
  else
    action=create
  fi
  subscription_body "$types" "$subjects" >"$BODY_FILE"
  echo "postdeploy: $action subscription $SUBSCRIPTION_NAME on system topic $topic ($kind)"
  az rest --method put --url "$url" --body "@$BODY_FILE" --output none ||
    fail "could not write subscription $SUBSCRIPTION_NAME on system topic $topic (az rest failed, see above)"
  # The PUT returns while Event Grid still provisions it: wait for the outcome, as `create` did.
  poll "subscription $SUBSCRIPTION_NAME on system topic $topic to be provisioned" \
    "subscription $SUBSCRIPTION_NAME on system topic $topic was not provisioned" \
    "rerun 'azd hooks run postdeploy'" subscription_provisioned "$@"
}

# 3. A topic the last run subscribed and the map no longer names: delete the subscription there,
# but only if it is ours (this hook's name and this app's plan_event as its endpoint). Another
# subscription on that topic, or one with our name delivering elsewhere, is left alone.
remove_stale_subscription() {
  sub=$1 rg=$2 topic=$3
  set -- --name "$SUBSCRIPTION_NAME" --resource-group "$rg" --system-topic-name "$topic" --subscription "$sub"
  status=0
  endpoint=$(az eventgrid system-topic event-subscription show "$@" --query destination.resourceId --output tsv 2>"$ERR_FILE") || status=$?
  case "$status" in
    0) ;;
    3)
      echo "postdeploy: system topic $topic is no longer in the map and has no subscription $SUBSCRIPTION_NAME"
      return ;;
    *)
      cat "$ERR_FILE" >&2
      fail "could not read subscription $SUBSCRIPTION_NAME on system topic $topic (az exit $status); nothing was removed, rerun 'azd hooks run postdeploy'" ;;
  esac
  if [ "$(lower "$endpoint")" != "$(lower "$PLANNER_ID")" ]; then
    echo "postdeploy: left subscription $SUBSCRIPTION_NAME on system topic $topic: it delivers to $endpoint, not this app"
    return
  fi
  echo "postdeploy: delete subscription $SUBSCRIPTION_NAME on system topic $topic (no longer in the map)"
  az eventgrid system-topic event-subscription delete "$@" --yes --output none
}

# Calls $2 with the "|"-separated fields of each ";"-separated entry of $1 (the entry is $entry).
for_each_entry() {
  list=$1 callback=$2
  old_ifs=$IFS
  IFS=';'
  for entry in $list; do
    IFS='|'
    # shellcheck disable=SC2086 # split the entry into its fields on purpose
    set -- $entry
    IFS=$old_ifs
    "$callback" "$@"
  done
  IFS=$old_ifs
}

subscribe_entry() {
  [ "$#" -ge 4 ] || fail "malformed EVENTGRID_SYSTEM_TOPICS entry '$entry' (expected kind|subscription|resourceGroup|topic|subjects)"
  upsert_system_topic_subscription "$1" "$2" "$3" "$4" "${5:-}"
  SUBSCRIBED="${SUBSCRIBED:+$SUBSCRIBED;}$2|$3|$4"
}

prune_entry() {
  if [ "$#" -ne 3 ]; then
    echo "postdeploy: ignoring malformed $SUBSCRIBED_KEY entry '$entry'" >&2
    return
  fi
  case "$WANTED" in
    *";$(lower "$entry");"*) ;;
    *) remove_stale_subscription "$1" "$2" "$3" ;;
  esac
}

SUBSCRIBED=""
for_each_entry "$SYSTEM_TOPICS" subscribe_entry
WANTED=";$(lower "$SUBSCRIBED");"
for_each_entry "$PREVIOUS_TOPICS" prune_entry

# 4. The CI custom topic takes CloudEvents 1.0, so its subscription delivers CloudEvents too.
if [ -n "$CI_TOPIC_ID" ]; then
  set -- --name "$SUBSCRIPTION_NAME" --source-resource-id "$CI_TOPIC_ID"
  if endpoint=$(az eventgrid event-subscription show "$@" --query destination.resourceId --output tsv 2>/dev/null); then
    action=replace
    warn_if_foreign "$endpoint" "the CI topic"
  else
    action=create
  fi
  set -- "$@" --endpoint "$PLANNER_ID" --endpoint-type azurefunction --included-event-types "$CI_EVENT_TYPE" \
    --deadletter-identity systemassigned --deadletter-identity-endpoint "$DEADLETTER_CONTAINER_ID" \
    --event-delivery-schema cloudeventschemav1_0 \
    --max-delivery-attempts "$MAX_DELIVERY_ATTEMPTS" --event-ttl "$EVENT_TTL_MINUTES"
  echo "postdeploy: $action subscription $SUBSCRIPTION_NAME on the CI topic"
  az eventgrid event-subscription create "$@" --output none
fi

# 5. Remember what this run subscribed, for the next run's step 3.
if [ "$SUBSCRIBED" != "$PREVIOUS_TOPICS" ]; then
  azd env set "$SUBSCRIBED_KEY" "$SUBSCRIBED" || fail "could not record $SUBSCRIBED_KEY in the azd environment"
fi

echo "postdeploy: Event Grid subscriptions are in place"
