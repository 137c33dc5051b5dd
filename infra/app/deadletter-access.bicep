metadata name = 'Connector Sync dead-letter writers'
metadata description = 'Lets one Event Grid topic identity write undeliverable events into the dead-letter container, and nothing else.'

// ============== //
//   Parameters   //
// ============== //

@description('Required. Host storage account name.')
param storageAccountName string

@description('Required. Dead-letter container name.')
param containerName string

@description('Required. Principal id of a topic\'s system-assigned identity.')
param principalId string

// ============== //
//   Variables    //
// ============== //

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor

// ============== //
//  Dependencies  //
// ============== //

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: containerName
}

// ============= //
//   Resources   //
// ============= //

// Storage Blob Data Contributor on the dead-letter container only.
resource writer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, principalId, storageBlobDataContributor)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
