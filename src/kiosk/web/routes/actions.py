"""Self-service action routes (Port's paths and shapes): definitions, runs, approvals, reporting.

Members read actions and runs and start runs; admins change definitions and approve or decline
runs. Reporting on a run (PATCH, logs) is for the run's own pipeline, which presents the report
token kiosk sent it (``Authorization: Bearer krt_…``, good for that run alone), and for admins;
members are refused (403), even on runs they started (:func:`kiosk.web.auth.require_run_reporter`).

The ``/v1/actions/runs...`` routes are declared before ``/v1/actions/{identifier}`` so "runs" is
never taken for an action identifier (the model reserves it, too).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from kiosk.actions.model import ActionDoc
from kiosk.actions.runs import DEFAULT_LOGS_PAGE, DEFAULT_RUNS_PAGE, MAX_LOGS_PAGE, MAX_RUNS_PAGE, STATUSES, Runs
from kiosk.actions.service import Actions
from kiosk.auth.clients import Principal
from kiosk.web.auth import RunReporter, require_admin, require_member, require_run_reporter
from kiosk.web.bodies import documented_body, read_json
from kiosk.web.responses import API_ERRORS, FastJSONResponse, errors

router = APIRouter(prefix="/v1/actions", tags=["actions"], responses=API_ERRORS)

Cursor = Annotated[str | None, Query(alias="from", max_length=500, description="cursor from the previous page")]
Identifier = Annotated[str, Query(max_length=1000)]


class RunBody(BaseModel):
    """Start a run: the entity it acts on (DAY-2 / DELETE) and the action's inputs."""

    model_config = ConfigDict(extra="forbid")

    entity: str | None = Field(default=None, max_length=1000)
    properties: dict[str, Any] = Field(default_factory=dict)


class RunPatch(BaseModel):
    """Port's run update: what the pipeline reports."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["SUCCESS", "FAILURE", "IN_PROGRESS"] | None = None
    statusLabel: str | None = Field(default=None, max_length=1000)
    link: str | list[str] | None = None
    summary: str | None = None
    externalRunId: str | None = Field(default=None, max_length=500)


class RunLogBody(BaseModel):
    """A log line; ``terminationStatus`` also finishes the run."""

    model_config = ConfigDict(extra="forbid")

    message: str
    terminationStatus: Literal["SUCCESS", "FAILURE"] | None = None
    statusLabel: str | None = Field(default=None, max_length=1000)


class DeclineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=900)


def _actions(request: Request) -> Actions:
    actions: Actions = request.app.state.actions
    return actions


def _runs(request: Request) -> Runs:
    runs: Runs = request.app.state.runs
    return runs


async def _optional_json(request: Request) -> Any:
    """The JSON body, or None when there is none (decline's reason is optional)."""
    if not (await request.body()).strip():
        return None
    return await read_json(request)


# --------------------------------------------------------------------------------- runs


@router.get("/runs")
async def list_runs(
    request: Request,
    action: Identifier | None = None,
    blueprint: Identifier | None = None,
    entity: Identifier | None = None,
    status: Annotated[str | None, Query(max_length=50, description=f"one of {', '.join(STATUSES)}")] = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RUNS_PAGE)] = DEFAULT_RUNS_PAGE,
    cursor: Cursor = None,
    _: Principal = Depends(require_member),
) -> FastJSONResponse:
    runs, nxt = await run_in_threadpool(
        _runs(request).list_runs,
        action=action,
        blueprint=blueprint,
        entity=entity,
        status=status,
        active=active,
        limit=limit,
        cursor=cursor,
    )
    return FastJSONResponse({"ok": True, "runs": runs, "next": nxt})


@router.get("/runs/{run_id}", responses=errors(404))
async def get_run(run_id: str, request: Request, _: Principal = Depends(require_member)) -> FastJSONResponse:
    return FastJSONResponse({"ok": True, "run": await run_in_threadpool(_runs(request).get_run, run_id)})


@router.patch("/runs/{run_id}", openapi_extra=documented_body(RunPatch), responses=errors(403, 404, 409))
async def report_run(
    run_id: str, request: Request, who: RunReporter = Depends(require_run_reporter)
) -> FastJSONResponse:
    body = await read_json(request)
    run = await run_in_threadpool(_runs(request).report, run_id, body, actor=who.client_id)
    return FastJSONResponse({"ok": True, "run": run})


