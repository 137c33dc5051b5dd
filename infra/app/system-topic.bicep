metadata name = 'Connector Sync Event Grid system topic'
metadata description = 'One system topic for one API source, deployed in the source\'s own resource group (a source may have only one system topic, so an existing one can be reused).'

// ============== //
//   Parameters   //
// ============== //

@description('Required. Kind of source.')
@allowed([
  'appService'
  'apim'
  'apiCenter'
  'blob'
])
param kind string

@description('Required. Resource id of the source (site, APIM service, API Center service, storage account).')
param sourceId string

@description('Required. Region of the source; a system topic lives where its source lives.')
param location string

@description('Required. Name of the system topic to create (ignored when existingTopicName is set).')
param name string

@description('Optional. Name of an existing system topic on this source to reuse. It must have a system-assigned identity for identity-based dead-lettering.')
param existingTopicName string = ''

@description('Optional. Tags applied to a created topic.')
param tags object = {}

@description('Optional. Log Analytics workspace that receives a created topic\'s DeliveryFailures. Empty: no diagnostic setting. A reused topic is left as it is (add the setting yourself).')
param diagnosticsWorkspaceId string = ''

@description('Optional. Name of that diagnostic setting.')
param diagnosticSettingName string = 'connector-sync-logs'

// ============== //
//   Variables    //
// ============== //

var topicTypes = {
  appService: 'Microsoft.Web.Sites'
  apim: 'Microsoft.ApiManagement.Service'
  apiCenter: 'Microsoft.ApiCenter.Services'
  blob: 'Microsoft.Storage.StorageAccounts'
}

var reuse = !empty(existingTopicName)

// ============= //
//   Resources   //
// ============= //

resource created 'Microsoft.EventGrid/systemTopics@2022-06-15' = if (!reuse) {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: sourceId
    topicType: topicTypes[kind]
  }
}

resource reused 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = if (reuse) {
  name: reuse ? existingTopicName : name
}

// Why a delivery to plan_event failed (endpoint errors, dead-lettering), per event subscription.
resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!reuse && !empty(diagnosticsWorkspaceId)) {
  name: diagnosticSettingName
  scope: created
  properties: {
    workspaceId: diagnosticsWorkspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'DeliveryFailures'
        enabled: true
      }
    ]
  }
}

// ============= //
//    Outputs    //
// ============= //

@description('Name of the topic the hook subscribes to.')
output name string = reuse ? reused.name : created.name

@description('Resource id of the topic (scope of the dead-letter metric alert).')
output resourceId string = reuse ? reused.id : created.id

@description('Principal id of the topic\'s system-assigned identity (granted write on the dead-letter container).')
output principalId string = reuse ? reused.identity.principalId : created.identity.principalId
