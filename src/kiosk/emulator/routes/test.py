"""Test routes (``test`` area): a project's test runs, a run's results, a build's code coverage.

- ``GET {project}/_apis/test/runs``: ``TestRun`` list by id, ``$top``/``$skip`` paged (no token:
  a client stops on a short page), ``includeRunDetails`` adds statistics, ``buildUri``
  (``vstfs:///Build/Build/{id}``) and ``automated`` filter.
- ``GET {project}/_apis/test/runs/{runId}``, ``…/results`` (``$top`` at most 1000, ``$skip``,
  ``outcomes``), ``…/results/{id}``.
- ``GET {project}/_apis/test/codecoverage?buildId=&flags=``: the build's ``BuildCoverage`` list
  (empty for a build without coverage); ``flags`` 1 modules, 2 functions, 4 block data, additive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, FastAPI, Query
from starlette.responses import Response

from kiosk.emulator.errors import AzureError
from kiosk.emulator.org.model import Organisation, Project, TestRun
from kiosk.emulator.routes.common import (
    ApiVersion,
    DeclaredResponses,
    Skip,
    find_project,
    from_query,
    in_project,
    skip_page,
    wrapped,
)
from kiosk.emulator.routes.query_params import choices, enum_pattern
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_test import COVERAGE_MODULES, build_coverage_json, result_json, run_json
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_test_routes"]

_RUNS_PAGE: Final = 100
_RESULTS_MAX: Final = 1000
_BUILD_URI: Final = "vstfs:///Build/Build/"
_OUTCOMES: Final = frozenset(
    o.lower()
    for o in (
        "Unspecified", "None", "Passed", "Failed", "Inconclusive", "Timeout", "Aborted", "Blocked", "NotExecuted",
        "Warning", "Error", "NotApplicable", "Paused", "InProgress", "NotImpacted",
    )
)  # fmt: skip

RunsTop = Annotated[int | None, Query(alias="$top", ge=0, le=100_000)]
ResultsTop = Annotated[int | None, Query(alias="$top", ge=0, le=_RESULTS_MAX)]
Outcomes = Annotated[str | None, Query(alias="outcomes", pattern=enum_pattern(_OUTCOMES, many=True))]
BuildUri = Annotated[
    str | None, Query(alias="buildUri", pattern=r"^[vV][sS][tT][fF][sS]:///[bB]uild/[bB]uild/[0-9]{1,9}$")
]

IncludeDetails = Annotated[bool, Query(alias="includeDetails")]


def _run(org: Organisation, project: Project, run_id: int) -> TestRun:
    return in_project(
        org.test_runs.get(run_id), project, "TestObjectNotFoundException", f"Test run {run_id} not found."
    )


def _build_id(build_uri: str) -> int:
    """The build id of ``vstfs:///Build/Build/{id}``; Azure's 400 for any other URI."""
    tail = build_uri[len(_BUILD_URI) :] if build_uri.lower().startswith(_BUILD_URI.lower()) else ""
    if not tail.isdigit() or len(tail) > 9:
        raise AzureError(400, "InvalidPropertyException", f"buildUri: {build_uri[:80]!r} is not a build URI")
    return int(tail)


@dataclass(frozen=True, slots=True)
class RunsQuery:
    """Test runs by ``buildUri`` and ``automated``, with statistics or not; a ``$top``/``$skip`` page."""

    include_run_details: Annotated[bool, Query(alias="includeRunDetails")] = False
    build_uri: BuildUri = None
    automated: Annotated[bool | None, Query(alias="automated")] = None
    top: RunsTop = None
    skip: Skip = None


RunsParams = Annotated[RunsQuery, Depends(from_query(RunsQuery))]


@dataclass(frozen=True, slots=True)
class ResultsQuery:
    """A run's results by ``outcomes``; a ``$top`` (at most 1000) / ``$skip`` page."""

    details_to_include: Annotated[str | None, Query(alias="detailsToInclude", max_length=200)] = None
    outcomes: Outcomes = None
    top: ResultsTop = None
    skip: Skip = None


