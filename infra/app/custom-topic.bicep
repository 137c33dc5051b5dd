metadata name = 'Connector Sync CI topic'
metadata description = 'Custom Event Grid topic CI pipelines publish ConnectorSync.ApiDeployed to, as CloudEvents 1.0, with Entra auth only.'

// ============== //
//   Parameters   //
// ============== //

@description('Required. Topic name.')
param name string

@description('Optional. Location of the topic.')
param location string = resourceGroup().location

@description('Optional. Tags applied to the topic.')
param tags object = {}

@description('Optional. Principal id of the CI pipeline identity that may publish (EventGrid Data Sender). Empty: none.')
param publisherPrincipalId string = ''

@description('Optional. Principal type of the publisher.')
@allowed([
  'ServicePrincipal'
  'Group'
  'User'
])
param publisherPrincipalType string = 'ServicePrincipal'

// ============== //
//   Variables    //
// ============== //

var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7' // EventGrid Data Sender

// ============= //
//   Resources   //
// ============= //

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  // checkov:skip=CKV_AZURE_193: CI runners (GitHub/Azure DevOps hosted) publish over the public endpoint; access needs an Entra token (disableLocalAuth) and the EventGrid Data Sender role.
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

// EventGrid Data Sender for the CI principal, on this topic only.
resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(publisherPrincipalId)) {
  name: guid(topic.id, publisherPrincipalId, eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: publisherPrincipalId
    principalType: publisherPrincipalType
  }
}

// ============= //
//    Outputs    //
// ============= //

@description('Topic name.')
output name string = topic.name

@description('Topic resource id.')
output resourceId string = topic.id

@description('Endpoint CI posts CloudEvents to.')
output endpoint string = topic.properties.endpoint

@description('Principal id of the topic identity (dead-letter writer).')
output principalId string = topic.identity.principalId
