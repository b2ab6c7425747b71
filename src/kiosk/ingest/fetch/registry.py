"""Which fetcher reads which kind: the table the resync engine and the tests look kinds up in."""

from __future__ import annotations

from kiosk.ingest.fetch import boards, files, git, pipelines, projects, quality, releases, teams, wiki, work_items
from kiosk.ingest.fetch.base import Fetcher

__all__ = ["FETCHERS", "fetcher_for"]

#: kind → fetcher; each fetch module holds its own kinds' table.
FETCHERS: dict[str, Fetcher] = {
    **projects.FETCHERS,
    **git.FETCHERS,
    **files.FETCHERS,
    **pipelines.FETCHERS,
    **releases.FETCHERS,
    **work_items.FETCHERS,
    **boards.FETCHERS,
    **teams.FETCHERS,
    **quality.FETCHERS,
    **wiki.FETCHERS,
}


def fetcher_for(kind: str) -> Fetcher:
    """The fetcher of ``kind``; a ``KeyError`` naming the kinds that have one otherwise."""
    try:
        return FETCHERS[kind]
    except KeyError:
        raise KeyError(f"no fetcher for kind {kind!r}; fetchers exist for {sorted(FETCHERS)}") from None
