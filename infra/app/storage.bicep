metadata name = 'Connector Sync storage'
metadata description = 'Host storage, ledger table and container, work queue + poison queue, deployment and dead-letter containers. Identity only: shared keys are off.'

// ============== //
//   Parameters   //
// ============== //

@description('Required. Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Optional. Location of the account.')
param location string = resourceGroup().location

@description('Optional. Tags applied to the account.')
param tags object = {}

@description('Required. Table holding the ledger (SYNC_LEDGER_TABLE).')
param ledgerTableName string

@description('Required. Blob container for large ledger payloads (SYNC_LEDGER_CONTAINER).')
param ledgerContainerName string

@description('Required. Queue between planner and worker (SYNC_WORK_QUEUE); "<name>-poison" is created next to it.')
param workQueueName string

@description('Required. Blob container the Flex Consumption deployment package is uploaded to.')
param deploymentContainerName string

@description('Required. Blob container Event Grid writes undeliverable events to.')
param deadLetterContainerName string

@description('Optional. Replication of the account; LRS is the low-volume default, ZRS/GZRS (zone) or GRS/RAGRS/RAGZRS (paired region) for production.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_LRS'

@description('Optional. Days a dead-lettered event stays in the dead-letter container. An event that failed to plan may hold a caller\'s signed specUrl; the dead-letter alert fires at once, so this is the time left to look at it.')
@minValue(8)
@maxValue(365)
param deadLetterRetentionDays int = 30

@description('Optional. Days deleted blobs and containers stay recoverable.')
@minValue(1)
@maxValue(365)
param deleteRetentionDays int = 7

// ============= //
//   Resources   //
// ============= //

// The Flex Consumption host and Event Grid dead-lettering both reach this account over the public
// endpoint with managed identities, so the firewall stays open and identity + RBAC is the boundary.
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration and Event Grid dead-lettering reach the account publicly; access is identity-only (allowSharedKeyAccess false).
  // checkov:skip=CKV_AZURE_59: Same as CKV_AZURE_35: public endpoint needed without VNet integration; shared keys are disabled.
  // checkov:skip=CKV_AZURE_206: The SKU is a parameter (default Standard_LRS for cost at low volume); choose Standard_ZRS or Standard_GRS for production.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource ledgerContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: ledgerContainerName
  properties: {
    publicAccess: 'None'
  }
}

// A caller's signed specUrl is downloaded when its run is planned and staged here under
// "_staged/<sha256>" (sync/staging.py), so no queue message carries the credential. A message that
// names a staged spec lives 7 days at most (in the poison queue); 8 days after its last write the
// blob goes. Nothing else of the ledger container is touched: its own blobs start with an API name,
// which cannot start with '_'.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-staged-specs'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${ledgerContainerName}/_staged/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: 8
                }
              }
            }
          }
        }
        {
          // Event Grid writes an undeliverable event here whole: a custom event whose signed
          // specUrl kept failing to download when planned (sync.staging) carries the SAS.
          name: 'delete-dead-lettered-events'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${deadLetterContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: deadLetterRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource workQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: workQueueName
}

// The Functions host creates "<queue>-poison" on first use; creating it here lets the alert and
// the dashboard refer to it from day one.
resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${workQueueName}-poison'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource ledgerTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: ledgerTableName
}

// ============= //
//    Outputs    //
// ============= //

@description('Storage account name.')
output name string = storage.name

@description('Storage account resource id.')
output resourceId string = storage.id

@description('Blob endpoint (SYNC_BLOB_ENDPOINT, AzureWebJobsStorage__blobServiceUri).')
output blobEndpoint string = storage.properties.primaryEndpoints.blob

@description('Queue endpoint (SYNC_QUEUE_ENDPOINT, AzureWebJobsStorage__queueServiceUri).')
output queueEndpoint string = storage.properties.primaryEndpoints.queue

@description('Table endpoint (SYNC_TABLE_ENDPOINT, AzureWebJobsStorage__tableServiceUri).')
output tableEndpoint string = storage.properties.primaryEndpoints.table

@description('Resource id of the dead-letter container (the postdeploy hook dead-letters every Event Grid subscription there).')
output deadLetterContainerId string = deadLetterContainer.id

@description('Names of the queues, for the alert rules.')
output queueNames array = [
  workQueue.name
  poisonQueue.name
]

@description('Name of the ledger table.')
output ledgerTableName string = ledgerTable.name

@description('Name of the ledger container.')
output ledgerContainerName string = ledgerContainer.name

@description('Name of the deployment container.')
output deploymentContainerName string = deploymentContainer.name
