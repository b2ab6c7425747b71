"""The pipeline, pipeline-run, pipeline-stage, build, environment and pipeline-deployment fetchers, over
real HTTP against a generated organisation: what they read equals what the emulator holds, with the
reference's enrichment fields; paging is walked to the end; every failure raises."""

from __future__ import annotations

import pytest
from tests.emulator.conftest import LiveEmulator
from tests.ingest.fetch.conftest import read_kind, read_paged, rest_list, set_faults, unstamped

from kiosk.azure.errors import NotFound, ServerError
from kiosk.emulator.org.model import Organisation
from kiosk.ingest.fetch import pipelines


def project_ids(live: LiveEmulator) -> list[str]:
    return [p["id"] for p in rest_list(live, "_apis/projects")]


def generated_build_ids(org: Organisation) -> set[int]:
    return {b.id for b in org.builds.values() if b.project_id in org.projects}


# ---------------------------------------------------------------------------------------------- pipeline


def test_pipelines_are_every_project_s_list_with_their_project_id(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "pipeline")

    expected = {
        (project_id, p["id"]): p
        for project_id in project_ids(generated_org)
        for p in rest_list(generated_org, f"{project_id}/_apis/pipelines")
    }
    assert len(items) == len(expected) == len(generated_org.organisation().build_definitions) + 1  # + web's "hello"
    for item in items:
        assert unstamped(item) == expected[(item["__projectId"], item["id"])]
        assert "__repository" not in item


def test_include_repo_adds_the_build_definition_s_repository_and_project(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "pipeline", {"includeRepo": True})

    org = generated_org.organisation()
    assert len(items) == len(org.build_definitions) + 1
    for item in items:
        definition = generated_org.client.get(
            f"/fabrikam/{item['__projectId']}/_apis/build/definitions/{item['id']}"
        ).json()
        assert item["__repository"] == {**definition["repository"], "project": definition["project"]}
        assert item["__repository"]["project"]["id"] == item["__projectId"]
        project = org.projects[item["__projectId"]]
        if project.configured:
            assert item["name"] == "hello" and item["__repository"]["type"] == "TfsGit"
        else:
            assert item["__repository"]["id"] == org.build_definitions[item["id"]].repository_id


def test_pipelines_are_paged_to_the_end(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = read_kind(generated_org, "pipeline")
    paged = read_paged(generated_org, monkeypatch, pipelines, 1, "pipeline", {"includeRepo": True})
    assert sorted((i["__projectId"], i["id"]) for i in paged) == sorted((i["__projectId"], i["id"]) for i in whole)

    set_faults(generated_org, {"path": "*/_apis/pipelines", "failPage": {"page": 2, "status": 503, "times": "always"}})
    with pytest.raises(ServerError) as caught:  # one list at a time: the fault counts one listing's pages
        read_kind(generated_org, "pipeline", context={"concurrency": 1})
    assert "continuationToken=2" in caught.value.url


def test_a_missing_build_definition_raises_instead_of_dropping_the_repository(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "*/_apis/build/definitions/3", "notFound": True})
    with pytest.raises(NotFound) as caught:
        read_kind(generated_org, "pipeline", {"includeRepo": True})
    assert caught.value.status == 404 and "/build/definitions/3" in caught.value.url


# ---------------------------------------------------------------------------------------------- pipeline-run


def test_pipeline_runs_are_every_pipeline_s_runs_with_project_and_pipeline(
    generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = read_paged(generated_org, monkeypatch, pipelines, 1, "pipeline-run")  # the pipelines lists span pages

    org = generated_org.organisation()
    assert {i["id"] for i in items} == generated_build_ids(org) and len(items) == len(org.builds)
    projects = {p["id"]: p for p in rest_list(generated_org, "_apis/projects")}
    for item in items:
        build = org.builds[item["id"]]
        assert item["__project"] == projects[build.project_id]
        assert item["__pipeline"]["id"] == item["pipeline"]["id"] == build.definition_id
        assert item["__pipeline"]["name"] == org.build_definitions[build.definition_id].name
        runs = rest_list(generated_org, f"{build.project_id}/_apis/pipelines/{build.definition_id}/runs")
        assert unstamped(item) == next(r for r in runs if r["id"] == item["id"])


def test_a_failed_runs_list_raises(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "*/_apis/pipelines/2/runs", "errorRate": 1, "errorStatus": 500})
    with pytest.raises(ServerError) as caught:
        read_kind(generated_org, "pipeline-run")
    assert "/pipelines/2/runs" in caught.value.url


