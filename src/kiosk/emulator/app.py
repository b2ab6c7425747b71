"""The emulator's HTTP server: Azure DevOps' routes (trigger, Pipelines, Runs, Build) and its own.

The routes over an organisation's data (discovery, Core, Git, Policy, Build, Work item tracking,
Work, Wiki, Graph, Release, service hooks…) live in :mod:`kiosk.emulator.routes`, one module per
area, added here. Every path matches case-insensitively, as Azure's do, and routes are found by
area (:mod:`kiosk.emulator.routing`); the api-version may come from the query or the ``Accept``
header (:mod:`kiosk.emulator.versioning`).

Azure's routes answer with Azure's shapes and status codes (:mod:`kiosk.emulator.shapes`,
:mod:`kiosk.emulator.errors`); every error, including a malformed request or an unknown route, is
Azure's error JSON. The emulator's own routes live under ``/_emulator/``: the trigger records
("why no run"), registering connections and pipelines at run time, finishing a run by hand when
runs are not executed, and a followable text stream of a run's log.

Who may call what is decided before any route runs (:mod:`kiosk.emulator.access`: a PAT per org,
no foreign web origins); what a body may be is decided by :mod:`kiosk.emulator.bodies` (JSON only,
size and depth limits). The OpenAPI description (``/openapi.json``) declares every status code a
route answers and the PAT scheme, and schemathesis checks it against the server with all checks.

The trigger route is the hot path (≥ 1,000 calls/s is a target): it reads the body itself, with
the size limit enforced while reading, and does no dependency injection.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from kiosk.emulator.access import AccessPolicy, RequestGuard
from kiosk.emulator.bodies import MAX_JSON_DEPTH, read_body, read_json, validated
from kiosk.emulator.errors import AzureError
from kiosk.emulator.executor import RunExecutor
from kiosk.emulator.hooks import ServiceHooks
from kiosk.emulator.models import Run
from kiosk.emulator.routes.alerts import add_alert_routes
from kiosk.emulator.routes.build import add_build_routes, generated_build, generated_definition, generated_definitions
from kiosk.emulator.routes.changes import add_change_routes
from kiosk.emulator.routes.common import Token, Top, continuation_page, from_query, wrapped
from kiosk.emulator.routes.core import add_core_routes
from kiosk.emulator.routes.entitlements import add_entitlement_routes
from kiosk.emulator.routes.environments import add_environment_routes
from kiosk.emulator.routes.git import add_git_routes
from kiosk.emulator.routes.graph import add_graph_routes
from kiosk.emulator.routes.hooks import add_hooks_routes
from kiosk.emulator.routes.location import add_location_routes
from kiosk.emulator.routes.release import add_release_routes
from kiosk.emulator.routes.test import add_test_routes
from kiosk.emulator.routes.wiki import add_wiki_routes
from kiosk.emulator.routes.wit import add_wit_routes
from kiosk.emulator.routes.work import add_work_routes
from kiosk.emulator.routing import allowed_methods, flat_routes, group_by_area, match_case_insensitively
from kiosk.emulator.service import API_VERSION_PATTERN, Emulator, check_api_version
from kiosk.emulator.shapes import (
    build_json,
    log_json,
    pipeline_json,
    run_json,
    timeline_json,
    trigger_json,
    trigger_url,
)
from kiosk.emulator.shapes_build import (
    generated_build_json,
    generated_pipeline_json,
    generated_run_json,
    generated_timeline_json,
)
from kiosk.emulator.switches import Switches, SwitchesMiddleware, SwitchSettings
from kiosk.emulator.versioning import READ_METHODS, request_api_version
from kiosk.pipelines.errors import PipelineError
from kiosk.pipelines.variables import Variable
from kiosk.pipelines.yaml_source import resolve_path
from kiosk.web.responses import FastJSONResponse

__all__ = ["create_emulator_app"]

_MAX_API_BODY: Final = 16 * 1024 * 1024
ORG_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9-]{0,49}$"
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$"
# A repository file: segments that start with a letter, digit or underscore (so never "." or "..").
FILE_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9._ -]{0,99}(/[A-Za-z0-9_][A-Za-z0-9._ -]{0,99}){0,15}$"
_FILE: Final = re.compile(FILE_PATTERN)

# Module level: FastAPI resolves string annotations against the module's globals.
# The api-version from the query or the Accept header; a read without one is served at 7.1.
Version = Annotated[str | None, Depends(request_api_version)]
Expand = Annotated[str | None, Query(alias="$expand")]


@dataclass(frozen=True, slots=True)
class LogShown:
    """How a run's log is shown: ``$expand=signedContent`` adds a signed URL to read it without the PAT."""

    expand: Expand = None

    @property
    def signed(self) -> bool:
        return (self.expand or "").lower() == "signedcontent"


