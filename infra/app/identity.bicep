metadata name = 'Connector Sync identity'
metadata description = 'The one user-assigned identity the function app runs as; every role below is granted to it.'

// ============== //
//   Parameters   //
// ============== //

@description('Required. Name of the user-assigned managed identity.')
param name string

@description('Optional. Location of the identity.')
param location string = resourceGroup().location

@description('Optional. Tags applied to the identity.')
param tags object = {}

// ============= //
//   Resources   //
// ============= //

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

// ============= //
//    Outputs    //
// ============= //

@description('Resource id, used in functionAppConfig and the site identity block.')
output resourceId string = identity.id

@description('Client id: AZURE_CLIENT_ID, AzureWebJobsStorage__clientId and the App Insights auth string.')
output clientId string = identity.properties.clientId

@description('Principal (object) id that role assignments target.')
output principalId string = identity.properties.principalId

@description('Name of the identity.')
output name string = identity.name
