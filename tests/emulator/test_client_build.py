"""Microsoft's client, unmodified, over Build (reference 3.5): definitions, builds (generated and runs), timelines."""

from __future__ import annotations

from typing import Any

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from tests.emulator.conftest import PAT, LiveEmulator
from tests.support.azure_sdk import connect


def run_hello(emulator: LiveEmulator) -> tuple[Any, Any]:
    """A run of the configured pipeline ``hello`` (project ``web``) through Microsoft's Pipelines client, and a
    Build client of the same connection."""
    connection = connect(emulator.base_url, "fabrikam", PAT)
    run = connection.get_client("azure.devops.v7_1.pipelines.PipelinesClient").run_pipeline({}, "web", 1)
    return run, connection.get_client("azure.devops.v7_1.build.BuildClient")


def test_definitions_builds_and_timelines_of_a_generated_project(generated: LiveEmulator) -> None:
    org = generated.organisation()
    build = generated.sdk_client("azure.devops.v7_1.build.BuildClient")
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
    run, build = run_hello(generated)
    (listed,) = build.get_builds("web")
    assert listed.id == run.id and listed.definition.name == "hello"
    assert build.get_build("web", run.id).build_number == run.name


def test_a_builds_changes_and_work_items(generated: LiveEmulator) -> None:
    from kiosk.emulator.org.model import WorkItemRelation

    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.build.BuildClient")
    first = min(org.builds.values(), key=lambda b: b.id)  # its definition's first build: its source commit
    repo = org.repositories[first.repository_id]
    commit = repo.commits[first.source_version]
    (change,) = client.get_build_changes(first.project_id, first.id)
    assert (change.id, change.type, change.message) == (commit.commit_id, "TfsGit", commit.comment[:200])
    assert change.author.display_name and change.timestamp == commit.author_date
    repo_url = f"{generated.base_url}/fabrikam/{repo.project_id}/_apis/git/repositories/{repo.id}"
    assert change.location == f"{repo_url}/commits/{commit.commit_id}"
    later = [b for b in org.builds.values() if b.definition_id == first.definition_id and b.id > first.id]
    if later and later[0].source_version == first.source_version:
        assert client.get_build_changes(first.project_id, later[0].id) == []  # nothing new since the last build
    assert client.get_build_work_items_refs(first.project_id, first.id) == []
    by_build, by_commit = list(org.work_items.values())[:2]
    by_build.relations.append(WorkItemRelation("ArtifactLink", f"vstfs:///Build/Build/{first.id}", "Build"))
    commit_uri = f"vstfs:///Git/Commit/{repo.project_id}%2F{repo.id}%2F{commit.commit_id}"
    by_commit.relations.append(WorkItemRelation("ArtifactLink", commit_uri, "Fixed in Commit"))
    refs = client.get_build_work_items_refs(first.project_id, first.id)
    assert sorted(int(r.id) for r in refs) == sorted([by_build.id, by_commit.id])
    assert len(client.get_build_work_items_refs(first.project_id, first.id, top=1)) == 1
    paged = generated.client.get(
        f"/fabrikam/{first.project_id}/_apis/build/builds/{first.id}/changes", params={"$top": 0}
    )
    assert paged.status_code == 200
    with pytest.raises(AzureDevOpsServiceError):
        client.get_build_changes(first.project_id, 999_999)


def test_a_configured_runs_changes_are_empty(generated: LiveEmulator) -> None:
    run, build = run_hello(generated)
    assert build.get_build_changes("web", run.id) == []
    assert build.get_build_work_items_refs("web", run.id) == []
    with pytest.raises(AzureDevOpsServiceError):
        build.get_build_changes("web", run.id + 100)


