targetScope = 'subscription'

metadata name = 'Connector Sync'
metadata description = 'Keeps Power Platform custom connectors in sync with the APIs they wrap: Flex Consumption function app, identity-only storage, Key Vault, monitoring, Event Grid topics and alerts.'

// ============== //
//   Parameters   //
// ============== //

@minLength(1)
@maxLength(64)
@description('Required. azd environment name; seeds the resource token and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Required. Region of every resource in the resource group (must offer Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Optional. Object id of the person running azd; gets data roles on storage and Key Vault Secrets Officer for local debugging. Empty: none.')
param principalId string = ''

@description('Whether the principal running azd gets those data roles. Set false (SYNC_GRANT_DEPLOYER_ROLES=false) where a pipeline identity deploys production: it would otherwise hold the vault\'s refresh tokens and client secrets.')
param grantDeployerRoles bool = true

@description('Optional. Type of principalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

// Name overrides: empty means "derive from the resource token".
@description('Optional. Resource group name.')
param resourceGroupName string = ''
@description('Optional. Function app name.')
param functionAppName string = ''
@description('Optional. Flex Consumption plan name.')
param appServicePlanName string = ''
@description('Optional. Storage account name.')
param storageAccountName string = ''
@description('Optional. Key Vault name (globally unique, 3-24 characters).')
param keyVaultName string = ''
@description('Optional. User-assigned identity name.')
param identityName string = ''
@description('Optional. Log Analytics workspace name.')
param logAnalyticsName string = ''
@description('Optional. Application Insights name.')
param applicationInsightsName string = ''
@description('Optional. CI custom topic name.')
param ciTopicName string = ''

@description('Optional. Replication of the storage account (SYNC_STORAGE_SKU). LRS is the low-volume default; ZRS/GZRS survive a zone outage, GRS/RAGRS/GZRS/RAGZRS keep a copy in the paired region.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_LRS'

@description('Optional. Days a dead-lettered event stays in the dead-letter container (SYNC_DEADLETTER_RETENTION_DAYS): one that failed to plan may hold a caller\'s signed specUrl.')
@minValue(8)
@maxValue(365)
param deadLetterRetentionDays int = 30

@description('Optional. Diagnostic settings that send resource logs to the Log Analytics workspace (SYNC_ENABLE_DIAGNOSTICS): Key Vault AuditEvent, the function app\'s FunctionAppLogs, the storage account\'s blob/queue/table StorageRead/StorageWrite/StorageDelete, and DeliveryFailures (plus PublishFailures on the CI topic) of the Event Grid topics this template creates.')
param enableDiagnostics bool = true

@description('Optional. Days the Log Analytics workspace keeps logs (SYNC_LOG_RETENTION_DAYS); 30 is included in the ingestion price, longer retention is billed per GB and month.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Optional. Key Vault purge protection. Keep on in production; dev environments that run azd down/up may turn it off.')
param keyVaultEnablePurgeProtection bool = true

@description('Optional. Key Vault secret holding a delegated refresh token the function may rotate (Key Vault Secrets Officer on that secret only). Create the secret first. Empty: none.')
param refreshTokenSecretName string = ''

@description('Optional. SYNC_CONFIG: path of the sync map inside the package, or a blob URL.')
param syncConfig string = 'sync-map.yaml'

@description('Optional. SYNC_DRIFT_SCHEDULE (NCRONTAB, six fields).')
param driftSchedule string = '0 0 */6 * * *'

@description('Optional. SYNC_AUTH_TENANT_ID: tenant whose tokens the manual HTTP endpoint accepts. Empty: this subscription\'s tenant.')
param authTenantId string = ''

@description('Optional. SYNC_AUTH_AUDIENCE: audience the manual HTTP endpoint requires. Empty: manual endpoint refuses every caller.')
param authAudience string = ''

@description('Optional. SYNC_EVENTGRID_WEBHOOK_AUTH (lower case): "key": Event Grid webhook deliveries to POST /api/sync need the function key alone; "entra": also Event Grid\'s own Entra token (app role AzureEventGridSecureWebhookSubscriber, Event Grid\'s application id); "off": refused. The deployed subscriptions use the Event Grid trigger, not this route.')
@allowed([
  'key'
  'entra'
  'off'
])
param eventGridWebhookAuth string = 'key'

@description('Optional. SYNC_LOG_LEVEL (the levels sync/logs.py LEVELS accepts).')
@allowed([
  'DEBUG'
  'INFO'
  'WARNING'
  'ERROR'
  'CRITICAL'
])
param logLevel string = 'INFO'

@description('Optional. Maximum Flex Consumption instances.')
param maximumInstanceCount int = 100

@description('Optional. Event sources that get a system topic, each { kind: appService|apim|apiCenter|blob, resourceId, location, existingTopicName?: reuse the source\'s existing system topic (only one per source is allowed), subjects?: subject prefixes the hook filters on }.')
param eventSources array = []

@description('Optional. APIM services the function exports specs from (API Management Service Reader Role on each).')
param apimServiceIds array = []

@description('Optional. API Center services the function exports specs from (Azure API Center Service Reader on each).')
param apiCenterServiceIds array = []

@description('Optional. Blob containers holding spec files (Storage Blob Data Reader on each); full container resource ids.')
param specContainerIds array = []

@description('Optional. Create the custom topic CI pipelines publish ConnectorSync.ApiDeployed to.')
param enableCiTopic bool = true

@description('Optional. Principal id of the CI pipeline identity granted EventGrid Data Sender on the CI topic. Empty: none.')
param ciPublisherPrincipalId string = ''

@description('Optional. E-mail address for alerts. Empty: the action group has no receivers.')
param alertEmail string = ''

@description('Optional. Default drift window in hours for the out-of-sync alert.')
param driftWindowHours int = 13

// ============== //
//   Variables    //
// ============== //

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

var names = {
  resourceGroup: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  functionApp: !empty(functionAppName) ? functionAppName : '${abbrs.webSitesFunctions}sync-${resourceToken}'
  plan: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
  storage: !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
  keyVault: !empty(keyVaultName) ? keyVaultName : '${abbrs.keyVaultVaults}${resourceToken}'
  identity: !empty(identityName) ? identityName : '${abbrs.managedIdentityUserAssignedIdentities}sync-${resourceToken}'
  logAnalytics: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
  appInsights: !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
  ciTopic: !empty(ciTopicName) ? ciTopicName : '${abbrs.eventGridDomainsTopics}ci-${resourceToken}'
  actionGroup: '${abbrs.insightsActionGroups}sync-${resourceToken}'
}

// Names the code reads (defaults equal sync/settings.py).
var ledgerTableName = 'connectorsync'
var ledgerContainerName = 'connectorsync-ledger'
var workQueueName = 'sync-work'
var deadLetterContainerName = 'eventgrid-deadletter'
// Name of every diagnostic setting this template creates (a resource allows at most five).
var diagnosticSettingName = 'connector-sync-logs'
var deploymentContainerName = 'app-package-${take(names.functionApp, 32)}-${take(toLower(uniqueString(names.functionApp, resourceToken)), 7)}'

// ============= //
//   Resources   //
// ============= //

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: names.resourceGroup
  location: location
  tags: tags
}

module identity './app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module storage './app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: names.storage
    location: location
    tags: tags
    ledgerTableName: ledgerTableName
    ledgerContainerName: ledgerContainerName
    workQueueName: workQueueName
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    skuName: storageSku
    deadLetterRetentionDays: deadLetterRetentionDays
  }
}

