"""Build routes over the organisation's data (reference 3.5): definitions, the builds list, generated builds.

A project declared in the emulator config has its pipelines' runs as builds (the existing
``/_apis/build/builds/{id}`` routes serve them); a generated project has the generated history.
The builds list shows both, newest first, paged by continuation token (header
``x-ms-continuationtoken``, which Ocean-style ingesters read; Microsoft's client ignores it).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import FastAPI, Query
from starlette.responses import Response

from kiosk.emulator.errors import AzureError
from kiosk.emulator.org.model import Build, Organisation
from kiosk.emulator.routes.common import ApiVersion, continuation_page, find_project, wrapped
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes import build_json
from kiosk.emulator.shapes_build import build_definition_json, generated_build_json
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_build_routes", "generated_build"]

Top = Annotated[int | None, Query(alias="$top", ge=0, le=100_000)]
Token = Annotated[str | None, Query(alias="continuationToken", pattern=r"^[0-9]{1,9}$")]
_BUILDS_PAGE: Final = 1000


def generated_build(emulator: Emulator, org: str, project: str, build_id: int) -> tuple[Organisation, Build] | None:
    """The generated build ``build_id`` of ``project``; None when the project is a configured one (its runs are its
    builds); Azure's 404 when the project is generated and has no such build."""
    data = emulator.organisation(org)
    found = data.project(project)
    if found is None or found.configured:
        return None
    build = data.builds.get(build_id)
    if build is None or build.project_id != found.id:
        raise AzureError(404, "BuildNotFoundException", f"The requested build {build_id} could not be found.")
    return data, build


def _csv_ints(name: str, value: str | None) -> set[int] | None:
    if not value:
        return None
    try:
        return {int(part) for part in value.split(",") if part.strip()}
    except ValueError:
        raise AzureError(400, "ArgumentException", f"{name}: a comma-separated list of ids is expected") from None


def add_build_routes(app: FastAPI, emulator: Emulator, base: str, responses: dict[int | str, dict[str, Any]]) -> None:
    """Add the build definition and builds-list routes."""

    @app.get("/{org}/{project}/_apis/build/definitions", responses=responses)
    async def definitions(
        org: str,
        project: str,
        api_version: ApiVersion,
        name: Annotated[str | None, Query(max_length=400)] = None,
        top: Top = None,
        token: Token = None,
    ) -> Response:
        """``BuildDefinitionReference`` list (``name`` with ``*`` wildcards), paged by token."""
        data = emulator.organisation(org)
        found = find_project(data, project)
        listed = [d for d in data.build_definitions.values() if d.project_id == found.id]
        if name:
            pattern = name.lower()
            if pattern.endswith("*"):
                listed = [d for d in listed if d.name.lower().startswith(pattern.rstrip("*"))]
            else:
                listed = [d for d in listed if d.name.lower() == pattern]
        page, next_token = continuation_page(listed, top, token)
        return wrapped([build_definition_json(data, d) for d in page], token=next_token)

    @app.get("/{org}/{project}/_apis/build/definitions/{definition_id}", responses=responses)
    async def definition(org: str, project: str, definition_id: int, api_version: ApiVersion) -> Response:
        data = emulator.organisation(org)
        found = find_project(data, project)
        item = data.build_definitions.get(definition_id)
        if item is None or item.project_id != found.id:
            raise AzureError(
                404,
                "DefinitionNotFoundException",
                f"The requested definition {definition_id} could not be found.",
            )
        return FastJSONResponse(build_definition_json(data, item, full=True))

    @app.get("/{org}/{project}/_apis/build/builds", responses=responses)
    async def builds(
        org: str,
        project: str,
        api_version: ApiVersion,
        definitions: Annotated[str | None, Query(max_length=2000, pattern=r"^\s*[0-9]+\s*(,\s*[0-9]+\s*)*$")] = None,
        status_filter: Annotated[str | None, Query(alias="statusFilter")] = None,
        result_filter: Annotated[str | None, Query(alias="resultFilter")] = None,
        branch_name: Annotated[str | None, Query(alias="branchName", max_length=400)] = None,
        top: Top = None,
        token: Token = None,
    ) -> Response:
        """Builds newest first: the project's pipeline runs (configured) or its generated builds."""
        data = emulator.organisation(org)
        found = find_project(data, project)
        wanted_definitions = _csv_ints("definitions", definitions)
        status = (status_filter or "all").lower()
        result = (result_filter or "").lower()
        rows: list[tuple[int, dict[str, Any]]] = []
        if found.configured:
            for pipeline in emulator.pipelines(org, found.name):
                for run in emulator.runs(org, found.name, pipeline.id):
                    rows.append((run.id, build_json(base, run)))
        for build in data.builds.values():
            if build.project_id == found.id:
                rows.append((build.id, generated_build_json(data, build)))
        selected = []
        for _, body in sorted(rows, key=lambda row: row[0], reverse=True):
            if wanted_definitions is not None and body.get("definition", {}).get("id") not in wanted_definitions:
                continue
            if status not in ("all", "none") and str(body.get("status", "")).lower() != status:
                continue
            if result and str(body.get("result", "")).lower() not in result.split(","):
                continue
            if branch_name and body.get("sourceBranch") != branch_name:
                continue
            selected.append(body)
        page, next_token = continuation_page(selected, top, token, default=_BUILDS_PAGE)
        return wrapped(list(page), token=next_token)