# ---------------------------------------------------------------------------------------------- build


def test_builds_are_newest_first_per_project_with_their_project(generated_org: LiveEmulator) -> None:
    items = read_kind(generated_org, "build")

    org = generated_org.organisation()
    assert {i["id"] for i in items} == generated_build_ids(org) and len(items) == len(org.builds)
    projects = {p["id"]: p for p in rest_list(generated_org, "_apis/projects")}
    for project_id in projects:
        mine = [i for i in items if i["__projectId"] == project_id]
        expected = rest_list(generated_org, f"{project_id}/_apis/build/builds", queryOrder="queueTimeDescending")
        assert [unstamped(i) for i in mine] == expected
        assert all(i["__project"] == projects[project_id] and "__firstCommit" not in i for i in mine)
        assert [i["id"] for i in mine] == sorted((i["id"] for i in mine), reverse=True)  # queue order: by id


def test_builds_are_paged_to_the_end(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    items = read_paged(generated_org, monkeypatch, pipelines, 2, "build")
    assert sorted(i["id"] for i in items) == sorted(generated_build_ids(generated_org.organisation()))

    set_faults(
        generated_org, {"path": "*/_apis/build/builds", "failPage": {"page": 3, "status": 500, "times": "always"}}
    )
    with pytest.raises(ServerError) as caught:
        read_kind(generated_org, "build", context={"concurrency": 1})
    assert "continuationToken=6" in caught.value.url


def push(live: LiveEmulator, project_id: str, repository_id: str, n: int) -> None:
    body = {"branch": "main", "changes": [{"path": f"/notes/{n}.md", "content": f"note {n}\n"}], "comment": f"note {n}"}
    path = f"/_emulator/orgs/fabrikam/projects/{project_id}/repositories/{repository_id}/pushes"
    assert live.client.post(path, json=body).status_code == 201, body


def test_first_commit_is_the_earliest_change_or_else_the_source_commit(
    generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = generated_org.organisation()
    definition = next(iter(org.build_definitions.values()))
    for n in range(3):  # three commits, then a build that ships them all
        push(generated_org, definition.project_id, definition.repository_id, n)
    answer = generated_org.client.post(
        f"/_emulator/orgs/fabrikam/projects/{definition.project_id}/builds", json={"definitionId": definition.id}
    )
    assert answer.status_code == 201
    shipped = answer.json()["value"]["id"]
    monkeypatch.setattr(pipelines, "PAGE_SIZE", 1)  # every changes list spans as many pages as it has changes

    items = read_kind(generated_org, "build", {"enrichWithFirstCommit": True})

    assert {i["id"] for i in items} == generated_build_ids(org)
    by_changes = 0
    for item in items:
        base = f"{item['__projectId']}/_apis/build/builds/{item['id']}"
        changes = rest_list(generated_org, f"{base}/changes")
        first = item["__firstCommit"]
        if changes:
            earliest = min(changes, key=lambda c: c["timestamp"])
            assert first == {
                **earliest,
                "__sha": earliest["id"],
                "__timestamp": earliest["timestamp"],
                "__commitCount": len(changes),
            }
            by_changes += 1
        else:  # no change of its own: the commit it was built from
            commit = generated_org.client.get(
                f"/fabrikam/{item['__projectId']}/_apis/git/repositories/{item['repository']['id']}/commits/{item['sourceVersion']}"
            ).json()
            assert first == {
                **commit,
                "__sha": item["sourceVersion"],
                "__timestamp": commit["committer"]["date"],
                "__commitCount": 1,
            }
    assert 0 < by_changes < len(items)
    newest = next(i for i in items if i["id"] == shipped)
    assert newest["__firstCommit"]["__commitCount"] == 3 and newest["__firstCommit"]["message"] == "note 0"


def test_a_failed_first_commit_read_raises(generated_org: LiveEmulator) -> None:
    set_faults(generated_org, {"path": "*/_apis/build/builds/*/changes", "errorRate": 1, "errorStatus": 500})
    with pytest.raises(ServerError):
        read_kind(generated_org, "build", {"enrichWithFirstCommit": True})
    assert len(read_kind(generated_org, "build")) == len(generated_org.organisation().builds)  # not asked: not read

    set_faults(generated_org, {"path": "*/_apis/git/repositories/*/commits/*", "notFound": True})
    with pytest.raises(NotFound) as caught:
        read_kind(generated_org, "build", {"enrichWithFirstCommit": True})
    assert "/commits/" in caught.value.url and "api-version=7.1" in caught.value.url


# ---------------------------------------------------------------------------------------------- pipeline-stage


def test_pipeline_stages_are_each_build_s_stage_records(
    generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = read_paged(generated_org, monkeypatch, pipelines, 2, "pipeline-stage")

    org = generated_org.organisation()
    stages = {(b.id, s.id) for b in org.builds.values() for s in b.timeline if s.type == "Stage"}
    assert {(i["__build"]["id"], i["id"]) for i in items} == stages and len(items) == len(stages)
    projects = {p["id"]: p for p in rest_list(generated_org, "_apis/projects")}
    for item in items:
        build = org.builds[item["__build"]["id"]]
        assert item["__project"] == projects[build.project_id] and item["__build"]["__projectId"] == build.project_id
        timeline = generated_org.client.get(
            f"/fabrikam/{build.project_id}/_apis/build/builds/{build.id}/timeline"
        ).json()
        assert unstamped(item) == next(r for r in timeline["records"] if r["id"] == item["id"])
        assert item["type"] == "Stage"


def test_a_missing_timeline_raises_instead_of_dropping_the_stages(generated_org: LiveEmulator) -> None:
    build = next(iter(generated_org.organisation().builds.values()))
    set_faults(generated_org, {"path": f"*/_apis/build/builds/{build.id}/timeline", "notFound": True})
    with pytest.raises(NotFound) as caught:
        read_kind(generated_org, "pipeline-stage")
    assert f"/builds/{build.id}/timeline" in caught.value.url


# ---------------------------------------------------------------------------------------------- environment


def test_environments_are_every_project_s_list(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    items = read_paged(generated_org, monkeypatch, pipelines, 1, "environment")

    org = generated_org.organisation()
    assert sorted(i["id"] for i in items) == sorted(org.environments) and len(org.environments) == 6
    for project_id in project_ids(generated_org):
        expected = rest_list(generated_org, f"{project_id}/_apis/distributedtask/environments")
        assert [unstamped(i) for i in items if i["project"]["id"] == project_id] == expected


# ---------------------------------------------------------------------------------------------- pipeline-deployment


def test_pipeline_deployments_are_every_environment_s_records(
    generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = read_paged(generated_org, monkeypatch, pipelines, 3, "pipeline-deployment")

    org = generated_org.organisation()
    records = {r.id: env for env in org.environments.values() for r in env.deployments}
    assert sorted(i["id"] for i in items) == sorted(records) and len(records) > 3 * len(org.environments)
    for item in items:
        environment = records[item["id"]]
        assert item["environmentId"] == environment.id
        assert item["__project"] == {"id": environment.project_id, "name": org.projects[environment.project_id].name}
        listed = rest_list(
            generated_org,
            f"{environment.project_id}/_apis/distributedtask/environments/{environment.id}/environmentdeploymentrecords",
        )
        assert unstamped(item) == next(r for r in listed if r["id"] == item["id"])


def test_a_failed_deployment_records_page_raises(generated_org: LiveEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipelines, "PAGE_SIZE", 2)
    set_faults(
        generated_org,
        {"path": "*/environmentdeploymentrecords", "failPage": {"page": 1, "status": 503, "times": "always"}},
    )
    with pytest.raises(ServerError) as caught:
        read_kind(generated_org, "pipeline-deployment", context={"concurrency": 1})
    assert caught.value.status == 503 and "continuationToken=2" in caught.value.url