ResultsParams = Annotated[ResultsQuery, Depends(from_query(ResultsQuery))]


@dataclass(frozen=True, slots=True)
class CoverageQuery:
    """The build whose coverage is asked (``buildId``), and how much of it (``flags``)."""

    build_id: Annotated[int, Query(alias="buildId", ge=0, le=2_147_483_647)]
    flags: Annotated[int, Query(alias="flags", ge=0, le=7)] = COVERAGE_MODULES


CoverageParams = Annotated[CoverageQuery, Depends(from_query(CoverageQuery))]


def add_test_routes(app: FastAPI, emulator: Emulator, responses: DeclaredResponses) -> None:
    """Add the test run, result and code coverage routes."""

    @app.get("/{org}/{project}/_apis/test/runs", responses=responses)
    async def test_runs(org: str, project: str, query: RunsParams, api_version: ApiVersion) -> Response:
        """The project's ``TestRun`` list by id, ``$top``/``$skip`` paged."""
        data = emulator.organisation(org)
        found = find_project(data, project)
        runs = [run for run in data.test_runs.values() if run.project_id == found.id]
        if query.build_uri is not None:
            build_id = _build_id(query.build_uri)
            runs = [run for run in runs if run.build_id == build_id]
        if query.automated is not None:
            runs = [run for run in runs if run.is_automated == query.automated]
        page = skip_page(runs, query.top, query.skip, default=_RUNS_PAGE)
        return wrapped([run_json(data, run, details=query.include_run_details) for run in page])

    @app.get("/{org}/{project}/_apis/test/runs/{run_id}", responses=responses)
    async def test_run(
        org: str, project: str, run_id: int, api_version: ApiVersion, include_details: IncludeDetails = False
    ) -> Response:
        """One ``TestRun`` (with its statistics, as Azure's get answers it)."""
        data = emulator.organisation(org)
        return FastJSONResponse(run_json(data, _run(data, find_project(data, project), run_id), details=True))

    @app.get("/{org}/{project}/_apis/test/runs/{run_id}/results", responses=responses)
    async def test_results(
        org: str, project: str, run_id: int, query: ResultsParams, api_version: ApiVersion
    ) -> Response:
        """The run's ``TestCaseResult`` list by id, ``$top`` (at most 1000) / ``$skip`` paged."""
        data = emulator.organisation(org)
        run = _run(data, find_project(data, project), run_id)
        wanted = choices("outcomes", query.outcomes, _OUTCOMES)
        results = [r for r in run.results if not wanted or r.outcome.lower() in wanted]
        page = skip_page(results, query.top, query.skip, default=_RESULTS_MAX)
        return wrapped([result_json(data, run, result) for result in page])

    @app.get("/{org}/{project}/_apis/test/runs/{run_id}/results/{result_id}", responses=responses)
    async def test_result(org: str, project: str, run_id: int, result_id: int, api_version: ApiVersion) -> Response:
        """One ``TestCaseResult`` of a run."""
        data = emulator.organisation(org)
        run = _run(data, find_project(data, project), run_id)
        result = next((r for r in run.results if r.id == result_id), None)
        if result is None:
            raise AzureError(404, "TestObjectNotFoundException", f"Test result {result_id} not found in run {run_id}.")
        return FastJSONResponse(result_json(data, run, result))

    @app.get("/{org}/{project}/_apis/test/codecoverage", responses=responses)
    async def code_coverage(org: str, project: str, query: CoverageParams, api_version: ApiVersion) -> Response:
        """The build's ``BuildCoverage`` list: one configuration when the build has coverage, else empty."""
        data = emulator.organisation(org)
        found = find_project(data, project)
        build = data.builds.get(query.build_id)
        modules = data.code_coverage.get(query.build_id)
        if build is None or build.project_id != found.id or modules is None:
            return wrapped([])
        return wrapped([build_coverage_json(data, build, modules, query.flags)])
