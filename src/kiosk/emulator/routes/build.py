"""Build routes over the organisation's data (reference 3.5): definitions, the builds list, generated builds,
a build's changes (its commits) and work items.

A project declared in the emulator config has its pipelines' runs as builds (the existing
``/_apis/build/builds/{id}`` routes serve them); a generated project has the generated history.
The builds list shows both, newest first, paged by continuation token (header
``x-ms-continuationtoken``, which Ocean-style ingesters read; Microsoft's client ignores it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Final

import orjson
from fastapi import Depends, FastAPI, Query, Request
from starlette.responses import Response

from kiosk.emulator.errors import AzureError
from kiosk.emulator.models import Run
from kiosk.emulator.org.model import Build, BuildDefinition, Commit, GitRepository, Organisation
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
from kiosk.emulator.routes.git import pull_request_work_item_ids
from kiosk.emulator.routes.query_params import IDS_PATTERN, enum_pattern, ids
from kiosk.emulator.routes.rendered import RenderedJson, encoded_list
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes import build_json, pipeline_definition_json
from kiosk.emulator.shapes_build import build_change_json, build_definition_json, generated_build_json
from kiosk.emulator.shapes_git import work_item_ref
from kiosk.emulator.versioning import resolve_api_version
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_build_routes", "generated_build", "generated_definition", "generated_definitions"]

_BUILDS_PAGE: Final = 1000
_DEFINITION_ORDERS: Final[dict[str, tuple[Callable[[BuildDefinition], Any], bool]]] = {
    "none": (lambda d: d.id, False),
    "definitionnameascending": (lambda d: d.name.casefold(), False),
    "definitionnamedescending": (lambda d: d.name.casefold(), True),
    "lastmodifiedascending": (lambda d: (d.created_date, d.id), False),
    "lastmodifieddescending": (lambda d: (d.created_date, d.id), True),
}
"""A definitions list's ``queryOrder`` → (sort key, descending?); a definition's last change is its creation."""
_ORDERS: Final = {
    "queuetimedescending": ("queue", True),
    "queuetimeascending": ("queue", False),
    "starttimedescending": ("start", True),
    "starttimeascending": ("start", False),
    "finishtimedescending": ("finish", True),
    "finishtimeascending": ("finish", False),
}
"""``queryOrder`` → (which time, newest first?); ``minTime``/``maxTime`` bound that same time, as Azure's do."""


@dataclass(frozen=True, slots=True)
class BuildRow:
    """What the builds list filters and sorts on, for a generated build or a configured project's run."""

    id: int
    definition_id: int | None
    status: str
    result: str
    reason: str
    branch: str
    number: str
    repository_id: str
    requested_for: tuple[str, ...]
    tags: frozenset[str]
    times: dict[str, datetime | None]
    source: Build | dict[str, Any]
    """The generated build, or the run's rendered JSON."""

    @classmethod
    def of_build(cls, org: Organisation, build: Build) -> BuildRow:
        user = org.users.get(build.requested_for)
        names = (build.requested_for, user.principal_name.lower(), user.display_name.lower()) if user else ()
        return cls(
            build.id,
            build.definition_id,
            build.status.lower(),
            (build.result or "").lower(),
            build.reason.lower(),
            build.source_branch,
            build.build_number,
            build.repository_id,
            names,
            frozenset(t.lower() for t in build.tags),
            {"queue": build.queue_time, "start": build.start_time, "finish": build.finish_time},
            build,
        )

    @classmethod
    def of_run(cls, run: Run, body: dict[str, Any]) -> BuildRow:
        return cls(
            run.id,
            run.pipeline.id,
            str(body.get("status", "")).lower(),
            str(body.get("result", "")).lower(),
            str(body.get("reason", "")).lower(),
            run.source_branch,
            run.name,
            "",
            (),
            frozenset(),
            {"queue": run.created, "start": run.created, "finish": run.finished},
            body,
        )


