"""Fetchers of the kinds test-run and advanced-security-alert: what a project's builds and scans say
about its code.

As the reference reads them (azure-devops-ingestion.md §1.2):

- ``test-run``: per project ``{project}/_apis/test/runs?includeRunDetails=true&api-version=7.1``,
  ``$top``/``$skip`` paged. ``includeResults`` (default true) adds ``__testResults``: every result of
  the run (``…/test/runs/{id}/results``, read ``$top``/``$skip`` to the end, where the reference's
  token pager would stop after its first page), ``[]`` when not asked. ``codeCoverage: {flags}``
  adds ``__codeCoverage``: the answer of ``{project}/_apis/test/codecoverage?buildId=&flags=`` for the
  run's build (read once per build and flags, shared by the build's runs), ``{}`` for a run without a
  build or when not asked.
- ``advanced-security-alert``: per healthy repository
  ``{advsec}/{project}/_apis/alert/repositories/{repo}/alerts?api-version=7.2-preview.1``, paged by
  continuation token, ``criteria.states``/``criteria.severity`` (comma-separated) and
  ``criteria.alertType`` from the selector's ``criteria``; each alert gets ``__repositoryId`` and
  ``__projectId``. A repository with Advanced Security off answers 400 (the reference's documented
  "no data"): skipped before it gave any alert, and counted; every other error raises.

Unlike the reference, a run whose results or coverage cannot be read is an error, not a run
silently left without them.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any, Final

from kiosk.azure.errors import StatusError
from kiosk.ingest.fetch.base import Batch, FetchContext, Item, gather_bounded, get_object, merge_batches
from kiosk.ingest.fetch.git import healthy_repositories
from kiosk.ingest.kinds import AdvancedSecurityCriteria, CodeCoverage
from kiosk.ingest.mapping import ResourceConfig

__all__ = [
    "ADVANCED_SECURITY_API_VERSION",
    "ADVANCED_SECURITY_OFF",
    "ALERTS_PAGE",
    "RESULTS_PAGE",
    "RUNS_PAGE",
    "criteria_params",
    "fetch_advanced_security_alerts",
    "fetch_test_runs",
]

#: ``$top`` of the lists read here: the reference's page size for runs and alerts, Azure's maximum for
#: results. Module variables so that a test can make lists span many pages.
RUNS_PAGE = 50
RESULTS_PAGE = 1000
ALERTS_PAGE = 50
TEST_API_VERSION: Final = "7.1"
ADVANCED_SECURITY_API_VERSION: Final = "7.2-preview.1"
#: What a skipped repository is counted as in ``FetchContext.skipped``.
ADVANCED_SECURITY_OFF: Final = "advanced-security-alert: Advanced Security off for the repository"


# ---------------------------------------------------------------------------------------------- test-run


async def _results(ctx: FetchContext, project: Item, run: Item) -> list[Item]:
    """Every result of ``run``."""
    results: list[Item] = []
    path = f"{project['id']}/_apis/test/runs/{run['id']}/results"
    async for page in ctx.rest.pages_by_skip(path, params={"api-version": TEST_API_VERSION}, top=RESULTS_PAGE):
        results.extend(page)
    return results


async def _coverage(ctx: FetchContext, project: Item, run: Item, flags: int | None) -> Item:
    """The code coverage answer of ``run``'s build (``{}`` without a build), read once per build and flags."""
    build = run.get("build") or {}
    build_id = build.get("id") if isinstance(build, dict) else None
    if not build_id:
        return {}
    params = {"buildId": str(build_id), "api-version": TEST_API_VERSION}
    if flags is not None:
        params["flags"] = str(flags)
    path = f"{project['id']}/_apis/test/codecoverage"
    key = ("test-run.codeCoverage", str(project["id"]), str(build_id), str(flags))
    answer = await ctx.shared(key, functools.partial(get_object, ctx.rest, path, params=params))
    return dict(answer)


async def _enrich_runs(
    ctx: FetchContext, project: Item, runs: list[Item], include_results: bool, coverage: CodeCoverage | None
) -> Batch:
    """``runs`` with ``__testResults`` and ``__codeCoverage``, each run's reads at once."""

    async def one(run: Item) -> Item:
        item: Item = dict(run)
        item["__testResults"] = await _results(ctx, project, run) if include_results else []
        item["__codeCoverage"] = await _coverage(ctx, project, run, coverage.flags) if coverage is not None else {}
        return ctx.stamp(item)

    return await gather_bounded([functools.partial(one, run) for run in runs], ctx.concurrency)


async def fetch_test_runs(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """The test-run kind: every project's test runs, with their results and coverage as the selector asks."""
    include_results = bool(resource.selector_value("includeResults"))
    coverage: CodeCoverage | None = resource.selector_value("codeCoverage")
    params = {"includeRunDetails": "true", "api-version": TEST_API_VERSION}

    async def one(project: Item) -> AsyncIterator[Batch]:
        path = f"{project['id']}/_apis/test/runs"
        async for runs in ctx.rest.pages_by_skip(path, params=params, top=RUNS_PAGE):
            yield await _enrich_runs(ctx, project, runs, include_results, coverage)

    projects = await ctx.projects()
    async for batch in merge_batches([functools.partial(one, project) for project in projects], ctx.concurrency):
        yield batch


# ---------------------------------------------------------------------------------------------- advanced-security-alert


def criteria_params(criteria: AdvancedSecurityCriteria | None) -> dict[str, str]:
    """The selector's ``criteria`` as the query parameters the reference sends: lists comma-separated."""
    if criteria is None:
        return {}
    params: dict[str, str] = {}
    if criteria.states:
        params["criteria.states"] = ",".join(criteria.states)
    if criteria.severity:
        params["criteria.severity"] = ",".join(criteria.severity)
    if criteria.alertType:
        params["criteria.alertType"] = criteria.alertType
    return params


async def _repository_alerts(ctx: FetchContext, params: dict[str, Any], repository: Item) -> AsyncIterator[Batch]:
    """One repository's alerts; a 400 before any page (Advanced Security off) skips it, counted."""
    project_id = str(repository["project"]["id"])
    repository_id = str(repository["id"])
    path = f"{project_id}/_apis/alert/repositories/{repository_id}/alerts"
    started = False
    try:
        async for page in ctx.rest.pages_by_header_token(path, host="advsec", params=params, top=ALERTS_PAGE):
            started = True
            yield [ctx.stamp({**alert, "__repositoryId": repository_id, "__projectId": project_id}) for alert in page]
    except StatusError as error:
        if started or error.status != 400:
            raise
        ctx.skip(ADVANCED_SECURITY_OFF)


async def fetch_advanced_security_alerts(ctx: FetchContext, resource: ResourceConfig) -> AsyncIterator[Batch]:
    """The advanced-security-alert kind: every healthy repository's alerts matching the selector's criteria."""
    params = {"api-version": ADVANCED_SECURITY_API_VERSION, **criteria_params(resource.selector_value("criteria"))}
    repositories = await healthy_repositories(ctx)
    producers = [functools.partial(_repository_alerts, ctx, params, repo) for repo in repositories]
    async for batch in merge_batches(producers, ctx.concurrency):
        yield batch
