metadata name = 'Connector Sync spec-source roles'
metadata description = 'Read access for the function identity on ONE spec source, deployed into that source\'s own resource group.'

// ============== //
//   Parameters   //
// ============== //

@description('Required. Kind of source: apim (export through ARM), apiCenter (exportSpecification) or blobContainer (spec files).')
@allowed([
  'apim'
  'apiCenter'
  'blobContainer'
])
param kind string

@description('Required. Resource id of the APIM service, the API Center service, or the blob container (.../storageAccounts/<a>/blobServices/default/containers/<c>).')
param sourceId string

@description('Required. Principal id of the function identity.')
param identityPrincipalId string

// ============== //
//   Variables    //
// ============== //

var roles = {
  apimServiceReader: '71522526-b88f-4d52-b57f-d31fc3546d0d' // API Management Service Reader Role
  // Azure API Center Service Reader: its actions include
  // Microsoft.ApiCenter/services/workspaces/apis/versions/definitions/exportSpecification/action
  // (Azure built-in roles, Integration). "Azure API Center Data Reader" is data-plane only and
  // does NOT allow the ARM exportSpecification call.
  apiCenterServiceReader: '6cba8790-29c5-48e5-bab1-c7541b01cb04' // Azure API Center Service Reader
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // Storage Blob Data Reader
}

var parts = split(sourceId, '/')
var isApim = kind == 'apim'
var isApiCenter = kind == 'apiCenter'
var isBlob = kind == 'blobContainer'

// ============== //
//  Dependencies  //
// ============== //

resource apim 'Microsoft.ApiManagement/service@2023-05-01-preview' existing = if (isApim) {
  name: parts[8]
}

resource apiCenter 'Microsoft.ApiCenter/services@2024-03-01' existing = if (isApiCenter) {
  name: parts[8]
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = if (isBlob) {
  name: parts[8]
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = if (isBlob) {
  parent: account
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = if (isBlob) {
  parent: blobService
  name: isBlob ? parts[12] : 'unused'
}

// ============= //
//   Resources   //
// ============= //

// API Management Service Reader Role on the one APIM service: GET .../apis/{api}?export=true.
resource apimReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApim) {
  name: guid(apim.id, identityPrincipalId, roles.apimServiceReader)
  scope: apim
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.apimServiceReader)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Azure API Center Service Reader on the one API Center: POST .../definitions/{d}/exportSpecification.
resource apiCenterReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApiCenter) {
  name: guid(apiCenter.id, identityPrincipalId, roles.apiCenterServiceReader)
  scope: apiCenter
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.apiCenterServiceReader)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Blob Data Reader on the one container holding spec files.
resource blobReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isBlob) {
  name: guid(container.id, identityPrincipalId, roles.storageBlobDataReader)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}
