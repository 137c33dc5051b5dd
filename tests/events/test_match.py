"""Matching events to the sync map's triggers; unmatched or hostile events are ignored, never planned."""

from __future__ import annotations

from typing import Any

import pytest

from sync.config import SyncMap
from sync.events import (
    API_DEPLOYED,
    MalformedEvent,
    normalize_event,
    parse_api_deployed,
    plan_requests,
)

SITE = "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Web/sites/<site-name>"
APIM = "/subscriptions/{subscription-id}/resourceGroups/{your-rg}/providers/Microsoft.ApiManagement/service/{your-APIM-instance}"
CENTER = "/subscriptions/{subscription_id}/resourceGroups/{resource_group_name}/providers/Microsoft.ApiCenter/services/{api_center_name}"
ACCOUNT = "/subscriptions/{subscription-id}/resourceGroups/Storage/providers/Microsoft.Storage/storageAccounts/my-storage-account"


def deployed(schema: str = "cloudevents", **data: Any) -> dict[str, Any]:
    data = {"api": "contoso-invoicing", **data}
    if schema == "cloudevents":
        return {
            "specversion": "1.0",
            "id": "ce-1",
            "source": "/pipelines/contoso-invoicing",
            "subject": "deployments/42",
            "type": API_DEPLOYED,
            "time": "2024-05-01T10:00:00Z",
            "data": data,
        }
    return {
        "id": "eg-1",
        "topic": "/subscriptions/s/resourceGroups/r/providers/Microsoft.EventGrid/topics/ci",
        "subject": "deployments/42",
        "eventType": API_DEPLOYED,
        "eventTime": "2024-05-01T10:00:00Z",
        "data": data,
        "dataVersion": "1.0",
    }


def system(event_type: str, topic: str, subject: str, **data: Any) -> dict[str, Any]:
    return {
        "id": "sys-1",
        "topic": topic,
        "subject": subject,
        "eventType": event_type,
        "eventTime": "2024-05-01T10:00:00Z",
        "data": data,
        "dataVersion": "1",
    }


def decide(raw: dict[str, Any], sync_map: SyncMap) -> Any:
    return plan_requests(normalize_event(raw), sync_map)


# --- the custom CI event -------------------------------------------------------------------


@pytest.mark.parametrize("schema", ["cloudevents", "eventgrid"])
def test_custom_event_fans_out_with_all_details(schema: str, sync_map: SyncMap) -> None:
    raw = deployed(schema, version="2.4.0", commit="9f1c2e7", deploymentId="run-77")
    decision = decide(raw, sync_map)
    assert decision.ignored is None
    assert [r.api for r in decision.requests] == ["contoso-invoicing", "invoicing-v2"]
    request = decision.requests[0]
    assert request.reason == "event"
    assert request.event_type == API_DEPLOYED
    assert request.event_time == "2024-05-01T10:00:00.000000Z"
    assert request.subject == "deployments/42"
    assert (request.version, request.commit, request.deployment_id) == (
        "2.4.0",
        "9f1c2e7",
        "run-77",
    )
    assert request.spec_url is None


def test_spec_url_is_honoured_only_where_allowed(sync_map: SyncMap) -> None:
    url = "https://contoso-invoicing.azurewebsites.net/swagger/v2/swagger.json"
    decision = decide(deployed(specUrl=url), sync_map)
    assert [(r.api, r.spec_url) for r in decision.requests] == [("contoso-invoicing", url)]
    assert len(decision.skipped) == 1
    assert "invoicing-v2" in decision.skipped[0]
    assert "allowedSpecUrls" in decision.skipped[0]


def test_spec_url_allowed_nowhere_ignores_the_event(sync_map: SyncMap, caplog: Any) -> None:
    url = "https://evil.example.net/openapi.json?sig=SECRETSIG"
    decision = decide(deployed(specUrl=url), sync_map)
    assert decision.requests == []
    assert decision.ignored is not None
    assert "not under its allowedSpecUrls" in decision.ignored
    assert "SECRETSIG" not in decision.ignored  # a SAS query never reaches logs or reasons
    assert "SECRETSIG" not in caplog.text
    assert "evil.example.net" in caplog.text


def test_api_without_custom_trigger_is_not_synced_by_name(sync_map: SyncMap) -> None:
    decision = decide(deployed(api="no-custom-trigger"), sync_map)
    assert decision.requests == []
    assert "does not list 'custom: no-custom-trigger'" in (decision.ignored or "")


