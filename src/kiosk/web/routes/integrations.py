"""The integrations: list, state in Port's shape, resync on demand, raw examples, test and replace the mapping.

``GET /v1/integration/{id}`` answers as Port's API does (``{ok, integration: {identifier,
installationAppType, installationId, version, config, resyncState, ...}}``), so a script written
for Port reads it unchanged. ``config`` is the mapping (Port's ``port-app-config``) exactly as
``PATCH`` takes it back; the integration's other settings — never its PAT or webhook secret —
and kiosk's full resync state (``state``) and last incremental pass (``incremental``) are under
``kiosk``.

Reading is for any authenticated client (members read the catalog too); starting a resync and
replacing the mapping change what the catalog holds, so they are for admins. A mapping replaced
here is kept in the database and used from the next resync on, in every process, until it is
deleted (``DELETE /v1/integration/{id}/config``: back to kiosk.yaml's).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from kiosk import __version__
from kiosk.auth.clients import Principal
from kiosk.errors import NotFound, ValidationFailed
from kiosk.ingest.config import IDENTIFIER_PATTERN, Integration
from kiosk.ingest.kinds import KINDS
from kiosk.ingest.mapping import MappingError, PortAppConfig, parse_port_app_config
from kiosk.ingest.state import ResyncState
from kiosk.ingest.transform import ExampleResult, test_mapping
from kiosk.runtime.integrations import IntegrationRunner, effective_mapping
from kiosk.web.auth import require_admin, require_member
from kiosk.web.responses import API_ERRORS, FastJSONResponse, errors

__all__ = ["mapping_document", "router"]

router = APIRouter(prefix="/v1/integration", tags=["integrations"], responses=API_ERRORS)

IntegrationId = Annotated[
    str, Path(pattern=IDENTIFIER_PATTERN, description="The integration's identifier.", examples=["ado"])
]
KindName = Annotated[
    str, Path(pattern=r"^[a-z][a-z-]{0,49}$", description="A kind of the integration.", examples=["project"])
]


class MappingReplacement(BaseModel):
    """``PATCH`` body: the new mapping, Ocean's ``port-app-config`` document."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] = Field(description="The mapping (port-app-config): resources, selectors, entity mappings.")


class MappingTest(BaseModel):
    """``test-mapping`` body: which resources to try (by kind; all when absent) and with which
    mapping (the integration's own when absent, else this document, not saved)."""

    model_config = ConfigDict(extra="forbid")

    kind: str | None = Field(default=None, pattern=r"^[a-z][a-z-]{0,49}$")
    mapping: dict[str, Any] | None = None


def _runner(request: Request) -> IntegrationRunner:
    runner: IntegrationRunner = request.app.state.integrations
    return runner


def mapping_document(mapping: PortAppConfig) -> dict[str, Any]:
    """A checked mapping as its document: what was written (defaults left out), parseable again."""
    return mapping.model_dump(mode="json", by_alias=True, exclude_unset=True, warnings=False)


def _settings(integration: Integration) -> dict[str, Any]:
    """The integration's settings without its secrets (only whether each is set)."""
    spec = integration.spec
    config = spec.config
    return {
        "organizationUrls": config.organization_urls(),
        "isProjectsLimited": config.isProjectsLimited,
        "excludedTags": list(config.excludedTags),
        "webhookAuthUsername": config.webhookAuthUsername,
        "webhookSecretSet": integration.webhook_secret is not None,
        "appHost": config.appHost,
        "eventListener": {"type": spec.eventListener.type},
        "scheduledResyncInterval": spec.scheduledResyncInterval,
        "incrementalSyncInterval": spec.incrementalSyncInterval,
        "initializePortResources": spec.initializePortResources,
        "sendRawDataExamples": spec.sendRawDataExamples,
    }


_NEVER_RESYNCED: dict[str, Any] = {
    "status": None,
    "lastResyncStart": None,
    "lastResyncEnd": None,
    "nextResync": None,
    "intervalInMinuets": None,
    "updatedAt": None,
}


def _summary(integration: Integration, state: ResyncState | None, running: bool) -> dict[str, Any]:
    """The list's entry: Port's identity fields and resyncState, and kiosk's counts."""
    return {
        "identifier": integration.identifier,
        "installationId": integration.identifier,
        "installationAppType": "azure-devops",
        "version": __version__,
        "resyncState": _NEVER_RESYNCED if state is None else state.to_port(),
        "kiosk": {
            "organizationUrls": integration.spec.config.organization_urls(),
            "eventListener": integration.spec.eventListener.type,
            "running": running,
            "totals": None if state is None else state.totals(),
        },
    }


def _detail(runner: IntegrationRunner, integration: Integration) -> dict[str, Any]:
    store = runner.store
    state = store.load_state(integration.identifier)
    mapping, source = effective_mapping(integration, store)
    replaced = store.load_mapping(integration.identifier)
    body = _summary(integration, state, runner.is_running(integration.identifier))
    body["config"] = replaced[0] if source == "api" and replaced is not None else mapping_document(mapping)
    incremental = store.load_incremental_state(integration.identifier)
    body["kiosk"] = {
        **body["kiosk"],
        "settings": _settings(integration),
        "mappingSource": source,
        "mappingReplaced": None
        if replaced is None
        else {"at": replaced[1].isoformat().replace("+00:00", "Z"), "by": replaced[2]},
        "state": None if state is None else state.to_json(),
        "incremental": None if incremental is None else incremental.to_json(),
    }
    return body


