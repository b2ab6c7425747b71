"""Classic release routes (reference 3.7): release definitions, releases, their stages, deployments.

Azure serves these on the ``vsrm`` host; an emulated org serves them on its own host, as Azure
DevOps Server does (every resource area points at the org's URL). Lists page by continuation
token (header ``x-ms-continuationtoken``, only while more remain) with ``$top``; filters are
Azure's query parameters, enumerations in any letter case, and an unknown enumeration value is
Azure's 400. ``releaseId`` on the deployments list is honoured (Ocean-style ingesters send it;
Azure's specification does not list it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import Depends, FastAPI, Query
from starlette.responses import Response

from kiosk.emulator.errors import AzureError
from kiosk.emulator.org.model import Organisation, Project, Release, ReleaseDefinition
from kiosk.emulator.routes.common import (
    ApiVersion,
    DeclaredResponses,
    TokenPaged,
    continuation_page,
    find_project,
    find_release,
    from_query,
    in_project,
    wrapped,
)
from kiosk.emulator.routes.query_params import IDS_PATTERN, Time, choices, enum_pattern, ids
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_release import (
    DEFINITION_EXPANDS,
    RELEASE_EXPANDS,
    deployment_json,
    release_definition_json,
    release_environment_json,
    release_json,
)
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_release_routes"]

_PAGE: Final = 50
"""Azure's default page of releases (documented); used for definitions and deployments too."""

_DEFINITION_ORDERS: Final = frozenset({"idascending", "iddescending", "nameascending", "namedescending"})
_RELEASE_ORDERS: Final = frozenset({"ascending", "descending"})
_RELEASE_STATUSES: Final = frozenset({"undefined", "draft", "active", "abandoned"})
_DEPLOYMENT_STATUSES: Final = frozenset(
    {"undefined", "notdeployed", "inprogress", "succeeded", "partiallysucceeded", "failed", "all"}
)
_OPERATION_STATUSES: Final = frozenset(
    {
        "undefined", "queued", "scheduled", "pending", "approved", "rejected", "deferred", "queuedforagent",
        "phaseinprogress", "phasesucceeded", "phasepartiallysucceeded", "phasefailed", "canceled",
        "phasecanceled", "manualinterventionpending", "queuedforpipeline", "cancelling", "evaluatinggates",
        "gatefailed", "all",
    }
)  # fmt: skip


Text = Annotated[str | None, Query(max_length=400)]
DefinitionExpand = Annotated[
    str | None, Query(alias="$expand", max_length=400, pattern=enum_pattern(DEFINITION_EXPANDS, many=True))
]
ReleaseExpand = Annotated[
    str | None, Query(alias="$expand", max_length=400, pattern=enum_pattern(RELEASE_EXPANDS, many=True))
]
DefinitionOrder = Annotated[str | None, Query(alias="queryOrder", pattern=enum_pattern(_DEFINITION_ORDERS))]
ReleaseOrder = Annotated[str | None, Query(alias="queryOrder", pattern=enum_pattern(_RELEASE_ORDERS))]
# Filters more than one list takes, declared once so that the lists describe them alike.
SearchText = Annotated[str | None, Query(alias="searchText", max_length=400)]
IsDeleted = Annotated[bool, Query(alias="isDeleted")]
TagFilter = Annotated[str | None, Query(alias="tagFilter", max_length=1000)]
DefinitionIdFilter = Annotated[int | None, Query(alias="definitionId")]
StageFilter = Annotated[int | None, Query(alias="definitionEnvironmentId")]
CreatedBy = Annotated[str | None, Query(alias="createdBy", max_length=400)]


def _utc(value: datetime | None) -> datetime | None:
    """A query's time as UTC (a time without an offset is taken as UTC, as Azure takes it)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _between(value: datetime | None, low: datetime | None, high: datetime | None) -> bool:
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def _under(path: str, folder: str) -> bool:
    """Whether a definition's folder ``path`` is ``folder`` or below it (backslash form, any case)."""
    folder_key = "\\" + folder.strip().strip("\\").casefold()
    path_key = "\\" + path.strip("\\").casefold()
    return folder_key == "\\" or path_key == folder_key or path_key.startswith(folder_key + "\\")


