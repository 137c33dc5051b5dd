# azd postdeploy hook (Windows): same steps as postdeploy.sh.
# Subscribes the planner function (plan_event) to every Event Grid topic. Converges: each
# subscription is written whole (a PUT, so an existing one is replaced, never duplicated, and
# keeps no stale subject filter), and the subscription this hook made on a system topic the map no
# longer names is deleted, but only when it still delivers to this app's plan_event. The topics it
# subscribed are remembered in EVENTGRID_SUBSCRIBED_TOPICS.
# System-topic subscriptions are written with `az rest` (the ARM API): `az eventgrid system-topic
# event-subscription create` has no --deadletter-identity options (azure-cli does not register
# them for system topics), and the subscriptions dead-letter with the topic's managed identity.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$PlannerFunction = 'plan_event'
$PollAttempts = if ($env:POLL_ATTEMPTS) { [int]$env:POLL_ATTEMPTS } else { 60 }
$PollIntervalSeconds = if ($env:POLL_INTERVAL_SECONDS) { [int]$env:POLL_INTERVAL_SECONDS } else { 10 }
$SubscriptionName = if ($env:EVENTGRID_SUBSCRIPTION_NAME) { $env:EVENTGRID_SUBSCRIPTION_NAME } else { 'connector-sync' }
$MaxDeliveryAttempts = if ($env:EVENTGRID_MAX_DELIVERY_ATTEMPTS) { $env:EVENTGRID_MAX_DELIVERY_ATTEMPTS } else { '30' }
$EventTtlMinutes = if ($env:EVENTGRID_EVENT_TTL_MINUTES) { $env:EVENTGRID_EVENT_TTL_MINUTES } else { '1440' }
$CiEventType = 'ConnectorSync.ApiDeployed'
# Microsoft.EventGrid API version of the system-topic subscription PUT (GA)
$EventGridApiVersion = '2025-02-15'
# What the system-topic subscriptions deliver; Event Grid cannot change it on an existing one
$SystemTopicSchema = 'EventGridSchema'

function Fail([string]$Message) {
    Write-Error "postdeploy: $Message"
    exit 1
}

if (-not (Get-Command az -ErrorAction SilentlyContinue)) { Fail "the Azure CLI (az) is not on PATH; install it and run 'azd hooks run postdeploy'" }
if (-not (Get-Command azd -ErrorAction SilentlyContinue)) { Fail 'azd is not on PATH' }

# Values from `azd env get-values` (KEY="value" lines); never evaluated as code.
$values = @{}
foreach ($line in (azd env get-values)) {
    if ($line -match '^([A-Za-z_][A-Za-z0-9_]*)="(.*)"$') { $values[$Matches[1]] = $Matches[2] }
}
function Require([string]$Name) {
    if (-not $values[$Name]) { Fail "$Name is missing from the azd environment (run 'azd provision' first)" }
    return $values[$Name]
}

$ResourceGroup = Require 'AZURE_RESOURCE_GROUP'
$FunctionAppName = Require 'AZURE_FUNCTION_APP_NAME'
$FunctionAppId = Require 'AZURE_FUNCTION_APP_ID'
$DeadLetterContainerId = Require 'EVENTGRID_DEADLETTER_CONTAINER_ID'
$SystemTopics = $values['EVENTGRID_SYSTEM_TOPICS']
$CiTopicId = $values['EVENTGRID_CI_TOPIC_ID']
# "subscription|resourceGroup|topic" entries joined with ";": what the last run subscribed
$SubscribedKey = 'EVENTGRID_SUBSCRIBED_TOPICS'
$PreviousTopics = if ($values[$SubscribedKey]) { $values[$SubscribedKey] } else { '' }
$PlannerId = "$FunctionAppId/functions/$PlannerFunction"

