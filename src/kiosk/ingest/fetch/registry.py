"""Which fetcher reads which kind: the one table the resync engine, the live events and the tests
look kinds up in."""

from __future__ import annotations

from kiosk.ingest.fetch import boards, files, git, pipelines, projects, quality, releases, teams, wiki, work_items
from kiosk.ingest.fetch.base import Fetcher

__all__ = ["FETCHERS", "fetcher_for"]

#: kind → fetcher, in the order of the modules that hold them.
FETCHERS: dict[str, Fetcher] = {
    "project": projects.fetch_projects,
    "repository": git.fetch_repositories,
    "repository-policy": git.fetch_repository_policies,
    "branch": git.fetch_branches,
    "pull-request": git.fetch_pull_requests,
    "file": files.fetch_files,
    "folder": files.fetch_folders,
    "pipeline": pipelines.fetch_pipelines,
    "pipeline-run": pipelines.fetch_pipeline_runs,
    "pipeline-stage": pipelines.fetch_pipeline_stages,
    "build": pipelines.fetch_builds,
    "environment": pipelines.fetch_environments,
    "pipeline-deployment": pipelines.fetch_pipeline_deployments,
    "release": releases.fetch_releases,
    "release-definition": releases.fetch_release_definitions,
    "release-deployment": releases.fetch_release_deployments,
    "work-item": work_items.fetch_work_items,
    "board": boards.fetch_boards,
    "column": boards.fetch_columns,
    "iteration": boards.fetch_iterations,
    "area-path": boards.fetch_area_paths,
    "team": teams.fetch_teams,
    "member": teams.fetch_members,
    "user": teams.fetch_users,
    "group": teams.fetch_groups,
    "group-member": teams.fetch_group_members,
    "test-run": quality.fetch_test_runs,
    "advanced-security-alert": quality.fetch_advanced_security_alerts,
    "wiki": wiki.fetch_wiki_pages,
}


def fetcher_for(kind: str) -> Fetcher:
    """The fetcher of ``kind``; a ``KeyError`` naming the kinds that have one otherwise."""
    try:
        return FETCHERS[kind]
    except KeyError:
        raise KeyError(f"no fetcher for kind {kind!r}; fetchers exist for {sorted(FETCHERS)}") from None
