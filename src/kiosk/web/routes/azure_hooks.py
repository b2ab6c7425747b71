"""Where Azure DevOps posts its service-hook events: ``POST /hooks/azure-devops/{org}``.

Azure DevOps signs nothing; the subscription kiosk creates carries a user name and password that
Azure sends as basic auth, and every call is checked against them in constant time. A call
without credentials, or for an org that has none configured, is refused — there is no path that
skips the check (the reference system's fault: it skipped authentication when the header was
missing).

A run-state event for a completed run finishes the kiosk action run whose pipeline run name it
carries (``kiosk-<run id>``). The change is committed before the 200 goes out, so an event Azure
sees acknowledged is never lost. Events of other types are acknowledged and ignored (202).
"""

from __future__ import annotations

import functools
import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kiosk.actions.runs import finish_run_from_pipeline
from kiosk.azure.run_events import EVENT_TYPE, parse_run_state_event
from kiosk.config.resolved import ResolvedSecrets
from kiosk.errors import NotFound, Unauthorized
from kiosk.web.auth import check_basic_auth
from kiosk.web.bodies import read_json
from kiosk.web.responses import FastJSONResponse, errors

router = APIRouter(tags=["integrations"], responses=errors(400, 401, 404, 413, 422, 503))
log = logging.getLogger("kiosk.azure")


def _check_auth(request: Request, org: str) -> None:
    secrets: ResolvedSecrets = request.app.state.config_secrets
    expected = secrets.hook_auth.get(org)
    if expected is None:
        raise NotFound(f"no Azure DevOps organisation {org!r} takes service-hook events here", code="unknown_org")
    username, password = expected
    if not check_basic_auth(request.headers.get("authorization", ""), username, password.reveal()):
        raise Unauthorized(
            "service-hook events need the basic auth configured for this organisation",
            code="unauthorized",
            challenge='Basic realm="kiosk service hooks", charset="UTF-8"',
        )


@router.post(
    "/hooks/azure-devops/{org}",
    status_code=200,
    responses={202: {"description": "an event type kiosk does not handle: acknowledged, ignored"}},
    openapi_extra={"security": [{"basic": []}]},
)
async def azure_devops_event(org: str, request: Request) -> FastJSONResponse:
    """A service-hook event from Azure DevOps (basic auth required)."""
    _check_auth(request, org)
    body = await read_json(request)
    if not isinstance(body, dict) or body.get("eventType") != EVENT_TYPE:
        kind = body.get("eventType") if isinstance(body, dict) else None
        return FastJSONResponse({"ok": True, "ignored": f"event type {kind!r} is not handled"}, status_code=202)
    event = parse_run_state_event(body)
    status = event.finished_status
    if status is None:
        return FastJSONResponse({"ok": True, "matched": False, "reason": f"run is {event.state}, not completed"})
    changed = await run_in_threadpool(
        functools.partial(
            finish_run_from_pipeline,
            request.app.state.db,
            event.run_name,
            status,
            event.web_url,
            event.label(),
            listener=request.app.state.automations,
        )
    )
    if changed:
        log.info("run finished by a run-state event", extra={"pipeline_run": event.run_name, "status": status})
    return FastJSONResponse({"ok": True, "matched": changed, "runName": event.run_name, "status": status})
