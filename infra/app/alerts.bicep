metadata name = 'Connector Sync alerts and workbook'
metadata description = 'Alert rules for dead-lettered events, failed syncs, poisoned work items and targets out of sync longer than their drift window, plus a workbook of each target\'s last outcome.'

// ============== //
//   Parameters   //
// ============== //

@description('Optional. Location of the log alert rules and the workbook.')
param location string = resourceGroup().location

@description('Optional. Tags applied to every resource.')
param tags object = {}

@description('Required. Application Insights resource id (log alerts and the workbook query it).')
param appInsightsId string

@description('Required. Event Grid topics to watch for dead-lettered events: objects { id, namespace } where namespace is Microsoft.EventGrid/systemTopics or Microsoft.EventGrid/topics.')
param topics array

@description('Required. Name of the poison queue ("<work queue>-poison").')
param poisonQueueName string

@description('Required. Action group name.')
param actionGroupName string

@description('Optional. E-mail address alerts go to. Empty: the action group has no receiver (wire Teams/on-call yourself).')
param alertEmail string = ''

@description('Optional. Hours a target may go without a successful sync (updated/unchanged) before the drift alert fires; default covers two missed 6-hourly drift runs.')
@minValue(1)
@maxValue(47)
param driftWindowHours int = 13

@description('Optional. Per-target drift windows in hours, keyed "<api>/<target>", overriding driftWindowHours.')
param driftWindowOverrides object = {}

// ============== //
//   Variables    //
// ============== //

// Structured logs carry run_id, event_id, api, target, stage, outcome, duration_ms. They arrive in
// customDimensions (logging "extra") or as a JSON message body; the shared prefix accepts both.
var syncLogs = '''
let syncLogs = traces
| extend d = iif(isnotempty(customDimensions.outcome), customDimensions, parse_json(iif(message startswith "{", message, "{}")))
| where isnotempty(d.outcome) or isnotempty(d.stage)
| extend run_id = tostring(d.run_id), event_id = tostring(d.event_id), api = tostring(d.api), target = tostring(d.target),
         stage = tostring(d.stage), outcome = tostring(d.outcome), duration_ms = toint(d.duration_ms), version = tostring(d.version);
'''

var failedQuery = '${syncLogs}syncLogs | where outcome == "failed" | project timestamp, run_id, event_id, api, target, stage, duration_ms'

// The Functions host itself logs when it moves a message to "<queue>-poison" after MaxDequeueCount;
// the poison handler logs stage "poison". Either one counts.
var poisonBase = '''
traces
| where (message has "__POISON__" and message has "MaxDequeueCount") or tostring(customDimensions.stage) == "poison" or message has "\"stage\": \"poison\""
| project timestamp, message
'''
var poisonQuery = replace(poisonBase, '__POISON__', poisonQueueName)

var driftBase = '''
let windows = dynamic(__WINDOWS__);
syncLogs
| where isnotempty(target)
| summarize lastSeen = max(timestamp), lastSynced = maxif(timestamp, outcome in ("updated", "unchanged")) by api, target
| extend windowHours = coalesce(toint(windows[strcat(api, "/", target)]), __DEFAULT__)
| where isnull(lastSynced) or lastSynced < ago(1h * windowHours)
| project api, target, lastSynced, lastSeen, windowHours
'''
var driftQuery = '${syncLogs}${replace(replace(driftBase, '__WINDOWS__', string(driftWindowOverrides)), '__DEFAULT__', string(driftWindowHours))}'

var lastOutcomeQuery = '${syncLogs}syncLogs | where isnotempty(target) and isnotempty(outcome) | summarize arg_max(timestamp, outcome, version, duration_ms, run_id) by api, target | project api, target, last_outcome = outcome, version, duration_ms, last_run = timestamp, run_id | order by api asc, target asc'

var actionGroups = [
  actionGroup.id
]

// ============= //
//   Resources   //
// ============= //

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'connsync'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Dead-lettered events > 0: a metric alert, because Event Grid emits DeadLetteredCount per topic
// without any code of ours running.
resource deadLettered 'Microsoft.Insights/metricAlerts@2018-03-01' = [for (topic, i) in topics: {
  name: 'connector-sync-deadlettered-${i}'
  location: 'global'
  tags: tags
  properties: {
    description: 'An Event Grid event could not be delivered to plan_event and was written to the dead-letter container.'
    severity: 1
    enabled: true
    scopes: [
      topic.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'DeadLettered'
          metricNamespace: topic.namespace
          metricName: 'DeadLetteredCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}]

// Failed syncs > 0 in 15 minutes.
resource failedSyncs 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'connector-sync-failed-syncs'
  location: location
  tags: tags
  properties: {
    displayName: 'Connector Sync: failed syncs'
    description: 'At least one target ended with outcome "failed" in the last 15 minutes.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: failedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

// Poison-queue depth > 0, as a log alert: Storage's QueueMessageCount metric is per account (all
// queues, including the host's own) and refreshed about hourly, so it can neither isolate the
// poison queue nor fire promptly. The host's "moved to poison" trace is immediate and exact.
resource poisoned 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'connector-sync-poisoned'
  location: location
  tags: tags
  properties: {
    displayName: 'Connector Sync: work item poisoned'
    description: 'A work item exhausted its queue retries and was moved to the poison queue.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: poisonQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

// A target not synced for longer than its drift window (looks back two days, the log-alert maximum).
resource drift 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'connector-sync-drift-window'
  location: location
  tags: tags
  properties: {
    displayName: 'Connector Sync: target out of sync past its drift window'
    description: 'A target has had no updated/unchanged outcome for longer than its drift window.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    criteria: {
      allOf: [
        {
          query: driftQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

// Each target's last outcome, version and duration.
resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsId, 'connector-sync-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Connector Sync: targets'
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: string({
      version: 'Notebook/1.0'
      items: [
        {
          type: 1
          content: {
            json: '## Connector Sync\nLast outcome, version and duration of every target (last 30 days).'
          }
          name: 'title'
        }
        {
          type: 3
          content: {
            version: 'KqlItem/1.0'
            query: lastOutcomeQuery
            size: 0
            timeContext: {
              durationMs: 2592000000
            }
            queryType: 0
            resourceType: 'microsoft.insights/components'
            visualization: 'table'
          }
          name: 'targets'
        }
        {
          type: 3
          content: {
            version: 'KqlItem/1.0'
            query: failedQuery
            size: 0
            timeContext: {
              durationMs: 604800000
            }
            queryType: 0
            resourceType: 'microsoft.insights/components'
            visualization: 'table'
          }
          name: 'failures'
        }
      ]
    })
  }
}

// ============= //
//    Outputs    //
// ============= //

@description('Action group resource id.')
output actionGroupId string = actionGroup.id

@description('Workbook resource id.')
output workbookId string = workbook.id
