metadata name = 'Connector Sync monitoring'
metadata description = 'Log Analytics workspace and a workspace-based Application Insights component with local (key) auth disabled.'

// ============== //
//   Parameters   //
// ============== //

@description('Required. Log Analytics workspace name.')
param logAnalyticsName string

@description('Required. Application Insights component name.')
param applicationInsightsName string

@description('Optional. Location of both resources.')
param location string = resourceGroup().location

@description('Optional. Tags applied to both resources.')
param tags object = {}

@description('Optional. Days logs are kept; 30 is included in the Log Analytics price.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

// ============= //
//   Resources   //
// ============= //

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Telemetry must be sent with an Entra token (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
  }
}

// ============= //
//    Outputs    //
// ============= //

@description('Workspace resource id.')
output workspaceId string = workspace.id

@description('Workspace name.')
output workspaceName string = workspace.name

@description('Application Insights resource id (scope of the log alerts and the workbook).')
output appInsightsId string = appInsights.id

@description('Application Insights name.')
output appInsightsName string = appInsights.name

@description('Connection string: an endpoint and an instrumentation key, not a credential once local auth is off.')
output connectionString string = appInsights.properties.ConnectionString
