"""Git and policy routes (reference 3.3): repositories, refs, branch stats, items, itemsbatch, commits and their
changes, pushes, PRs (with their commits and work items), policies.

Paths are Azure's, project-scoped (``/{org}/{project}/_apis/git/…``; project by name or GUID),
and org-scoped where Azure addresses a resource by GUID alone (a repository, a pull request by
id). A disabled repository answers 404 to everything below it, as Azure's does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from starlette.responses import Response

from kiosk.emulator.bodies import read_json
from kiosk.emulator.errors import AzureError, repository_not_found
from kiosk.emulator.org.model import POLICY_DISPLAY_NAMES, Commit, GitRepository, Organisation, PullRequest
from kiosk.emulator.routes.common import (
    ApiVersion,
    DeclaredResponses,
    SkipPage,
    SkipPaged,
    Token,
    TokenPaged,
    Top,
    continuation_page,
    find_pull_request,
    find_repository,
    from_query,
    org_and_project,
    skip_page,
    wrapped,
)
from kiosk.emulator.routes.query_params import enum_pattern
from kiosk.emulator.routes.rendered import RenderedJson, encoded_list
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_git import (
    branch_stats_json,
    change_counts,
    commit_change_json,
    commit_json,
    item_json,
    policy_json,
    pull_request_json,
    push_json,
    ref_json,
    repository_json,
    work_item_ref,
)
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_git_routes"]

Flag = Annotated[bool, Query()]

_MAX_BATCH_BODY = 1024 * 1024
_FOLDER_LEVELS = {"none": 0, "onelevel": 1, "onelevelplusnestedemptyfolders": 1, "full": 10_000}
_BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["itemDescriptors"],
    "properties": {
        "itemDescriptors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "recursionLevel": {"enum": ["none", "oneLevel", "oneLevelPlusNestedEmptyFolders", "full"]},
                    "version": {"type": "string"},
                    "versionType": {"enum": ["branch", "tag", "commit"]},
                },
            },
        },
        "includeContentMetadata": {"type": "boolean"},
        "latestProcessedChange": {"type": "boolean"},
        "includeLinks": {"type": "boolean"},
    },
}

#: ``searchCriteria.status`` as Azure takes it (any letter case), declared so in the OpenAPI description.
PR_STATUS_PATTERN = enum_pattern(("notset", "active", "completed", "abandoned", "all"))
_PR_STATUSES = {"notset": {"active"}, "active": {"active"}, "completed": {"completed"}, "abandoned": {"abandoned"}}


def _usable(repo: GitRepository) -> GitRepository:
    if repo.is_disabled:
        raise repository_not_found(repo.name)
    return repo


def _resolve(repo: GitRepository, version: str | None, version_type: str | None) -> tuple[Commit, str, str]:
    """The commit a version descriptor names (default: the default branch), with the descriptor as Azure echoes it."""
    kind = (version_type or "branch").lower()
    if not version:
        if kind == "commit":
            raise AzureError(400, "ArgumentException", "versionDescriptor.version: a commit id is required")
        version = (repo.default_branch or "refs/heads/main").removeprefix("refs/heads/")
        kind = "branch"
    commit: Commit | None = None
    if kind == "branch":
        commit = repo.head(f"refs/heads/{version.removeprefix('refs/heads/')}")
    elif kind == "tag":
        commit = repo.head(f"refs/tags/{version.removeprefix('refs/tags/')}")
    elif kind == "commit":
        commit = repo.commits.get(version.lower())
    else:
        raise AzureError(400, "ArgumentException", f"versionType {version_type!r}: use branch, tag or commit")
    if commit is None:
        raise AzureError(
            404,
            "GitUnresolvableToCommitException",
            f"TF401175:The version descriptor <{kind.capitalize()}: {version}> could not be resolved to a version "
            f"in the repository {repo.name}",
        )
    return commit, version, kind.capitalize()


def _item_paths(commit: Commit, path: str, depth: int) -> list[str]:
    """``path`` itself, then what lies below it down to ``depth`` levels, folders before their contents."""
    prefix = path.rstrip("/") + "/"
    found: set[str] = set()
    for file_path in commit.files:
        if not file_path.startswith(prefix):
            continue
        parts = file_path[len(prefix) :].split("/")
        for level in range(1, min(depth, len(parts)) + 1):
            found.add(prefix + "/".join(parts[:level]))
    return [path, *sorted(found)]


def _exists(commit: Commit, path: str) -> bool:
    prefix = path.rstrip("/") + "/"
    return path == "/" or path in commit.files or any(p.startswith(prefix) for p in commit.files)


def _not_found_item(repo: GitRepository, path: str, commit: Commit, version: str) -> AzureError:
    return AzureError(
        404,
        "GitItemNotFoundException",
        f"TF401174: The item '{path[:300]}' could not be found in the repository '{repo.name}' at the version "
        f"specified by '<Branch: {version}>' (resolved to commit '{commit.commit_id}').",
    )


def _normal_path(path: str | None) -> str:
    value = "/" + (path or "/").strip().lstrip("/")
    return value.rstrip("/") or "/"


def _ancestry(repo: GitRepository, head: Commit) -> Iterator[Commit]:
    """Commits reachable from ``head``, newest first (by commit date)."""
    seen: set[str] = set()
    frontier = [head]
    while frontier:
        frontier.sort(key=lambda c: c.committer_date)
        commit = frontier.pop()
        if commit.commit_id in seen:
            continue
        seen.add(commit.commit_id)
        yield commit
        frontier.extend(repo.commits[p] for p in commit.parents if p in repo.commits and p not in seen)


def _reachable(repo: GitRepository, head: Commit) -> set[str]:
    """Ids of the commits reachable from ``head`` (itself included)."""
    seen: set[str] = set()
    stack = [head.commit_id]
    while stack:
        commit_id = stack.pop()
        if commit_id in seen or commit_id not in repo.commits:
            continue
        seen.add(commit_id)
        stack.extend(repo.commits[commit_id].parents)
    return seen


def pull_request_commits(repo: GitRepository, pr: PullRequest) -> list[Commit]:
    """The commits a pull request brings: reachable from its source, not from its target; newest first."""
    source = repo.commits.get(pr.last_merge_source_commit)
    if source is None:
        return []
    target = repo.commits.get(pr.last_merge_target_commit)
    known = _reachable(repo, target) if target is not None else set()
    return [c for c in _ancestry(repo, source) if c.commit_id not in known]


def pull_request_work_item_ids(org: Organisation, repo: GitRepository, pr: PullRequest) -> list[int]:
    """Work items linked to a pull request: its own list, and those with an artifact link to it."""
    artifact = f"vstfs:///Git/PullRequestId/{repo.project_id}%2F{repo.id}%2F{pr.id}".lower()
    ids = list(dict.fromkeys(pr.work_item_ids))
    for item in org.work_items.values():
        if item.id not in ids and any(
            r.rel == "ArtifactLink" and isinstance(r.target, str) and r.target.lower() == artifact
            for r in item.relations
        ):
            ids.append(item.id)
    return [i for i in ids if i in org.work_items and not org.work_items[i].is_deleted]


_COMMIT_ID = re.compile(r"[0-9a-fA-F]{40}")
"""Commit ids in ``searchCriteria.ids``: repeated, comma-separated, or as Microsoft's client sends a list
(its Python ``repr``, unencoded: ``['a…', 'b…']``)."""


def _repository_id(repo: GitRepository) -> str:
    return repo.id


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _criteria_date(query: Any, name: str) -> datetime | None:
    """A ``searchCriteria`` date (ISO 8601; a date alone is midnight UTC), or Azure's 400."""
    value = query.get(name)
    if not value:
        return None
    text = value.strip()
    for candidate in (text, "+".join(text.rsplit(" ", 1))):  # an unencoded "+01:00" arrives as " 01:00"
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    raise AzureError(400, "ArgumentException", f"{name}: {value[:40]!r} is not a date")


