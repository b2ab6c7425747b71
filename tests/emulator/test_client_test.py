"""Microsoft's client, unmodified, over the test area: test runs, their results, a build's code coverage.

Found through route discovery like every area (the ``Test`` locations of :mod:`kiosk.emulator.discovery`).
"""

from __future__ import annotations

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from tests.emulator.conftest import LiveEmulator, project_with_most

pytestmark = pytest.mark.generated_org(repos=8)


def test_test_runs_filters_details_and_paging(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.test.TestClient")
    project = project_with_most(org, org.test_runs.values())
    mine = [r for r in org.test_runs.values() if r.project_id == project.id]
    assert len(mine) >= 3

    listed = client.get_test_runs(project.name)
    assert [(r.id, r.name, r.state, r.total_tests, r.passed_tests) for r in listed] == [
        (r.id, r.name, r.state, len(r.results), r.count("Passed")) for r in mine
    ]
    assert listed[0].build.id == str(mine[0].build_id) and listed[0].project.id == project.id
    assert listed[0].run_statistics is None and listed[0].owner.id == mine[0].owner_id
    detailed = client.get_test_runs(project.id, include_run_details=True)
    assert sum(s.count for s in detailed[0].run_statistics) == len(mine[0].results)

    first, second = client.get_test_runs(project.id, top=2), client.get_test_runs(project.id, top=2, skip=2)
    assert [r.id for r in first + second] == [r.id for r in mine[:4]]
    build_id = mine[-1].build_id
    by_build = client.get_test_runs(project.id, build_uri=f"vstfs:///Build/Build/{build_id}")
    assert [r.id for r in by_build] == [r.id for r in mine if r.build_id == build_id]

    one = client.get_test_run_by_id(project.id, mine[0].id)
    assert (one.id, one.name, one.completed_date) == (mine[0].id, mine[0].name, mine[0].completed_date)
    with pytest.raises(AzureDevOpsServiceError) as missing:
        client.get_test_run_by_id(project.id, 999_999)
    assert missing.value.type_key == "TestObjectNotFoundException"


def test_test_results_outcomes_and_paging(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.test.TestClient")
    run = max(org.test_runs.values(), key=lambda r: len(r.results))
    project = org.projects[run.project_id]

    results = client.get_test_results(project.name, run.id)
    assert [(r.id, r.test_case_title, r.outcome, r.duration_in_ms) for r in results] == [
        (r.id, r.test_case_title, r.outcome, float(r.duration_ms)) for r in run.results
    ]
    assert (
        results[0].test_run.id == str(run.id) and results[0].automated_test_name == run.results[0].automated_test_name
    )
    paged = client.get_test_results(project.id, run.id, top=2) + client.get_test_results(project.id, run.id, skip=2)
    assert [r.id for r in paged] == [r.id for r in run.results]
    passed = client.get_test_results(project.id, run.id, outcomes=["Passed"])
    assert [r.id for r in passed] == [r.id for r in run.results if r.outcome == "Passed"]
    one = client.get_test_result_by_id(project.id, run.id, run.results[-1].id)
    assert one.test_case_title == run.results[-1].test_case_title


def test_build_code_coverage_by_flags(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.test.TestClient")
    build_id, modules = next(iter(org.code_coverage.items()))
    project = org.projects[org.builds[build_id].project_id]

    coverage = client.get_build_code_coverage(project.name, build_id, 1)
    assert len(coverage) == 1 and coverage[0].state == "Completed"
    shown = coverage[0].modules
    assert [(m.name, m.block_count, m.statistics.blocks_covered) for m in shown] == [
        (m.name, m.block_count, m.blocks_covered) for m in modules
    ]
    assert all(not m.functions and m.block_data is None for m in shown)
    full = client.get_build_code_coverage(project.name, build_id, 7)[0].modules
    assert [[f.name for f in m.functions] for m in full] == [[f.name for f in m.functions] for m in modules]
    assert all(m.block_data for m in full)
    uncovered = next(b for b in org.builds.values() if b.project_id == project.id and b.id not in org.code_coverage)
    assert client.get_build_code_coverage(project.id, uncovered.id, 1) == []
