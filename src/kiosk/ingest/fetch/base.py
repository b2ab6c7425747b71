"""What every kind's fetcher shares: the organisation being read, its cached projects and
repositories, and a bounded merge of many paged lists into one stream of batches.

A fetcher is ``async def fetch(ctx, resource) -> AsyncIterator[list[dict]]``: it yields batches of
raw Azure DevOps items, already enriched with the fields the reference's mappings read
(``__project``, ``__repository``, …), and stamped with ``__organizationUrl``/``__organizationName``
as Ocean stamps them. It never swallows an error: a 404, 5xx, timeout or 401 on any list raises
(:mod:`kiosk.azure.errors`), because the resync may delete only after a pass with no error. The
one exception the reference documents as Azure's own "no data" (a disabled repository's items,
:class:`~kiosk.azure.errors.NoDataNotFound`) is skipped by the fetcher that meets it, and counted.

Projects and repositories are read once per organisation resync and shared by every kind that
needs them (:meth:`FetchContext.projects`, :meth:`FetchContext.repositories`), as Ocean caches them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from kiosk.azure.errors import MalformedResponse
from kiosk.azure.rest import AzureDevOpsRest
from kiosk.azure.urls import Host
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "AsMarked",
    "Batch",
    "FetchContext",
    "Fetcher",
    "Item",
    "Unchanged",
    "gather_bounded",
    "get_object",
    "merge_batches",
    "organization_name",
    "project_tags",
]

T = TypeVar("T")
Item = dict[str, Any]
Batch = list[Item]
Fetcher = Callable[["FetchContext", ResourceConfig], AsyncIterator[Batch]]
#: Given {item key: version} read cheaply, the keys of the items the resync already holds exactly
#: as they are (a fetcher need not read those in full); see :mod:`kiosk.ingest.resync`.
Unchanged = Callable[[dict[str, str]], Awaitable[set[str]]]
#: Given {item key: version suffix}, the keys of the items the resync holds exactly as their marks
#: left them, whatever revision the mark names, provided it ends with the suffix: for items a
#: changed-since query proved untouched since their marks were made (no version read at all).
AsMarked = Callable[[dict[str, str]], Awaitable[set[str]]]

#: Project states whose repositories are not read for child kinds (the reference's
#: ``_repository_is_healthy``): only ``wellFormed`` projects are.
UNHEALTHY_PROJECT_STATES: Final = frozenset({"deleting", "new", "createPending", "deleted"})


#: A project tag is the project property ``Microsoft.TeamFoundation.Project.Tag.<tag>``.
PROJECT_TAG_PREFIX: Final = "Microsoft.TeamFoundation.Project.Tag."


def project_tags(properties: Any) -> set[str]:
    """The tags in a ``_apis/projects/{id}/properties`` answer: the names after the tag prefix, whole (a tag
    may hold dots: ``v1.2``), other properties ignored."""
    values = properties.get("value", []) if isinstance(properties, dict) else []
    return {
        str(item["name"])[len(PROJECT_TAG_PREFIX) :]
        for item in values
        if isinstance(item, dict) and str(item.get("name", "")).startswith(PROJECT_TAG_PREFIX)
    }


def organization_name(organization_url: str) -> str:
    """``__organizationName`` as Ocean stamps it: the first path segment on ``dev.azure.com``,
    the host's first label on ``*.visualstudio.com``, else the whole URL."""
    parts = urlsplit(organization_url)
    host = (parts.hostname or "").lower()
    if host == "dev.azure.com":
        segments = [s for s in parts.path.split("/") if s]
        return segments[0] if segments else organization_url
    if host.endswith(".visualstudio.com"):
        return host.split(".", 1)[0]
    return organization_url