def _commit_matches(commit: Commit, query: Any) -> bool:
    """Whether ``commit`` passes the commits list's ``searchCriteria`` filters."""
    author = (query.get("searchCriteria.author") or "").lower()
    if author and author not in commit.author_name.lower() and author not in commit.author_email.lower():
        return False
    user = (query.get("searchCriteria.user") or "").lower()
    if user and user not in commit.committer_name.lower() and user not in commit.committer_email.lower():
        return False
    since = _criteria_date(query, "searchCriteria.fromDate")
    until = _criteria_date(query, "searchCriteria.toDate")
    if (since is not None and commit.committer_date < since) or (until is not None and commit.committer_date > until):
        return False
    lowest = (query.get("searchCriteria.fromCommitId") or "").lower()  # Azure bounds commit ids alphabetically
    highest = (query.get("searchCriteria.toCommitId") or "").lower()
    if (lowest and commit.commit_id < lowest) or (highest and commit.commit_id > highest):
        return False
    path = query.get("searchCriteria.itemPath")
    if path and path.strip() not in ("", "/"):
        folder = path.rstrip("/") + "/"
        skip_deletes = _flag(query.get("searchCriteria.excludeDeletes"))
        return any(
            (c.path == path.rstrip("/") or c.path.startswith(folder))
            and not (skip_deletes and c.change_type == "delete")
            for c in commit.changes
        )
    return True