module keyVault './app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: names.keyVault
    location: location
    tags: tags
    enablePurgeProtection: keyVaultEnablePurgeProtection
  }
}

module monitoring './app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.appInsights
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module rbac './app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    identityPrincipalId: identity.outputs.principalId
    refreshTokenSecretName: refreshTokenSecretName
    developerPrincipalId: grantDeployerRoles ? principalId : ''
    developerPrincipalType: principalType
  }
}

module functionApp './app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: maximumInstanceCount
    syncConfig: syncConfig
    ledgerTableName: storage.outputs.ledgerTableName
    ledgerContainerName: storage.outputs.ledgerContainerName
    workQueueName: workQueueName
    keyVaultUrl: keyVault.outputs.uri
    driftSchedule: driftSchedule
    authTenantId: !empty(authTenantId) ? authTenantId : subscription().tenantId
    authAudience: authAudience
    eventGridWebhookAuth: eventGridWebhookAuth
    logLevel: logLevel
  }
  // The host needs its storage roles before it starts and indexes the functions.
  dependsOn: [
    rbac
  ]
}

// Spec sources live in their own resource groups: one cross-scope module per source.
module apimAccess './app/source-access.bicep' = [for (id, i) in apimServiceIds: {
  name: 'source-apim-${i}'
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    kind: 'apim'
    sourceId: id
    identityPrincipalId: identity.outputs.principalId
  }
}]

module apiCenterAccess './app/source-access.bicep' = [for (id, i) in apiCenterServiceIds: {
  name: 'source-apicenter-${i}'
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    kind: 'apiCenter'
    sourceId: id
    identityPrincipalId: identity.outputs.principalId
  }
}]

module specContainerAccess './app/source-access.bicep' = [for (id, i) in specContainerIds: {
  name: 'source-blob-${i}'
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    kind: 'blobContainer'
    sourceId: id
    identityPrincipalId: identity.outputs.principalId
  }
}]

