"""Events that mean "an API was deployed": read them, answer handshakes, match them to APIs.

Pure functions, no I/O: the planner trigger calls ``from_host_event`` (Functions trigger) or
``events_from_body`` (HTTP webhook), answers handshakes, then asks ``plan_requests``.
"""

from sync.events.custom import API_DEPLOYED, ApiDeployed, parse_api_deployed
from sync.events.handshake import (
    SUBSCRIPTION_VALIDATION,
    is_cloudevents_abuse_protection,
    validation_response,
)
from sync.events.match import Decision, plan_requests
from sync.events.model import Event, MalformedEvent
from sync.events.parse import (
    MAX_BODY_BYTES,
    MAX_EVENTS,
    cloud_event_dict,
    event_grid_dict,
    events_from_body,
    from_host_event,
    host_event_dict,
    normalize_event,
)

__all__ = [
    "API_DEPLOYED",
    "MAX_BODY_BYTES",
    "MAX_EVENTS",
    "SUBSCRIPTION_VALIDATION",
    "ApiDeployed",
    "Decision",
    "Event",
    "MalformedEvent",
    "cloud_event_dict",
    "event_grid_dict",
    "events_from_body",
    "from_host_event",
    "host_event_dict",
    "is_cloudevents_abuse_protection",
    "normalize_event",
    "parse_api_deployed",
    "plan_requests",
    "validation_response",
]