def _user_id(org: Organisation, who: str | None) -> str | None:
    """A user filter's identity id (the id itself or a principal name); an unknown one matches nobody."""
    if not who:
        return None
    user = org.user(who)
    return user.id if user is not None else "\0"


def _definition(org: Organisation, project: Project, definition_id: int) -> ReleaseDefinition:
    message = f"VS402881: No release definition found with id {definition_id}. Specify a valid id and try again."
    return in_project(
        org.release_definitions.get(definition_id), project, "ReleaseDefinitionNotFoundException", message
    )


def _tags_match(tags: Iterable[str], wanted: str | None) -> bool:
    """``tagFilter``: every tag named (any case) is on the object."""
    if not wanted:
        return True
    have = {tag.casefold() for tag in tags}
    return all(tag.strip().casefold() in have for tag in wanted.split(",") if tag.strip())


ReleaseIdFilter = Annotated[str | None, Query(alias="releaseIdFilter", max_length=2000, pattern=IDS_PATTERN)]
DefinitionIdsFilter = Annotated[str | None, Query(alias="definitionIdFilter", max_length=2000, pattern=IDS_PATTERN)]


@dataclass(frozen=True, slots=True)
class DefinitionsQuery:
    """Which release definitions: by name (``searchText``, ``isExactNameMatch``), folder, tags, ids and
    deletion, in ``queryOrder``, a page by token."""

    search_text: SearchText = None
    is_exact_name_match: Annotated[bool, Query(alias="isExactNameMatch")] = False
    expand: DefinitionExpand = None
    path: Text = None
    query_order: DefinitionOrder = None
    is_deleted: IsDeleted = False
    tag_filter: TagFilter = None
    definition_id_filter: DefinitionIdsFilter = None


DefinitionsParams = Annotated[DefinitionsQuery, Depends(from_query(DefinitionsQuery))]


@dataclass(frozen=True, slots=True)
class ReleasesQuery:
    """Which releases: by definition, stage, creator, status, creation time, branch, tags, ids and
    folder, in ``queryOrder``, a page by token."""

    definition_id: DefinitionIdFilter = None
    definition_environment_id: StageFilter = None
    search_text: SearchText = None
    created_by: CreatedBy = None
    status_filter: Annotated[str | None, Query(alias="statusFilter", pattern=enum_pattern(_RELEASE_STATUSES))] = None
    min_created_time: Annotated[Time, Query(alias="minCreatedTime")] = None
    max_created_time: Annotated[Time, Query(alias="maxCreatedTime")] = None
    query_order: ReleaseOrder = None
    expand: ReleaseExpand = None
    source_branch_filter: Annotated[str | None, Query(alias="sourceBranchFilter", max_length=400)] = None
    is_deleted: IsDeleted = False
    tag_filter: TagFilter = None
    release_id_filter: ReleaseIdFilter = None
    path: Text = None


ReleasesParams = Annotated[ReleasesQuery, Depends(from_query(ReleasesQuery))]


@dataclass(frozen=True, slots=True)
class DeploymentsQuery:
    """Which deployments: by definition, stage, release, who asked and for whom, modified and started
    times, status, branch, in ``queryOrder``, a page by token."""

    definition_id: DefinitionIdFilter = None
    definition_environment_id: StageFilter = None
    release_id: Annotated[int | None, Query(alias="releaseId")] = None
    created_by: CreatedBy = None
    created_for: Annotated[str | None, Query(alias="createdFor", max_length=400)] = None
    min_modified_time: Annotated[Time, Query(alias="minModifiedTime")] = None
    max_modified_time: Annotated[Time, Query(alias="maxModifiedTime")] = None
    min_started_time: Annotated[Time, Query(alias="minStartedTime")] = None
    max_started_time: Annotated[Time, Query(alias="maxStartedTime")] = None
    deployment_status: Annotated[
        str | None,
        Query(alias="deploymentStatus", max_length=400, pattern=enum_pattern(_DEPLOYMENT_STATUSES, many=True)),
    ] = None
    operation_status: Annotated[
        str | None,
        Query(alias="operationStatus", max_length=1000, pattern=enum_pattern(_OPERATION_STATUSES, many=True)),
    ] = None
    latest_attempts_only: Annotated[bool, Query(alias="latestAttemptsOnly")] = False
    source_branch: Annotated[str | None, Query(alias="sourceBranch", max_length=400)] = None
    query_order: ReleaseOrder = None