def _filter_pull_requests(items: list[PullRequest], params: Any) -> list[PullRequest]:
    status = (params.get("searchCriteria.status") or "active").lower()
    wanted = None if status == "all" else _PR_STATUSES.get(status)
    if wanted is None and status != "all":
        raise AzureError(400, "ArgumentException", f"searchCriteria.status {status!r} is not a pull request status")
    creator = (params.get("searchCriteria.creatorId") or "").lower()
    reviewer = (params.get("searchCriteria.reviewerId") or "").lower()
    source = params.get("searchCriteria.sourceRefName")
    target = params.get("searchCriteria.targetRefName")
    repository = (params.get("searchCriteria.repositoryId") or "").lower()
    by_closed = _time_range_is_closed(params.get("searchCriteria.queryTimeRangeType"))
    earliest = _criteria_date(params, "searchCriteria.minTime")
    latest = _criteria_date(params, "searchCriteria.maxTime")
    out = []
    for pr in items:
        if wanted is not None and pr.status not in wanted:
            continue
        if creator and pr.created_by != creator:
            continue
        if reviewer and all(r.user_id != reviewer for r in pr.reviewers):
            continue
        if source and pr.source_ref_name != source:
            continue
        if target and pr.target_ref_name != target:
            continue
        if repository and pr.repository_id != repository:
            continue
        when = pr.closed_date if by_closed else pr.creation_date
        if (earliest is not None or latest is not None) and when is None:
            continue  # an open pull request has no closed time to fall in the range
        if (earliest is not None and when is not None and when < earliest) or (
            latest is not None and when is not None and when > latest
        ):
            continue
        out.append(pr)
    if by_closed:  # most recently closed first, so $top keeps the latest closed
        return sorted(out, key=lambda pr: (pr.closed_date or datetime.min.replace(tzinfo=UTC), pr.id), reverse=True)
    return sorted(out, key=lambda pr: pr.id, reverse=True)  # newest first, as Azure lists them


def _time_range_is_closed(value: str | None) -> bool:
    """``searchCriteria.queryTimeRangeType``: ``created`` (the default) or ``closed``; anything else is Azure's 400."""
    kind = (value or "created").strip().lower()
    if kind not in ("created", "closed"):
        raise AzureError(
            400, "ArgumentException", f"searchCriteria.queryTimeRangeType {(value or '')[:40]!r}: created or closed"
        )
    return kind == "closed"


@dataclass(frozen=True, slots=True)
class RefsQuery:
    """Which refs: ``filter`` (a name prefix after ``refs/``) and ``filterContains``."""

    filter: Annotated[str | None, Query(max_length=400)] = None
    filter_contains: Annotated[str | None, Query(alias="filterContains", max_length=400)] = None


RefsParams = Annotated[RefsQuery, Depends(from_query(RefsQuery))]


@dataclass(frozen=True, slots=True)
class ItemsQuery:
    """Which item: ``path`` (or ``scopePath``) at a version, how deep, with content or metadata, in
    which ``$format``."""

    path: Annotated[str | None, Query(max_length=1000)] = None
    scope_path: Annotated[str | None, Query(alias="scopePath", max_length=1000)] = None
    recursion_level: Annotated[str | None, Query(alias="recursionLevel")] = None
    include_content: Annotated[bool, Query(alias="includeContent")] = False
    include_metadata: Annotated[bool, Query(alias="includeContentMetadata")] = False
    version: Annotated[str | None, Query(alias="versionDescriptor.version", max_length=400)] = None
    version_type: Annotated[str | None, Query(alias="versionDescriptor.versionType")] = None
    format: Annotated[str | None, Query(alias="$format")] = None


ItemsParams = Annotated[ItemsQuery, Depends(from_query(ItemsQuery))]


@dataclass(frozen=True, slots=True)
class ChangesPage:
    """A page of a commit's changes: ``top``/``skip``, without the ``$`` of other lists."""

    top: Annotated[int | None, Query(ge=0, le=100_000)] = None
    skip: Annotated[int | None, Query(ge=0, le=100_000_000)] = None


ChangesPaged = Annotated[ChangesPage, Depends(from_query(ChangesPage))]


def _commit(repo: GitRepository, commit_id: str) -> Commit:
    """A commit of ``repo`` by its full SHA-1, or Azure's 404 (TF401028)."""
    found = _usable(repo).commits.get(commit_id.lower())
    if found is None:
        raise AzureError(404, "GitObjectNotFoundException", f"TF401028: The reference {commit_id[:64]} does not exist.")
    return found