# The REST body names the storage account and the container apart.
if ($DeadLetterContainerId -notmatch '^(/subscriptions/.+/providers/Microsoft\.Storage/storageAccounts/[^/]+)/blobServices/default/containers/([^/]+)$') {
    Fail "EVENTGRID_DEADLETTER_CONTAINER_ID '$DeadLetterContainerId' is not a blob container resource id"
}
$DeadLetterAccountId = $Matches[1]
$DeadLetterContainer = $Matches[2]
foreach ($number in @($MaxDeliveryAttempts, $EventTtlMinutes)) {
    if ($number -notmatch '^[0-9]+$') { Fail "EVENTGRID_MAX_DELIVERY_ATTEMPTS and EVENTGRID_EVENT_TTL_MINUTES must be whole numbers (got '$number')" }
}

# 1. Wait until the host has indexed plan_event (Event Grid validates the endpoint on create).
$attempt = 1
while ($true) {
    az functionapp function show --resource-group $ResourceGroup --name $FunctionAppName --function-name $PlannerFunction --query name --output tsv *> $null
    if ($LASTEXITCODE -eq 0) { break }
    if ($attempt -ge $PollAttempts) { Fail "function $PlannerFunction did not appear in $FunctionAppName after $PollAttempts checks; see the deployment logs" }
    Write-Host "postdeploy: waiting for $PlannerFunction to be indexed ($attempt/$PollAttempts)"
    $attempt++
    Start-Sleep -Seconds $PollIntervalSeconds
}
Write-Host "postdeploy: $PlannerFunction is indexed"

$EventTypes = @{
    appService = @('Microsoft.Web.SlotSwapCompleted', 'Microsoft.Web.AppUpdated')
    apim       = @('Microsoft.ApiManagement.APICreated', 'Microsoft.ApiManagement.APIUpdated', 'Microsoft.ApiManagement.APIReleaseCreated')
    apiCenter  = @('Microsoft.ApiCenter.ApiDefinitionAdded', 'Microsoft.ApiCenter.ApiDefinitionUpdated')
    blob       = @('Microsoft.Storage.BlobCreated')
}

# Say so when the subscription about to be replaced delivers somewhere else (another app or
# environment using the same name on a shared source): the replacement takes it over.
function Write-ForeignWarning([string]$Endpoint, [string]$Where) {
    if ($Endpoint -and $Endpoint -ine $PlannerId) {
        Write-Warning "postdeploy: subscription $SubscriptionName on $Where delivered to $Endpoint; it now delivers to this app"
    }
}

# The PUT returns while Event Grid still provisions the subscription (and validates plan_event):
# wait for the outcome the way `az ... create` did.
function Wait-Provisioned([string[]]$Ids, [string]$Topic) {
    $attempt = 1
    while ($true) {
        $state = az eventgrid system-topic event-subscription show @Ids --query provisioningState --output tsv
        if ($LASTEXITCODE -ne 0) { Fail "could not read subscription $SubscriptionName on system topic $Topic after writing it" }
        if ($state -eq 'Succeeded') { return }
        if ($state -in @('Failed', 'Canceled')) { Fail "subscription $SubscriptionName on system topic $Topic ended $state (Event Grid could not validate ${PlannerId}?); see the topic's activity log" }
        if ($attempt -ge $PollAttempts) { Fail "subscription $SubscriptionName on system topic $Topic was not provisioned after $PollAttempts checks; rerun 'azd hooks run postdeploy'" }
        Write-Host "postdeploy: waiting for subscription $SubscriptionName on system topic $Topic to be provisioned ($attempt/$PollAttempts)"
        $attempt++
        Start-Sleep -Seconds $PollIntervalSeconds
    }
}

