metadata name = 'Connector Sync function app'
metadata description = 'Flex Consumption (FC1) plan and Python 3.11 function app. Identity-based deployment storage, AzureWebJobsStorage and Application Insights; no keys or connection strings.'

// ============== //
//   Parameters   //
// ============== //

@description('Required. Function app name.')
param name string

@description('Required. Flex Consumption plan name.')
param planName string

@description('Optional. Location of the plan and the app.')
param location string = resourceGroup().location

@description('Optional. Tags applied to the plan and the app (the app also gets azd-service-name).')
param tags object = {}

@description('Required. Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Required. Client id of that identity.')
param identityClientId string

@description('Required. Blob endpoint of the host storage account.')
param blobEndpoint string

@description('Required. Queue endpoint of the host storage account (the queue trigger reads the work queue through AzureWebJobsStorage).')
param queueEndpoint string

@description('Required. Table endpoint of the host storage account.')
param tableEndpoint string

@description('Required. Blob container the deployment package is uploaded to.')
param deploymentContainerName string

@description('Required. Application Insights connection string.')
param appInsightsConnectionString string

@description('Optional. Python version on Flex Consumption.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Optional. Memory per instance (MB).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional. Upper bound of scale-out.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Required. SYNC_* app settings; see sync/settings.py for what each one means.')
param syncConfig string

@description('Required. Ledger table name.')
param ledgerTableName string

@description('Required. Ledger blob container name.')
param ledgerContainerName string

@description('Required. Work queue name.')
param workQueueName string

@description('Required. Key Vault URI.')
param keyVaultUrl string

@description('Optional. Total seconds a spec fetch may spend (with warm-up retries).')
param fetchBudgetSeconds string = '120'

@description('Optional. Seconds per HTTP attempt when fetching a spec.')
param fetchTimeoutSeconds string = '15'

@description('Optional. Largest spec download in bytes.')
param fetchMaxBytes string = '10485760'

@description('Optional. Seconds a worker holds a target lease.')
param leaseSeconds string = '600'

@description('Optional. NCRONTAB schedule of the drift check (six fields).')
param driftSchedule string = '0 0 */6 * * *'

@description('Optional. Entra tenant whose tokens the manual HTTP endpoint accepts.')
param authTenantId string = ''

@description('Optional. Audience (application id URI or client id) the manual HTTP endpoint requires.')
param authAudience string = ''

@description('Optional. Event Grid webhook deliveries to POST /api/sync: "key" (function key), "entra" (also Event Grid\'s own Entra token: app role AzureEventGridSecureWebhookSubscriber, Event Grid\'s application id) or "off" (refused).')
@allowed([
  'key'
  'entra'
  'off'
])
param eventGridWebhookAuth string = 'key'

@description('Optional. Log level of the sync package.')
@allowed([
  'DEBUG'
  'INFO'
  'WARNING'
  'ERROR'
  'CRITICAL'
])
param logLevel string = 'INFO'

// ============= //
//   Resources   //
// ============= //

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy on FC1 is region-limited and needs always-ready instances; not worth it for a low-volume, retrying, queue-backed service.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Event Grid delivers to the planner and callers reach the manual HTTP endpoint over the public endpoint; the HTTP route requires an Entra token (SYNC_AUTH_*).
  // checkov:skip=CKV_AZURE_17: Event Grid cannot present client certificates; the manual endpoint authenticates with Entra tokens instead.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero; always-ready instances would add cost this low-volume service does not need.
  // checkov:skip=CKV_AZURE_213: No HTTP health endpoint to probe on a scale-from-zero plan; failures surface through the alert rules instead.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      alwaysOn: false
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }

  // On Flex Consumption the runtime comes from functionAppConfig.runtime, so FUNCTIONS_WORKER_RUNTIME
  // is not an app setting (the platform rejects it). Names below are exactly what sync/settings.py reads.
  resource appSettings 'config' = {
    // checkov:skip=CKV_AZURE_13: This is the appsettings config, not the web config; checkov applies web-config checks to every sites/config. The manual endpoint validates Entra tokens itself.
    // checkov:skip=CKV_AZURE_63: Web-config check applied to the appsettings config (see CKV_AZURE_13); function logs go to Application Insights.
    // checkov:skip=CKV_AZURE_65: Web-config check applied to the appsettings config (see CKV_AZURE_13).
    // checkov:skip=CKV_AZURE_66: Web-config check applied to the appsettings config (see CKV_AZURE_13).
    // checkov:skip=CKV_AZURE_80: Web-config check applied to the appsettings config; the app is Python, not .NET.
    // checkov:skip=CKV_AZURE_88: Web-config check applied to the appsettings config; Flex Consumption has no Azure Files content share.
    // checkov:skip=CKV_AZURE_222: Web-config check applied to the appsettings config; see the site above.
    name: 'appsettings'
    properties: {
      // Host storage (and the queue trigger's "AzureWebJobsStorage" connection) through the identity.
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      AzureWebJobsStorage__blobServiceUri: blobEndpoint
      AzureWebJobsStorage__queueServiceUri: queueEndpoint
      AzureWebJobsStorage__tableServiceUri: tableEndpoint
      // Telemetry with an Entra token, since the component has local auth off.
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      // azure-identity picks the user-assigned identity from this.
      AZURE_CLIENT_ID: identityClientId
      // Python 3.11 needs this for CloudEvents to reach the trigger as func.CloudEvent.
      PYTHON_ISOLATE_WORKER_DEPENDENCIES: '1'
      // sync/settings.py APP_SETTINGS
      SYNC_CONFIG: syncConfig
      SYNC_TABLE_ENDPOINT: tableEndpoint
      SYNC_QUEUE_ENDPOINT: queueEndpoint
      SYNC_BLOB_ENDPOINT: blobEndpoint
      SYNC_LEDGER_TABLE: ledgerTableName
      SYNC_LEDGER_CONTAINER: ledgerContainerName
      SYNC_WORK_QUEUE: workQueueName
      SYNC_KEY_VAULT_URL: keyVaultUrl
      SYNC_FETCH_BUDGET_SECONDS: fetchBudgetSeconds
      SYNC_FETCH_TIMEOUT_SECONDS: fetchTimeoutSeconds
      SYNC_FETCH_MAX_BYTES: fetchMaxBytes
      SYNC_LEASE_SECONDS: leaseSeconds
      SYNC_DRIFT_SCHEDULE: driftSchedule
      SYNC_AUTH_TENANT_ID: authTenantId
      SYNC_AUTH_AUDIENCE: authAudience
      SYNC_EVENTGRID_WEBHOOK_AUTH: eventGridWebhookAuth
      SYNC_LOG_LEVEL: logLevel
    }
  }
}

// azd deploys with Entra tokens: the publishing profile's user and password (SCM and FTP basic
// auth) are a standing credential nothing here uses, so both are switched off.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

// ============= //
//    Outputs    //
// ============= //

@description('Function app name.')
output name string = functionApp.name

@description('Function app resource id (the hook appends /functions/plan_event).')
output resourceId string = functionApp.id

@description('Default host name.')
output defaultHostName string = functionApp.properties.defaultHostName
