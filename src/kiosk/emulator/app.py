"""The emulator's HTTP server: Azure DevOps' routes (trigger, Pipelines, Runs, Build) and its own.

Azure's routes answer with Azure's shapes and status codes (:mod:`kiosk.emulator.shapes`,
:mod:`kiosk.emulator.errors`); every error, including a malformed request or an unknown route, is
Azure's error JSON. The emulator's own routes live under ``/_emulator/``: the trigger records
("why no run"), registering connections and pipelines at run time, finishing a run by hand when
runs are not executed, and a followable text stream of a run's log.

The trigger route is the hot path (≥ 1,000 calls/s is a target): it reads the body itself, with
the size limit enforced while reading, and does no dependency injection.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Final

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from kiosk.emulator.errors import AzureError
from kiosk.emulator.executor import RunExecutor
from kiosk.emulator.hooks import ServiceHooks
from kiosk.emulator.models import Run
from kiosk.emulator.service import Emulator, check_api_version
from kiosk.emulator.shapes import (
    build_json,
    log_json,
    pipeline_json,
    project_json,
    run_json,
    timeline_json,
    trigger_json,
    trigger_url,
)
from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.runner import Variable
from kiosk.pipelines.yaml_source import resolve_path
from kiosk.web.responses import FastJSONResponse

__all__ = ["create_emulator_app"]

_PUBLIC: Final = re.compile(r"^/[^/]+/_apis/public/|^/_emulator/healthz$")
_MAX_API_BODY: Final = 16 * 1024 * 1024

# Module level: FastAPI resolves string annotations against the module's globals.
Version = Annotated[str | None, Query(alias="api-version")]
Expand = Annotated[str | None, Query(alias="$expand")]


def _azure(exc: AzureError) -> FastJSONResponse:
    return FastJSONResponse(exc.body(), status_code=exc.status)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` (chunked bodies too)."""
    declared = request.headers.get("content-length")
    too_large = AzureError(413, "RequestTooLargeException", f"The request body is larger than {limit} bytes.")
    if declared is not None:
        if not declared.isdigit():
            raise AzureError(400, "ArgumentException", "Content-Length is not a number.")
        if int(declared) > limit:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request, model: type[BaseModel] | None = None) -> Any:
    raw = await _read_body(request, _MAX_API_BODY)
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise AzureError(400, "InvalidPayloadException", f"The request body is not valid JSON: {exc}") from None
    if model is None:
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise AzureError(400, "ArgumentException", f"{where}: {first['msg']}") from None


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, hide_input_in_errors=True)


class _QueueVariable(_Body):
    value: str = ""
    is_secret: bool = Field(default=False, alias="isSecret")


class _SelfRepository(_Body):
    ref_name: str | None = Field(default=None, alias="refName")


class _Resources(_Body):
    repositories: dict[str, _SelfRepository] = Field(default_factory=dict)


class RunRequest(_Body):
    """``RunPipelineParameters`` of the Runs API."""

    preview_run: bool = Field(default=False, alias="previewRun")
    yaml_override: str | None = Field(default=None, alias="yamlOverride")
    template_parameters: dict[str, Any] = Field(default_factory=dict, alias="templateParameters")
    variables: dict[str, _QueueVariable] = Field(default_factory=dict)
    resources: _Resources = Field(default_factory=_Resources)
    stages_to_skip: list[str] = Field(default_factory=list, alias="stagesToSkip")


