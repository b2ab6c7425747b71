"""Microsoft's client, unmodified, over Build (reference 3.5): definitions, builds (generated and runs), timelines."""

from __future__ import annotations

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator
from tests.support.azure_sdk import connect, with_generated_org

from kiosk.emulator.org.model import Organisation


@pytest.fixture
def generated(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=with_generated_org(CONFIG), execute=False)


def organisation(emulator: LiveEmulator) -> Organisation:
    return emulator.server.emulator.organisation("fabrikam")


def test_definitions_builds_and_timelines_of_a_generated_project(generated: LiveEmulator) -> None:
    org = organisation(generated)
    build = connect(generated.base_url, "fabrikam", PAT).get_client("azure.devops.v7_1.build.BuildClient")
    project = next(
        p for p in org.projects.values() if any(d.project_id == p.id for d in org.build_definitions.values())
    )
    definitions = build.get_definitions(project.name)
    expected = [d for d in org.build_definitions.values() if d.project_id == project.id]
    assert [(d.id, d.name, d.path) for d in definitions] == [(d.id, d.name, d.path) for d in expected]
    assert all(d.project.id == project.id and d.authored_by is not None for d in definitions)
    full = build.get_definition(project.id, expected[0].id)
    assert full.repository.id == expected[0].repository_id and full.process["yamlFilename"] == expected[0].yaml_filename
    builds = build.get_builds(project.id)
    mine = sorted((b for b in org.builds.values() if b.project_id == project.id), key=lambda b: b.id, reverse=True)
    assert [b.id for b in builds] == [b.id for b in mine]
    for shown in builds:
        model = org.builds[shown.id]
        assert (shown.build_number, shown.status, shown.result) == (model.build_number, model.status, model.result)
        assert shown.definition.id == model.definition_id and shown.source_branch == model.source_branch
        assert shown.requested_for.id == model.requested_for and shown.queue_time is not None
        assert shown.uri == f"vstfs:///Build/Build/{model.id}"
    finished = next(b for b in mine if b.result is not None)
    assert build.get_build(project.id, finished.id).finish_time is not None
    timeline = build.get_build_timeline(project.id, finished.id)
    assert [(r.type, r.name) for r in timeline.records] == [(s.type, s.name) for s in finished.timeline]
    assert [b.id for b in build.get_builds(project.id, definitions=[expected[0].id])] == [
        b.id for b in mine if b.definition_id == expected[0].id
    ]
    assert [b.id for b in build.get_builds(project.id, result_filter="succeeded")] == [
        b.id for b in mine if b.result == "succeeded"
    ]
    paged = generated.client.get(f"/fabrikam/{project.id}/_apis/build/builds", params={"$top": 1})
    assert paged.json()["count"] == 1 and (len(mine) == 1 or paged.headers["x-ms-continuationtoken"] == "1")
    with pytest.raises(AzureDevOpsServiceError):
        build.get_build(project.id, 999_999)


def test_a_configured_projects_runs_are_its_builds(generated: LiveEmulator) -> None:
    connection = connect(generated.base_url, "fabrikam", PAT)
    run = connection.get_client("azure.devops.v7_1.pipelines.PipelinesClient").run_pipeline({}, "web", 1)
    build = connection.get_client("azure.devops.v7_1.build.BuildClient")
    (listed,) = build.get_builds("web")
    assert listed.id == run.id and listed.definition.name == "hello"
    assert build.get_build("web", run.id).build_number == run.name
