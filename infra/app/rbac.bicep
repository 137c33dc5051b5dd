metadata name = 'Connector Sync role assignments (own resource group)'
metadata description = 'Least-privilege roles of the function identity on the resources in this resource group, plus optional mirrors for the developer running azd.'

// ============== //
//   Parameters   //
// ============== //

@description('Required. Host storage account name.')
param storageAccountName string

@description('Required. Key Vault name.')
param keyVaultName string

@description('Required. Application Insights component name.')
param appInsightsName string

@description('Required. Principal id of the function identity.')
param identityPrincipalId string

@description('Optional. Name of the Key Vault secret holding a delegated refresh token. When set, the identity may rotate that one secret (Key Vault Secrets Officer on the secret only). The secret must exist before the deployment.')
param refreshTokenSecretName string = ''

@description('Optional. Principal id of the developer (AZURE_PRINCIPAL_ID) to mirror data roles for local debugging against cloud resources. Empty: none.')
param developerPrincipalId string = ''

@description('Optional. Principal type of the developer principal.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param developerPrincipalType string = 'User'

// ============== //
//   Variables    //
// ============== //

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
}

var hasDeveloper = !empty(developerPrincipalId)

// ============== //
//  Dependencies  //
// ============== //

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource refreshTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = if (!empty(refreshTokenSecretName)) {
  parent: vault
  name: !empty(refreshTokenSecretName) ? refreshTokenSecretName : 'unused'
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// ================================== //
//   Function identity: host storage  //
// ================================== //

// Storage Blob Data Owner: host leases, deployment package, ledger container.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Queue Data Contributor: the work queue, its poison queue and the queue trigger.
resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Table Data Contributor: the ledger table.
resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ============================== //
//   Function identity: secrets   //
// ============================== //

// Key Vault Secrets User: read the secrets the sync map names (kv:<name>).
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identityPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault Secrets Officer on ONE secret: store the rotated delegated refresh token.
resource refreshTokenOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(refreshTokenSecretName)) {
  name: guid(refreshTokenSecret.id, identityPrincipalId, roles.keyVaultSecretsOfficer)
  scope: refreshTokenSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ================================ //
//   Function identity: telemetry   //
// ================================ //

// Monitoring Metrics Publisher: send telemetry with an Entra token (local auth is off).
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identityPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ============================================ //
//   Developer mirrors (optional, local debug)  //
// ============================================ //

// Storage Blob Data Owner for the developer.
resource devBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasDeveloper) {
  name: guid(storage.id, developerPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}

// Storage Queue Data Contributor for the developer.
resource devQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasDeveloper) {
  name: guid(storage.id, developerPrincipalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}

// Storage Table Data Contributor for the developer.
resource devTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasDeveloper) {
  name: guid(storage.id, developerPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}

// Key Vault Secrets Officer for the developer: put the webhook URL and credentials into the vault.
resource devSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasDeveloper) {
  name: guid(vault.id, developerPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}