def test_unknown_api_name_is_ignored(sync_map: SyncMap) -> None:
    decision = decide(deployed(api="not-in-the-map"), sync_map)
    assert decision.requests == []
    assert "no API lists 'custom: not-in-the-map'" in (decision.ignored or "")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"api": None}, "data.api"),
        ({"api": "Contoso"}, "data.api"),
        ({"api": "-leading-dash"}, "data.api"),
        ({"api": "a" * 64}, "data.api"),
        ({"api": 12}, "data.api"),
        ({"api": "../etc"}, "data.api"),
        ({"api": "contoso-invoicing\n"}, "data.api"),  # "$" matches before a final newline
        ({"specUrl": ""}, "data.specUrl"),
        ({"specUrl": 5}, "data.specUrl"),
        ({"specUrl": "ftp://contoso-invoicing.azurewebsites.net/x"}, "data.specUrl"),
        ({"specUrl": "/relative/path.json"}, "data.specUrl"),
        ({"specUrl": "https://user:pw@contoso-invoicing.azurewebsites.net/x"}, "data.specUrl"),
        ({"specUrl": "https://contoso-invoicing.azurewebsites.net/../admin"}, "data.specUrl"),
        ({"specUrl": "https://contoso-invoicing.azurewebsites.net/%2e%2e/admin"}, "data.specUrl"),
        ({"specUrl": "https://contoso-invoicing.azurewebsites.net/a b"}, "data.specUrl"),
        ({"specUrl": "https://contoso-invoicing.azurewebsites.net/x#frag"}, "data.specUrl"),
        ({"specUrl": "https://[contoso-invoicing/x"}, "data.specUrl"),  # urlsplit refuses it
        ({"specUrl": "https://\u2100.example/x"}, "data.specUrl"),  # NFKC makes it a/c
        ({"specUrl": "https://contoso-invoicing.azurewebsites.net:99999/x"}, "data.specUrl"),
        ({"specUrl": "https://contoso-invoicing.azurewebsites.net:x/y"}, "data.specUrl"),
        ({"specUrl": "https://contoso-invoicing.azurewebsites.net/" + "a" * 3000}, "data.specUrl"),
        ({"version": 2}, "data.version"),
        ({"commit": ""}, "data.commit"),
        ({"deploymentId": "x" * 300}, "data.deploymentId"),
        ({"commit": "abc\r\ninjected"}, "data.commit"),
        ({"version": "1.0\ud800"}, "data.version"),  # JSON's lone \ud800: no UTF-8 form
        ({"deploymentId": "\udfff"}, "data.deploymentId"),
        ({"specUrl": "https://contoso-invoicing.azurewebsites.net/\ud800"}, "data.specUrl"),
        ({"specURL": "https://contoso-invoicing.azurewebsites.net/x"}, "data"),
    ],
)
def test_bad_custom_data_is_malformed(data: dict[str, Any], field: str, sync_map: SyncMap) -> None:
    raw = deployed()
    raw["data"] = {"api": "contoso-invoicing", **data}
    if data.get("api", "") is None:
        del raw["data"]["api"]
    with pytest.raises(MalformedEvent) as caught:
        parse_api_deployed(normalize_event(raw))
    assert caught.value.field == field
    assert caught.value.where == "event ce-1"
    decision = decide(raw, sync_map)  # the planner acknowledges it with the reason
    assert decision.requests == []
    assert f"malformed data: {field}:" in (decision.ignored or "")


def test_custom_event_without_data(sync_map: SyncMap) -> None:
    raw = deployed()
    del raw["data"]
    assert "malformed data: data.api: is missing" in (decide(raw, sync_map).ignored or "")


def test_event_type_case_does_not_matter(sync_map: SyncMap) -> None:
    raw = deployed()
    raw["type"] = API_DEPLOYED.lower()
    assert len(decide(raw, sync_map).requests) == 2


# --- App Service --------------------------------------------------------------------------------


def test_restart_of_a_slot_matches_only_the_slot_trigger(sync_map: SyncMap) -> None:
    raw = system(
        "Microsoft.Web.AppUpdated",
        SITE,
        "/Microsoft.Web/sites/<site-name>/slots/staging",
        appEventTypeDetail={"action": "Restarted"},
    )
    decision = decide(raw, sync_map)
    assert [r.api for r in decision.requests] == ["web-app-staging"]
    assert decision.debounce_key == "site:" + SITE.lower() + "/slots/staging"
    assert decision.debounce_seconds == 120  # the API's default