@dataclass(frozen=True, slots=True)
class BuildQuery:
    """The builds list's filters and order (reference 3.5), applied to :class:`BuildRow` s."""

    definitions: set[int] | None = None
    build_ids: set[int] | None = None
    status: str = "all"
    results: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    branch: str | None = None
    number: str | None = None
    repository: str | None = None
    requested_for: str | None = None
    tags: frozenset[str] = frozenset()
    time: str = "queue"
    newest_first: bool = True
    min_time: datetime | None = None
    max_time: datetime | None = None

    per_definition: int | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> BuildQuery:
        """The builds list's query parameters (:data:`BUILDS_LIST_PARAMETERS`), checked, or Azure's 400.

        Read here rather than declared one by one to FastAPI: each declared query parameter costs
        the framework ~10 µs a request, and the list has sixteen (measured: ~150 µs of a page's ~700).
        """
        _check_parameters(params)
        time, newest_first = "queue", True
        order = params.get("queryOrder")
        if order:
            time, newest_first = _ORDERS[order.lower()]

        def words(name: str) -> frozenset[str]:
            return frozenset(w.strip().lower() for w in (params.get(name) or "").split(",") if w.strip())

        per_definition = params.get("maxBuildsPerDefinition")
        repository = params.get("repositoryId")
        requested_for = params.get("requestedFor")
        return cls(
            ids("definitions", params.get("definitions")),
            ids("buildIds", params.get("buildIds")),
            _status_filter(params.get("statusFilter")),
            words("resultFilter"),
            words("reasonFilter") - {"all"},
            params.get("branchName") or None,
            params.get("buildNumber") or None,
            repository.lower() if repository else None,
            requested_for.lower() if requested_for else None,
            words("tagFilters"),
            time,
            newest_first,
            _time(params, "minTime"),
            _time(params, "maxTime"),
            int(per_definition) if per_definition else None,
        )

    def matches(self, row: BuildRow) -> bool:
        if self.definitions is not None and row.definition_id not in self.definitions:
            return False
        if self.build_ids is not None and row.id not in self.build_ids:
            return False
        if self.status not in ("all", "none") and row.status not in self.status.split(","):
            return False
        if (self.results and row.result not in self.results) or (self.reasons and row.reason not in self.reasons):
            return False
        if self.branch and row.branch != self.branch:
            return False
        if self.number and not (
            row.number.lower().startswith(self.number[:-1].lower())
            if self.number.endswith("*")
            else row.number.lower() == self.number.lower()
        ):
            return False
        if self.repository and row.repository_id != self.repository:
            return False
        if self.requested_for and self.requested_for not in row.requested_for:
            return False
        if self.tags and not self.tags <= row.tags:
            return False
        when = row.times.get(self.time)
        if self.min_time is not None and (when is None or when < self.min_time):
            return False
        return not (self.max_time is not None and (when is None or when > self.max_time))

    def select(self, rows: list[BuildRow]) -> list[BuildRow]:
        """The matching rows in order (by the chosen time, then id), at most ``per_definition`` per definition.

        ``rows`` come newest first; with no filter and the default order they are the answer as they are.
        """
        if self == _EVERYTHING:
            return rows
        chosen = [row for row in rows if self.matches(row)]
        if self.time == "queue":
            chosen.sort(key=lambda row: row.id, reverse=self.newest_first)
        else:
            chosen.sort(key=lambda row: (row.times.get(self.time) or _NEVER, row.id), reverse=self.newest_first)
        if self.per_definition is not None:
            counts: dict[int | None, int] = {}
            kept = []
            for row in chosen:
                counts[row.definition_id] = counts.get(row.definition_id, 0) + 1
                if counts[row.definition_id] <= self.per_definition:
                    kept.append(row)
            chosen = kept
        return chosen


_NEVER: Final = datetime(1, 1, 1, tzinfo=UTC)
_EVERYTHING: Final = BuildQuery()