@dataclass
class FetchContext:
    """One organisation's resync, as the fetchers see it.

    ``excluded_tags``: projects carrying any of these tags are dropped for every kind.
    ``concurrency``: how many lists (repositories, pipelines, teams…) a fetcher reads at once;
    the client's own adaptive limit still bounds requests in flight.
    ``skipped``: counts of "no data" 404s skipped, by what was skipped (shown in the resync state).
    ``clock``: the resync's "now" (UTC), from which time windows such as closed pull requests'
    ``minTimeInDays`` are counted; replaceable so a fixed organisation can be read at its own date.
    ``unchanged``: set by the resync for the resource being read, when it can skip items it holds
    unchanged; a fetcher that can read items' versions cheaply asks it before reading in full.
    ``changed_since`` and ``as_marked``: set besides ``unchanged`` when the resource's marks date
    from a complete read that began at ``changed_since`` (Azure's time) or later; a fetcher that
    can ask Azure which items changed since then (work items: WIQL on ``System.ChangedDate``)
    asks ``as_marked`` about the others, reading not even their versions.
    ``read_began``: the earliest server time a fetcher saw before reading this resource's items
    (:meth:`server_time`); the resync keeps it, after a complete read, as the next ``changed_since``.
    """

    rest: AzureDevOpsRest
    organization_url: str
    excluded_tags: tuple[str, ...] = ()
    concurrency: int = 8
    skipped: dict[str, int] = field(default_factory=dict)
    unread: dict[str, int] = field(default_factory=dict)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    unchanged: Unchanged | None = None
    changed_since: datetime | None = None
    as_marked: AsMarked | None = None
    read_began: datetime | None = None
    _projects: asyncio.Task[list[Item]] | None = field(default=None, init=False, repr=False)
    _repositories: dict[str, asyncio.Task[list[Item]]] = field(default_factory=dict, init=False, repr=False)
    _shared: dict[tuple[str, ...], asyncio.Task[Any]] = field(default_factory=dict, init=False, repr=False)

    @property
    def organization_name(self) -> str:
        return organization_name(self.organization_url)

    def stamp(self, item: Item) -> Item:
        """Add Ocean's organisation fields to ``item`` (in place) and return it."""
        item["__organizationUrl"] = self.organization_url
        item["__organizationName"] = self.organization_name
        return item

    def skip(self, what: str, *, unread: bool = False) -> None:
        """Count an item or list left out, by why. ``unread``: something that may exist was not
        read (Azure's "no data" answer for a list): the resync then deletes nothing of that
        resource's blueprint this time. Left out by rule (a disabled repository, a file over
        1 MiB, an item deleted meanwhile, a path that is not there) is not unread."""
        self.skipped[what] = self.skipped.get(what, 0) + 1
        if unread:
            self.unread[what] = self.unread.get(what, 0) + 1

    def server_time(self, when: datetime) -> None:
        """Note a time Azure gave for an answer that precedes reads of this resource's items (a
        WIQL answer's ``asOf``): the earliest one noted is when the resource's read began."""
        if self.read_began is None or when < self.read_began:
            self.read_began = when

    async def projects(self) -> list[Item]:
        """Every project of the organisation (less those with an excluded tag), read once."""
        if self._projects is None:
            self._projects = asyncio.ensure_future(self._read_projects())
        return await asyncio.shield(self._projects)

    async def repositories(self, project: Item) -> list[Item]:
        """The git repositories of ``project`` (disabled ones included), read once."""
        key = str(project["id"])
        task = self._repositories.get(key)
        if task is None:
            task = asyncio.ensure_future(self._read_repositories(project))
            self._repositories[key] = task
        return await asyncio.shield(task)

    async def healthy_repositories(self, project: Item) -> list[Item]:
        """The repositories child kinds read: not disabled, in a well-formed project."""
        if str(project.get("state", "wellFormed")) in UNHEALTHY_PROJECT_STATES:
            return []
        return [repo for repo in await self.repositories(project) if not repo.get("isDisabled")]

    async def shared(self, key: tuple[str, ...], read: Callable[[], Awaitable[T]]) -> T:
        """``read()``'s result, read once per organisation resync under ``key`` and shared by every
        kind that asks for it (a project's teams, a team's boards), as the reference caches them.
        A failed read stays failed for the whole resync: it already refuses to delete."""
        task = self._shared.get(key)
        if task is None:
            task = asyncio.ensure_future(read())
            # Its error reaches every waiter; one left running after they all stopped is not logged.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._shared[key] = task
        result: T = await asyncio.shield(task)
        return result

    async def limited_to(self, project: Item, repositories: list[Item]) -> FetchContext:
        """A context for the same organisation whose only project is ``project`` and whose only
        repositories are ``repositories`` (of that project), with the same client and limits: a
        live event reads one repository's child kinds with those kinds' own fetchers."""
        limited = FetchContext(
            self.rest, self.organization_url, excluded_tags=self.excluded_tags, concurrency=self.concurrency
        )
        limited.clock = self.clock
        limited._projects = asyncio.ensure_future(_given([project]))
        limited._repositories[str(project["id"])] = asyncio.ensure_future(_given(list(repositories)))
        return limited

    async def _read_projects(self) -> list[Item]:
        projects: list[Item] = []
        async for page in self.rest.pages_by_header_token("_apis/projects", params={"includeCapabilities": "true"}):
            projects.extend(page)
        if not self.excluded_tags:
            return projects
        excluded = set(self.excluded_tags)

        async def keep(project: Item) -> bool:
            answer = await self.rest.get(
                f"_apis/projects/{project['id']}/properties",
                params={"keys": f"{PROJECT_TAG_PREFIX}*", "api-version": "7.1-preview.1"},
            )
            return not (project_tags(answer) & excluded)

        kept = await gather_bounded([functools.partial(keep, p) for p in projects], self.concurrency)
        return [project for project, ok in zip(projects, kept, strict=True) if ok]

    async def _read_repositories(self, project: Item) -> list[Item]:
        repos: list[Item] = []
        async for page in self.rest.whole_list(f"{project['id']}/_apis/git/repositories"):
            repos.extend(page)
        return repos