def test_restart_with_slot_in_topic(sync_map: SyncMap) -> None:
    raw = system(
        "Microsoft.Web.AppUpdated",
        SITE + "/slots/Staging",
        "/Microsoft.Web/sites/<site-name>/slots/staging",
        appEventTypeDetail={"action": "restarted"},
    )
    assert [r.api for r in decide(raw, sync_map).requests] == ["web-app-staging"]


def test_swap_between_two_non_production_slots(sync_map: SyncMap) -> None:
    raw = system(
        "Microsoft.Web.SlotSwapCompleted",
        SITE,
        "/Microsoft.Web/sites/<site-name>",
        sourceSlot="qa",
        targetSlot="staging",
    )
    assert [r.api for r in decide(raw, sync_map).requests] == ["web-app-staging"]


@pytest.mark.parametrize(
    "detail", [{"action": "ChangedAppSettings"}, {"action": "Stopped"}, None, "Restarted", {}]
)
def test_app_updated_other_than_restart_is_ignored(detail: Any, sync_map: SyncMap) -> None:
    raw = system(
        "Microsoft.Web.AppUpdated",
        SITE,
        "/Microsoft.Web/sites/<site-name>",
        appEventTypeDetail=detail,
    )
    decision = decide(raw, sync_map)
    assert decision.requests == []
    assert "not a deployment signal" in (decision.ignored or "")


@pytest.mark.parametrize(
    "event_type", ["Microsoft.Web.SlotSwapFailed", "Microsoft.Web.SlotSwapStarted"]
)
def test_swap_not_completed_is_ignored(event_type: str, sync_map: SyncMap) -> None:
    decision = decide(system(event_type, SITE, "/Microsoft.Web/sites/<site-name>"), sync_map)
    assert decision.requests == []


# --- API Management -----------------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["/apis/myapi", "/apis/MYAPI", "/apis/myapi;rev=3"])
def test_apim_api_subjects(subject: str, sync_map: SyncMap) -> None:
    decision = decide(system("Microsoft.ApiManagement.APIUpdated", APIM, subject), sync_map)
    assert [r.api for r in decision.requests] == ["apim-myapi", "apim-myapi-mirror"]


@pytest.mark.parametrize(
    "subject",
    ["/apis/myapi/operations/get-x", "/apis/", "/products/myapi", "/apis/myapi/releases/1"],
)
def test_apim_subject_that_is_not_the_api_is_ignored(subject: str, sync_map: SyncMap) -> None:
    decision = decide(system("Microsoft.ApiManagement.APIUpdated", APIM, subject), sync_map)
    assert decision.requests == []
    assert "does not name an API" in (decision.ignored or "")


def test_apim_other_service_is_ignored(sync_map: SyncMap) -> None:
    other = APIM.replace("{your-APIM-instance}", "someone-else")
    decision = decide(system("Microsoft.ApiManagement.APIUpdated", other, "/apis/myapi"), sync_map)
    assert decision.requests == []
    assert "no API lists a matching 'apim:' trigger" in (decision.ignored or "")


# --- API Center ---------------------------------------------------------------------------------


CENTER_SOURCE = CENTER.rsplit("/", 1)[0]  # what the stored samples carry: ".../services"
DEFINITION = CENTER + "/workspaces/default/apis/{api_name}/versions/v/definitions/{definition_name}"


def test_api_center_other_definition_is_ignored(sync_map: SyncMap) -> None:
    subject = CENTER + "/workspaces/default/apis/{api_name}/versions/v1/definitions/graphql"
    decision = decide(
        system("Microsoft.ApiCenter.ApiDefinitionUpdated", CENTER_SOURCE, subject), sync_map
    )
    assert decision.requests == []
    assert "no API lists a matching 'apiCenter:' trigger" in (decision.ignored or "")


def test_api_center_subject_that_is_not_a_definition(sync_map: SyncMap) -> None:
    decision = decide(
        system(
            "Microsoft.ApiCenter.ApiDefinitionAdded", CENTER_SOURCE, CENTER + "/workspaces/default"
        ),
        sync_map,
    )
    assert "not an API Center definition" in (decision.ignored or "")