@router.post(
    "/runs/{run_id}/logs", status_code=201, openapi_extra=documented_body(RunLogBody), responses=errors(403, 404, 409)
)
async def add_run_log(
    run_id: str, request: Request, who: RunReporter = Depends(require_run_reporter)
) -> FastJSONResponse:
    body = await read_json(request)
    entry = await run_in_threadpool(_runs(request).add_log, run_id, body, actor=who.client_id)
    return FastJSONResponse({"ok": True, "runLog": entry}, status_code=201)


@router.get("/runs/{run_id}/logs", responses=errors(404))
async def list_run_logs(
    run_id: str,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LOGS_PAGE)] = DEFAULT_LOGS_PAGE,
    cursor: Cursor = None,
    _: Principal = Depends(require_member),
) -> FastJSONResponse:
    logs, nxt = await run_in_threadpool(_runs(request).list_logs, run_id, limit=limit, cursor=cursor)
    return FastJSONResponse({"ok": True, "runLogs": logs, "next": nxt})


@router.post("/runs/{run_id}/approve", responses=errors(403, 404, 409))
async def approve_run(run_id: str, request: Request, who: Principal = Depends(require_admin)) -> FastJSONResponse:
    run = await run_in_threadpool(_runs(request).approve, run_id, actor=who.client_id)
    return FastJSONResponse({"ok": True, "run": run})


@router.post(
    "/runs/{run_id}/decline",
    responses=errors(403, 404, 409),
    openapi_extra={
        **documented_body(DeclineBody, description="optional: an empty body declines without a reason"),
    },
)
async def decline_run(run_id: str, request: Request, who: Principal = Depends(require_admin)) -> FastJSONResponse:
    body = await _optional_json(request)
    run = await run_in_threadpool(_runs(request).decline, run_id, body, actor=who.client_id)
    return FastJSONResponse({"ok": True, "run": run})


# --------------------------------------------------------------------------------- actions


@router.get("")
async def list_actions(
    request: Request, blueprint: Identifier | None = None, _: Principal = Depends(require_member)
) -> FastJSONResponse:
    actions = await run_in_threadpool(_actions(request).list_actions, blueprint=blueprint)
    return FastJSONResponse({"ok": True, "actions": actions})


@router.post("", status_code=201, openapi_extra=documented_body(ActionDoc), responses=errors(403, 404, 409))
async def create_action(request: Request, who: Principal = Depends(require_admin)) -> FastJSONResponse:
    body = await read_json(request)
    action = await run_in_threadpool(_actions(request).create_action, body, actor=who.client_id)
    return FastJSONResponse({"ok": True, "action": action}, status_code=201)


@router.get("/{identifier}", responses=errors(404))
async def get_action(identifier: str, request: Request, _: Principal = Depends(require_member)) -> FastJSONResponse:
    return FastJSONResponse({"ok": True, "action": await run_in_threadpool(_actions(request).get_action, identifier)})


@router.put("/{identifier}", openapi_extra=documented_body(ActionDoc), responses=errors(403, 404, 409))
async def replace_action(
    identifier: str, request: Request, who: Principal = Depends(require_admin)
) -> FastJSONResponse:
    body = await read_json(request)
    action = await run_in_threadpool(_actions(request).replace_action, identifier, body, actor=who.client_id)
    return FastJSONResponse({"ok": True, "action": action})


@router.delete("/{identifier}", responses=errors(403, 404, 409))
async def delete_action(identifier: str, request: Request, _: Principal = Depends(require_admin)) -> FastJSONResponse:
    await run_in_threadpool(_actions(request).delete_action, identifier)
    return FastJSONResponse({"ok": True})


@router.post(
    "/{identifier}/runs", status_code=201, openapi_extra=documented_body(RunBody), responses=errors(403, 404, 409)
)
async def start_run(identifier: str, request: Request, who: Principal = Depends(require_member)) -> FastJSONResponse:
    body = await read_json(request)
    run = await run_in_threadpool(_runs(request).start_run, identifier, body, actor=who.client_id)
    return FastJSONResponse({"ok": True, "run": run}, status_code=201)
