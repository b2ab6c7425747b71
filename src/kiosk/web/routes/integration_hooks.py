"""An integration's live events: where Azure DevOps posts them, and what was received.

``POST /hooks/integrations/{identifier}`` takes the service-hook events of the integration
``identifier`` (the subscriptions kiosk makes point here). Every call must carry the basic auth
of the integration — user ``webhookAuthUsername``, password ``webhookSecret`` — both compared in
constant time; a call without it, or with the wrong one, is a 401, and an integration without a
``webhookSecret`` refuses every call (403). Nothing is accepted unauthenticated: the reference
integration accepted any request without an ``Authorization`` header, and answered errors with
200, so Azure never learnt of them.

An accepted event is stored as a job of the durable queue (:mod:`kiosk.ingest.events_queue`)
and committed before the 200 goes out, so an event Azure sees acknowledged is never lost. A
redelivery (same ``id``, or same ``notificationId``) is recognised by the job's dedupe key and
answered ``{"ok": true, "duplicate": true}`` without a second job. Bad input is a 4xx JSON error
naming the problem, as everywhere in kiosk: not JSON, not an object, nested too deep, too large,
the wrong content type, or a field missing (``eventType``, ``publisherId``, ``resource``, ``id``).

``GET /v1/integration/{identifier}/events`` (any authenticated client) lists the received events,
newest first — type, the object they are about, when, and their state (pending, processing,
processed, failed) read from the job rows — with the counts by state, what this process
received, refused and recognised as duplicates since it started, the lag (seconds since the oldest
event not yet processed arrived) and what this process's processor
(:mod:`kiosk.ingest.live.processor`) processed, skipped, retried and failed, with its last errors
(also in ``/metrics``).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from kiosk.auth.clients import Principal
from kiosk.errors import BadRequest, NotFound, ValidationFailed
from kiosk.ingest.config import IDENTIFIER_PATTERN, Integration
from kiosk.ingest.events import MAX_EVENT_ID, EventRejected, ReceivedEvent, events_path, parse_event
from kiosk.ingest.events_queue import MAX_EVENTS_PAGE, MAX_JOB_ID, IncomingEvent, event_counts, recent_events
from kiosk.ingest.live.visibility import event_lag
from kiosk.runtime.integrations import IntegrationRunner
from kiosk.store.group_commit import WriterStopped
from kiosk.store.queue import utcnow
from kiosk.web.auth import check_basic_auth, require_member
from kiosk.web.bodies import documented_body, read_json
from kiosk.web.metrics import Metrics
from kiosk.web.responses import API_ERRORS, FastJSONResponse, error_response, errors

__all__ = ["ServiceHookEvent", "router"]

log = logging.getLogger("kiosk.integrations")

router = APIRouter(tags=["integrations"])

IntegrationId = Annotated[
    str, Path(pattern=IDENTIFIER_PATTERN, description="The integration's identifier.", examples=["ado"])
]

#: The challenge of a 401: the credentials are the integration's basic auth, not a bearer token.
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="kiosk integration events", charset="UTF-8"'}


class ServiceHookEvent(BaseModel):
    """An Azure DevOps service-hook event (the envelope Azure posts; it carries more fields, kept
    too). Documentation only: the route reads the body itself
    (:func:`kiosk.ingest.events.parse_event`) and stores it whole."""

    id: str | int | None = Field(default=None, description="The event's id (one per event, whatever the subscription).")
    subscriptionId: str | int | None = None
    notificationId: str | int | None = Field(
        default=None, description="The delivery's number within its subscription; the event's id when `id` is absent."
    )
    eventType: str = Field(min_length=1, max_length=MAX_EVENT_ID, examples=["workitem.updated"])
    publisherId: str = Field(min_length=1, max_length=MAX_EVENT_ID, examples=["tfs"])
    resource: dict[str, Any] = Field(description="The object the event is about.")
    resourceContainers: dict[str, Any] | None = None


def _integration(request: Request, identifier: str) -> Integration:
    runner: IntegrationRunner = request.app.state.integrations
    found = runner.integrations.get(identifier)
    if found is None:
        raise NotFound(f"integration {identifier!r} is not configured", code="integration_not_found")
    return found


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def _read_event(request: Request) -> ReceivedEvent:
    """The body as a checked envelope: a 400 for what is not a JSON object (read_json's limits), a
    422 naming the field for an object that is not a service-hook event."""
    body = await read_json(request)
    try:
        return parse_event(body)
    except EventRejected as exc:
        if exc.field == "body":
            raise BadRequest(f"the request body {exc.message}", code="invalid_event") from None
        raise ValidationFailed(
            f"{exc.field}: {exc.message}", code="invalid_event", details=[{"field": exc.field, "message": exc.message}]
        ) from None


@router.post(
    "/hooks/integrations/{identifier}",
    status_code=200,
    responses=errors(400, 401, 403, 404, 413, 422, 503),
    openapi_extra={
        **documented_body(ServiceHookEvent, description="A service-hook event, as Azure DevOps posts it."),
        "security": [{"basic": []}],
    },
)
async def integration_event(identifier: IntegrationId, request: Request) -> FastJSONResponse:
    """A service-hook event of the integration (basic auth: ``webhookAuthUsername`` / ``webhookSecret``).

    Stored durably before the answer; a redelivery of a stored event answers ``duplicate: true``.
    """
    integration = _integration(request, identifier)
    metrics = _metrics(request)
    secret = integration.webhook_secret
    if secret is None:
        metrics.integration_events.refused(identifier, "no_secret")
        return error_response(
            403,
            "webhook_secret_not_set",
            f"integration {identifier!r} has no webhookSecret configured, so it accepts no events: "
            "set config.webhookSecret (and webhookAuthUsername) in kiosk.yaml",
        )
    username = integration.spec.config.webhookAuthUsername
    if not check_basic_auth(request.headers.get("authorization", ""), username, secret.reveal()):
        metrics.integration_events.refused(identifier, "auth")
        return error_response(
            401,
            "unauthorized",
            f"events of integration {identifier!r} need its basic auth (webhookAuthUsername and webhookSecret)",
            headers=_CHALLENGE,
        )
    try:
        event = await _read_event(request)
    except (BadRequest, ValidationFailed):
        metrics.integration_events.refused(identifier, "malformed")
        raise
    runner: IntegrationRunner = request.app.state.integrations
    try:
        # Group commit: stored (with the events arriving at the same moment) before the answer.
        stored = await runner.event_writer.store(IncomingEvent(identifier, event, utcnow()))
    except WriterStopped:
        return error_response(503, "shutting_down", "kiosk is stopping; the event was not stored, send it again")
    job_id = stored.job_id
    if job_id is None:
        metrics.integration_events.received(identifier, "duplicate")
        log.info(
            "event redelivered, already stored",
            extra={"integration": identifier, "event_type": event.event_type, "event_id": event.identity},
        )
        return FastJSONResponse({"ok": True, "duplicate": True})
    metrics.integration_events.received(identifier, "stored")
    return FastJSONResponse(
        {
            "ok": True,
            "duplicate": False,
            "event": {
                "id": job_id,
                "eventId": event.identity,
                "eventType": event.event_type,
                "objectKey": event.object_key,
                "known": event.known,
            },
        }
    )


@router.get("/v1/integration/{identifier}/events", responses={**API_ERRORS, **errors(404)})
async def integration_events(
    identifier: IntegrationId,
    request: Request,
    _: Principal = Depends(require_member),
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE, description="Events per page.")] = 50,
    cursor: Annotated[
        int | None,
        Query(alias="from", ge=1, le=MAX_JOB_ID, description="The ``next`` of the previous page: older events."),
    ] = None,
) -> FastJSONResponse:
    """The integration's received events, newest first: type, object, received time, state; the
    stored events by state; what this process received, refused and recognised as duplicates; the
    lag, and what this process's event processor did (``processedByThisProcess``, null when the
    integration's listener takes no events)."""
    _integration(request, identifier)

    def read() -> tuple[list[dict[str, Any]], int | None, dict[str, int], float]:
        with request.app.state.db.connect() as conn:
            events, after = recent_events(conn, identifier, limit=limit, before=cursor)
            counts = event_counts(conn, [identifier])[identifier]
        lag = event_lag(request.app.state.db, [identifier])[identifier]
        return [e.to_json() for e in events], after, dict(counts), lag

    events, after, counts, lag = await run_in_threadpool(read)
    runner: IntegrationRunner = request.app.state.integrations
    processor = runner.event_processors.get(identifier)
    return FastJSONResponse(
        {
            "ok": True,
            "integration": identifier,
            "path": events_path(identifier),
            "counts": counts,
            "receivedByThisProcess": _metrics(request).integration_events.counts(identifier),
            "lagSeconds": lag,
            "processing": processor is not None,
            "processedByThisProcess": None if processor is None else processor.stats.to_json(),
            "events": events,
            "next": after,
        }
    )
