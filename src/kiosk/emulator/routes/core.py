"""Core routes (reference 3.1): projects (``$top``/``continuationToken``), a project, its properties, teams
(the organisation's and a project's), team members."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Query
from starlette.responses import Response

from kiosk.emulator.errors import AzureError
from kiosk.emulator.org.model import Organisation, Team
from kiosk.emulator.routes.common import (
    ApiVersion,
    DeclaredResponses,
    Skip,
    SkipPage,
    SkipPaged,
    Token,
    Top,
    continuation_page,
    existing,
    find_project,
    from_query,
    skip_page,
    wrapped,
)
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_core import (
    collection_json,
    project_json,
    project_properties,
    project_reference,
    team_json,
    team_member_json,
)
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_core_routes"]

IncludeCapabilities = Annotated[bool, Query(alias="includeCapabilities")]


@dataclass(frozen=True, slots=True)
class ProjectsQuery:
    """A page of the project list (``$skip`` before the token), by ``stateFilter``."""

    top: Top = None
    skip: Skip = None
    token: Token = None
    state_filter: Annotated[str | None, Query(alias="stateFilter")] = None


@dataclass(frozen=True, slots=True)
class TeamsQuery(SkipPage):
    """A page of a team list; ``$mine``: only the caller's teams."""

    mine: Annotated[bool, Query(alias="$mine")] = False


ProjectsParams = Annotated[ProjectsQuery, Depends(from_query(ProjectsQuery))]
TeamsParams = Annotated[TeamsQuery, Depends(from_query(TeamsQuery))]


def _team(org: Organisation, project_id: str, id_or_name: str) -> Team:
    message = f"The team with id or name {id_or_name[:200]} does not exist in this project."
    return existing(org.team(project_id, id_or_name), "TeamNotFoundException", message)


def _is_mine(org: Organisation, team: Team) -> bool:
    """Whether the caller is in ``team``: a PAT names no user here, so the caller is the org's first user
    (as WIQL's ``@Me`` is)."""
    caller = next(iter(org.users), None)
    return caller is not None and caller in team.member_ids


def _teams_page(org: Organisation, teams: Iterable[Team], query: TeamsQuery) -> Response:
    """A ``WebApiTeam`` list, org-wide or a project's: ``$mine`` keeps the caller's teams, then ``$top``/``$skip``."""
    listed = [t for t in teams if not query.mine or _is_mine(org, t)]
    return wrapped([team_json(org, t) for t in skip_page(listed, query.top, query.skip)])


def _key_patterns(keys: str | None) -> list[re.Pattern[str]] | None:
    """``keys`` (comma-separated names, ``*`` matching any run of characters) as case-insensitive patterns."""
    if keys is None or not keys.strip():
        return None
    return [
        re.compile("^" + ".*".join(re.escape(part) for part in key.strip().split("*")) + "$", re.IGNORECASE)
        for key in keys.split(",")
        if key.strip()
    ]


def add_core_routes(app: FastAPI, emulator: Emulator, responses: DeclaredResponses) -> None:
    """Add the Core routes over each org's :class:`~kiosk.emulator.org.model.Organisation`."""

    @app.get("/{org}/_apis/projects", responses=responses)
    async def projects(org: str, query: ProjectsParams, api_version: ApiVersion) -> Response:
        """``TeamProjectReference`` list, well-formed projects by default (deleted ones are gone from it)."""
        data = emulator.organisation(org)
        listed = list(data.projects.values())
        state = query.state_filter
        if state is not None and state.lower() not in ("all", "wellformed", "unchanged"):
            listed = [p for p in listed if p.state.lower() == state.lower()]
        listed = list(skip_page(listed, None, query.skip, default=len(listed)))
        page, next_token = continuation_page(listed, query.top, query.token)
        return wrapped([project_reference(data, p) for p in page], token=next_token)

    @app.get("/{org}/_apis/projects/{project}", responses=responses)
    async def project(
        org: str, project: str, api_version: ApiVersion, include_capabilities: IncludeCapabilities = False
    ) -> Response:
        """A ``TeamProject`` by GUID or name (capabilities always shown, as Azure's single-project answer does)."""
        data = emulator.organisation(org)
        return FastJSONResponse(project_json(data, find_project(data, project)))

    @app.get("/{org}/_apis/projects/{project}/properties", responses=responses)
    async def properties(
        org: str, project: str, api_version: ApiVersion, keys: Annotated[str | None, Query(max_length=2000)] = None
    ) -> Response:
        """``ProjectProperty`` list: every property, or those ``keys`` names (``*`` wildcards)."""
        data = emulator.organisation(org)
        patterns = _key_patterns(keys)
        listed = [
            {"name": name, "value": value}
            for name, value in project_properties(data, find_project(data, project)).items()
            if patterns is None or any(p.match(name) for p in patterns)
        ]
        return wrapped(listed)

    @app.get("/{org}/_apis/teams", responses=responses)
    async def all_teams(org: str, query: TeamsParams, api_version: ApiVersion) -> Response:
        """Every team of every project (``$top``/``$skip``, no token); ``$mine``: the caller's teams."""
        data = emulator.organisation(org)
        return _teams_page(data, [t for t in data.teams.values() if t.project_id in data.projects], query)

    @app.get("/{org}/_apis/projects/{project}/teams", responses=responses)
    async def teams(org: str, project: str, query: TeamsParams, api_version: ApiVersion) -> Response:
        """The project's teams (``$top``/``$skip``); ``$mine``: the caller's teams."""
        data = emulator.organisation(org)
        return _teams_page(data, data.project_teams(find_project(data, project).id), query)

    @app.get("/{org}/_apis/projects/{project}/teams/{team}", responses=responses)
    async def team(org: str, project: str, team: str, api_version: ApiVersion) -> Response:
        data = emulator.organisation(org)
        return FastJSONResponse(team_json(data, _team(data, find_project(data, project).id, team)))

    @app.get("/{org}/_apis/projects/{project}/teams/{team}/members", responses=responses)
    async def team_members(org: str, project: str, team: str, paging: SkipPaged, api_version: ApiVersion) -> Response:
        """``TeamMember`` list (``$top``/``$skip``, no token)."""
        data = emulator.organisation(org)
        found = _team(data, find_project(data, project).id, team)
        users = [data.users[u] for u in found.member_ids if u in data.users]
        return wrapped([team_member_json(data, found, u) for u in skip_page(users, paging.top, paging.skip)])

    @app.get("/{org}/_apis/projectCollections/{collection}", responses=responses)
    async def project_collection(org: str, collection: str, api_version: ApiVersion) -> Response:
        """The organisation as a ``TeamProjectCollection`` (what a project's ``_links.collection`` points at)."""
        data = emulator.organisation(org)
        if collection.lower() not in (data.id, data.name.lower()):
            raise AzureError(
                404, "CollectionDoesNotExistException", f"The collection {collection[:64]} does not exist."
            )
        return FastJSONResponse(collection_json(data))