async def _given(value: T) -> T:
    """``value``, as the awaitable a cached read is."""
    return value


async def get_object(
    rest: AzureDevOpsRest, path: str, *, host: Host = "core", params: dict[str, str] | None = None
) -> Item:
    """GET one Azure object (a project, a definition, a timeline, a commit); an answer that is not a JSON
    object raises :class:`~kiosk.azure.errors.MalformedResponse` rather than passing as an item."""
    answer = await rest.get(path, host=host, params=params)
    if not isinstance(answer, dict):
        raise MalformedResponse(
            "GET", rest.urls.url(host, path), f"expected a JSON object, got {type(answer).__name__}"
        )
    return answer


async def gather_bounded(calls: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run ``calls`` at most ``limit`` at a time; their results in order. The first error
    cancels the rest and raises."""
    gate = asyncio.Semaphore(max(1, limit))

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(call)) for call in calls]
    except ExceptionGroup as group_error:  # the caller meets the error itself (a ServerError…), not a group
        raise first_error(group_error) from None
    return [task.result() for task in tasks]


def first_error(error: BaseException) -> BaseException:
    """The first error inside ``error`` when it is a (possibly nested) exception group, else ``error``."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


async def merge_batches(producers: Iterable[Callable[[], AsyncIterator[Batch]]], limit: int) -> AsyncIterator[Batch]:
    """Read up to ``limit`` producers at once and yield their batches as they arrive (in no
    fixed order between producers, in order within one). The first error stops every producer
    and is raised to the consumer, so nothing that failed is mistaken for an empty list."""
    queue: asyncio.Queue[Batch | Exception | None] = asyncio.Queue(maxsize=max(2, limit * 2))
    pending = list(producers)
    gate = asyncio.Semaphore(max(1, limit))

    async def run(producer: Callable[[], AsyncIterator[Batch]]) -> None:
        async with gate:
            async for batch in producer():
                if batch:
                    await queue.put(batch)

    async def drive() -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for producer in pending:
                    group.create_task(run(producer))
        except Exception as exc:  # handed to the consumer, which raises it
            error = first_error(exc)
            await queue.put(error if isinstance(error, Exception) else exc)
            return
        await queue.put(None)

    driver = asyncio.create_task(drive())
    try:
        while True:
            got = await queue.get()
            if got is None:
                return
            if isinstance(got, Exception):
                raise got
            yield got
    finally:
        if not driver.done():
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await driver
