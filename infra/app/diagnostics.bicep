metadata name = 'Connector Sync diagnostic settings'
metadata description = 'Resource logs of the vault, the function app, the storage services and the CI topic, sent to the Log Analytics workspace. Retention is the workspace\'s; no metrics are exported (the platform keeps those).'

// ============== //
//   Parameters   //
// ============== //

@description('Required. Name of each diagnostic setting.')
param name string

@description('Required. Resource id of the Log Analytics workspace the logs go to.')
param workspaceId string

@description('Required. Key Vault name: AuditEvent (every secret read and write, with the caller\'s identity).')
param keyVaultName string

@description('Required. Function app name: FunctionAppLogs (host and worker logs).')
param functionAppName string

@description('Required. Storage account name: StorageRead, StorageWrite and StorageDelete of its blob, queue and table services.')
param storageAccountName string

@description('Optional. CI custom topic name: DeliveryFailures and PublishFailures. Empty: no CI topic.')
param ciTopicName string = ''

// ============== //
//   Variables    //
// ============== //

// Resource-specific tables (AZKVAuditLogs, StorageBlobLogs, ...) instead of AzureDiagnostics.
var destinationType = 'Dedicated'

var storageCategories = [
  'StorageRead'
  'StorageWrite'
  'StorageDelete'
]
var storageLogs = [for category in storageCategories: {
  category: category
  enabled: true
}]

// ============= //
//   Resources   //
// ============= //

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource ciTopic 'Microsoft.EventGrid/topics@2022-06-15' existing = if (!empty(ciTopicName)) {
  name: empty(ciTopicName) ? 'none' : ciTopicName
}

// Who read which secret: the caller's object id, app id and IP for every SecretGet (and every
// other data- and management-plane call on the vault).
resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: name
  scope: vault
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: destinationType
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

resource siteDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: name
  scope: site
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: destinationType
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
  }
}

// The log categories belong to the service sub-resources, not to the account.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: name
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: destinationType
    logs: storageLogs
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: name
  scope: queueService
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: destinationType
    logs: storageLogs
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: name
  scope: tableService
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: destinationType
    logs: storageLogs
  }
}

resource ciTopicDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(ciTopicName)) {
  name: name
  scope: ciTopic
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: destinationType
    logs: [
      {
        category: 'DeliveryFailures'
        enabled: true
      }
      {
        category: 'PublishFailures'
        enabled: true
      }
    ]
  }
}