def test_builds_and_definitions_filters_and_orders(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.build.BuildClient")
    project = max(org.projects.values(), key=lambda p: sum(b.project_id == p.id for b in org.builds.values()))
    mine = sorted((b for b in org.builds.values() if b.project_id == project.id), key=lambda b: b.id, reverse=True)
    some = mine[0]
    assert [b.id for b in client.get_builds(project.id, build_ids=[some.id])] == [some.id]
    prefix = some.build_number.split(".")[0]
    numbered = client.get_builds(project.id, build_number=prefix + "*")
    assert [b.id for b in numbered] == [b.id for b in mine if b.build_number.startswith(prefix)]
    assert [b.id for b in client.get_builds(project.id, reason_filter=some.reason)] == [
        b.id for b in mine if b.reason == some.reason
    ]
    oldest = client.get_builds(project.id, query_order="queueTimeAscending")
    assert [b.id for b in oldest] == [b.id for b in mine][::-1]
    one_each = client.get_builds(project.id, max_builds_per_definition=1)
    assert sorted(b.id for b in one_each) == sorted(
        max(b.id for b in mine if b.definition_id == d) for d in {b.definition_id for b in mine}
    )
    assert [
        b.id for b in client.get_builds(project.id, requested_for=org.users[some.requested_for].principal_name)
    ] == [b.id for b in mine if b.requested_for == some.requested_for]
    finished = [b for b in mine if b.finish_time is not None]
    middle = sorted(b.finish_time for b in finished if b.finish_time)[len(finished) // 2]
    late = client.get_builds(project.id, min_time=middle, query_order="finishTimeDescending")
    assert {b.id for b in late} == {b.id for b in finished if b.finish_time and b.finish_time >= middle}
    definitions = [d for d in org.build_definitions.values() if d.project_id == project.id]
    by_name = client.get_definitions(project.id, query_order="definitionNameDescending")
    assert [d.name.casefold() for d in by_name] == sorted((d.name.casefold() for d in definitions), reverse=True)
    chosen = [definitions[0].id, definitions[-1].id]
    assert {d.id for d in client.get_definitions(project.id, definition_ids=chosen)} == set(chosen)
    repo_id = definitions[0].repository_id
    assert {d.id for d in client.get_definitions(project.id, repository_id=repo_id, repository_type="TfsGit")} == {
        d.id for d in definitions if d.repository_id == repo_id
    }
    bad = generated.client.get(f"/fabrikam/{project.id}/_apis/build/builds", params={"queryOrder": "sideways"})
    assert bad.status_code == 400


def test_listed_builds_follow_changes_of_the_organisation(generated: LiveEmulator) -> None:
    """Builds' and repositories' JSON is kept between requests; a change (a repository renamed through the
    /_emulator mutation API) shows at once."""
    org = generated.organisation()
    build = next(b for b in org.builds.values() if b.repository_id in org.repositories)
    repo = org.repositories[build.repository_id]
    path = f"/fabrikam/{build.project_id}/_apis/build/builds"
    before = generated.client.get(path).json()["value"]
    assert generated.client.get(path).json()["value"] == before  # served again, unchanged
    renamed = generated.client.patch(
        f"/_emulator/orgs/fabrikam/projects/{build.project_id}/repositories/{repo.id}",
        json={"name": "renamed-repository"},
    )
    assert renamed.status_code == 200, renamed.text
    after = generated.client.get(path).json()["value"]
    assert [b["id"] for b in after] == [b["id"] for b in before]
    assert {b["repository"]["name"] for b in after if b["repository"]["id"] == repo.id} == {"renamed-repository"}
    repos = generated.client.get(f"/fabrikam/{build.project_id}/_apis/git/repositories").json()["value"]
    assert "renamed-repository" in {r["name"] for r in repos}


def test_a_generated_project_s_pipelines_are_its_definitions_and_their_runs_its_builds(generated: LiveEmulator) -> None:
    org = generated.organisation()
    project = next(
        p for p in org.projects.values() if any(d.project_id == p.id for d in org.build_definitions.values())
    )
    definitions = sorted((d for d in org.build_definitions.values() if d.project_id == project.id), key=lambda d: d.id)
    client = generated.sdk_client("azure.devops.v7_1.pipelines.PipelinesClient")

    pipelines = client.list_pipelines(project.name)
    assert [(p.id, p.name, p.folder) for p in pipelines] == [(d.id, d.name, d.path) for d in definitions]
    paged = [generated.client.get(f"/fabrikam/{project.id}/_apis/pipelines", params={"$top": 1})]
    while "x-ms-continuationtoken" in paged[-1].headers:
        token = paged[-1].headers["x-ms-continuationtoken"]
        paged.append(
            generated.client.get(
                f"/fabrikam/{project.id}/_apis/pipelines", params={"$top": 1, "continuationToken": token}
            )
        )
    assert [p.json()["value"][0]["id"] for p in paged] == [d.id for d in definitions]

    for definition in definitions:
        runs = client.list_runs(project.name, definition.id)
        builds = sorted((b for b in org.builds.values() if b.definition_id == definition.id), key=lambda b: -b.id)
        assert [(r.id, r.name, r.pipeline.id) for r in runs] == [(b.id, b.build_number, definition.id) for b in builds]
        assert all(
            r.state == ("completed" if b.status == "completed" else "inProgress")
            for r, b in zip(runs, builds, strict=True)
        )
        # The Runs API has no partiallySucceeded: such a build's run succeeded.
        run_results = {None: None, "partiallySucceeded": "succeeded"}
        assert [r.result for r in runs] == [run_results.get(b.result, b.result) for b in builds]
    assert client.get_pipeline(project.name, definitions[0].id).name == definitions[0].name
    with pytest.raises(AzureDevOpsServiceError):
        client.list_runs(project.name, 999_999)


def test_a_configured_pipeline_reads_as_a_build_definition_with_its_repository(generated: LiveEmulator) -> None:
    pipeline = generated.client.get("/fabrikam/web/_apis/pipelines").json()["value"][0]
    definition = generated.sdk_client("azure.devops.v7_1.build.BuildClient").get_definition("web", pipeline["id"])
    assert (definition.id, definition.name, definition.process["yamlFilename"]) == (
        pipeline["id"],
        "hello",
        "azure-pipelines.yml",
    )
    assert definition.repository.id == pipeline["configuration"]["repository"]["id"]
    assert definition.repository.type == "TfsGit" and definition.project.name == "web"
