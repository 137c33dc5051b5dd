metadata name = 'Connector Sync Key Vault'
metadata description = 'Holds the Teams webhook URL, client secrets/certificates and delegated refresh tokens named in the sync map (kv:<name>). RBAC mode only.'

// ============== //
//   Parameters   //
// ============== //

@description('Required. Vault name (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Optional. Location of the vault.')
param location string = resourceGroup().location

@description('Optional. Tags applied to the vault.')
param tags object = {}

@description('Optional. Purge protection: keep it on in production. A dev environment that runs azd down/up with the same name may turn it off, otherwise the soft-deleted vault blocks the name for the retention period.')
param enablePurgeProtection bool = true

@description('Optional. Days a deleted vault or secret stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

// ============= //
//   Resources   //
// ============= //

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Flex Consumption without VNet integration reaches the vault over its public endpoint; access is RBAC-only with a single reader identity.
  // checkov:skip=CKV_AZURE_189: Same as CKV_AZURE_109: public network access is required without VNet integration.
  // checkov:skip=CKV_AZURE_110: Purge protection is the enablePurgeProtection parameter (default true); checkov cannot evaluate the null-when-off expression ARM requires.
  // checkov:skip=CKV_AZURE_42: Soft delete is always on; purge protection is parameterised (default true), see CKV_AZURE_110.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // ARM rejects "false" once purge protection was on, so the property is omitted when off.
    enablePurgeProtection: enablePurgeProtection ? true : null
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// ============= //
//    Outputs    //
// ============= //

@description('Vault name.')
output name string = vault.name

@description('Vault resource id.')
output resourceId string = vault.id

@description('Vault URI (SYNC_KEY_VAULT_URL).')
output uri string = vault.properties.vaultUri
