"""Core routes (reference 3.1): projects (``$top``/``continuationToken``), a project, teams, team members."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query
from starlette.responses import Response

from kiosk.emulator.errors import AzureError
from kiosk.emulator.org.model import Organisation, Team
from kiosk.emulator.routes.common import ApiVersion, continuation_page, find_project, skip_page, wrapped
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_core import collection_json, project_json, project_reference, team_json, team_member_json
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_core_routes"]

Top = Annotated[int | None, Query(alias="$top", ge=0, le=100_000)]
Skip = Annotated[int | None, Query(alias="$skip", ge=0, le=100_000_000)]
Token = Annotated[str | None, Query(alias="continuationToken", pattern=r"^[0-9]{1,9}$")]


def _team(org: Organisation, project_id: str, id_or_name: str) -> Team:
    team = org.team(project_id, id_or_name)
    if team is None:
        raise AzureError(
            404,
            "TeamNotFoundException",
            f"The team with id or name {id_or_name[:200]} does not exist in this project.",
        )
    return team


def add_core_routes(app: FastAPI, emulator: Emulator, responses: dict[int | str, dict[str, Any]]) -> None:
    """Add the Core routes over each org's :class:`~kiosk.emulator.org.model.Organisation`."""

    @app.get("/{org}/_apis/projects", responses=responses)
    async def projects(
        org: str,
        api_version: ApiVersion,
        top: Top = None,
        skip: Skip = None,
        token: Token = None,
        state_filter: Annotated[str | None, Query(alias="stateFilter")] = None,
    ) -> Response:
        """``TeamProjectReference`` list, well-formed projects by default (deleted ones are gone from it)."""
        data = emulator.organisation(org)
        listed = list(data.projects.values())
        if state_filter is not None and state_filter.lower() not in ("all", "wellformed", "unchanged"):
            listed = [p for p in listed if p.state.lower() == state_filter.lower()]
        listed = list(skip_page(listed, None, skip, default=len(listed)))
        page, next_token = continuation_page(listed, top, token)
        return wrapped([project_reference(data, p) for p in page], token=next_token)

    @app.get("/{org}/_apis/projects/{project}", responses=responses)
    async def project(
        org: str,
        project: str,
        api_version: ApiVersion,
        include_capabilities: Annotated[bool, Query(alias="includeCapabilities")] = False,
    ) -> Response:
        """A ``TeamProject`` by GUID or name (capabilities always shown, as Azure's single-project answer does)."""
        data = emulator.organisation(org)
        return FastJSONResponse(project_json(data, find_project(data, project)))

    @app.get("/{org}/_apis/projects/{project}/teams", responses=responses)
    async def teams(org: str, project: str, api_version: ApiVersion, top: Top = None, skip: Skip = None) -> Response:
        data = emulator.organisation(org)
        found = find_project(data, project)
        page = skip_page(data.project_teams(found.id), top, skip)
        return wrapped([team_json(data, t) for t in page])

    @app.get("/{org}/_apis/projects/{project}/teams/{team}", responses=responses)
    async def team(org: str, project: str, team: str, api_version: ApiVersion) -> Response:
        data = emulator.organisation(org)
        return FastJSONResponse(team_json(data, _team(data, find_project(data, project).id, team)))

    @app.get("/{org}/_apis/projects/{project}/teams/{team}/members", responses=responses)
    async def team_members(
        org: str, project: str, team: str, api_version: ApiVersion, top: Top = None, skip: Skip = None
    ) -> Response:
        """``TeamMember`` list (``$top``/``$skip``, no token)."""
        data = emulator.organisation(org)
        found = _team(data, find_project(data, project).id, team)
        users = [data.users[u] for u in found.member_ids if u in data.users]
        return wrapped([team_member_json(data, found, u) for u in skip_page(users, top, skip)])

    @app.get("/{org}/_apis/projectCollections/{collection}", responses=responses)
    async def project_collection(org: str, collection: str, api_version: ApiVersion) -> Response:
        """The organisation as a ``TeamProjectCollection`` (what a project's ``_links.collection`` points at)."""
        data = emulator.organisation(org)
        if collection.lower() not in (data.id, data.name.lower()):
            raise AzureError(
                404, "CollectionDoesNotExistException", f"The collection {collection[:64]} does not exist."
            )
        return FastJSONResponse(collection_json(data))