LogShownParams = Annotated[LogShown, Depends(from_query(LogShown))]
OrgName = Annotated[str, PathParam(pattern=ORG_PATTERN)]
ProjectName = Annotated[str, PathParam(pattern=NAME_PATTERN)]


def _azure(exc: AzureError, headers: dict[str, str] | None = None) -> FastJSONResponse:
    return FastJSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _json(request: Request, model: type[BaseModel] | None = None) -> Any:
    """A JSON route's body: 415 unless it is JSON, 413 over 16 MiB, 400 when invalid or over 64 deep."""
    data = await read_json(request, _MAX_API_BODY)
    return data if model is None else validated(model, data)


def _not_null(value: Any) -> Any:
    """Refuse an explicit ``null`` for a field that may be left out (the description says string)."""
    if value is None:
        raise ValueError("must be a string when given (leave it out instead of null)")
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, hide_input_in_errors=True, strict=True)


class _QueueVariable(_Body):
    value: str = ""
    is_secret: bool = Field(default=False, alias="isSecret")


class _SelfRepository(_Body):
    ref_name: str | None = Field(default=None, alias="refName")


class _Resources(_Body):
    repositories: dict[str, _SelfRepository] = Field(default_factory=dict)


class RunRequest(_Body):
    """``RunPipelineParameters`` of the Runs API (``yamlOverride`` only with ``previewRun: true``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "dependentSchemas": {
                "yamlOverride": {"required": ["previewRun"], "properties": {"previewRun": {"const": True}}}
            }
        }
    )
    preview_run: bool = Field(default=False, alias="previewRun")
    yaml_override: Annotated[str | None, BeforeValidator(_not_null), WithJsonSchema({"type": "string"})] = Field(
        default=None, alias="yamlOverride"
    )
    template_parameters: dict[str, Any] = Field(default_factory=dict, alias="templateParameters")
    variables: dict[str, _QueueVariable] = Field(default_factory=dict)
    resources: _Resources = Field(default_factory=_Resources)
    stages_to_skip: list[str] = Field(default_factory=list, alias="stagesToSkip")


_HEADER_PATTERN: Final = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$"


class ConnectionRequest(_Body):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        hide_input_in_errors=True,
        strict=True,
        json_schema_extra={"dependentRequired": {"secret": ["header"]}},
    )
    name: str = Field(pattern=NAME_PATTERN)
    webhook_name: str = Field(alias="webhookName", pattern=r"^[-_A-Za-z0-9]{1,256}$")
    secret: Annotated[str | None, BeforeValidator(_not_null), WithJsonSchema({"type": "string", "minLength": 1})] = (
        Field(default=None, min_length=1)
    )
    header: Annotated[
        str | None, BeforeValidator(_not_null), WithJsonSchema({"type": "string", "pattern": _HEADER_PATTERN})
    ] = Field(default=None, pattern=_HEADER_PATTERN, description="Required with a secret: where the checksum travels.")


def _repository_file(path: str) -> str:
    """A file path inside the pipeline's repository, refused with the reason (escaping it, odd characters)."""
    try:
        resolve_path("", path)
    except PipelineError as exc:
        raise ValueError(exc.message) from None
    if _FILE.fullmatch(path) is None:
        raise ValueError(
            f"{path[:100]!r} is not a repository file path (letters, digits, '._ -', '/' between segments, "
            "no segment starting with '.')"
        )
    return path


RepositoryFile = Annotated[
    str, AfterValidator(_repository_file), WithJsonSchema({"type": "string", "pattern": FILE_PATTERN})
]


class PipelineRequest(_Body):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True, strict=True)
    name: str = Field(pattern=NAME_PATTERN)
    yaml: str = Field(min_length=1)
    path: RepositoryFile = "azure-pipelines.yml"
    files: dict[RepositoryFile, str] = Field(
        default_factory=dict,
        description="Other repository files (templates, scripts).",
        json_schema_extra={"additionalProperties": False},
    )
    folder: str = Field(default="\\", pattern=r"^\\[A-Za-z0-9._ \\-]{0,200}$", description="Azure's folder path.")
    default_branch: str = Field(default="refs/heads/main", alias="defaultBranch", pattern=r"^refs/[!-~]{1,200}$")
    variables: dict[str, _QueueVariable] = Field(default_factory=dict)


