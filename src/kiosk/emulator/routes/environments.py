"""Environment routes (reference 3.6): a project's pipeline environments and their deployment records.

Both lists page by continuation token (header ``x-ms-continuationtoken``, sent only while more
remain). Deployment records take their page size as ``top`` (Microsoft's client) or ``$top``
(what Ocean-style ingesters send); ``top`` wins when both are given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, FastAPI, Query
from starlette.responses import Response

from kiosk.emulator.org.model import Environment, Organisation, Project
from kiosk.emulator.routes.common import (
    ApiVersion,
    DeclaredResponses,
    Token,
    TokenPaged,
    Top,
    continuation_page,
    find_project,
    from_query,
    in_project,
    wrapped,
)
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_release import environment_json, environment_record_json
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_environment_routes", "name_matches"]

_ENVIRONMENTS_PAGE: Final = 50
_RECORDS_PAGE: Final = 100


def name_matches(pattern: str, name: str) -> bool:
    """Azure's name filter: the whole name, any case, ``*`` standing for any run of characters."""
    regex = ".*".join(re.escape(part) for part in pattern.casefold().split("*"))
    return re.fullmatch(regex, name.casefold(), re.DOTALL) is not None


def _environment(org: Organisation, project: Project, environment_id: int) -> Environment:
    message = f"Environment with id {environment_id} does not exist."
    return in_project(org.environments.get(environment_id), project, "EnvironmentNotFoundException", message)


@dataclass(frozen=True, slots=True)
class EnvironmentsQuery:
    """Environments by ``name`` (``*`` wildcards), a page by token."""

    name: Annotated[str | None, Query(max_length=400)] = None


EnvironmentsParams = Annotated[EnvironmentsQuery, Depends(from_query(EnvironmentsQuery))]


@dataclass(frozen=True, slots=True)
class RecordsQuery:
    """A page of deployment records: ``top`` (what Microsoft's client sends) or ``$top``, and the token."""

    top: Annotated[int | None, Query(alias="top", ge=0, le=100_000)] = None
    dollar_top: Top = None
    token: Token = None


RecordsParams = Annotated[RecordsQuery, Depends(from_query(RecordsQuery))]


def add_environment_routes(app: FastAPI, emulator: Emulator, responses: DeclaredResponses) -> None:
    """Add the environment routes (``distributedtask`` area)."""

    @app.get("/{org}/{project}/_apis/distributedtask/environments", responses=responses)
    async def environments(
        org: str, project: str, query: EnvironmentsParams, paging: TokenPaged, api_version: ApiVersion
    ) -> Response:
        """``EnvironmentInstance`` list by id; ``name`` matches whole names (``*`` wildcards)."""
        data = emulator.organisation(org)
        found = find_project(data, project)
        listed = [e for e in data.environments.values() if e.project_id == found.id]
        if query.name:
            listed = [e for e in listed if name_matches(query.name, e.name)]
        page, next_token = continuation_page(listed, paging.top, paging.token, default=_ENVIRONMENTS_PAGE)
        return wrapped([environment_json(data, e) for e in page], token=next_token)

    @app.get("/{org}/{project}/_apis/distributedtask/environments/{environment_id}", responses=responses)
    async def environment(
        org: str,
        project: str,
        environment_id: int,
        api_version: ApiVersion,
        expands: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Response:
        """An ``EnvironmentInstance``; ``expands=resourceReferences`` adds its (here: no) resources."""
        data = emulator.organisation(org)
        found = _environment(data, find_project(data, project), environment_id)
        resources = expands is not None and "resourcereferences" in expands.lower()
        return FastJSONResponse(environment_json(data, found, resources=resources))

    @app.get(
        "/{org}/{project}/_apis/distributedtask/environments/{environment_id}/environmentdeploymentrecords",
        responses=responses,
    )
    async def deployment_records(
        org: str, project: str, environment_id: int, query: RecordsParams, api_version: ApiVersion
    ) -> Response:
        """The environment's deployment records, newest first."""
        data = emulator.organisation(org)
        found = _environment(data, find_project(data, project), environment_id)
        records = sorted(found.deployments, key=lambda record: record.id, reverse=True)
        size = query.top if query.top is not None else query.dollar_top
        page, next_token = continuation_page(records, size, query.token, default=_RECORDS_PAGE)
        return wrapped([environment_record_json(data, record) for record in page], token=next_token)
