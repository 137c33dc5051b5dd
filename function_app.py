"""Azure Functions entry points: each trigger converts its input and calls ``sync``.

Nothing here reads settings or does I/O at import time; the service is wired on first use.
Event Grid hands CloudEvents 1.0 in as ``func.CloudEvent`` (azure-functions >= 1.25; on Python
3.11 Azure needs PYTHON_ISOLATE_WORKER_DEPENDENCIES=1) and Event Grid schema events as
``func.EventGridEvent``; both go through the same planner.
"""

from __future__ import annotations

import logging

import azure.functions as func

from sync import triggers

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("function_app")


def _request(req: func.HttpRequest) -> triggers.ApiRequest:
    return triggers.ApiRequest(
        method=req.method,
        url=req.url,
        body=req.get_body() or b"",
        headers={k.lower(): v for k, v in req.headers.items()},
        query=dict(req.params),
        route=dict(req.route_params),
    )


def _response(resp: triggers.ApiResponse) -> func.HttpResponse:
    return func.HttpResponse(
        resp.json_bytes(),
        status_code=resp.status,
        headers=resp.headers,
        mimetype="application/json",
    )


@app.function_name("plan_event")
@app.event_grid_trigger(arg_name="event")
def plan_event(event: func.EventGridEvent) -> None:
    """An API was (maybe) deployed: match the event and enqueue work within Event Grid's 30 s."""
    triggers.on_event(event)


@app.function_name("work_item")
@app.queue_trigger(arg_name="msg", queue_name="%SYNC_WORK_QUEUE%", connection="AzureWebJobsStorage")
def work_item(msg: func.QueueMessage) -> None:
    """One (API, target) sync; transient errors re-raise so the queue retries, then poisons."""
    triggers.on_work_item(msg.get_body(), dequeue_count=msg.dequeue_count or 1)


@app.function_name("poison_item")
@app.queue_trigger(
    arg_name="msg", queue_name="%SYNC_WORK_QUEUE%-poison", connection="AzureWebJobsStorage"
)
def poison_item(msg: func.QueueMessage) -> None:
    """A work item that failed every retry: record the failure and notify."""
    triggers.on_poison_item(msg.get_body(), dequeue_count=msg.dequeue_count or 1)


@app.function_name("drift_check")
@app.timer_trigger(arg_name="timer", schedule="%SYNC_DRIFT_SCHEDULE%", run_on_startup=False)
def drift_check(timer: func.TimerRequest) -> None:
    """The safety net for deployments nobody announced and connectors edited by hand."""
    triggers.on_drift_timer(past_due=timer.past_due)


@app.function_name("sync_api")
@app.route(route="sync", methods=["POST", "OPTIONS"])
def sync_api(req: func.HttpRequest) -> func.HttpResponse:
    return _response(triggers.http(triggers.post_sync_route, _request(req)))


@app.function_name("health")
@app.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    return _response(triggers.health_route(_request(req)))


@app.function_name("run_status")
@app.route(route="runs/{id}", methods=["GET"])
def run_status(req: func.HttpRequest) -> func.HttpResponse:
    return _response(triggers.http(triggers.get_run_route, _request(req)))


@app.function_name("api_versions")
@app.route(route="apis/{api}/versions", methods=["GET"])
def api_versions(req: func.HttpRequest) -> func.HttpResponse:
    return _response(triggers.http(triggers.list_versions_route, _request(req)))


@app.function_name("api_version")
@app.route(route="apis/{api}/versions/{n}", methods=["GET"])
def api_version(req: func.HttpRequest) -> func.HttpResponse:
    return _response(triggers.http(triggers.get_version_route, _request(req)))


@app.function_name("api_rollback")
@app.route(route="apis/{api}/rollback", methods=["POST"])
def api_rollback(req: func.HttpRequest) -> func.HttpResponse:
    """Re-apply a recorded version and hold the targets (queued: 202 + run id)."""
    return _response(triggers.http(triggers.rollback_route, _request(req)))


@app.function_name("api_release")
@app.route(route="apis/{api}/release", methods=["POST"])
def api_release(req: func.HttpRequest) -> func.HttpResponse:
    """Clear a rollback's hold so syncs apply again."""
    return _response(triggers.http(triggers.release_route, _request(req)))