@pytest.mark.parametrize("source", [CENTER_SOURCE, CENTER, CENTER.upper()])
def test_an_api_center_event_from_its_service_plans(source: str, sync_map: SyncMap) -> None:
    decision = decide(
        system("Microsoft.ApiCenter.ApiDefinitionAdded", source, DEFINITION), sync_map
    )
    assert decision.requests, decision.ignored


@pytest.mark.parametrize(
    "source",
    [
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/topics/ci",
        "/x",
        CENTER.replace("{api_center_name}", "other"),
        "",
    ],
)
def test_an_api_center_subject_from_another_source_is_ignored(
    source: str, sync_map: SyncMap
) -> None:
    """Only the subject was checked: anyone who can publish to some other topic this app
    subscribes to could start a sync with it (found by review; low impact, it syncs the
    configured spec)."""
    decision = decide(
        system("Microsoft.ApiCenter.ApiDefinitionAdded", source, DEFINITION), sync_map
    )
    assert decision.requests == []
    assert "is not the API Center the subject names" in (decision.ignored or "")


# --- Blob Storage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"api": "CreateFile", "contentLength": 0}, "does not complete a blob"),
        ({"api": "PutBlob", "contentLength": 0}, "not a positive size"),
        ({"api": "PutBlob"}, "not a positive size"),
        ({"api": "PutBlob", "contentLength": True}, "not a positive size"),
        ({"api": "PutBlob", "contentLength": "12"}, "not a positive size"),
        ({"api": "CopyBlob", "contentLength": 12}, "does not complete a blob"),
    ],
)
def test_blob_created_without_content(data: dict[str, Any], reason: str, sync_map: SyncMap) -> None:
    subject = "/blobServices/default/containers/test-container/blobs/new-file.txt"
    decision = decide(system("Microsoft.Storage.BlobCreated", ACCOUNT, subject, **data), sync_map)
    assert decision.requests == []
    assert reason in (decision.ignored or "")


def test_blob_prefix_is_case_sensitive(sync_map: SyncMap) -> None:
    account = (
        ACCOUNT.replace("{subscription-id}", "faa080af-c1d8-40ad-9cce-e1a450ca5b57")
        .replace("Storage/providers", "jolov/providers")
        .replace("my-storage-account", "jolovstorage")
    )
    ok = "/blobServices/default/containers/gaocontainer/blobs/Template2.json"
    bad = "/blobServices/default/containers/gaocontainer/blobs/template2.json"
    put = {"api": "PutBlob", "contentLength": 10}
    assert decide(system("Microsoft.Storage.BlobCreated", account, ok, **put), sync_map).requests
    assert not decide(
        system("Microsoft.Storage.BlobCreated", account, bad, **put), sync_map
    ).requests


# --- hostile / unknown ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "topic", "subject", "data"),
    [
        ("Microsoft.Web.SlotSwapCompleted", SITE.replace("<site-name>", "attacker"), "/x", {}),
        ("Microsoft.Web.SlotSwapCompleted", "https://evil.example.com" + SITE, "/x", {}),
        ("Microsoft.Web.SlotSwapCompleted", SITE + "/../other", "/x", {}),
        ("Microsoft.ApiManagement.APICreated", APIM + "x", "/apis/myapi", {}),
        (
            "Microsoft.ApiCenter.ApiDefinitionAdded",
            "/x",
            CENTER.replace("{api_center_name}", "other")
            + "/workspaces/default/apis/{api_name}/versions/v/definitions/{definition_name}",
            {},
        ),
        (
            "Microsoft.Storage.BlobCreated",
            ACCOUNT.replace("my-storage-account", "evil"),
            "/blobServices/default/containers/test-container/blobs/new-file.txt",
            {"api": "PutBlob", "contentLength": 9},
        ),
        (
            "Microsoft.Storage.BlobCreated",
            ACCOUNT,
            "/blobServices/default/containers/other/blobs/new-file.txt",
            {"api": "PutBlob", "contentLength": 9},
        ),
        ("Contoso.Anything", "/anything", "/anything", {"api": "contoso-invoicing"}),
        ("", "", "", {}),
    ],
)
def test_events_outside_the_config_are_ignored(
    event_type: str, topic: str, subject: str, data: dict[str, Any], sync_map: SyncMap
) -> None:
    raw = system(event_type or "Unknown.Type", topic, subject, **data)
    decision = decide(raw, sync_map)
    assert decision.requests == []
    assert decision.ignored is not None
    assert raw["eventType"] in decision.ignored
    assert repr(topic or "(none)") in decision.ignored