DeploymentsParams = Annotated[DeploymentsQuery, Depends(from_query(DeploymentsQuery))]


def add_release_routes(app: FastAPI, emulator: Emulator, responses: DeclaredResponses) -> None:
    """Add the release routes (``Release`` area, served on the org's host)."""

    @app.get("/{org}/{project}/_apis/release/definitions", responses=responses)
    async def definitions(
        org: str, project: str, query: DefinitionsParams, paging: TokenPaged, api_version: ApiVersion
    ) -> Response:
        """``ReleaseDefinition`` list: names containing ``searchText`` (whole name with ``isExactNameMatch``),
        under ``path``, deleted ones only with ``isDeleted``; ``queryOrder`` idAscending by default."""
        data = emulator.organisation(org)
        found = find_project(data, project)
        expands = frozenset(choices("$expand", query.expand, DEFINITION_EXPANDS))
        order = choices("queryOrder", query.query_order, _DEFINITION_ORDERS)
        wanted_ids = ids("definitionIdFilter", query.definition_id_filter)
        listed = [
            d
            for d in data.release_definitions.values()
            if d.project_id == found.id and d.is_deleted == query.is_deleted
        ]
        if query.search_text:
            text = query.search_text.casefold()
            listed = [
                d
                for d in listed
                if (d.name.casefold() == text if query.is_exact_name_match else text in d.name.casefold())
            ]
        if query.path:
            listed = [d for d in listed if _under(d.path, query.path)]
        if wanted_ids is not None:
            listed = [d for d in listed if d.id in wanted_ids]
        listed = [d for d in listed if _tags_match(d.tags, query.tag_filter)]
        kind = next(iter(order), "idascending")
        if kind.startswith("name"):
            listed.sort(key=lambda d: (d.name.casefold(), d.id), reverse=kind == "namedescending")
        else:
            listed.sort(key=lambda d: d.id, reverse=kind == "iddescending")
        page, next_token = continuation_page(listed, paging.top, paging.token, default=_PAGE)
        return wrapped([release_definition_json(data, d, expands) for d in page], token=next_token)

    @app.get("/{org}/{project}/_apis/release/definitions/{definition_id}", responses=responses)
    async def definition(org: str, project: str, definition_id: int, api_version: ApiVersion) -> Response:
        """A ``ReleaseDefinition`` with its stages, artifacts, triggers and variables."""
        data = emulator.organisation(org)
        found = _definition(data, find_project(data, project), definition_id)
        return FastJSONResponse(release_definition_json(data, found, full=True))

    @app.get("/{org}/{project}/_apis/release/releases", responses=responses)
    async def releases(
        org: str, project: str, query: ReleasesParams, paging: TokenPaged, api_version: ApiVersion
    ) -> Response:
        """``Release`` list, newest first unless ``queryOrder=ascending`` (by creation time)."""
        data = emulator.organisation(org)
        found = find_project(data, project)
        expands = frozenset(choices("$expand", query.expand, RELEASE_EXPANDS))
        statuses = choices("statusFilter", query.status_filter, _RELEASE_STATUSES) - {"undefined"}
        order = choices("queryOrder", query.query_order, _RELEASE_ORDERS)
        wanted_ids = ids("releaseIdFilter", query.release_id_filter)
        creator = _user_id(data, query.created_by)
        low, high = _utc(query.min_created_time), _utc(query.max_created_time)
        selected: list[Release] = []
        for release in data.releases.values():
            definition = data.release_definitions.get(release.definition_id)
            build = data.builds.get(release.build_id) if release.build_id is not None else None
            if (
                release.project_id != found.id
                or query.is_deleted  # no release of the emulated org is (soft-)deleted
                or (query.definition_id is not None and release.definition_id != query.definition_id)
                or (
                    query.definition_environment_id is not None
                    and all(
                        e.definition_environment_id != query.definition_environment_id for e in release.environments
                    )
                )
                or (query.search_text and query.search_text.casefold() not in release.name.casefold())
                or (creator is not None and release.created_by != creator)
                or (statuses and release.status.lower() not in statuses)
                or not _between(release.created_on, low, high)
                or (query.source_branch_filter and (build is None or build.source_branch != query.source_branch_filter))
                or not _tags_match(release.tags, query.tag_filter)
                or (wanted_ids is not None and release.id not in wanted_ids)
                or (query.path and (definition is None or not _under(definition.path, query.path)))
            ):
                continue
            selected.append(release)
        selected.sort(key=lambda r: (r.created_on, r.id), reverse="ascending" not in order)
        page, next_token = continuation_page(selected, paging.top, paging.token, default=_PAGE)
        return wrapped([release_json(data, r, expands) for r in page], token=next_token)

    @app.get("/{org}/{project}/_apis/release/releases/{release_id}", responses=responses)
    async def release(
        org: str, project: str, release_id: int, api_version: ApiVersion, expand: ReleaseExpand = None
    ) -> Response:
        """A ``Release`` with its stages (and their deployment attempts) and artifacts."""
        data = emulator.organisation(org)
        choices("$expand", expand, RELEASE_EXPANDS)
        return FastJSONResponse(
            release_json(data, find_release(data, find_project(data, project), release_id), full=True)
        )

    @app.get("/{org}/{project}/_apis/release/releases/{release_id}/environments/{environment_id}", responses=responses)
    async def release_environment(
        org: str, project: str, release_id: int, environment_id: int, api_version: ApiVersion
    ) -> Response:
        """One stage of a release (``ReleaseEnvironment``), what a deployment's ``releaseEnvironment.url`` names."""
        data = emulator.organisation(org)
        found = find_release(data, find_project(data, project), release_id)
        for environment in found.environments:
            if environment.id == environment_id:
                return FastJSONResponse(release_environment_json(data, found, environment))
        raise AzureError(
            404,
            "ReleaseEnvironmentNotFoundException",
            f"Release environment with id {environment_id} does not exist in release {release_id}.",
        )

    @app.get("/{org}/{project}/_apis/release/deployments", responses=responses)
    async def deployments(
        org: str, project: str, query: DeploymentsParams, paging: TokenPaged, api_version: ApiVersion
    ) -> Response:
        """``Deployment`` list, newest first unless ``queryOrder=ascending``."""
        data = emulator.organisation(org)
        found = find_project(data, project)
        statuses = choices("deploymentStatus", query.deployment_status, _DEPLOYMENT_STATUSES) - {"undefined"}
        operations = choices("operationStatus", query.operation_status, _OPERATION_STATUSES) - {"undefined"}
        order = choices("queryOrder", query.query_order, _RELEASE_ORDERS)
        requester, requested_for = _user_id(data, query.created_by), _user_id(data, query.created_for)
        modified = (_utc(query.min_modified_time), _utc(query.max_modified_time))
        started = (_utc(query.min_started_time), _utc(query.max_started_time))
        selected = []
        for deployment in data.deployments.values():
            release = data.releases.get(deployment.release_id)
            build = data.builds.get(release.build_id) if release is not None and release.build_id else None
            if (
                deployment.project_id != found.id
                or (query.definition_id is not None and deployment.release_definition_id != query.definition_id)
                or (
                    query.definition_environment_id is not None
                    and deployment.definition_environment_id != query.definition_environment_id
                )
                or (query.release_id is not None and deployment.release_id != query.release_id)
                or (requester is not None and deployment.requested_by != requester)
                or (requested_for is not None and deployment.requested_for != requested_for)
                or (statuses and "all" not in statuses and deployment.deployment_status.lower() not in statuses)
                or (operations and "all" not in operations and deployment.operation_status.lower() not in operations)
                or not _between(deployment.last_modified_on, *modified)
                or not _between(deployment.started_on, *started)
                or (query.source_branch and (build is None or build.source_branch != query.source_branch))
            ):
                continue
            selected.append(deployment)
        if query.latest_attempts_only:
            latest: dict[tuple[int, int], int] = {}
            for deployment in selected:
                key = (deployment.release_id, deployment.release_environment_id)
                latest[key] = max(latest.get(key, 0), deployment.attempt)
            selected = [d for d in selected if d.attempt == latest[(d.release_id, d.release_environment_id)]]
        selected.sort(key=lambda d: d.id, reverse="ascending" not in order)
        page, next_token = continuation_page(selected, paging.top, paging.token, default=_PAGE)
        return wrapped([deployment_json(data, d) for d in page], token=next_token)