@dataclass(frozen=True, slots=True)
class PullRequestsQuery(SkipPage):
    """A page of pull requests by ``searchCriteria.status`` (the other criteria are read from the query)."""

    status: Annotated[str | None, Query(alias="searchCriteria.status", pattern=PR_STATUS_PATTERN)] = None


@dataclass(frozen=True, slots=True)
class PolicyScope:
    """Policies scoped to a repository (``repositoryId``) and a branch (``refName``); none: any."""

    repository_id: Annotated[str | None, Query(alias="repositoryId", max_length=64)] = None
    ref_name: Annotated[str | None, Query(alias="refName", max_length=400)] = None


@dataclass(frozen=True, slots=True)
class PolicyQuery:
    """A page of policies by token, of one type (``policyType``; none: every type)."""

    policy_type: Annotated[str | None, Query(alias="policyType", max_length=64)] = None
    top: Top = None
    token: Token = None


PullRequestsParams = Annotated[PullRequestsQuery, Depends(from_query(PullRequestsQuery))]
PolicyScopeParams = Annotated[PolicyScope, Depends(from_query(PolicyScope))]
PolicyParams = Annotated[PolicyQuery, Depends(from_query(PolicyQuery))]


def add_git_routes(app: FastAPI, emulator: Emulator, responses: DeclaredResponses, write: DeclaredResponses) -> None:
    """Add the Git and policy routes over each org's :class:`~kiosk.emulator.org.model.Organisation`.

    ``responses`` are the read routes' declared error answers, ``write`` those of a route with a body.
    """

    def _repo(org: str, project: str | None, repository: str) -> tuple[Organisation, GitRepository]:
        data, found = org_and_project(emulator, org, project)
        return data, find_repository(data, repository, found)

    def _usable_repo(org: str, project: str, repository: str) -> tuple[Organisation, GitRepository]:
        """A repository whose content is read: a disabled one is not found."""
        data, repo = _repo(org, project, repository)
        return data, _usable(repo)

    # -- repositories

    rendered = RenderedJson()

    def _repositories(org: str, project: str | None, include_links: bool) -> Response:
        """Every repository (of the project), each one's JSON encoded once while the org stays unchanged."""
        data, found = org_and_project(emulator, org, project)
        repos = data.project_repositories(found.id) if found is not None else list(data.repositories.values())
        render = partial(repository_json, data, links=include_links)
        return encoded_list(rendered.encoded_many(data, f"repository {include_links}", repos, _repository_id, render))

    @app.get("/{org}/{project}/_apis/git/repositories", responses=responses)
    async def project_repositories(
        org: str,
        project: str,
        api_version: ApiVersion,
        include_links: Annotated[bool, Query(alias="includeLinks")] = False,
    ) -> Response:
        """The project's repositories, disabled ones included (``isDisabled``), unpaged."""
        return _repositories(org, project, include_links)

    @app.get("/{org}/_apis/git/repositories", responses=responses)
    async def org_repositories(
        org: str, api_version: ApiVersion, include_links: Annotated[bool, Query(alias="includeLinks")] = False
    ) -> Response:
        """Every repository of the organisation."""
        return _repositories(org, None, include_links)

    @app.get("/{org}/{project}/_apis/git/repositories/{repository}", responses=responses)
    async def project_repository(org: str, project: str, repository: str, api_version: ApiVersion) -> Response:
        data, repo = _repo(org, project, repository)
        return FastJSONResponse(repository_json(data, repo, links=True))

    @app.get("/{org}/_apis/git/repositories/{repository}", responses=responses)
    async def org_repository(org: str, repository: str, api_version: ApiVersion) -> Response:
        """A repository by GUID alone."""
        data, repo = _repo(org, None, repository)
        return FastJSONResponse(repository_json(data, repo, links=True))

    # -- refs

    @app.get("/{org}/{project}/_apis/git/repositories/{repository}/refs", responses=responses)
    async def refs(
        org: str, project: str, repository: str, query: RefsParams, paging: TokenPaged, api_version: ApiVersion
    ) -> Response:
        """Refs whose name starts with ``refs/`` + ``filter`` (and contains ``filterContains``), paged by token."""
        data, repo = _usable_repo(org, project, repository)
        prefix = "refs/" + (query.filter or "").removeprefix("refs/")
        listed = [
            r
            for r in repo.refs.values()
            if r.name.startswith(prefix)
            and (not query.filter_contains or query.filter_contains.lower() in r.name.lower())
        ]
        page, next_token = continuation_page(listed, paging.top, paging.token)
        return wrapped([ref_json(data, repo, r) for r in page], token=next_token)

    # -- items

    @app.get("/{org}/{project}/_apis/git/repositories/{repository}/items", responses=responses)
    async def items(
        request: Request, org: str, project: str, repository: str, wanted: ItemsParams, api_version: ApiVersion
    ) -> Response:
        """A file (JSON ``GitItem``, or its bytes for a non-JSON ``Accept``), a folder, or a folder's items."""
        data, repo = _usable_repo(org, project, repository)
        query = request.query_params
        commit, shown, kind = _resolve(
            repo, wanted.version or query.get("version"), wanted.version_type or query.get("versionType")
        )
        target = _normal_path(wanted.path if wanted.path is not None else wanted.scope_path)
        if not _exists(commit, target):
            raise _not_found_item(repo, target, commit, shown)
        level = (wanted.recursion_level or "none").lower()
        if level not in _FOLDER_LEVELS:
            raise AzureError(
                400, "ArgumentException", f"recursionLevel {wanted.recursion_level!r} is not a recursion level"
            )
        accept = (request.headers.get("accept") or "*/*").split(";")[0].split(",")[0].strip().lower()
        wants_json = (wanted.format or "").lower() == "json" or accept == "application/json"
        if not wants_json and (wanted.format or "").lower() != "zip" and target in commit.files:
            media = "text/plain; charset=utf-8" if accept == "text/plain" else "application/octet-stream"
            return Response(commit.files[target].content, media_type=media)

        def one(item_path: str) -> dict[str, Any]:
            return item_json(
                data,
                repo,
                commit,
                item_path,
                version=shown,
                version_type=kind,
                content=wanted.include_content,
                metadata=wanted.include_metadata,
            )

        if wanted.path is not None and wanted.scope_path is None and level == "none":
            return FastJSONResponse(one(target))
        if target in commit.files:
            return wrapped([one(target)])
        return wrapped([one(p) for p in _item_paths(commit, target, _FOLDER_LEVELS[level])])

    @app.post(
        "/{org}/{project}/_apis/git/repositories/{repository}/itemsbatch",
        responses=write,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}},
    )
    async def items_batch(
        org: str, project: str, repository: str, request: Request, api_version: ApiVersion
    ) -> Response:
        """One list of ``GitItem`` per descriptor in ``itemDescriptors`` (Azure's list of lists)."""
        body = await read_json(request, _MAX_BATCH_BODY)
        descriptors = body.get("itemDescriptors") if isinstance(body, dict) else None
        if not isinstance(descriptors, list) or not all(isinstance(d, dict) for d in descriptors):
            raise AzureError(400, "ArgumentException", "itemDescriptors: a list of item descriptors is required")
        for flag in ("includeContentMetadata", "latestProcessedChange", "includeLinks"):
            if flag in body and not isinstance(body[flag], bool):
                raise AzureError(400, "ArgumentException", f"{flag}: true or false is expected")
        data, repo = _usable_repo(org, project, repository)
        metadata = bool(body.get("includeContentMetadata"))
        value = []
        for descriptor in descriptors:
            version = descriptor.get("version")
            version_type = descriptor.get("versionType")
            commit, shown, kind = _resolve(
                repo,
                version if isinstance(version, str) else None,
                version_type if isinstance(version_type, str) else None,
            )
            target = _normal_path(descriptor.get("path") if isinstance(descriptor.get("path"), str) else None)
            if not _exists(commit, target):
                raise _not_found_item(repo, target, commit, shown)
            level = str(descriptor.get("recursionLevel") or "none").lower()
            depth = _FOLDER_LEVELS.get(level)
            if depth is None:
                raise AzureError(400, "ArgumentException", f"recursionLevel {level!r} is not a recursion level")
            paths = [target] if target in commit.files else _item_paths(commit, target, depth)
            value.append(
                [item_json(data, repo, commit, p, version=shown, version_type=kind, metadata=metadata) for p in paths]
            )
        return FastJSONResponse({"count": len(value), "value": value})

    # -- commits and pushes

    @app.get("/{org}/{project}/_apis/git/repositories/{repository}/commits", responses=responses)
    async def commits(request: Request, org: str, project: str, repository: str, api_version: ApiVersion) -> Response:
        """Commits reachable from a branch (default: the default one), newest first; ``searchCriteria.*``
        (``ids``, ``author``, ``user``, ``fromDate``/``toDate``, ``fromCommitId``/``toCommitId``, ``itemPath``,
        ``excludeDeletes``, ``showOldestCommitsFirst``, ``$top``/``$skip``)."""
        data, repo = _usable_repo(org, project, repository)
        query = request.query_params
        if not repo.commits:
            return wrapped([])
        ids = [i.lower() for v in query.getlist("searchCriteria.ids") for i in _COMMIT_ID.findall(v)]
        if ids:
            candidates = [repo.commits[i] for i in dict.fromkeys(ids) if i in repo.commits]
            candidates.sort(key=lambda c: c.committer_date, reverse=True)
        else:
            head, _, _ = _resolve(
                repo,
                query.get("searchCriteria.itemVersion.version"),
                query.get("searchCriteria.itemVersion.versionType"),
            )
            candidates = list(_ancestry(repo, head))
        listed = [c for c in candidates if _commit_matches(c, query)]
        if _flag(query.get("searchCriteria.showOldestCommitsFirst")):
            listed.reverse()
        top = query.get("searchCriteria.$top") or query.get("$top")
        skip = query.get("searchCriteria.$skip") or query.get("$skip")
        page = skip_page(
            listed, int(top) if top and top.isdigit() else None, int(skip) if skip and skip.isdigit() else None
        )
        return wrapped([commit_json(data, repo, c) for c in page])

    @app.get("/{org}/{project}/_apis/git/repositories/{repository}/commits/{commit_id}", responses=responses)
    async def commit(org: str, project: str, repository: str, commit_id: str, api_version: ApiVersion) -> Response:
        data, repo = _repo(org, project, repository)
        found = _commit(repo, commit_id)
        return FastJSONResponse(commit_json(data, repo, found, full=True))

    @app.get("/{org}/{project}/_apis/git/repositories/{repository}/commits/{commit_id}/changes", responses=responses)
    async def commit_changes(
        org: str, project: str, repository: str, commit_id: str, paging: ChangesPaged, api_version: ApiVersion
    ) -> Response:
        """``GitCommitChanges``: ``{changeCounts, changes}``, no count/value wrapper; ``top``/``skip`` (no ``$``)."""
        data, repo = _repo(org, project, repository)
        found = _commit(repo, commit_id)
        page = skip_page(found.changes, paging.top, paging.skip)
        return FastJSONResponse(
            {
                "changeCounts": change_counts(found),
                "changes": [commit_change_json(data, repo, found, c) for c in page],
            }
        )

    @app.get("/{org}/{project}/_apis/git/repositories/{repository}/stats/branches", responses=responses)
    async def branch_stats(
        request: Request,
        org: str,
        project: str,
        repository: str,
        api_version: ApiVersion,
        name: Annotated[str | None, Query(max_length=400)] = None,
    ) -> Response:
        """Every branch's head, ahead/behind counts against the base (default: the default branch);
        with ``name``, that branch alone (one object)."""
        data, repo = _usable_repo(org, project, repository)
        query = request.query_params
        branches = [r for r in repo.refs.values() if r.name.startswith("refs/heads/") and r.object_id in repo.commits]
        if name is not None:
            wanted = "refs/heads/" + name.removeprefix("refs/heads/")
            branches = [r for r in branches if r.name == wanted]
            if not branches:
                raise AzureError(
                    404,
                    "GitBranchNotFoundException",
                    f'Branch "{name[:200]}" does not exist in the {repo.id} repository.',
                )
        if not branches:
            return wrapped([])
        base, version, kind = _resolve(
            repo, query.get("baseVersionDescriptor.version"), query.get("baseVersionDescriptor.versionType")
        )
        base_ref = "refs/heads/" + version.removeprefix("refs/heads/") if kind == "Branch" else None
        in_base = _reachable(repo, base)
        stats = []
        for ref in branches:
            head = repo.commits[ref.object_id]
            in_branch = _reachable(repo, head)
            ahead, behind = len(in_branch - in_base), len(in_base - in_branch)
            stats.append(branch_stats_json(data, repo, ref.name, head, ahead, behind, ref.name == base_ref))
        return FastJSONResponse(stats[0]) if name is not None else wrapped(stats)

    @app.get("/{org}/{project}/_apis/git/repositories/{repository}/pushes", responses=responses)
    async def pushes(
        request: Request,
        org: str,
        project: str,
        repository: str,
        paging: SkipPaged,
        api_version: ApiVersion,
    ) -> Response:
        """Pushes, newest first (``$top``/``$skip``); ``searchCriteria.pusherId``, ``.refName``,
        ``.fromDate``/``.toDate``, ``.includeRefUpdates``."""
        data, repo = _repo(org, project, repository)
        query = request.query_params
        pusher = (query.get("searchCriteria.pusherId") or "").lower()
        ref_name = query.get("searchCriteria.refName")
        since = _criteria_date(query, "searchCriteria.fromDate")
        until = _criteria_date(query, "searchCriteria.toDate")
        listed = [
            p
            for p in sorted(_usable(repo).pushes, key=lambda p: p.push_id, reverse=True)
            if (not pusher or p.pushed_by == pusher)
            and (not ref_name or any(u.name == ref_name for u in p.ref_updates))
            and (since is None or p.date >= since)
            and (until is None or p.date <= until)
        ]
        updates = _flag(query.get("searchCriteria.includeRefUpdates"))
        return wrapped(
            [push_json(data, repo, p, ref_updates=updates) for p in skip_page(listed, paging.top, paging.skip)]
        )

    @app.get("/{org}/{project}/_apis/git/repositories/{repository}/pushes/{push_id}", responses=responses)
    async def push(org: str, project: str, repository: str, push_id: int, api_version: ApiVersion) -> Response:
        data, repo = _repo(org, project, repository)
        found = next((p for p in _usable(repo).pushes if p.push_id == push_id), None)
        if found is None:
            raise AzureError(404, "GitPushNotFoundException", f"TF401227: The push {push_id} could not be found.")
        return FastJSONResponse(push_json(data, repo, found, details=True))

    # -- pull requests

    @app.get("/{org}/{project}/_apis/git/repositories/{repository}/pullRequests", responses=responses)
    async def repository_pull_requests(
        request: Request,
        org: str,
        project: str,
        repository: str,
        query: PullRequestsParams,
        api_version: ApiVersion,
    ) -> Response:
        """A repository's pull requests: ``searchCriteria.status`` (default active), ``.queryTimeRangeType``
        (created/closed) with ``.minTime``/``.maxTime`` bounding that time, ``$top``/``$skip``."""
        data, repo = _usable_repo(org, project, repository)
        mine = [pr for pr in data.pull_requests.values() if pr.repository_id == repo.id]
        page = skip_page(_filter_pull_requests(mine, request.query_params), query.top, query.skip, default=101)
        return wrapped([pull_request_json(data, repo, pr, in_list=True) for pr in page])

    @app.get("/{org}/{project}/_apis/git/repositories/{repository}/pullRequests/{pull_request_id}", responses=responses)
    async def repository_pull_request(
        org: str, project: str, repository: str, pull_request_id: int, api_version: ApiVersion
    ) -> Response:
        data, repo = _repo(org, project, repository)
        pr = find_pull_request(data, pull_request_id, None)
        if pr.repository_id != repo.id:
            raise AzureError(
                404, "GitPullRequestNotFoundException", "TF401180: The requested pull request was not found."
            )
        return FastJSONResponse(pull_request_json(data, repo, pr))

    def _repository_pull_request(
        org: str, project: str, repository: str, pull_request_id: int
    ) -> tuple[Organisation, GitRepository, PullRequest]:
        data, repo = _usable_repo(org, project, repository)
        pr = find_pull_request(data, pull_request_id, None)
        if pr.repository_id != repo.id:
            raise AzureError(
                404, "GitPullRequestNotFoundException", "TF401180: The requested pull request was not found."
            )
        return data, repo, pr

    @app.get(
        "/{org}/{project}/_apis/git/repositories/{repository}/pullRequests/{pull_request_id}/commits",
        responses=responses,
    )
    async def pull_request_commit_list(
        org: str,
        project: str,
        repository: str,
        pull_request_id: int,
        paging: TokenPaged,
        api_version: ApiVersion,
    ) -> Response:
        """The pull request's commits (source not in target), newest first; ``$top`` and a continuation token."""
        data, repo, pr = _repository_pull_request(org, project, repository, pull_request_id)
        page, next_token = continuation_page(pull_request_commits(repo, pr), paging.top, paging.token)
        return wrapped([commit_json(data, repo, c) for c in page], token=next_token)

    @app.get(
        "/{org}/{project}/_apis/git/repositories/{repository}/pullRequests/{pull_request_id}/workitems",
        responses=responses,
    )
    async def pull_request_work_items(
        org: str, project: str, repository: str, pull_request_id: int, api_version: ApiVersion
    ) -> Response:
        """``ResourceRef`` list of the work items linked to the pull request."""
        data, repo, pr = _repository_pull_request(org, project, repository, pull_request_id)
        return wrapped([work_item_ref(data, i) for i in pull_request_work_item_ids(data, repo, pr)])

    @app.get("/{org}/{project}/_apis/git/pullrequests", responses=responses)
    async def project_pull_requests(
        request: Request,
        org: str,
        project: str,
        query: PullRequestsParams,
        api_version: ApiVersion,
    ) -> Response:
        """The project's pull requests across its repositories (same criteria)."""
        data, found = org_and_project(emulator, org, project)
        assert found is not None
        repos = {r.id: r for r in data.project_repositories(found.id) if not r.is_disabled}
        mine = [pr for pr in data.pull_requests.values() if pr.repository_id in repos]
        page = skip_page(_filter_pull_requests(mine, request.query_params), query.top, query.skip, default=101)
        return wrapped([pull_request_json(data, repos[pr.repository_id], pr, in_list=True) for pr in page])

    def _by_id(org: str, project: str | None, pull_request_id: int) -> Response:
        data, found = org_and_project(emulator, org, project)
        pr = find_pull_request(data, pull_request_id, found)
        return FastJSONResponse(pull_request_json(data, data.repositories[pr.repository_id], pr))

    @app.get("/{org}/{project}/_apis/git/pullrequests/{pull_request_id}", responses=responses)
    async def project_pull_request(org: str, project: str, pull_request_id: int, api_version: ApiVersion) -> Response:
        """A pull request by id, without its repository."""
        return _by_id(org, project, pull_request_id)

    @app.get("/{org}/_apis/git/pullrequests/{pull_request_id}", responses=responses)
    async def org_pull_request(org: str, pull_request_id: int, api_version: ApiVersion) -> Response:
        """A pull request by id, without project or repository."""
        return _by_id(org, None, pull_request_id)

    # -- policies

    def _policies(
        org: str, project: str, repository_id: str | None, ref_name: str | None, policy_type: str | None
    ) -> tuple[Organisation, list[Any]]:
        data, found = org_and_project(emulator, org, project)
        assert found is not None
        listed = []
        for policy in data.policies.values():
            if policy.project_id != found.id or (policy_type and policy.type_id != policy_type.lower()):
                continue
            scopes = policy.settings.get("scope")
            scope_list = scopes if isinstance(scopes, list) else []
            if repository_id and not any(
                isinstance(s, dict) and s.get("repositoryId") in (repository_id.lower(), None) for s in scope_list
            ):
                continue
            if ref_name and not any(isinstance(s, dict) and s.get("refName") == ref_name for s in scope_list):
                continue
            listed.append(policy)
        return data, listed

    def _policy_page(org: str, project: str, scope: PolicyScope, query: PolicyQuery) -> Response:
        data, listed = _policies(org, project, scope.repository_id, scope.ref_name, query.policy_type)
        page, next_token = continuation_page(listed, query.top, query.token)
        return wrapped([policy_json(data, p) for p in page], token=next_token)

    @app.get("/{org}/{project}/_apis/git/policy/configurations", responses=responses)
    async def git_policy_configurations(
        org: str,
        project: str,
        scope: PolicyScopeParams,
        query: PolicyParams,
        api_version: ApiVersion,
    ) -> Response:
        """Branch policies of a repository (or the project), paged by token."""
        return _policy_page(org, project, scope, query)

    @app.get("/{org}/{project}/_apis/policy/configurations", responses=responses)
    async def policy_configurations(org: str, project: str, query: PolicyParams, api_version: ApiVersion) -> Response:
        """The project's policy configurations, paged by token."""
        return _policy_page(org, project, PolicyScope(), query)

    @app.get("/{org}/{project}/_apis/policy/configurations/{configuration_id}", responses=responses)
    async def policy_configuration(org: str, project: str, configuration_id: int, api_version: ApiVersion) -> Response:
        data, listed = _policies(org, project, None, None, None)
        found = next((p for p in listed if p.id == configuration_id), None)
        if found is None:
            raise AzureError(
                404,
                "PolicyConfigurationNotFoundException",
                f"TF400774: The policy configuration {configuration_id} does not exist.",
            )
        return FastJSONResponse(policy_json(data, found))

    def _policy_type(org: str, project: str, type_id: str) -> dict[str, Any]:
        data, found = org_and_project(emulator, org, project)
        assert found is not None
        url = f"{data.url}/{found.id}/_apis/policy/types/{type_id}"
        return {
            "description": POLICY_DISPLAY_NAMES[type_id],
            "_links": {"self": {"href": url}},
            "id": type_id,
            "url": url,
            "displayName": POLICY_DISPLAY_NAMES[type_id],
        }

    @app.get("/{org}/{project}/_apis/policy/types", responses=responses)
    async def policy_types(org: str, project: str, api_version: ApiVersion) -> Response:
        """The policy types the emulator's policies use."""
        return wrapped([_policy_type(org, project, t) for t in POLICY_DISPLAY_NAMES])

    @app.get("/{org}/{project}/_apis/policy/types/{type_id}", responses=responses)
    async def policy_type(org: str, project: str, type_id: str, api_version: ApiVersion) -> Response:
        if type_id.lower() not in POLICY_DISPLAY_NAMES:
            raise AzureError(404, "PolicyTypeNotFoundException", f"The policy type {type_id[:64]} does not exist.")
        return FastJSONResponse(_policy_type(org, project, type_id.lower()))