// Event sources, resolved from parameters only (so the lists below are known at deployment start).
var eventSourceTopics = [for source in eventSources: {
  kind: source.kind
  subscriptionId: split(source.resourceId, '/')[2]
  resourceGroup: split(source.resourceId, '/')[4]
  name: contains(source, 'existingTopicName') && !empty(source.existingTopicName) ? source.existingTopicName : '${abbrs.eventGridSystemTopics}${source.kind}-${last(split(source.resourceId, '/'))}'
  subjects: contains(source, 'subjects') ? join(source.subjects, ',') : ''
}]

// One system topic per event source, in the source's own resource group.
module systemTopics './app/system-topic.bicep' = [for (source, i) in eventSources: {
  name: 'topic-${source.kind}-${i}'
  scope: resourceGroup(split(source.resourceId, '/')[2], split(source.resourceId, '/')[4])
  params: {
    kind: source.kind
    sourceId: source.resourceId
    location: source.location
    name: eventSourceTopics[i].name
    existingTopicName: contains(source, 'existingTopicName') ? source.existingTopicName : ''
    tags: tags
    diagnosticsWorkspaceId: enableDiagnostics ? monitoring.outputs.workspaceId : ''
    diagnosticSettingName: diagnosticSettingName
  }
}]

module ciTopic './app/custom-topic.bicep' = if (enableCiTopic) {
  name: 'ci-topic'
  scope: rg
  params: {
    name: names.ciTopic
    location: location
    tags: tags
    publisherPrincipalId: ciPublisherPrincipalId
  }
}

// Resource logs to the workspace: who read which secret, what the host logged, every storage
// request, and Event Grid deliveries that failed. The system topics get theirs in their own module.
module diagnostics './app/diagnostics.bicep' = if (enableDiagnostics) {
  name: 'diagnostics'
  scope: rg
  params: {
    name: diagnosticSettingName
    workspaceId: monitoring.outputs.workspaceId
    keyVaultName: keyVault.outputs.name
    functionAppName: functionApp.outputs.name
    storageAccountName: storage.outputs.name
    ciTopicName: enableCiTopic ? ciTopic.outputs.name : ''
  }
}

// Each topic identity may write to the dead-letter container, nothing more.
module systemTopicDeadLetter './app/deadletter-access.bicep' = [for (source, i) in eventSources: {
  name: 'deadletter-access-${i}'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    containerName: deadLetterContainerName
    principalId: systemTopics[i].outputs.principalId
  }
}]

module ciTopicDeadLetter './app/deadletter-access.bicep' = if (enableCiTopic) {
  name: 'deadletter-access-ci'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    containerName: deadLetterContainerName
    principalId: enableCiTopic ? ciTopic.outputs.principalId : ''
  }
}

var systemTopicAlertScopes = [for topic in eventSourceTopics: {
  id: '/subscriptions/${topic.subscriptionId}/resourceGroups/${topic.resourceGroup}/providers/Microsoft.EventGrid/systemTopics/${topic.name}'
  namespace: 'Microsoft.EventGrid/systemTopics'
}]

module alerts './app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  // the system topics' scopes are built from parameters, so nothing else orders the metric
  // alerts after the topics they watch (ARM checks the target exists)
  dependsOn: [
    systemTopics
  ]
  params: {
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    topics: enableCiTopic ? concat(systemTopicAlertScopes, [
      {
        id: ciTopic.outputs.resourceId
        namespace: 'Microsoft.EventGrid/topics'
      }
    ]) : systemTopicAlertScopes
    poisonQueueName: '${workQueueName}-poison'
    actionGroupName: names.actionGroup
    alertEmail: alertEmail
    driftWindowHours: driftWindowHours
  }
}

// The hook reads topics as "kind|subscription|resourceGroup|topic|subject,subject" joined with ";".
var systemTopicEntries = [for topic in eventSourceTopics: '${topic.kind}|${topic.subscriptionId}|${topic.resourceGroup}|${topic.name}|${topic.subjects}']

// ============= //
//    Outputs    //
// ============= //

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = subscription().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AZURE_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_ID string = functionApp.outputs.resourceId
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URL string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
output SYNC_KEY_VAULT_URL string = keyVault.outputs.uri
output SYNC_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output SYNC_QUEUE_ENDPOINT string = storage.outputs.queueEndpoint
output SYNC_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output SYNC_LEDGER_TABLE string = ledgerTableName
output SYNC_LEDGER_CONTAINER string = ledgerContainerName
output SYNC_WORK_QUEUE string = workQueueName
output EVENTGRID_DEADLETTER_CONTAINER_ID string = storage.outputs.deadLetterContainerId
output EVENTGRID_SYSTEM_TOPICS string = join(systemTopicEntries, ';')
output EVENTGRID_CI_TOPIC_NAME string = enableCiTopic ? ciTopic.outputs.name : ''
output EVENTGRID_CI_TOPIC_ID string = enableCiTopic ? ciTopic.outputs.resourceId : ''
output EVENTGRID_CI_TOPIC_ENDPOINT string = enableCiTopic ? ciTopic.outputs.endpoint : ''
