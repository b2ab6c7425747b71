"""Fetchers of the kinds board, column, iteration, area-path: what Azure keeps per team (boards and
their columns, iterations) and per project (the area tree).

A project's teams are listed with ``$top``/``$skip`` to the end (the reference reads only the first
page for iterations) and shared by the three team-scoped kinds for the whole resync; so are each
team's boards, which the column kind derives its items from. The reference skips a team whose boards
answer 500 ("the team has no iteration"); here a 500 raises like any other error, so a resync never
deletes boards it could not read.

Items are shaped as the reference yields them, so Ocean's mappings read the same fields:

- board: the board reference merged with the board's detail (``columns``, ``rows``, ``fields``…),
  plus ``__project``;
- column: one item per column and ``stateMappings`` entry: the column plus ``__board`` (the board
  item, ``__project`` included), ``__stateType`` (the work item type) and ``__stateName`` (its state),
  which is what the default mapping's identifier ``__stateType/name/__board.__project.id`` and the
  work item's fixed column relation (``System.WorkItemType/System.BoardColumn/project id``) meet on;
- iteration: a team's iteration plus ``__project`` and ``__team``;
- area-path: every node of the project's area tree, flattened, plus ``__project``,
  ``__parentIdentifier`` (the parent node's ``identifier``, None at the root) and
  ``__normalizedPath`` (``Project\\L1\\L2``, the form of a work item's ``System.AreaPath``).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from kiosk.ingest.fetch.base import Batch, FetchContext, Item, gather_bounded, merge_batches
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "board_columns",
    "fetch_area_paths",
    "fetch_boards",
    "fetch_columns",
    "fetch_iterations",
    "flatten_area_tree",
    "normalized_area_path",
    "project_teams",
    "team_boards",
]

TEAMS_PAGE: Final = 100
"""Teams asked per page of a project's teams (``$top``)."""
ITERATIONS_API_VERSION: Final = "7.1"


async def project_teams(ctx: FetchContext, project: Item) -> list[Item]:
    """The teams of ``project`` (every page), read once per resync."""

    async def read() -> list[Item]:
        teams: list[Item] = []
        async for page in ctx.rest.pages_by_skip(f"_apis/projects/{project['id']}/teams", top=TEAMS_PAGE):
            teams.extend(page)
        return teams

    return await ctx.shared(("project-teams", str(project["id"])), read)


async def team_boards(ctx: FetchContext, project: Item, team: Item) -> list[Item]:
    """The boards of ``team``, each its reference merged with its detail and ``__project``; read once."""

    async def read() -> list[Item]:
        base = f"{project['id']}/{team['id']}/_apis/work/boards"
        references: list[Item] = []
        async for page in ctx.rest.whole_list(base):
            references.extend(page)
        details = await gather_bounded(
            [functools.partial(ctx.rest.get, f"{base}/{reference['id']}") for reference in references],
            ctx.concurrency,
        )
        return [
            ctx.stamp({**reference, **detail, "__project": project})
            for reference, detail in zip(references, details, strict=True)
        ]

    return await ctx.shared(("team-boards", str(project["id"]), str(team["id"])), read)


def board_columns(board: Item) -> Batch:
    """One item per column and ``stateMappings`` entry of ``board`` (columns without mappings give none)."""
    columns: Batch = []
    for column in board.get("columns") or []:
        for state_type, state_name in (column.get("stateMappings") or {}).items():
            columns.append({**column, "__board": board, "__stateType": state_type, "__stateName": state_name})
    return columns


def normalized_area_path(path: str) -> str:
    """A classification node's path as a work item's ``System.AreaPath`` writes it:
    ``\\Project\\Area\\L1`` → ``Project\\L1`` (the structure segment dropped)."""
    segments = path.strip("\\").split("\\")
    if len(segments) >= 2 and segments[1] == "Area":
        del segments[1]
    return "\\".join(segments)


def flatten_area_tree(node: Item, project: Item, parent_identifier: str | None = None) -> Batch:
    """``node`` and its descendants, depth first, each without ``children`` and with the enrichment
    fields; a node that is not an area (and what is under it) is left out, as the reference does."""
    if node.get("structureType") != "area":
        return []
    flat: Batch = [
        {
            **{key: value for key, value in node.items() if key != "children"},
            "__project": project,
            "__parentIdentifier": parent_identifier,
            "__normalizedPath": normalized_area_path(str(node.get("path", ""))),
        }
    ]
    for child in node.get("children") or []:
        flat.extend(flatten_area_tree(child, project, node.get("identifier")))
    return flat


# --------------------------------------------------------------------------------------- the fetchers


def _per_team(
    ctx: FetchContext, read: Callable[[FetchContext, Item, Item], AsyncIterator[Batch]]
) -> Callable[[], AsyncIterator[Batch]]:
    """A producer of every project's teams' batches of ``read`` (projects and teams read concurrently)."""

    async def project_batches(project: Item) -> AsyncIterator[Batch]:
        teams = await project_teams(ctx, project)
        producers = [functools.partial(read, ctx, project, team) for team in teams]
        async for batch in merge_batches(producers, ctx.concurrency):
            yield batch

    async def everything() -> AsyncIterator[Batch]:
        projects = await ctx.projects()
        producers = [functools.partial(project_batches, project) for project in projects]
        async for batch in merge_batches(producers, ctx.concurrency):
            yield batch

    return everything


async def _boards_of_team(ctx: FetchContext, project: Item, team: Item) -> AsyncIterator[Batch]:
    yield await team_boards(ctx, project, team)


async def _columns_of_team(ctx: FetchContext, project: Item, team: Item) -> AsyncIterator[Batch]:
    for board in await team_boards(ctx, project, team):
        yield [ctx.stamp(column) for column in board_columns(board)]


async def _iterations_of_team(ctx: FetchContext, project: Item, team: Item) -> AsyncIterator[Batch]:
    path = f"{project['id']}/{team['id']}/_apis/work/teamsettings/iterations"
    async for page in ctx.rest.whole_list(path, params={"api-version": ITERATIONS_API_VERSION}):
        yield [ctx.stamp({**iteration, "__project": project, "__team": team}) for iteration in page]


async def fetch_boards(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every team's boards, in every project."""
    async for batch in _per_team(ctx, _boards_of_team)():
        yield batch


async def fetch_columns(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every board's columns, one item per column and state mapping."""
    async for batch in _per_team(ctx, _columns_of_team)():
        yield batch


async def fetch_iterations(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every team's iterations, in every project."""
    async for batch in _per_team(ctx, _iterations_of_team)():
        yield batch


async def fetch_area_paths(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every project's area tree, flattened; ``depth`` (the selector's) levels below the root are read,
    only the root when it is absent (Azure's default, as the reference sends none)."""
    depth = resource.selector_value("depth")
    params: dict[str, str] = {"api-version": "7.1"}
    if depth is not None:
        params["$depth"] = str(depth)

    async def project_areas(project: Item) -> AsyncIterator[Batch]:
        root: Any = await ctx.rest.get(f"{project['id']}/_apis/wit/classificationnodes/Areas", params=params)
        yield [ctx.stamp(node) for node in flatten_area_tree(root, project)]

    producers = [functools.partial(project_areas, project) for project in await ctx.projects()]
    async for batch in merge_batches(producers, ctx.concurrency):
        yield batch