class ConnectionRequest(_Body):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True)
    name: str = Field(min_length=1, max_length=64)
    webhook_name: str = Field(alias="webhookName", min_length=1, max_length=256)
    secret: str | None = Field(default=None, min_length=1)
    header: str | None = Field(default=None, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")


class PipelineRequest(_Body):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")
    yaml: str = Field(min_length=1)
    path: str = "azure-pipelines.yml"
    files: dict[str, str] = Field(default_factory=dict, description="Other repository files (templates, scripts).")
    folder: str = "\\"
    default_branch: str = Field(default="refs/heads/main", alias="defaultBranch", pattern=r"^refs/\S+$")
    variables: dict[str, _QueueVariable] = Field(default_factory=dict)


class CompleteRequest(_Body):
    result: str


class BuildUpdate(_Body):
    status: str | None = None


def _authorized(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def create_emulator_app(
    emulator: Emulator,
    *,
    work_dir: Path,
    executor: RunExecutor | None = None,
    hooks: ServiceHooks | None = None,
    max_body_bytes: int = 4 * 1024 * 1024,
    access_token: str | None = None,
) -> FastAPI:
    """The emulator's ASGI app. ``executor`` None: runs are queued, never executed."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if executor is not None:
                await asyncio.to_thread(executor.close)
            if hooks is not None:
                await asyncio.to_thread(hooks.close)

    app = FastAPI(title="kiosk Azure DevOps emulator", lifespan=lifespan, docs_url="/_emulator/docs", redoc_url=None)
    emulator.set_queue(executor.submit if executor is not None else None)
    base = emulator.options.base_url

    @app.exception_handler(AzureError)
    async def azure_error(_: Request, exc: AzureError) -> Response:
        return _azure(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _azure(AzureError(400, "ArgumentException", f"{where}: {first.get('msg', 'invalid')}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        key = {404: "NotFoundException", 405: "MethodNotAllowedException"}.get(exc.status_code, "HttpException")
        return _azure(AzureError(exc.status_code, key, str(exc.detail)))

    if access_token is not None:

        @app.middleware("http")
        async def require_token(request: Request, call_next: Callable[[Request], Any]) -> Response:
            if _PUBLIC.match(request.url.path) or _authorized(request, access_token):
                response: Response = await call_next(request)
                return response
            return _azure(AzureError(401, "UnauthorizedRequestException", "TF400813: The user is not authorized."))

    def _versioned(api_version: str | None) -> None:
        check_api_version(api_version)

    # ------------------------------------------------------------------ the trigger

    @app.post("/{org}/_apis/public/distributedtask/webhooks/{webhook_name}", include_in_schema=True)
    async def trigger(org: str, webhook_name: str, request: Request) -> Response:
        """Azure's incoming-webhook endpoint. 200 with an empty body whether or not a run was queued."""
        check_api_version(request.query_params.get("api-version"))
        emulator.org_name(org)
        body = await _read_body(request, max_body_bytes)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}
        record = emulator.trigger(org, webhook_name, headers, body)
        queued = ",".join(str(o.run_id) for o in record.outcomes if o.run_id is not None)
        return Response(status_code=200, headers={"X-Kiosk-Trigger-Id": str(record.id), "X-Kiosk-Queued-Runs": queued})

    @app.api_route(
        "/{org}/_apis/public/distributedtask/webhooks/{webhook_name}",
        methods=["GET", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def trigger_wrong_method(org: str, webhook_name: str, request: Request) -> Response:
        raise AzureError(405, "MethodNotAllowedException", f"The requested resource does not support {request.method}.")

    # ------------------------------------------------------------------ Azure REST (read side + Runs API)

    @app.get("/{org}/_apis/projects")
    def projects(org: str, api_version: Version = None) -> Response:
        _versioned(api_version)
        items = [project_json(base, p) for p in emulator.projects(org)]
        return FastJSONResponse({"count": len(items), "value": items})

    @app.get("/{org}/{project}/_apis/pipelines")
    def pipelines(org: str, project: str, api_version: Version = None) -> Response:
        _versioned(api_version)
        items = [pipeline_json(base, p) for p in emulator.pipelines(org, project)]
        return FastJSONResponse({"count": len(items), "value": items})

    @app.get("/{org}/{project}/_apis/pipelines/{pipeline_id}")
    def pipeline(org: str, project: str, pipeline_id: int, api_version: Version = None) -> Response:
        _versioned(api_version)
        return FastJSONResponse(pipeline_json(base, emulator.pipeline(org, project, pipeline_id)))

    @app.post("/{org}/{project}/_apis/pipelines/{pipeline_id}/runs")
    async def run_pipeline(
        org: str, project: str, pipeline_id: int, request: Request, api_version: Version = None
    ) -> Response:
        """Queue a run, or with ``previewRun`` return only the expanded YAML (``finalYaml``)."""
        _versioned(api_version)
        target = emulator.pipeline(org, project, pipeline_id)
        body: RunRequest = await _json(request, RunRequest)
        variables = {name: Variable(v.value, v.is_secret) for name, v in body.variables.items()}
        if body.preview_run:
            final = await asyncio.to_thread(
                emulator.preview,
                target,
                yaml_override=body.yaml_override,
                template_parameters=body.template_parameters,
                variables=variables,
                stages_to_skip=body.stages_to_skip,
            )
            reference = pipeline_json(base, target)
            shown = {k: reference[k] for k in ("url", "id", "revision", "name", "folder")}
            return FastJSONResponse({"finalYaml": final, "id": -1, "name": None, "state": "unknown", "pipeline": shown})
        if body.yaml_override is not None:
            raise AzureError(400, "PipelineValidationException", "yamlOverride is only allowed with previewRun: true.")
        run = await asyncio.to_thread(
            emulator.queue_manual_run,
            target,
            template_parameters=body.template_parameters,
            variables=variables,
            stages_to_skip=body.stages_to_skip,
        )
        return FastJSONResponse(run_json(base, run))

    @app.get("/{org}/{project}/_apis/pipelines/{pipeline_id}/runs")
    def list_runs(org: str, project: str, pipeline_id: int, api_version: Version = None) -> Response:
        _versioned(api_version)
        emulator.pipeline(org, project, pipeline_id)
        items = [run_json(base, r) for r in emulator.runs(org, project, pipeline_id)]
        return FastJSONResponse({"count": len(items), "value": items})

    def _pipeline_run(org: str, project: str, pipeline_id: int, run_id: int) -> Run:
        found = emulator.run(org, run_id, project)
        if found.pipeline.id != pipeline_id:
            raise AzureError(404, "RunNotFoundException", f"Run {run_id} of pipeline {pipeline_id} was not found.")
        return found

    @app.get("/{org}/{project}/_apis/pipelines/{pipeline_id}/runs/{run_id}")
    def get_run(org: str, project: str, pipeline_id: int, run_id: int, api_version: Version = None) -> Response:
        _versioned(api_version)
        found = _pipeline_run(org, project, pipeline_id, run_id)
        return FastJSONResponse(run_json(base, found, final_yaml=emulator.final_yaml(found)))

    @app.get("/{org}/{project}/_apis/pipelines/{pipeline_id}/runs/{run_id}/logs")
    def list_logs(
        org: str,
        project: str,
        pipeline_id: int,
        run_id: int,
        api_version: Version = None,
        expand: Expand = None,
    ) -> Response:
        _versioned(api_version)
        found = _pipeline_run(org, project, pipeline_id, run_id)
        signed = (expand or "").lower() == "signedcontent"
        logs = [log_json(base, found, log_id, signed=signed) for log_id in sorted(found.logs)]
        owner = found.pipeline.project
        url = f"{base}/{owner.org}/{owner.id}/_apis/pipelines/{pipeline_id}/runs/{run_id}/logs"
        return FastJSONResponse({"logs": logs, "url": url})

    @app.get("/{org}/{project}/_apis/pipelines/{pipeline_id}/runs/{run_id}/logs/{log_id}")
    def get_log(
        org: str,
        project: str,
        pipeline_id: int,
        run_id: int,
        log_id: int,
        api_version: Version = None,
        expand: Expand = None,
    ) -> Response:
        _versioned(api_version)
        found = _pipeline_run(org, project, pipeline_id, run_id)
        if log_id not in found.logs:
            raise AzureError(404, "LogNotFoundException", f"Log {log_id} of run {run_id} was not found.")
        return FastJSONResponse(log_json(base, found, log_id, signed=(expand or "").lower() == "signedcontent"))

    @app.get("/{org}/{project}/_apis/build/builds/{build_id}")
    def get_build(org: str, project: str, build_id: int, api_version: Version = None) -> Response:
        _versioned(api_version)
        return FastJSONResponse(build_json(base, emulator.run(org, build_id, project)))

    @app.patch("/{org}/{project}/_apis/build/builds/{build_id}")
    async def update_build(
        org: str, project: str, build_id: int, request: Request, api_version: Version = None
    ) -> Response:
        """Only cancellation (``{"status": "cancelling"}``), the one update clients send."""
        _versioned(api_version)
        found = emulator.run(org, build_id, project)
        body: BuildUpdate = await _json(request, BuildUpdate)
        if (body.status or "").lower() not in ("cancelling", "canceling"):
            raise AzureError(400, "ArgumentException", 'only {"status": "cancelling"} is supported')
        emulator.cancel_run(found)
        return FastJSONResponse(build_json(base, found))

    @app.get("/{org}/{project}/_apis/build/builds/{build_id}/timeline")
    def get_timeline(org: str, project: str, build_id: int, api_version: Version = None) -> Response:
        _versioned(api_version)
        return FastJSONResponse(timeline_json(base, emulator.run(org, build_id, project)))

    @app.get("/{org}/{project}/_apis/build/builds/{build_id}/logs")
    def build_logs(org: str, project: str, build_id: int, api_version: Version = None) -> Response:
        _versioned(api_version)
        found = emulator.run(org, build_id, project)
        items = [log_json(base, found, log_id) for log_id in sorted(found.logs)]
        return FastJSONResponse({"count": len(items), "value": items})

    @app.get("/{org}/{project}/_apis/build/builds/{build_id}/logs/{log_id}")
    def build_log(org: str, project: str, build_id: int, log_id: int, api_version: Version = None) -> Response:
        """A log's text, one timestamped line per line (what Azure serves for ``Accept: text/plain``)."""
        _versioned(api_version)
        found = emulator.run(org, build_id, project)
        if log_id not in found.logs:
            raise AzureError(404, "LogNotFoundException", f"Log {log_id} of build {build_id} was not found.")
        return PlainTextResponse("".join(line + "\n" for line in list(found.logs[log_id])))

    # ------------------------------------------------------------------ service hooks

    def _hooks() -> ServiceHooks:
        if hooks is None:
            raise AzureError(404, "NotFoundException", "service hooks are not enabled on this emulator")
        return hooks

    @app.post("/{org}/_apis/hooks/subscriptions")
    async def create_subscription(org: str, request: Request, api_version: Version = None) -> Response:
        """Create a service-hook subscription (consumer webHooks / httpRequest)."""
        _versioned(api_version)
        name = emulator.org_name(org)
        body = await _json(request)
        if not isinstance(body, dict):
            raise AzureError(400, "ArgumentException", "the subscription must be a JSON object")
        return FastJSONResponse(_hooks().create(name, body).json(base))

    @app.get("/{org}/_apis/hooks/subscriptions")
    def list_subscriptions(org: str, api_version: Version = None) -> Response:
        _versioned(api_version)
        items = [s.json(base) for s in _hooks().for_org(emulator.org_name(org))]
        return FastJSONResponse({"count": len(items), "value": items})

    @app.get("/{org}/_apis/hooks/subscriptions/{subscription_id}")
    def get_subscription(org: str, subscription_id: str, api_version: Version = None) -> Response:
        _versioned(api_version)
        return FastJSONResponse(_hooks().get(emulator.org_name(org), subscription_id).json(base))

    @app.delete("/{org}/_apis/hooks/subscriptions/{subscription_id}")
    def delete_subscription(org: str, subscription_id: str, api_version: Version = None) -> Response:
        _versioned(api_version)
        _hooks().delete(emulator.org_name(org), subscription_id)
        return Response(status_code=204)

    @app.get("/{org}/_apis/hooks/subscriptions/{subscription_id}/notifications")
    def notifications(org: str, subscription_id: str, api_version: Version = None) -> Response:
        _versioned(api_version)
        items = _hooks().notifications(emulator.org_name(org), subscription_id)
        return FastJSONResponse({"count": len(items), "value": items})

    # ------------------------------------------------------------------ the emulator's own routes

    @app.get("/_emulator/healthz")
    def healthz() -> Response:
        return FastJSONResponse({"ok": True})

    @app.get("/_emulator/triggers")
    def triggers(
        org: str | None = None,
        webhook: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """Recent trigger calls, newest first, with what each did and why no run was queued."""
        items = [trigger_json(r) for r in emulator.triggers(org, webhook, limit)]
        return FastJSONResponse({"count": len(items), "value": items})

    @app.get("/_emulator/triggers/{trigger_id}")
    def trigger_record(trigger_id: int) -> Response:
        return FastJSONResponse(trigger_json(emulator.trigger_record(trigger_id)))

    @app.post("/_emulator/orgs/{org}/projects/{project}/connections", status_code=201)
    async def add_connection(org: str, project: str, request: Request) -> Response:
        """Register an Incoming WebHook connection (the secret is never returned)."""
        body: ConnectionRequest = await _json(request, ConnectionRequest)
        connection = emulator.add_connection(
            org, project, name=body.name, webhook_name=body.webhook_name, secret=body.secret, header=body.header
        )
        url = trigger_url(base, connection.project.org, connection.webhook_name)
        return FastJSONResponse(
            {
                "id": connection.id,
                "name": connection.name,
                "webhookName": connection.webhook_name,
                "header": connection.header,
                "hasSecret": connection.secret is not None,
                "url": url,
            },
            status_code=201,
        )

    @app.post("/_emulator/orgs/{org}/projects/{project}/pipelines", status_code=201)
    async def add_pipeline(org: str, project: str, request: Request) -> Response:
        """Register a pipeline from YAML text (and its templates), written into a repository directory."""
        body: PipelineRequest = await _json(request, PipelineRequest)
        files = {body.path: body.yaml, **body.files}
        try:
            checked = {resolve_path("", path): text for path, text in files.items()}
        except PipelineError as exc:
            raise AzureError(400, "ArgumentException", f"files: {exc.message}") from None
        # A fresh directory each time: a refused registration (409) must not touch another's files.
        root = (
            work_dir
            / "repos"
            / org.lower()
            / project.lower()
            / f"{body.name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:8]}"
        )
        for path, text in checked.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        try:
            created = emulator.add_pipeline(
                org,
                project,
                name=body.name,
                repository=root,
                path=resolve_path("", body.path),
                folder=body.folder,
                default_branch=body.default_branch,
                variables={n: Variable(v.value, v.is_secret) for n, v in body.variables.items()},
            )
        except AzureError:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return FastJSONResponse(pipeline_json(base, created), status_code=201)

    @app.post("/_emulator/runs/{org}/{run_id}/complete")
    async def complete(org: str, run_id: int, request: Request) -> Response:
        """Finish a run by hand (for emulators that queue runs without executing them)."""
        body: CompleteRequest = await _json(request, CompleteRequest)
        return FastJSONResponse(run_json(base, emulator.complete_run(emulator.run(org, run_id), body.result)))

    @app.get("/_emulator/runs/{org}/{run_id}/log")
    async def follow_log(org: str, run_id: int, follow: bool = False) -> Response:
        """Every log line of a run in arrival order; ``follow=true`` streams until the run completes."""
        found = emulator.run(org, run_id)

        async def lines() -> AsyncIterator[bytes]:
            sent = 0
            while True:
                done = found.state == "completed"
                batch = found.stream[sent:]
                sent += len(batch)
                if batch:
                    yield "".join(line + "\n" for line in batch).encode()
                if done or not follow:
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")

    return app