def _build_id(build: Build) -> int:
    return build.id


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    """An ISO 8601 time parameter (checked by :func:`_check_parameters`), UTC unless it says otherwise."""
    value = params.get(name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        raise AzureError(400, "ArgumentException", f"{name}: {value[:40]!r} is not a date and time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_TEXT: Final[dict[str, Any]] = {"type": "string", "maxLength": 400}
_DATE_TIME: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
"""RFC 3339's date-time (OpenAPI's ``format: date-time``), which ``datetime.fromisoformat`` reads."""
_DIGITS: Final = re.compile(r"[0-9]{1,9}")
BUILDS_LIST_PARAMETERS: Final = [
    _parameter("api-version", {"type": "string"}, "e.g. 7.1; a read without one is served at 7.1"),
    _parameter("definitions", {"type": "string", "pattern": IDS_PATTERN}, "definition ids, comma-separated"),
    _parameter("buildIds", {"type": "string", "pattern": IDS_PATTERN}, "build ids, comma-separated"),
    _parameter(
        "statusFilter",
        _TEXT,
        "none, inProgress, completed, cancelling, postponed, notStarted or all; several comma-separated (a flags enum)",
    ),
    _parameter("resultFilter", _TEXT, "succeeded, partiallySucceeded, failed, canceled; comma-separated"),
    _parameter("reasonFilter", _TEXT, "manual, individualCI, schedule, pullRequest…; comma-separated"),
    _parameter("branchName", _TEXT, "the source branch, refs/heads/…"),
    _parameter("buildNumber", _TEXT, "a build number, or a prefix ending in *"),
    _parameter("repositoryId", _TEXT, "the repository's id"),
    _parameter("requestedFor", _TEXT, "a user's id, unique name or display name"),
    _parameter("tagFilters", _TEXT, "tags every build must carry, comma-separated"),
    _parameter(
        "queryOrder",
        {"type": "string", "pattern": enum_pattern(_ORDERS)},
        "queueTime, startTime or finishTime, then Ascending or Descending",
    ),
    _parameter("minTime", {"type": "string", "format": "date-time"}, "earliest time (the one queryOrder names)"),
    _parameter("maxTime", {"type": "string", "format": "date-time"}, "latest time (the one queryOrder names)"),
    _parameter("maxBuildsPerDefinition", {"type": "integer", "minimum": 1, "maximum": 100_000}, "newest N each"),
    _parameter("$top", {"type": "integer", "minimum": 0, "maximum": 100_000}, "page size (default 1000)"),
    _parameter("continuationToken", {"type": "string", "pattern": "^[0-9]{1,9}$"}, "the previous page's token"),
]
"""The builds list's query parameters, for the OpenAPI description (the route reads them itself)."""
_PATTERNS: Final = {
    p["name"]: re.compile(p["schema"]["pattern"]) for p in BUILDS_LIST_PARAMETERS if "pattern" in p["schema"]
}


def _status_filter(value: str | None) -> str:
    """``statusFilter`` as :meth:`BuildQuery.matches` reads it: Azure's ``BuildStatus`` is a flags
    enum, so several names may be given comma-separated (``notStarted,inProgress``); ``all`` among
    them (or nothing) is every status. Lower-cased, blanks dropped, joined with commas."""
    names = [name.strip().lower() for name in (value or "").split(",") if name.strip()]
    if not names or "all" in names:
        return "all"
    return ",".join(names)


def _check_parameters(params: Mapping[str, str]) -> None:
    """Each of :data:`BUILDS_LIST_PARAMETERS` given holds to its declared schema, or Azure's 400
    (the api-version has its own check)."""
    for parameter in BUILDS_LIST_PARAMETERS[1:]:
        name = parameter["name"]
        value = params.get(name)
        if value is None:
            continue
        schema = parameter["schema"]
        if schema["type"] == "integer":
            valid = _DIGITS.fullmatch(value) is not None and schema["minimum"] <= int(value) <= schema["maximum"]
        else:
            pattern = _PATTERNS.get(name)
            valid = len(value) <= schema.get("maxLength", len(value)) and (pattern is None or pattern.search(value))
            if schema.get("format") == "date-time":
                valid = _DATE_TIME.fullmatch(value) is not None
        if not valid:
            raise AzureError(400, "ArgumentException", f"{name}: {value[:40]!r} is not a valid value")


def generated_build(emulator: Emulator, org: str, project: str, build_id: int) -> tuple[Organisation, Build] | None:
    """The generated build ``build_id`` of ``project``; None when the project is a configured one (its runs are its
    builds); Azure's 404 when the project is generated and has no such build."""
    data = emulator.organisation(org)
    found = data.project(project)
    if found is None or found.configured:
        return None
    message = f"The requested build {build_id} could not be found."
    return data, in_project(data.builds.get(build_id), found, "BuildNotFoundException", message)


def generated_definitions(emulator: Emulator, org: str, project: str) -> list[BuildDefinition] | None:
    """A generated project's build definitions by id (what its Pipelines API lists); None for a configured
    project (its pipelines are the configured ones); Azure's 404 for no such project."""
    data = emulator.organisation(org)
    found = find_project(data, project)
    if found.configured:
        return None
    return sorted((d for d in data.build_definitions.values() if d.project_id == found.id), key=lambda d: d.id)


def generated_definition(definitions: list[BuildDefinition], pipeline_id: int) -> BuildDefinition:
    """The definition ``pipeline_id`` among a project's ``definitions``, or the Pipelines API's 404."""
    for definition in definitions:
        if definition.id == pipeline_id:
            return definition
    raise AzureError(404, "PipelineNotFoundException", f"Pipeline with id {pipeline_id} was not found.")


def build_commits(org: Organisation, build: Build) -> tuple[GitRepository | None, list[Commit]]:
    """The commits a build brought, newest first: from its source version back to (not including) the source
    version of the previous build of its definition; the source commit alone for a definition's first build."""
    repo = org.repositories.get(build.repository_id)
    head = repo.commits.get(build.source_version) if repo is not None else None
    if repo is None or head is None:
        return repo, []
    earlier = [b for b in org.builds.values() if b.definition_id == build.definition_id and b.id < build.id]
    stop = max(earlier, key=lambda b: b.id).source_version if earlier else None
    if stop is None:
        return repo, [head]
    out: list[Commit] = []
    seen: set[str] = set()
    stack = [head]
    while stack:
        stack.sort(key=lambda c: c.committer_date)
        commit = stack.pop()
        if commit.commit_id in seen or commit.commit_id == stop:
            continue
        seen.add(commit.commit_id)
        out.append(commit)
        stack.extend(repo.commits[p] for p in commit.parents if p in repo.commits)
    return repo, out


def build_work_item_ids(org: Organisation, build: Build) -> list[int]:
    """Work items linked to a build: by an artifact link to the build or to one of its commits, or through a
    pull request merged by one of its commits."""
    repo, commits = build_commits(org, build)
    shas = {c.commit_id for c in commits}
    artifacts = {f"vstfs:///build/build/{build.id}"}
    if repo is not None:
        artifacts |= {f"vstfs:///git/commit/{repo.project_id}%2f{repo.id}%2f{sha}" for sha in shas}
    ids: list[int] = []
    for item in org.work_items.values():
        if not item.is_deleted and any(
            r.rel == "ArtifactLink" and isinstance(r.target, str) and r.target.lower() in artifacts
            for r in item.relations
        ):
            ids.append(item.id)
    if repo is not None:
        for pr in org.pull_requests.values():
            if pr.repository_id == repo.id and pr.last_merge_commit in shas:
                ids.extend(i for i in pull_request_work_item_ids(org, repo, pr) if i not in ids)
    return ids


@dataclass(frozen=True, slots=True)
class DefinitionsQuery:
    """Which build definitions: ``name`` (``*`` wildcards), ``path``, ``repositoryId``,
    ``definitionIds``, in ``queryOrder``, a page by token."""

    name: Annotated[str | None, Query(max_length=400)] = None
    path: Annotated[str | None, Query(max_length=400)] = None
    repository_id: Annotated[str | None, Query(alias="repositoryId", max_length=64)] = None
    definition_ids: Annotated[str | None, Query(alias="definitionIds", max_length=2000, pattern=IDS_PATTERN)] = None
    query_order: Annotated[str | None, Query(alias="queryOrder", pattern=enum_pattern(_DEFINITION_ORDERS))] = None


DefinitionsParams = Annotated[DefinitionsQuery, Depends(from_query(DefinitionsQuery))]


def add_build_routes(app: FastAPI, emulator: Emulator, base: str, responses: DeclaredResponses) -> None:
    """Add the build definition and builds-list routes."""

    @app.get("/{org}/{project}/_apis/build/definitions", responses=responses)
    async def definitions(
        org: str, project: str, query: DefinitionsParams, paging: TokenPaged, api_version: ApiVersion
    ) -> Response:
        """``BuildDefinitionReference`` list (``name`` with ``*`` wildcards, ``path``, ``repositoryId``,
        ``definitionIds``, ``queryOrder``), paged by token."""
        data = emulator.organisation(org)
        found = find_project(data, project)
        wanted_ids = ids("definitionIds", query.definition_ids)
        listed = [
            d
            for d in data.build_definitions.values()
            if d.project_id == found.id
            and (wanted_ids is None or d.id in wanted_ids)
            and (not query.repository_id or d.repository_id == query.repository_id.lower())
            and (not query.path or d.path.lower() == query.path.replace("/", "\\").lower())
        ]
        if query.name:
            pattern = query.name.lower()
            if pattern.endswith("*"):
                listed = [d for d in listed if d.name.lower().startswith(pattern.rstrip("*"))]
            else:
                listed = [d for d in listed if d.name.lower() == pattern]
        order = (query.query_order or "none").lower()
        if order not in _DEFINITION_ORDERS:
            raise AzureError(
                400, "ArgumentException", f"queryOrder {query.query_order!r}: use e.g. definitionNameAscending"
            )
        if order != "none":
            key, newest_first = _DEFINITION_ORDERS[order]
            listed.sort(key=key, reverse=newest_first)
        page, next_token = continuation_page(listed, paging.top, paging.token)
        return wrapped([build_definition_json(data, d) for d in page], token=next_token)

    @app.get("/{org}/{project}/_apis/build/definitions/{definition_id}", responses=responses)
    async def definition(org: str, project: str, definition_id: int, api_version: ApiVersion) -> Response:
        data = emulator.organisation(org)
        found = find_project(data, project)
        item = data.build_definitions.get(definition_id)
        if found.configured and (item is None or item.project_id != found.id):
            configured = next((p for p in emulator.pipelines(org, found.name) if p.id == definition_id), None)
            if configured is not None:  # a configured pipeline is a YAML build definition too
                return FastJSONResponse(pipeline_definition_json(base, configured))
        if item is None or item.project_id != found.id:
            raise AzureError(
                404,
                "DefinitionNotFoundException",
                f"The requested definition {definition_id} could not be found.",
            )
        return FastJSONResponse(build_definition_json(data, item, full=True))

    rendered = RenderedJson()

    def project_rows(data: Organisation, project_id: str) -> list[BuildRow]:
        """The project's generated builds as rows, newest first, kept until the org changes."""

        def compute() -> list[BuildRow]:
            builds = [b for b in data.builds.values() if b.project_id == project_id]
            return sorted((BuildRow.of_build(data, b) for b in builds), key=lambda row: row.id, reverse=True)

        return rendered.derived(data, ("build rows", project_id), compute)

    @app.get(
        "/{org}/{project}/_apis/build/builds",
        responses=responses,
        openapi_extra={"parameters": BUILDS_LIST_PARAMETERS},
    )
    async def builds(request: Request, org: str, project: str) -> Response:
        """Builds newest first (or in ``queryOrder``): the project's pipeline runs (configured) or its generated
        builds. Filters apply to the model, only the page is rendered, and a generated build's JSON is
        encoded once and reused until the organisation changes (:class:`RenderedJson`). Its query, the
        api-version included, is read here rather than through FastAPI (see :meth:`BuildQuery.parse`)."""
        params = request.query_params
        resolve_api_version(request.method, params.get("api-version"), request.headers.get("accept"))
        data = emulator.organisation(org)
        found = find_project(data, project)
        query = BuildQuery.parse(params)
        rows = project_rows(data, found.id)
        if found.configured:
            runs = [
                BuildRow.of_run(run, build_json(base, run))
                for pipeline in emulator.pipelines(org, found.name)
                for run in emulator.runs(org, found.name, pipeline.id)
            ]
            rows = sorted([*runs, *rows], key=lambda row: row.id, reverse=True)
        selected = query.select(rows)
        top = params.get("$top")
        page, next_token = continuation_page(
            selected, int(top) if top else None, params.get("continuationToken"), default=_BUILDS_PAGE
        )
        generated = [row.source for row in page if isinstance(row.source, Build)]
        if len(generated) == len(page):  # a generated project's: no runs among them
            items = rendered.encoded_many(data, "build", generated, _build_id, partial(generated_build_json, data))
        else:
            items = [
                rendered.encoded(data, ("build", row.id), partial(generated_build_json, data, row.source))
                if isinstance(row.source, Build)
                else orjson.dumps(row.source)
                for row in page
            ]
        return encoded_list(items, token=next_token)

    def _build(org: str, project: str, build_id: int) -> tuple[Organisation, Build] | None:
        """A generated build, or None for an existing run of a configured project (which has no commits)."""
        generated = generated_build(emulator, org, project, build_id)
        if generated is None:
            emulator.run(org, build_id, project)  # Azure's 404 when there is no such run
        return generated

    @app.get("/{org}/{project}/_apis/build/builds/{build_id}/changes", responses=responses)
    async def build_changes(
        org: str,
        project: str,
        build_id: int,
        api_version: ApiVersion,
        top: Top = None,
        token: Token = None,
        include_source_change: Annotated[bool, Query(alias="includeSourceChange")] = False,
    ) -> Response:
        """The build's commits, newest first; ``$top`` and a continuation token (header ``x-ms-continuationtoken``)."""
        found = _build(org, project, build_id)
        if found is None:
            return wrapped([])
        data, build = found
        repo, commits = build_commits(data, build)
        if repo is None:
            return wrapped([])
        page, next_token = continuation_page(commits, top, token)
        return wrapped([build_change_json(data, repo, c) for c in page], token=next_token)

    @app.get("/{org}/{project}/_apis/build/builds/{build_id}/workitems", responses=responses)
    async def build_work_items(
        org: str, project: str, build_id: int, api_version: ApiVersion, top: Top = None
    ) -> Response:
        """``ResourceRef`` list of the work items linked to the build (``$top``, default 50)."""
        found = _build(org, project, build_id)
        if found is None:
            return wrapped([])
        data, build = found
        ids = build_work_item_ids(data, build)
        return wrapped([work_item_ref(data, i) for i in ids[: 50 if top is None else top]])
