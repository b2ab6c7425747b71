"""Live event handlers of the git kinds: ``git.push`` → branch, file, folder; ``git.repo.*`` →
repository and the kinds that live in a repository.

Each handler reads again what the event names (the payload only says *which* objects) and returns
the items exactly as the kind's fetcher (:mod:`kiosk.ingest.fetch.git`, :mod:`kiosk.ingest.fetch.files`)
makes them, so the mapping gives the entity a resync would:

- **branch** (``git.push``): each ``refs/heads/…`` ref update. A new object id of 40 zeros is a deleted
  branch: *gone*. Otherwise the branch is read again (``refs?filter=heads/<name>``); a branch no longer
  there, or a repository that is gone or disabled (the resync reads branches of healthy repositories
  only), makes it gone.
- **file** (``git.push`` to the repository's default branch): the paths the push's commits changed
  (``commits/{sha}/changes``, renames' old paths included) that the resource's ``files`` selector
  names, each read again on the default branch: the file item, or gone when the branch no longer has
  it (deleted, renamed away, grown over 1 MiB).
- **folder** (``git.push``): for each ``folders`` pattern the selector reads in that repository on a
  branch the push moved, the pattern's folders read again; those containing a changed path are
  items (every one, on a branch the push created), and each folder a changed path lay in that
  matches the pattern and is no longer there is gone. A deleted branch's folders cannot be read any
  more: they are left to the next resync.
- **repository** (``git.repo.created/forked/renamed/statuschanged/undeleted/deleted``): read again
  (with ``includedFiles`` when the resource asks); a 404 is gone. A disabled repository stays an
  item (``isDisabled: true``), as the repository kind's fetcher lists disabled repositories too.
- **children** (branch, file, folder, pull-request, repository-policy) on a ``git.repo.*`` event: a
  repository that is gone or disabled has none of them any more, and they cannot be listed (Azure
  answers 404 below it), so each such kind gets one gone item standing for all of that repository's
  items: ``{"__repositoryGone": <the repository as known>}`` (:data:`REPOSITORY_GONE`). A renamed,
  re-enabled, undeleted or forked repository has its children read again with the kinds' own
  fetchers limited to it; after a rename, each child is also returned gone as it was under the old
  name (its ``__repository``/``repo``/``repository`` carrying ``oldName``), so an identifier built
  from the repository's name leaves no stale entity (an identifier that does not change is in both
  lists: the processor keeps what the same event wrote). A created repository is empty: no children.

What a push names is found in its payload or, when an org-scoped subscription sent a trimmed one
(no ``refUpdates`` or no ``commits``), by reading the push again
(``…/pushes/{pushId}?includeRefUpdates=true``). A read that fails otherwise (a 5xx, a timeout, a
401) raises: the processor retries the event; nothing is guessed gone from a failure.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Mapping
from typing import Any, Final

from kiosk.azure.errors import NoDataNotFound, NotFound
from kiosk.ingest.fetch.base import UNHEALTHY_PROJECT_STATES, FetchContext, Item, gather_bounded, get_object
from kiosk.ingest.fetch.files import FilePlan, plan_files, read_files, read_pattern_folders, repository_folder_patterns
from kiosk.ingest.fetch.git import PAGE_SIZE, branch_item
from kiosk.ingest.fetch.included_files import IncludedFiles, branch_name, repository_path
from kiosk.ingest.fetch.registry import fetcher_for
from kiosk.ingest.kinds import FilePattern, FolderPattern
from kiosk.ingest.live.event_fields import MalformedEvent
from kiosk.ingest.live.model import REPOSITORY_GONE, EventHandler, Refetched
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "CHILD_KINDS",
    "HANDLERS",
    "REPOSITORY_EVENTS",
    "REPOSITORY_GONE",
    "ZERO_OBJECT_ID",
    "event_repository",
    "handle_push_branches",
    "handle_push_files",
    "handle_push_folders",
    "handle_repository",
    "handle_repository_children",
    "read_repository",
]

#: A ref update's object id when the ref did not exist before (old) or no longer exists (new).
ZERO_OBJECT_ID: Final = "0" * 40
#: The kinds whose items live in a repository: gone with it, read again when it comes back.
CHILD_KINDS: Final = ("branch", "file", "folder", "pull-request", "repository-policy")
#: The repository events; each is handled for the repository kind and every child kind.
REPOSITORY_EVENTS: Final = (
    "git.repo.created",
    "git.repo.forked",
    "git.repo.renamed",
    "git.repo.statuschanged",
    "git.repo.undeleted",
    "git.repo.deleted",
)
#: Changes read per ``commits/{sha}/changes`` call.
CHANGES_PAGE: Final = 1000
_REPOSITORY_IN_URL: Final = re.compile(r"/repositories/([^/?#]+)", re.IGNORECASE)
#: A project id in a repository's URL (a GUID: an organisation-level URL has the org's name there).
_PROJECT_IN_URL: Final = re.compile(
    r"/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/_apis/git/repositories/", re.IGNORECASE
)


# ---------------------------------------------------------------------------------------------- the event


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _resource(event: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(event.get("resource"))


def _container_project(event: Mapping[str, Any]) -> str | None:
    return _text(_mapping(_mapping(event.get("resourceContainers")).get("project")).get("id"))


def _from_url(resource: Mapping[str, Any], pattern: re.Pattern[str]) -> str | None:
    url = resource.get("url")
    match = pattern.search(url) if isinstance(url, str) else None
    return match.group(1) if match else None


def event_repository(event: Mapping[str, Any]) -> Item:
    """What the event says of its repository, in the repository's own shape (``id``, ``name``,
    ``project: {id, …}`` as far as known): a push's or a ``git.repo.*`` resource's ``repository``,
    a deleted repository's ``repositoryId``/``repositoryName``/``projectId``, else the ids in the
    resource's ``url`` (a trimmed payload) and the event's project container."""
    resource = _resource(event)
    repository: Item = dict(_mapping(resource.get("repository")))
    if not _text(repository.get("id")):
        repository_id = _text(resource.get("repositoryId")) or _from_url(resource, _REPOSITORY_IN_URL)
        if repository_id is not None:
            repository["id"] = repository_id
    if not _text(repository.get("name")) and _text(resource.get("repositoryName")):
        repository["name"] = resource["repositoryName"]
    project: Item = dict(_mapping(repository.get("project")))
    if not _text(project.get("id")):
        project_id = (
            _text(resource.get("projectId")) or _container_project(event) or _from_url(resource, _PROJECT_IN_URL)
        )
        if project_id is not None:
            project["id"] = project_id
    if project:
        repository["project"] = project
    return repository


async def read_repository(ctx: FetchContext, known: Item) -> Item | None:
    """The repository ``known`` names (by id, in its project when known) read again, in the shape
    the repository list gives it (the single read's ``_links`` left out); None when Azure answers
    404: it no longer exists."""
    repository_id = _text(known.get("id"))
    if repository_id is None:
        raise MalformedEvent("the event names no repository")
    project_id = _text(_mapping(known.get("project")).get("id"))
    path = f"_apis/git/repositories/{repository_id}"
    try:
        answer = await get_object(ctx.rest, f"{project_id}/{path}" if project_id else path)
    except NotFound:
        return None
    return {key: value for key, value in answer.items() if key != "_links"}


async def _project_listed(ctx: FetchContext, repository: Item) -> bool:
    """Whether the repository's project is one the organisation's kinds are read in: always, unless
    the integration excludes projects by tag (then: the project is still listed, without one)."""
    if not ctx.excluded_tags:
        return True
    project_id = str(_mapping(repository.get("project")).get("id", "")).casefold()
    return any(str(project.get("id", "")).casefold() == project_id for project in await ctx.projects())


def _healthy(repository: Item) -> bool:
    """Whether the resync reads the repository's child kinds: enabled, in a well-formed project."""
    state = str(_mapping(repository.get("project")).get("state") or "wellFormed")
    return not repository.get("isDisabled") and state not in UNHEALTHY_PROJECT_STATES


async def _push(ctx: FetchContext, event: Mapping[str, Any], known: Item, *, commits: bool) -> Mapping[str, Any]:
    """The push the event names, with its ref updates (and commits when asked): the payload's, or,
    when a trimmed payload lacks them, the push read again."""
    resource = _resource(event)
    complete = isinstance(resource.get("refUpdates"), list) and (
        not commits or isinstance(resource.get("commits"), list)
    )
    if complete:
        return resource
    push_id = resource.get("pushId")
    if push_id is None or not _text(known.get("id")) or not _text(_mapping(known.get("project")).get("id")):
        raise MalformedEvent("the git.push event names no push (pushId, repository and project are needed)")
    path = repository_path(known, f"pushes/{push_id}")
    return await get_object(ctx.rest, path, params={"includeRefUpdates": "true", "includeCommits": "1000"})


def _branch_updates(push: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The push's ref updates of branches (``refs/heads/…``), in order."""
    return [
        _mapping(update)
        for update in push.get("refUpdates") or []
        if str(_mapping(update).get("name", "")).startswith("refs/heads/")
    ]


def _is_zero(object_id: Any) -> bool:
    return str(object_id or "").strip("0") == ""


async def _changed_paths(ctx: FetchContext, repository: Item, push: Mapping[str, Any]) -> list[str]:
    """The paths the push's commits changed (``/a/b``; a rename's old path too), each once, in order;
    folders' own changes (``gitObjectType: tree``) included, as some Azure answers list them."""
    paths: dict[str, None] = {}
    for commit in push.get("commits") or []:
        commit_id = _text(_mapping(commit).get("commitId"))
        if commit_id is None:
            continue
        skip = 0
        while True:
            answer = await get_object(
                ctx.rest,
                repository_path(repository, f"commits/{commit_id}/changes"),
                params={"top": str(CHANGES_PAGE), "skip": str(skip), "api-version": "7.1"},
            )
            changes = answer.get("changes")
            changes = changes if isinstance(changes, list) else []
            for change in changes:
                change = _mapping(change)
                for path in (_mapping(change.get("item")).get("path"), change.get("sourceServerItem")):
                    if isinstance(path, str) and path.strip("/"):
                        paths.setdefault("/" + path.strip("/"), None)
            if len(changes) < CHANGES_PAGE:
                break
            skip += len(changes)
    return list(paths)


def _requested(resource: ResourceConfig) -> list[str]:
    return list(resource.selector_value("includedFiles") or [])


# ---------------------------------------------------------------------------------------------- branch


async def handle_push_branches(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """``git.push`` → branch: each branch the push created, moved or deleted, as it is now."""
    result = Refetched("branch")
    known = event_repository(event)
    updates = _branch_updates(await _push(ctx, event, known, commits=False))
    if not updates:
        return result
    repository = await read_repository(ctx, known)
    if repository is not None and not await _project_listed(ctx, repository):
        return result
    shown = repository if repository is not None else known
    readable = repository is not None and _healthy(repository)
    wanted = [update for update in updates if readable and not _is_zero(update.get("newObjectId"))]
    heads = await gather_bounded(
        [functools.partial(_read_branch, ctx, shown, str(update["name"])) for update in wanted], ctx.concurrency
    )
    found = {str(update["name"]): head for update, head in zip(wanted, heads, strict=True)}
    for update in updates:
        name = str(update["name"])
        head = found.get(name)
        if head is not None:
            result.items.append(branch_item(ctx, shown, name, head))
        else:
            result.gone.append(branch_item(ctx, shown, name, update.get("oldObjectId")))
    return result


async def _read_branch(ctx: FetchContext, repository: Item, ref_name: str) -> str | None:
    """The object id ``refs/heads/<name>`` points at now, or None when the branch is not there
    (or the repository answers "no data"). ``filter`` is a prefix: the exact name is looked for."""
    pages = ctx.rest.pages_by_header_token(
        repository_path(repository, "refs"),
        params={"filter": ref_name.removeprefix("refs/")},
        top=PAGE_SIZE,
    )
    try:
        async for page in pages:
            for ref in page:
                if isinstance(ref, dict) and ref.get("name") == ref_name:
                    return str(ref["objectId"])
    except NoDataNotFound:
        return None
    return None


# ---------------------------------------------------------------------------------------------- file


def _file_selected(plan: FilePlan, path: str) -> bool:
    """Whether the file ``path`` (``/a/b``) is one the selector's ``files.path`` names: a literal
    path (any letter case, as Azure finds it) or a glob."""
    if path.casefold() in {literal.casefold() for literal in plan.literals}:
        return True
    bare = path.strip("/")
    return any(regex.fullmatch(bare) for _, regexes in plan.globs.values() for regex in regexes)


async def handle_push_files(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """``git.push`` → file: the selected files the push changed on the default branch, as they are now."""
    result = Refetched("file")
    selector: FilePattern = resource.selector_value("files")
    known = event_repository(event)
    name = str(known.get("name", "")).casefold()
    if selector.repos and known.get("name") and name not in {repo.casefold() for repo in selector.repos}:
        return result
    push = await _push(ctx, event, known, commits=True)
    repository = await read_repository(ctx, known)
    if repository is None or repository.get("isDisabled") or not await _project_listed(ctx, repository):
        return result  # its git.repo event makes every file of it gone
    if selector.repos and str(repository.get("name", "")).casefold() not in {r.casefold() for r in selector.repos}:
        return result
    default = repository.get("defaultBranch")
    if not any(update.get("name") == default for update in _branch_updates(push)):
        return result
    plan = plan_files(selector.path)
    paths = [path for path in await _changed_paths(ctx, repository, push) if _file_selected(plan, path)]
    if not paths:
        return result
    result.items = await read_files(ctx, repository, paths, _requested(resource))
    present = {"/" + str(item["file"]["path"]).strip("/").casefold() for item in result.items}
    result.gone = [
        ctx.stamp({"file": {"path": path.lstrip("/"), "isFolder": False}, "repo": repository})
        for path in paths
        if path.casefold() not in present
    ]
    return result


# ---------------------------------------------------------------------------------------------- folder


def _ancestors(path: str) -> list[str]:
    """The folders ``/a/b/c`` lies in: ``/a``, ``/a/b``."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:end]) for end in range(1, len(parts))]


def _pattern_names(pattern: str, folder: str) -> bool:
    """Whether the folder ``folder`` (``/a/b``) is one the pattern names (``*`` within one segment)."""
    wanted = [segment for segment in pattern.strip("/").split("/") if segment]
    parts = folder.strip("/").split("/")
    return len(wanted) == len(parts) and all(
        fnmatch.fnmatchcase(part, segment) for part, segment in zip(parts, wanted, strict=True)
    )


def _project_selected(project_name: str | None, repository: Item) -> bool:
    """Whether the folder selector's ``project_name`` (a name or an id; none: every project) names
    the repository's project."""
    if not project_name:
        return True
    project = _mapping(repository.get("project"))
    wanted = project_name.casefold()
    return wanted in (str(project.get("name", "")).casefold(), str(project.get("id", "")).casefold())


async def handle_push_folders(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """``git.push`` → folder: the selected folders holding what the push changed, as they are now."""
    result = Refetched("folder")
    patterns: list[FolderPattern] = list(resource.selector_value("folders") or [])
    if not patterns:
        return result
    known = event_repository(event)
    push = await _push(ctx, event, known, commits=True)
    updates = [u for u in _branch_updates(push) if not _is_zero(u.get("newObjectId"))]
    moved = {branch_name(str(u["name"])) for u in updates}
    created = {branch_name(str(u["name"])) for u in updates if _is_zero(u.get("oldObjectId"))}
    repository = await read_repository(ctx, known)
    if repository is None or repository.get("isDisabled") or not await _project_listed(ctx, repository):
        return result  # its git.repo event makes every folder of it gone
    if not _project_selected(resource.selector_value("project_name"), repository):
        return result
    default = branch_name(repository.get("defaultBranch"))
    work = [
        (branch, pattern)
        for branch, pattern in repository_folder_patterns(patterns, repository)
        if branch_name(branch or default) in moved
    ]
    if not work:
        return result
    changed = await _changed_paths(ctx, repository, push)
    touched = set(changed) | {folder for path in changed for folder in _ancestors(path)}
    requested = _requested(resource)
    found = await gather_bounded(
        [functools.partial(read_pattern_folders, ctx, repository, b, p, requested) for b, p in work], ctx.concurrency
    )
    for (branch, pattern), folders in zip(work, found, strict=True):
        present = {str(folder.get("path")) for folder in folders}
        if branch_name(branch or default) in created:  # a new branch: every folder on it is new
            result.items += folders
            continue
        result.items += [folder for folder in folders if str(folder.get("path")) in touched]
        result.gone += [
            ctx.stamp(
                {
                    "path": path,
                    "isFolder": True,
                    "gitObjectType": "tree",
                    "__repository": repository,
                    "__branch": branch or default,
                    "__pattern": pattern,
                }
            )
            for path in sorted(touched)
            if path not in present and _pattern_names(pattern, path)
        ]
    return result


# ---------------------------------------------------------------------------------------------- repository


async def handle_repository(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
    """``git.repo.*`` → repository: the repository as it is now (``includedFiles`` attached), or gone."""
    result = Refetched("repository")
    known = event_repository(event)
    repository = await read_repository(ctx, known)
    if repository is None or not await _project_listed(ctx, repository):
        result.gone.append(ctx.stamp(repository if repository is not None else known))
        return result
    item = ctx.stamp(repository)
    requested = _requested(resource)
    if requested:
        await IncludedFiles(ctx, requested).attach([item], item, branch_name(item.get("defaultBranch")))
    result.items.append(item)
    return result


def handle_repository_children(kind: str) -> EventHandler:
    """The handler of ``git.repo.*`` events for the child kind ``kind`` (one of :data:`CHILD_KINDS`)."""

    async def handle(ctx: FetchContext, resource: ResourceConfig, event: Mapping[str, Any]) -> Refetched:
        result = Refetched(kind)
        event_type = str(event.get("eventType", ""))
        known = event_repository(event)
        repository = await read_repository(ctx, known)
        if repository is None or not _healthy(repository) or not await _project_listed(ctx, repository):
            shown = repository if repository is not None else known
            result.gone.append(ctx.stamp({REPOSITORY_GONE: shown}))
            return result
        if event_type == "git.repo.created":
            return result  # a new repository is empty; its first push brings its children
        limited = await ctx.limited_to(dict(_mapping(repository.get("project"))), [repository])
        async for batch in fetcher_for(kind)(limited, resource):
            result.items += batch
        _merge_counts(ctx, limited)
        old_name = _text(_resource(event).get("oldName"))
        if event_type == "git.repo.renamed" and old_name and old_name != repository.get("name"):
            renamed = {**repository, "name": old_name}
            result.gone = [_with_repository(item, repository, renamed) for item in result.items]
        return result

    handle.__name__ = handle.__qualname__ = f"handle_repository_children_{kind.replace('-', '_')}"
    handle.__doc__ = f"``git.repo.*`` → {kind}: none when the repository is gone or disabled, else read again."
    return handle


def _merge_counts(ctx: FetchContext, limited: FetchContext) -> None:
    """What the limited read skipped, counted in the event's context too."""
    for what, count in limited.skipped.items():
        ctx.skipped[what] = ctx.skipped.get(what, 0) + count
    for what, count in limited.unread.items():
        ctx.unread[what] = ctx.unread.get(what, 0) + count


def _with_repository(item: Item, repository: Item, replacement: Item) -> Item:
    """``item`` with each field holding ``repository`` (``__repository``, a file's ``repo``, a pull
    request's ``repository``) holding ``replacement`` instead."""
    copied = dict(item)
    for key in ("__repository", "repo", "repository"):
        value = copied.get(key)
        if isinstance(value, Mapping) and value.get("id") == repository.get("id"):
            copied[key] = {**value, "name": replacement["name"]}
    return copied


_CHILD_HANDLERS: Final[dict[str, EventHandler]] = {kind: handle_repository_children(kind) for kind in CHILD_KINDS}

#: Event type → kind → handler, for the processor's registry.
HANDLERS: Final[dict[str, dict[str, EventHandler]]] = {
    "git.push": {"branch": handle_push_branches, "file": handle_push_files, "folder": handle_push_folders},
    **{event_type: {"repository": handle_repository, **_CHILD_HANDLERS} for event_type in REPOSITORY_EVENTS},
}
