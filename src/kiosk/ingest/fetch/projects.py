"""Fetchers of the kinds project.

The projects list (``_apis/projects``) leaves out each project's ``defaultTeam``; with the
selector's ``defaultTeam`` every project is read again on its own (``_apis/projects/{id}``), a
bounded number at once, as the reference does (its default mapping sets ``defaultTeam: 'true'``).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Final

from kiosk.ingest.fetch.base import Batch, FetchContext, Item, gather_bounded, get_object
from kiosk.ingest.mapping import ResourceConfig

__all__ = ["PROJECTS_PER_BATCH", "fetch_projects"]

#: How many projects one yielded batch holds (and, with ``defaultTeam``, how many re-reads one round awaits).
PROJECTS_PER_BATCH: Final = 50


async def fetch_projects(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """Every project not excluded by tag; with ``defaultTeam``, each as ``_apis/projects/{id}`` answers it."""
    projects = await ctx.projects()
    default_team = bool(resource.selector_value("defaultTeam"))
    for start in range(0, len(projects), PROJECTS_PER_BATCH):
        chunk = projects[start : start + PROJECTS_PER_BATCH]
        if default_team:
            chunk = await gather_bounded([functools.partial(_full_project, ctx, p) for p in chunk], ctx.concurrency)
        else:
            chunk = [dict(p) for p in chunk]  # the cached list is shared by every kind: stamp copies
        yield [ctx.stamp(p) for p in chunk]


async def _full_project(ctx: FetchContext, project: Item) -> Item:
    """The project with ``defaultTeam`` and capabilities; a project gone since the list raises (never dropped)."""
    return await get_object(ctx.rest, f"_apis/projects/{project['id']}")
