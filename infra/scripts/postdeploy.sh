#!/bin/sh
# azd postdeploy hook: subscribe the planner function (plan_event) to every Event Grid topic.
#
# Why here and not in Bicep: an AzureFunction endpoint can only be validated once the code is
# deployed and the host has indexed plan_event. Idempotent: each subscription is looked up first,
# then created or updated, so re-running never duplicates anything.
#
# Reads values from `azd env get-values` (outputs of infra/main.bicep). Tunables (environment):
#   POLL_ATTEMPTS (60), POLL_INTERVAL_SECONDS (10)  wait for plan_event to be indexed
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

fail() {
  echo "postdeploy: $*" >&2
  exit 1
}

command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is not on PATH; install it and run 'azd hooks run postdeploy'"
command -v azd >/dev/null 2>&1 || fail "azd is not on PATH"

ENV_FILE=$(mktemp)
trap 'rm -f "$ENV_FILE"' EXIT
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
PLANNER_ID="$FUNCTION_APP_ID/functions/$PLANNER_FUNCTION"

# 1. Wait until the host has indexed plan_event (Event Grid validates the endpoint on create).
attempt=1
until az functionapp function show --resource-group "$RESOURCE_GROUP" --name "$FUNCTION_APP_NAME" \
  --function-name "$PLANNER_FUNCTION" --query name --output tsv >/dev/null 2>&1; do
  if [ "$attempt" -ge "$POLL_ATTEMPTS" ]; then
    fail "function $PLANNER_FUNCTION did not appear in $FUNCTION_APP_NAME after $POLL_ATTEMPTS checks; see the deployment logs"
  fi
  echo "postdeploy: waiting for $PLANNER_FUNCTION to be indexed ($attempt/$POLL_ATTEMPTS)"
  attempt=$((attempt + 1))
  sleep "$POLL_INTERVAL_SECONDS"
done
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

# 2. One subscription per system topic: "kind|subscription|resourceGroup|topic|subject,subject".
upsert_system_topic_subscription() {
  kind=$1 sub=$2 rg=$3 topic=$4 subjects=$5
  types=$(event_types "$kind")
  # Positional parameters hold the argument list (POSIX sh has no arrays).
  set -- --name "$SUBSCRIPTION_NAME" --resource-group "$rg" --system-topic-name "$topic" --subscription "$sub"
  if az eventgrid system-topic event-subscription show "$@" --output none >/dev/null 2>&1; then
    action=update
  else
    action=create
  fi
  # shellcheck disable=SC2086 # $types is a deliberate word list
  set -- "$@" --endpoint "$PLANNER_ID" --endpoint-type azurefunction --included-event-types $types \
    --deadletter-identity systemassigned --deadletter-identity-endpoint "$DEADLETTER_CONTAINER_ID"
  case "$subjects" in
    "") ;;
    *,*)
      # shellcheck disable=SC2046 # split the comma list into words on purpose
      set -- "$@" --advanced-filter subject StringBeginsWith $(echo "$subjects" | tr ',' ' ') ;;
    *) set -- "$@" --subject-begins-with "$subjects" ;;
  esac
  if [ "$action" = create ]; then
    set -- "$@" --event-delivery-schema eventgridschema \
      --max-delivery-attempts "$MAX_DELIVERY_ATTEMPTS" --event-ttl "$EVENT_TTL_MINUTES"
  fi
  echo "postdeploy: $action subscription $SUBSCRIPTION_NAME on system topic $topic ($kind)"
  az eventgrid system-topic event-subscription "$action" "$@" --output none
}

if [ -n "$SYSTEM_TOPICS" ]; then
  old_ifs=$IFS
  IFS=';'
  for entry in $SYSTEM_TOPICS; do
    IFS='|'
    # shellcheck disable=SC2086 # split the entry into its fields on purpose
    set -- $entry
    IFS=$old_ifs
    [ "$#" -ge 4 ] || fail "malformed EVENTGRID_SYSTEM_TOPICS entry '$entry' (expected kind|subscription|resourceGroup|topic|subjects)"
    upsert_system_topic_subscription "$1" "$2" "$3" "$4" "${5:-}"
  done
  IFS=$old_ifs
fi

# 3. The CI custom topic takes CloudEvents 1.0, so its subscription delivers CloudEvents too.
if [ -n "$CI_TOPIC_ID" ]; then
  set -- --name "$SUBSCRIPTION_NAME" --source-resource-id "$CI_TOPIC_ID"
  if az eventgrid event-subscription show "$@" --output none >/dev/null 2>&1; then
    action=update
  else
    action=create
  fi
  set -- "$@" --endpoint "$PLANNER_ID" --endpoint-type azurefunction --included-event-types "$CI_EVENT_TYPE" \
    --deadletter-identity systemassigned --deadletter-identity-endpoint "$DEADLETTER_CONTAINER_ID"
  if [ "$action" = create ]; then
    set -- "$@" --event-delivery-schema cloudeventschemav1_0 \
      --max-delivery-attempts "$MAX_DELIVERY_ATTEMPTS" --event-ttl "$EVENT_TTL_MINUTES"
  fi
  echo "postdeploy: $action subscription $SUBSCRIPTION_NAME on the CI topic"
  az eventgrid event-subscription "$action" "$@" --output none
fi

echo "postdeploy: Event Grid subscriptions are in place"