class CompleteRequest(_Body):
    result: Literal["succeeded", "partiallySucceeded", "failed", "canceled"]


class BuildUpdate(_Body):
    status: str = Field(
        pattern=r"^[Cc][Aa][Nn][Cc][Ee][Ll][Ll]?[Ii][Nn][Gg]$",
        description='Only cancellation is supported: "cancelling" (or "canceling").',
    )


class AzureErrorBody(BaseModel):
    """Azure's error JSON (``WrappedException``)."""

    model_config = ConfigDict(populate_by_name=True)
    id: str = Field(alias="$id")
    innerException: Any = None
    message: str
    typeName: str
    typeKey: str
    errorCode: int
    eventId: int


_ERROR_TEXT: Final = {
    400: "Bad request: a missing or invalid api-version, parameter or body (invalid JSON, deeper than "
    f"{MAX_JSON_DEPTH} levels, fields that do not validate, a pipeline that does not expand).",
    401: "No personal access token of the organization (TF400813): JSON without a token, text with a wrong one.",
    403: "A request from another web origin (Origin or Sec-Fetch-Site: cross-site).",
    404: "The organization, project, pipeline, run, log or subscription does not exist.",
    409: "A conflict: the name is taken, or the run is already completed.",
    413: "The body is larger than the route's limit.",
    415: "The body is not application/json.",
    500: "Azure's own answers of the trigger: no such webhook, or a missing or wrong checksum.",
}
_AUTH_HEADERS: Final = {
    "WWW-Authenticate": {"description": "TFS-Federated, Bearer and Basic realm entries", "schema": {"type": "string"}},
    "X-TFS-FedAuthRedirect": {"description": "Where a browser would sign in", "schema": {"type": "string"}},
    "X-VSS-AuthenticateError": {
        "description": "InvalidToken when a token was given but opens nothing here",
        "schema": {"type": "string"},
    },
}


_PLACES: Final = ("path", "query", "header", "cookie", "body")