def _parse_mapping(document: dict[str, Any], field: str) -> PortAppConfig:
    """A mapping from a request body, or a 422 naming the field of the first problem (and all of them)."""
    try:
        return parse_port_app_config(document)
    except MappingError as exc:
        details = [{"field": _field(field, problem.loc), "message": problem.message} for problem in exc.problems]
        first = details[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise ValidationFailed(
            f"{first['field']}: {first['message']}{more}", code="invalid_mapping", details=details
        ) from None


def _field(prefix: str, loc: tuple[str | int, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _example_result(result: ExampleResult) -> dict[str, Any]:
    def failure(f: Any) -> dict[str, Any]:
        return {"field": f.field, "message": f.message, "identifier": f.identifier}

    return {
        "example": result.example,
        "entities": result.entities,
        "failures": [failure(f) for f in result.failures],
        "warnings": [failure(f) for f in result.warnings],
    }


@router.get("")
async def list_integrations(request: Request, _: Principal = Depends(require_member)) -> FastJSONResponse:
    """Every configured integration with its resync state."""
    runner = _runner(request)

    def read() -> list[dict[str, Any]]:
        return [_summary(runner.integrations[item.identifier], item.state, item.running) for item in runner.snapshot()]

    return FastJSONResponse({"ok": True, "integrations": await run_in_threadpool(read)})


@router.get("/{integration_id}", responses=errors(404))
async def get_integration(
    integration_id: IntegrationId, request: Request, _: Principal = Depends(require_member)
) -> FastJSONResponse:
    """One integration in Port's shape, with kiosk's settings (no secrets) and full resync state."""
    runner = _runner(request)
    integration = runner.integration(integration_id)
    body = await run_in_threadpool(_detail, runner, integration)
    return FastJSONResponse({"ok": True, "integration": body})


@router.post("/{integration_id}/resync", status_code=202, responses=errors(403, 404))
async def resync(
    integration_id: IntegrationId,
    request: Request,
    incremental: Annotated[
        bool, Query(description="An incremental pass (only what changed since the last read) instead of a full resync.")
    ] = False,
    _: Principal = Depends(require_admin),
) -> FastJSONResponse:
    """Queue a resync now (or, with ``incremental=true``, an incremental pass). One already queued or
    running answers for this request too (``coalesced``, ``running``): an integration never resyncs
    twice at once, nor runs two incremental passes at once."""
    runner = _runner(request)
    outcome = await run_in_threadpool(lambda: runner.request(integration_id, incremental=incremental))
    return FastJSONResponse({"ok": True, "resync": outcome}, status_code=202)


@router.get("/{integration_id}/kinds/{kind}/examples", responses=errors(404))
async def kind_examples(
    integration_id: IntegrationId, kind: KindName, request: Request, _: Principal = Depends(require_member)
) -> FastJSONResponse:
    """The raw items kept of ``kind`` by the last resync (``sendRawDataExamples``), secrets removed."""
    runner = _runner(request)
    runner.integration(integration_id)
    if kind not in KINDS:
        raise NotFound(f"unknown kind {kind!r} (known kinds: {', '.join(KINDS)})", code="kind_not_found")
    examples = await run_in_threadpool(runner.store.examples, integration_id, kind)
    return FastJSONResponse({"ok": True, "kind": kind, "examples": examples})


@router.post("/{integration_id}/test-mapping", responses=errors(404, 422))
async def try_mapping(
    integration_id: IntegrationId, body: MappingTest, request: Request, _: Principal = Depends(require_member)
) -> FastJSONResponse:
    """Map the kept raw examples with the integration's mapping (or ``mapping``, not saved), resource
    by resource: per example its entities, or the jq error of each failing field."""
    runner = _runner(request)
    integration = runner.integration(integration_id)
    given = None if body.mapping is None else _parse_mapping(body.mapping, "mapping")

    def run() -> list[dict[str, Any]]:
        mapping = given if given is not None else effective_mapping(integration, runner.store)[0]
        resources = [
            (index, resource)
            for index, resource in enumerate(mapping.resources)
            if body.kind is None or resource.kind == body.kind
        ]
        out = []
        for index, resource in resources:
            examples = runner.store.examples(integration_id, resource.kind)
            out.append(
                {
                    "resource": index,
                    "kind": resource.kind,
                    "examples": len(examples),
                    "results": [_example_result(r) for r in test_mapping(resource, examples)],
                }
            )
        return out

    return FastJSONResponse({"ok": True, "resources": await run_in_threadpool(run)})


@router.patch("/{integration_id}", responses=errors(403, 404, 422))
async def replace_mapping(
    integration_id: IntegrationId,
    body: MappingReplacement,
    request: Request,
    principal: Principal = Depends(require_admin),
) -> FastJSONResponse:
    """Replace the integration's mapping (Port's ``PATCH /v1/integration/{id}`` with ``config``):
    checked first — a bad one is refused with the field named — and used from the next resync on."""
    runner = _runner(request)
    integration = runner.integration(integration_id)
    _parse_mapping(body.config, "config")

    def save() -> dict[str, Any]:
        runner.store.save_mapping(integration_id, body.config, actor=principal.client_id)
        runner.hooks_changed(integration_id)  # the kinds may have changed: so may the subscriptions needed
        return _detail(runner, integration)

    return FastJSONResponse({"ok": True, "integration": await run_in_threadpool(save)})


@router.delete("/{integration_id}/config", responses=errors(403, 404))
async def reset_mapping(
    integration_id: IntegrationId, request: Request, _: Principal = Depends(require_admin)
) -> FastJSONResponse:
    """Drop the mapping replaced through the API: kiosk.yaml's (or the default) applies again."""
    runner = _runner(request)
    integration = runner.integration(integration_id)

    def reset() -> dict[str, Any]:
        runner.store.clear_mapping(integration_id)
        runner.hooks_changed(integration_id)
        return _detail(runner, integration)

    return FastJSONResponse({"ok": True, "integration": await run_in_threadpool(reset)})