# 2. One subscription per system topic: "kind|subscription|resourceGroup|topic|subject,subject".
# A PUT of the whole subscription: on an existing one it replaces filters, retry policy and
# dead-lettering whole, so a subject the map dropped does not linger the way it would through
# `update`. Event Grid refuses a PUT that changes the delivery schema of an existing subscription:
# one of ours with another schema is deleted and created again; one delivering elsewhere stops the
# hook, which deletes nobody else's subscription.
$subscribed = @()
# PowerShell before 7.3 mangles double quotes inside native arguments: the body goes in a file.
$BodyFile = [System.IO.Path]::GetTempFileName()
try {
    if ($SystemTopics) {
        foreach ($entry in $SystemTopics.Split(';')) {
            $fields = $entry.Split('|')
            if ($fields.Count -lt 4) { Fail "malformed EVENTGRID_SYSTEM_TOPICS entry '$entry' (expected kind|subscription|resourceGroup|topic|subjects)" }
            $kind, $sub, $rg, $topic = $fields[0..3]
            # @(...): an if that yields one item would unroll it to a string (and none to `$null`), whose
            # .Count StrictMode refuses and whose [0] is a character
            $subjects = @(if ($fields.Count -ge 5 -and $fields[4]) { $fields[4].Split(',') })
            if (-not $EventTypes.ContainsKey($kind)) { Fail "unknown event source kind '$kind' in EVENTGRID_SYSTEM_TOPICS (expected appService, apim, apiCenter or blob)" }

            $ids = @('--name', $SubscriptionName, '--resource-group', $rg, '--system-topic-name', $topic, '--subscription', $sub)
            $endpoint = az eventgrid system-topic event-subscription show @ids --query destination.resourceId --output tsv 2> $null
            $action = if ($LASTEXITCODE -eq 0) { 'replace' } else { 'create' }
            if ($action -eq 'replace') {
                $schema = az eventgrid system-topic event-subscription show @ids --query eventDeliverySchema --output tsv 2> $null
                if ($LASTEXITCODE -ne 0) { $schema = '' }
                if ($schema -and $schema -ine $SystemTopicSchema) {
                    if ("$endpoint" -ine $PlannerId) {
                        Fail "subscription $SubscriptionName on system topic $topic delivers to $endpoint with schema $schema, and Event Grid cannot change the schema of an existing subscription; it is not this app's, so it was left alone: delete it, or set EVENTGRID_SUBSCRIPTION_NAME to another name"
                    }
                    Write-Warning "postdeploy: subscription $SubscriptionName on system topic $topic delivers $schema, which Event Grid cannot change to $SystemTopicSchema in place: deleting and creating it again (events raised in between are not delivered)"
                    az eventgrid system-topic event-subscription delete @ids --yes --output none
                    if ($LASTEXITCODE -ne 0) { Fail "could not delete subscription $SubscriptionName on system topic $topic to change its delivery schema" }
                    $action = 'recreate'
                }
                else { Write-ForeignWarning "$endpoint" "system topic $topic" }
            }
            $filter = [ordered]@{ includedEventTypes = @($EventTypes[$kind]) }
            if ($subjects.Count -gt 1) { $filter['advancedFilters'] = @([ordered]@{ operatorType = 'StringBeginsWith'; key = 'subject'; values = @($subjects) }) }
            elseif ($subjects.Count -eq 1) { $filter['subjectBeginsWith'] = $subjects[0] }
            $body = [ordered]@{
                properties = [ordered]@{
                    destination                    = [ordered]@{ endpointType = 'AzureFunction'; properties = [ordered]@{ resourceId = $PlannerId } }
                    filter                         = $filter
                    eventDeliverySchema            = $SystemTopicSchema
                    retryPolicy                    = [ordered]@{ maxDeliveryAttempts = [int]$MaxDeliveryAttempts; eventTimeToLiveInMinutes = [int]$EventTtlMinutes }
                    deadLetterWithResourceIdentity = [ordered]@{
                        identity              = [ordered]@{ type = 'SystemAssigned' }
                        deadLetterDestination = [ordered]@{
                            endpointType = 'StorageBlob'
                            properties   = [ordered]@{ resourceId = $DeadLetterAccountId; blobContainerName = $DeadLetterContainer }
                        }
                    }
                }
            }
            # UTF-8 without a byte order mark, in Windows PowerShell 5.1 as in PowerShell 7
            [System.IO.File]::WriteAllText($BodyFile, ($body | ConvertTo-Json -Depth 10 -Compress -EscapeHandling EscapeNonAscii))
            # relative URL: az rest puts the ARM endpoint of the signed-in cloud in front
            $url = "/subscriptions/$sub/resourceGroups/$rg/providers/Microsoft.EventGrid/systemTopics/$topic/eventSubscriptions/${SubscriptionName}?api-version=$EventGridApiVersion"
            Write-Host "postdeploy: $action subscription $SubscriptionName on system topic $topic ($kind)"
            az rest --method put --url $url --body "@$BodyFile" --output none
            if ($LASTEXITCODE -ne 0) { Fail "could not write subscription $SubscriptionName on system topic $topic (az rest failed, see above)" }
            Wait-Provisioned $ids $topic
            $subscribed += "$sub|$rg|$topic"
        }
    }
}
finally {
    Remove-Item -LiteralPath $BodyFile -ErrorAction SilentlyContinue
}
$SubscribedValue = $subscribed -join ';'