def first_invalid(errors: Sequence[Any]) -> dict[str, Any]:
    """The validation error a 400 names: the first in the path, else in the query, headers, cookies, body.

    FastAPI lists a dependency's errors before the route's own, and a route's query parameters come
    from dependencies (``from_query``) while its path parameters are its own; in this order a request
    with several invalid values names the one it named when every parameter was the route's own.
    """
    if not errors:
        return {"loc": (), "msg": "invalid request"}

    def place(error: Any) -> int:
        where = tuple(error.get("loc", ()))
        return _PLACES.index(where[0]) if where and where[0] in _PLACES else len(_PLACES)

    return dict(min(errors, key=place))  # min keeps the first of equals


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses: Azure's error JSON for each code (401 with Azure's headers).

    The content is spelled out (not ``model=``): FastAPI would give a text route's errors its
    text media type, and every error here is JSON.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {
            "description": _ERROR_TEXT[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AzureError"}}},
        }
        if code == 401:
            entry["headers"] = _AUTH_HEADERS
            entry["content"]["text/plain"] = {"schema": {"type": "string"}}  # a token that opens nothing
        out[code] = entry
    return out


_READ: Final = (400, 401, 403, 404)
_WRITE: Final = (400, 401, 403, 404, 413, 415)


_SHARED_SCHEMAS: dict[str, Any] = {
    "AzureError": AzureErrorBody.model_json_schema(by_alias=True),
}
"""Schemas the bodies refer to, added to ``components.schemas`` by :func:`_openapi`."""


def _json_body(schema: dict[str, Any] | type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body (the routes read their bodies themselves)."""
    if isinstance(schema, type):
        schema = schema.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        _SHARED_SCHEMAS.update(schema.pop("$defs", {}))
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def create_emulator_app(
    emulator: Emulator,
    *,
    work_dir: Path,
    policy: AccessPolicy,
    executor: RunExecutor | None = None,
    hooks: ServiceHooks | None = None,
    max_body_bytes: int = 4 * 1024 * 1024,
    switches: Switches | None = None,
) -> FastAPI:
    """The emulator's ASGI app. ``executor`` None: runs are queued, never executed.

    ``switches``: throttling and faults (:mod:`kiosk.emulator.switches`), off unless given; kept in
    ``app.state.switches``.
    """

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
    switches = switches or Switches()
    app.state.switches = switches
    app.add_middleware(SwitchesMiddleware, switches=switches)  # inside the guard: added first
    app.add_middleware(RequestGuard, base_url=base, policy=policy, known_org=emulator.has_org)

    @app.exception_handler(AzureError)
    async def azure_error(_: Request, exc: AzureError) -> Response:
        return _azure(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> Response:
        first = first_invalid(exc.errors())
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _azure(AzureError(400, "ArgumentException", f"{where}: {first.get('msg', 'invalid')}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        key = {404: "NotFoundException", 405: "MethodNotAllowedException"}.get(exc.status_code, "HttpException")
        headers = None
        if exc.status_code == 405:
            headers = {"Allow": allowed_methods(app.router.routes, request.url.path)}
        return _azure(AzureError(exc.status_code, key, str(exc.detail)), headers)

    def _versioned(api_version: str | None) -> None:
        check_api_version(api_version)

    def _caller_orgs(request: Request) -> frozenset[str] | None:
        """The orgs the caller's PAT opens (None: anonymous access is allowed, everything is visible)."""
        if policy.allow_anonymous:
            return None
        orgs: frozenset[str] = request.scope.get("state", {}).get("pat_orgs", frozenset())
        return orgs

    def _adopt(request: Request, org: str, existed: bool) -> None:
        """An org created at run time accepts the PAT that created it."""
        token = request.scope.get("state", {}).get("pat")
        if not existed and token:
            policy.grant(org, token)

    # ------------------------------------------------------------------ the trigger

    @app.post(
        "/{org}/_apis/public/distributedtask/webhooks/{webhook_name}",
        response_class=Response,
        responses={
            200: {"description": "Accepted (whether or not a run was queued; see /_emulator/triggers)."},
            **_responses(400, 403, 404, 413, 415, 500),
        },
        openapi_extra={
            "security": [],
            "parameters": [{"name": "api-version", "in": "query", "required": True, "schema": {"type": "string"}}],
            **_json_body({"type": "object"}),
        },
    )
    async def trigger(org: str, webhook_name: str, request: Request) -> Response:
        """Azure's incoming-webhook endpoint. 200 with an empty body whether or not a run was queued."""
        check_api_version(request.query_params.get("api-version"))
        emulator.org_name(org)
        body = await read_body(request, max_body_bytes)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}
        record = emulator.trigger(org, webhook_name, headers, body)
        queued = ",".join(str(o.run_id) for o in record.outcomes if o.run_id is not None)
        return Response(status_code=200, headers={"X-Kiosk-Trigger-Id": str(record.id), "X-Kiosk-Queued-Runs": queued})

    @app.api_route(
        "/{org}/_apis/public/distributedtask/webhooks/{webhook_name}",
        methods=["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        include_in_schema=False,
    )
    async def trigger_wrong_method(org: str, webhook_name: str, request: Request) -> Response:
        error = AzureError(
            405, "MethodNotAllowedException", f"The requested resource does not support {request.method}."
        )
        return _azure(error, {"Allow": "POST"})

    # ------------------------------------------------------------------ Azure REST (read side + Runs API)

    add_location_routes(app, emulator, base, _responses(*_READ))
    add_core_routes(app, emulator, _responses(*_READ))
    add_git_routes(app, emulator, _responses(*_READ), _responses(*_WRITE))
    add_build_routes(app, emulator, base, _responses(*_READ))
    add_hooks_routes(app, emulator, hooks, policy, _responses, _json_body)
    add_change_routes(app, emulator, _responses, _json_body)
    add_graph_routes(app, emulator, _responses(*_READ), _responses(*_WRITE))
    add_entitlement_routes(app, emulator, _responses(*_READ))
    add_work_routes(app, emulator, _responses(*_READ))
    add_wiki_routes(app, emulator, _responses(*_READ), _responses(*_WRITE))
    add_environment_routes(app, emulator, _responses(*_READ))
    add_release_routes(app, emulator, _responses(*_READ))
    add_test_routes(app, emulator, _responses(*_READ))
    add_alert_routes(app, emulator, _responses(*_READ))
    add_wit_routes(app, emulator, _responses(*_READ), _responses(*_WRITE))

    @app.get("/{org}/{project}/_apis/pipelines", responses=_responses(*_READ))
    def pipelines(
        org: str, project: str, api_version: Version = None, top: Top = None, token: Token = None
    ) -> Response:
        """A configured project's pipelines, or a generated project's build definitions (Azure lists every
        definition here); ``$top`` and a continuation token (header ``x-ms-continuationtoken``)."""
        _versioned(api_version)
        definitions = generated_definitions(emulator, org, project)
        if definitions is None:
            items = [pipeline_json(base, p) for p in emulator.pipelines(org, project)]
        else:
            items = [generated_pipeline_json(emulator.organisation(org), d) for d in definitions]
        page, next_token = continuation_page(items, top, token)
        return wrapped(list(page), token=next_token)

    @app.get("/{org}/{project}/_apis/pipelines/{pipeline_id}", responses=_responses(*_READ))
    def pipeline(org: str, project: str, pipeline_id: int, api_version: Version = None) -> Response:
        _versioned(api_version)
        definitions = generated_definitions(emulator, org, project)
        if definitions is not None:
            return FastJSONResponse(
                generated_pipeline_json(emulator.organisation(org), generated_definition(definitions, pipeline_id))
            )
        return FastJSONResponse(pipeline_json(base, emulator.pipeline(org, project, pipeline_id)))

    @app.post(
        "/{org}/{project}/_apis/pipelines/{pipeline_id}/runs",
        responses=_responses(*_WRITE),
        openapi_extra=_json_body(RunRequest, required=False),
    )
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

    @app.get("/{org}/{project}/_apis/pipelines/{pipeline_id}/runs", responses=_responses(*_READ))
    def list_runs(org: str, project: str, pipeline_id: int, api_version: Version = None) -> Response:
        """The pipeline's runs, newest first (a generated project's: its definition's builds)."""
        _versioned(api_version)
        definitions = generated_definitions(emulator, org, project)
        if definitions is not None:
            data = emulator.organisation(org)
            definition = generated_definition(definitions, pipeline_id)
            builds = sorted((b for b in data.builds.values() if b.definition_id == definition.id), key=lambda b: -b.id)
            return FastJSONResponse({"count": len(builds), "value": [generated_run_json(data, b) for b in builds]})
        emulator.pipeline(org, project, pipeline_id)
        items = [run_json(base, r) for r in emulator.runs(org, project, pipeline_id)]
        return FastJSONResponse({"count": len(items), "value": items})

    def _pipeline_run(org: str, project: str, pipeline_id: int, run_id: int) -> Run:
        found = emulator.run(org, run_id, project)
        if found.pipeline.id != pipeline_id:
            raise AzureError(404, "RunNotFoundException", f"Run {run_id} of pipeline {pipeline_id} was not found.")
        return found

    @app.get("/{org}/{project}/_apis/pipelines/{pipeline_id}/runs/{run_id}", responses=_responses(*_READ))
    def get_run(org: str, project: str, pipeline_id: int, run_id: int, api_version: Version = None) -> Response:
        """One run of the pipeline (a generated project's: its definition's build, as the list shows it)."""
        _versioned(api_version)
        definitions = generated_definitions(emulator, org, project)
        if definitions is not None:
            data = emulator.organisation(org)
            definition = generated_definition(definitions, pipeline_id)
            build = data.builds.get(run_id)
            if build is None or build.definition_id != definition.id:
                raise AzureError(404, "RunNotFoundException", f"Run {run_id} of pipeline {pipeline_id} was not found.")
            return FastJSONResponse(generated_run_json(data, build))
        found = _pipeline_run(org, project, pipeline_id, run_id)
        return FastJSONResponse(run_json(base, found, final_yaml=emulator.final_yaml(found)))

    @app.get("/{org}/{project}/_apis/pipelines/{pipeline_id}/runs/{run_id}/logs", responses=_responses(*_READ))
    def list_logs(
        org: str, project: str, pipeline_id: int, run_id: int, shown: LogShownParams, api_version: Version = None
    ) -> Response:
        _versioned(api_version)
        found = _pipeline_run(org, project, pipeline_id, run_id)
        logs = [log_json(base, found, log_id, signed=shown.signed) for log_id in sorted(found.logs)]
        owner = found.pipeline.project
        url = f"{base}/{owner.org}/{owner.id}/_apis/pipelines/{pipeline_id}/runs/{run_id}/logs"
        return FastJSONResponse({"logs": logs, "url": url})

    @app.get("/{org}/{project}/_apis/pipelines/{pipeline_id}/runs/{run_id}/logs/{log_id}", responses=_responses(*_READ))
    def get_log(
        org: str,
        project: str,
        pipeline_id: int,
        run_id: int,
        log_id: int,
        shown: LogShownParams,
        api_version: Version = None,
    ) -> Response:
        _versioned(api_version)
        found = _pipeline_run(org, project, pipeline_id, run_id)
        if log_id not in found.logs:
            raise AzureError(404, "LogNotFoundException", f"Log {log_id} of run {run_id} was not found.")
        return FastJSONResponse(log_json(base, found, log_id, signed=shown.signed))

    @app.get("/{org}/{project}/_apis/build/builds/{build_id}", responses=_responses(*_READ))
    def get_build(org: str, project: str, build_id: int, api_version: Version = None) -> Response:
        _versioned(api_version)
        generated = generated_build(emulator, org, project, build_id)
        if generated is not None:
            return FastJSONResponse(generated_build_json(*generated))
        return FastJSONResponse(build_json(base, emulator.run(org, build_id, project)))

    @app.patch(
        "/{org}/{project}/_apis/build/builds/{build_id}",
        responses=_responses(*_WRITE),
        openapi_extra=_json_body(BuildUpdate),
    )
    async def update_build(
        org: str, project: str, build_id: int, request: Request, api_version: Version = None
    ) -> Response:
        """Only cancellation (``{"status": "cancelling"}``), the one update clients send."""
        _versioned(api_version)
        found = emulator.run(org, build_id, project)
        body: BuildUpdate = await _json(request, BuildUpdate)
        if body.status.lower() not in ("cancelling", "canceling"):
            raise AzureError(400, "ArgumentException", 'only {"status": "cancelling"} is supported')
        emulator.cancel_run(found)
        return FastJSONResponse(build_json(base, found))

    @app.get("/{org}/{project}/_apis/build/builds/{build_id}/timeline", responses=_responses(*_READ))
    def get_timeline(org: str, project: str, build_id: int, api_version: Version = None) -> Response:
        _versioned(api_version)
        generated = generated_build(emulator, org, project, build_id)
        if generated is not None:
            return FastJSONResponse(generated_timeline_json(*generated))
        return FastJSONResponse(timeline_json(base, emulator.run(org, build_id, project)))

    @app.get("/{org}/{project}/_apis/build/builds/{build_id}/logs", responses=_responses(*_READ))
    def build_logs(org: str, project: str, build_id: int, api_version: Version = None) -> Response:
        _versioned(api_version)
        if generated_build(emulator, org, project, build_id) is not None:  # generated history keeps no logs
            return FastJSONResponse({"count": 0, "value": []})
        found = emulator.run(org, build_id, project)
        items = [log_json(base, found, log_id) for log_id in sorted(found.logs)]
        return FastJSONResponse({"count": len(items), "value": items})

    @app.get(
        "/{org}/{project}/_apis/build/builds/{build_id}/logs/{log_id}",
        response_class=PlainTextResponse,
        responses=_responses(*_READ),
    )
    def build_log(org: str, project: str, build_id: int, log_id: int, api_version: Version = None) -> Response:
        """A log's text, one timestamped line per line (what Azure serves for ``Accept: text/plain``)."""
        _versioned(api_version)
        found = emulator.run(org, build_id, project)
        if log_id not in found.logs:
            raise AzureError(404, "LogNotFoundException", f"Log {log_id} of build {build_id} was not found.")
        return PlainTextResponse("".join(line + "\n" for line in list(found.logs[log_id])))

    # ------------------------------------------------------------------ the emulator's own routes

    @app.get("/_emulator/healthz", responses=_responses(403), openapi_extra={"security": []})
    def healthz() -> Response:
        return FastJSONResponse({"ok": True})

    @app.get("/_emulator/switches", responses=_responses(400, 401, 403))
    def get_switches() -> Response:
        """The throttling and fault switches in force (both off unless configured)."""
        return FastJSONResponse(switches.describe())

    @app.put("/_emulator/switches", responses=_responses(*_WRITE), openapi_extra=_json_body(SwitchSettings))
    async def put_switches(request: Request) -> Response:
        """Replace both switches (a key left out is off); usage counts and fault sequences start afresh."""
        switches.replace(await _json(request, SwitchSettings))
        return FastJSONResponse(switches.describe())

    @app.get("/_emulator/triggers", responses=_responses(400, 401, 403))
    def triggers(
        request: Request,
        org: str | None = None,
        webhook: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """Recent trigger calls of the caller's orgs, newest first, with what each did and why no run was queued."""
        visible = _caller_orgs(request)
        records = emulator.triggers(org, webhook, limit, orgs=visible)
        items = [trigger_json(r) for r in records]
        return FastJSONResponse({"count": len(items), "value": items})

    @app.get("/_emulator/triggers/{trigger_id}", responses=_responses(400, 401, 403, 404))
    def trigger_record(trigger_id: int, request: Request) -> Response:
        record = emulator.trigger_record(trigger_id)
        visible = _caller_orgs(request)
        if visible is not None and record.org.lower() not in visible:
            raise AzureError(404, "TriggerRecordNotFoundException", f"trigger call {trigger_id} is not recorded")
        return FastJSONResponse(trigger_json(record))

    def registration(resource: str, body: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``POST /_emulator/orgs/{org}/projects/{project}/{resource}`` with a ``body`` to register: 201, or 409."""
        path = f"/_emulator/orgs/{{org}}/projects/{{project}}/{resource}"
        return app.post(path, status_code=201, responses=_responses(*_WRITE, 409), openapi_extra=_json_body(body))

    @registration("connections", ConnectionRequest)
    async def add_connection(org: OrgName, project: ProjectName, request: Request) -> Response:
        """Register an Incoming WebHook connection (the secret is never returned)."""
        body: ConnectionRequest = await _json(request, ConnectionRequest)
        existed = emulator.has_org(org)
        connection = emulator.add_connection(
            org, project, name=body.name, webhook_name=body.webhook_name, secret=body.secret, header=body.header
        )
        _adopt(request, org, existed)
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

    @registration("pipelines", PipelineRequest)
    async def add_pipeline(org: OrgName, project: ProjectName, request: Request) -> Response:
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
        try:
            for path, text in checked.items():
                target = root / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        except (OSError, UnicodeEncodeError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise AzureError(400, "ArgumentException", f"files: cannot write the repository: {reason}") from None
        existed = emulator.has_org(org)
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
        _adopt(request, org, existed)
        return FastJSONResponse(pipeline_json(base, created), status_code=201)

    @app.post(
        "/_emulator/runs/{org}/{run_id}/complete",
        responses=_responses(*_WRITE, 409),
        openapi_extra=_json_body(CompleteRequest),
    )
    async def complete(org: str, run_id: int, request: Request) -> Response:
        """Finish a run by hand (for emulators that queue runs without executing them)."""
        found = emulator.run(org, run_id)
        body: CompleteRequest = await _json(request, CompleteRequest)
        return FastJSONResponse(run_json(base, emulator.complete_run(found, body.result)))

    @app.get(
        "/_emulator/runs/{org}/{run_id}/log",
        response_class=PlainTextResponse,
        responses=_responses(*_READ),
    )
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

    match_case_insensitively(app.router.routes)
    group_by_area(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description, plus what it cannot infer: the PAT scheme, api-version's rule, no 422s."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version="7.1", routes=list(flat_routes(app.routes)), description=_DESCRIPTION)
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["pat"] = {
        "type": "http",
        "scheme": "basic",
        "description": "A personal access token of the organization as the password; any user name (empty is "
        "normal). `Authorization: Bearer <PAT>` is accepted too.",
    }
    schema["security"] = [{"pat": []}]
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            operation.get("responses", {}).pop("422", None)
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and parameter.get("name") == "api-version":
                    parameter["required"] = method.upper() not in READ_METHODS  # Azure serves reads without
                    parameter["schema"] = {"type": "string", "pattern": API_VERSION_PATTERN}
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(_SHARED_SCHEMAS)
    app.openapi_schema = schema
    return schema


_DESCRIPTION: Final = (
    "A local Azure DevOps: the incoming-webhook trigger, route discovery, the Core, Git, Policy, Pipelines, Runs, "
    "Build and service-hook APIs, "
    "and the emulator's own routes under /_emulator. Every route but the trigger and /_emulator/healthz "
    "needs a personal access token of the organization (Basic auth, any user name). Requests carrying "
    "another web origin are refused (403); JSON bodies must be application/json (415) and at most "
    f"{MAX_JSON_DEPTH} levels deep (400)."
)