# 3. A topic the last run subscribed and the map no longer names: delete the subscription there,
# but only if it is ours (this hook's name and this app's plan_event as its endpoint).
if ($PreviousTopics) {
    $wanted = @($subscribed | ForEach-Object { $_.ToLowerInvariant() })
    foreach ($entry in $PreviousTopics.Split(';')) {
        $fields = $entry.Split('|')
        if ($fields.Count -ne 3) { Write-Warning "postdeploy: ignoring malformed $SubscribedKey entry '$entry'"; continue }
        if ($wanted -contains $entry.ToLowerInvariant()) { continue }
        $sub, $rg, $topic = $fields
        $ids = @('--name', $SubscriptionName, '--resource-group', $rg, '--system-topic-name', $topic, '--subscription', $sub)
        $endpoint = az eventgrid system-topic event-subscription show @ids --query destination.resourceId --output tsv 2> $null
        if ($LASTEXITCODE -eq 3) {
            Write-Host "postdeploy: system topic $topic is no longer in the map and has no subscription $SubscriptionName"
            continue
        }
        if ($LASTEXITCODE -ne 0) { Fail "could not read subscription $SubscriptionName on system topic $topic (az exit $LASTEXITCODE); nothing was removed, rerun 'azd hooks run postdeploy'" }
        if ("$endpoint" -ine $PlannerId) {
            Write-Host "postdeploy: left subscription $SubscriptionName on system topic ${topic}: it delivers to $endpoint, not this app"
            continue
        }
        Write-Host "postdeploy: delete subscription $SubscriptionName on system topic $topic (no longer in the map)"
        az eventgrid system-topic event-subscription delete @ids --yes --output none
        if ($LASTEXITCODE -ne 0) { Fail "az eventgrid system-topic event-subscription delete failed for $topic" }
    }
}

# 4. The CI custom topic takes CloudEvents 1.0, so its subscription delivers CloudEvents too.
if ($CiTopicId) {
    $ids = @('--name', $SubscriptionName, '--source-resource-id', $CiTopicId)
    $endpoint = az eventgrid event-subscription show @ids --query destination.resourceId --output tsv 2> $null
    $action = if ($LASTEXITCODE -eq 0) { 'replace' } else { 'create' }
    if ($action -eq 'replace') { Write-ForeignWarning "$endpoint" 'the CI topic' }
    $azArgs = $ids + @('--endpoint', $PlannerId, '--endpoint-type', 'azurefunction', '--included-event-types', $CiEventType,
        '--deadletter-identity', 'systemassigned', '--deadletter-identity-endpoint', $DeadLetterContainerId,
        '--event-delivery-schema', 'cloudeventschemav1_0', '--max-delivery-attempts', $MaxDeliveryAttempts, '--event-ttl', $EventTtlMinutes)
    Write-Host "postdeploy: $action subscription $SubscriptionName on the CI topic"
    az eventgrid event-subscription create @azArgs --output none
    if ($LASTEXITCODE -ne 0) { Fail "az eventgrid event-subscription create failed for the CI topic" }
}

# 5. Remember what this run subscribed, for the next run's step 3.
if ($SubscribedValue -cne $PreviousTopics) {
    azd env set $SubscribedKey $SubscribedValue
    if ($LASTEXITCODE -ne 0) { Fail "could not record $SubscribedKey in the azd environment" }
}

Write-Host 'postdeploy: Event Grid subscriptions are in place'
