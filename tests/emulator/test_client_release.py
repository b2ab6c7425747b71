"""Microsoft's client, unmodified, over classic releases (reference 3.7): definitions, releases, deployments.

Served on the org's host (Azure's ``vsrm`` host), found through route discovery like every area.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from tests.emulator.conftest import LiveEmulator, project_with_most

pytestmark = pytest.mark.generated_org(repos=12)


def test_release_definitions_filters_order_expand_and_paging(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.release.ReleaseClient")
    project = project_with_most(org, org.releases.values())
    mine = [d for d in org.release_definitions.values() if d.project_id == project.id]
    live = [d for d in mine if not d.is_deleted]
    main = next(d for d in live if d.path == "\\")
    hotfix = next(d for d in live if d.path == "\\Hotfix")

    listed = client.get_release_definitions(project.name)
    assert [(d.id, d.name, d.path, d.revision) for d in listed] == [(d.id, d.name, d.path, d.revision) for d in live]
    assert listed[0].created_by.id == main.created_by and listed[0].modified_on == main.modified_on
    assert listed[0].project_reference.id == project.id and listed[0].environments is None
    assert listed[0].release_name_format == "Release-$(rev:r)" and listed[0].is_deleted is False
    deleted = client.get_release_definitions(project.id, is_deleted=True)
    assert [d.id for d in deleted] == [d.id for d in mine if d.is_deleted] and deleted[0].is_deleted
    assert [d.id for d in client.get_release_definitions(project.id, search_text="HOTFIX")] == [hotfix.id]
    assert client.get_release_definitions(project.id, search_text="hotfix", is_exact_name_match=True) == []
    exact = client.get_release_definitions(project.id, search_text=main.name.upper(), is_exact_name_match=True)
    assert [d.id for d in exact] == [main.id]
    assert [d.id for d in client.get_release_definitions(project.id, path="\\hotfix")] == [hotfix.id]
    by_name = client.get_release_definitions(project.id, query_order="nameDescending")
    assert [d.name for d in by_name] == sorted((d.name for d in live), key=str.casefold, reverse=True)
    assert [d.id for d in client.get_release_definitions(project.id, query_order="idDescending")] == [
        d.id for d in reversed(live)
    ]

    expanded = client.get_release_definitions(project.id, expand="environments,lastRelease")
    first = next(d for d in expanded if d.id == main.id)
    assert [(e.id, e.name, e.rank) for e in first.environments] == [(e.id, e.name, e.rank) for e in main.environments]
    last = max((r for r in org.releases.values() if r.definition_id == main.id), key=lambda r: r.id)
    assert first.last_release.id == last.id and first.last_release.name == last.name

    path = f"/fabrikam/{project.id}/_apis/release/definitions"
    tokens = generated.page_tokens(path, 1)
    assert len(tokens) == len(live)
    pages = [client.get_release_definitions(project.id, top=1, continuation_token=t) for t in tokens]
    assert [d.id for page in pages for d in page] == [d.id for d in live]

    full = client.get_release_definition(project.name, main.id)
    releases_of_main = sorted((r for r in org.releases.values() if r.definition_id == main.id), key=lambda r: r.id)
    first_stage = main.environments[0]
    assert [e.name for e in full.environments] == [e.name for e in main.environments]
    assert full.environments[0].pre_deploy_approvals.approvals[0].is_automated is True
    assert full.environments[0].current_release.id == max(
        r.id for r in releases_of_main if any(e.definition_environment_id == first_stage.id for e in r.environments)
    )
    (artifact,) = full.artifacts
    first_build = org.builds[releases_of_main[0].build_id or 0]
    assert (artifact.type, artifact.source_id, artifact.alias, artifact.is_primary) == (
        "Build",
        f"{project.id}:{first_build.definition_id}",
        f"_{org.build_definitions[first_build.definition_id].name}",
        True,
    )
    assert full.url.endswith(f"/{project.id}/_apis/Release/definitions/{main.id}")
    with pytest.raises(AzureDevOpsServiceError) as missing:
        client.get_release_definition(project.name, 999_999)
    assert missing.value.type_key == "ReleaseDefinitionNotFoundException"
    refused = generated.client.get(path, params={"queryOrder": "sideways"})
    assert refused.status_code == 400 and refused.json()["typeKey"] == "ArgumentException"


def test_releases_newest_first_with_filters_and_paging(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.release.ReleaseClient")
    project = project_with_most(org, org.releases.values())
    mine = sorted((r for r in org.releases.values() if r.project_id == project.id), key=lambda r: (r.created_on, r.id))
    assert len(mine) >= 3

    listed = client.get_releases(project.name)
    assert [r.id for r in listed] == [r.id for r in reversed(mine)]
    newest = listed[0]
    model = mine[-1]
    assert (newest.name, newest.status, newest.reason, newest.created_on) == (
        model.name,
        model.status,
        model.reason,
        model.created_on,
    )
    assert newest.release_definition.id == model.definition_id and newest.project_reference.id == project.id
    assert newest.created_by.id == model.created_by and newest.environments is None
    assert [r.id for r in client.get_releases(project.id, query_order="ascending")] == [r.id for r in mine]
    assert [r.id for r in client.get_releases(project.id, status_filter="abandoned")] == [
        r.id for r in reversed(mine) if r.status == "abandoned"
    ]
    assert [r.id for r in client.get_releases(project.id, status_filter="Active")] == [
        r.id for r in reversed(mine) if r.status == "active"
    ]
    since = mine[1].created_on
    assert [r.id for r in client.get_releases(project.id, min_created_time=since)] == [
        r.id for r in reversed(mine) if r.created_on >= since
    ]
    before = mine[1].created_on + timedelta(seconds=1)
    assert [r.id for r in client.get_releases(project.id, max_created_time=before)] == [
        r.id for r in reversed(mine) if r.created_on <= before
    ]
    assert [r.id for r in client.get_releases(project.id, definition_id=model.definition_id)] == [
        r.id for r in reversed(mine) if r.definition_id == model.definition_id
    ]
    assert client.get_releases(project.id, definition_id=999_999) == []
    assert [r.id for r in client.get_releases(project.id, release_id_filter=[mine[0].id])] == [mine[0].id]
    stage = mine[0].environments[-1].definition_environment_id
    assert {r.id for r in client.get_releases(project.id, definition_environment_id=stage)} == {r.id for r in mine}
    with_stages = client.get_releases(project.id, expand="environments", top=1)
    assert [e.name for e in with_stages[0].environments] == [e.name for e in model.environments]

    path = f"/fabrikam/{project.id}/_apis/release/releases"
    tokens = generated.page_tokens(path, 2)
    assert len(tokens) == (len(mine) + 1) // 2
    pages = [client.get_releases(project.id, top=2, continuation_token=int(t) if t else None) for t in tokens]
    assert [r.id for page in pages for r in page] == [r.id for r in reversed(mine)]

    one = client.get_release(project.name, model.id)
    assert [(e.id, e.name, e.status, e.definition_environment_id) for e in one.environments] == [
        (e.id, e.name, e.status, e.definition_environment_id) for e in model.environments
    ]
    deployments = [d for d in org.deployments.values() if d.release_id == model.id]
    assert [s.deployment_id for e in one.environments for s in e.deploy_steps] == [d.id for d in deployments]
    build = org.builds[model.build_id or 0]
    (artifact,) = one.artifacts
    assert artifact.definition_reference["version"].id == str(build.id)
    assert artifact.definition_reference["version"].name == build.build_number
    with pytest.raises(AzureDevOpsServiceError) as missing:
        client.get_release(project.name, 999_999)
    assert missing.value.type_key == "ReleaseNotFoundException"


def test_deployments_filters_release_id_and_paging(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.release.ReleaseClient")
    project = project_with_most(org, org.releases.values())
    mine = sorted((d for d in org.deployments.values() if d.project_id == project.id), key=lambda d: d.id)
    rejected = [d for d in mine if d.operation_status == "Rejected"]
    assert rejected and all(d.deployment_status == "notDeployed" for d in rejected)

    listed = client.get_deployments(project.name)
    assert [d.id for d in listed] == [d.id for d in reversed(mine)]
    shown, model = listed[-1], mine[0]
    release = org.releases[model.release_id]
    stage = next(e for e in release.environments if e.id == model.release_environment_id)
    assert (shown.release.id, shown.release.name) == (release.id, release.name)
    assert (shown.release_environment.id, shown.release_environment.name) == (stage.id, stage.name)
    assert shown.release_definition.id == model.release_definition_id
    assert shown.definition_environment_id == model.definition_environment_id and shown.attempt == 1
    assert (shown.deployment_status, shown.operation_status) == (model.deployment_status, model.operation_status)
    assert shown.requested_for.id == model.requested_for and shown.completed_on == model.completed_on
    assert shown.project_reference.id == project.id

    assert [d.id for d in client.get_deployments(project.id, query_order="ascending")] == [d.id for d in mine]
    only = client.get_deployments(project.id, deployment_status="notDeployed")
    assert [d.id for d in only] == [d.id for d in reversed(rejected)]
    assert [d.id for d in client.get_deployments(project.id, operation_status="rejected")] == [
        d.id for d in reversed(rejected)
    ]
    assert len(client.get_deployments(project.id, deployment_status="all")) == len(mine)
    stage_id = model.definition_environment_id
    assert [d.id for d in client.get_deployments(project.id, definition_environment_id=stage_id)] == [
        d.id for d in reversed(mine) if d.definition_environment_id == stage_id
    ]
    assert len(client.get_deployments(project.id, latest_attempts_only=True)) == len(mine)
    since = mine[-1].last_modified_on
    assert [d.id for d in client.get_deployments(project.id, min_modified_time=since)] == [
        d.id for d in reversed(mine) if d.last_modified_on >= since
    ]

    # ``releaseId`` is not a parameter of Microsoft's client; Ocean-style ingesters send it.
    path = f"/fabrikam/{project.id}/_apis/release/deployments"
    by_release = generated.client.get(
        path,
        params={"releaseId": release.id, "definitionEnvironmentId": stage.definition_environment_id,
                "deploymentStatus": "all", "$top": 1},
    )  # fmt: skip
    assert [d["id"] for d in by_release.json()["value"]] == [model.id]
    assert "x-ms-continuationtoken" not in by_release.headers

    tokens = generated.page_tokens(path, 2)
    assert len(tokens) == (len(mine) + 1) // 2
    pages = [client.get_deployments(project.id, top=2, continuation_token=int(t) if t else None) for t in tokens]
    assert [d.id for page in pages for d in page] == [d.id for d in reversed(mine)]
    for bad in ({"deploymentStatus": "exploded"}, {"minModifiedTime": "0.5"}, {"minStartedTime": "2024-01-02"}):
        refused = generated.client.get(path, params=bad)
        assert refused.status_code == 400 and refused.json()["typeKey"] == "ArgumentException", bad
    mixed_case = generated.client.get(
        path, params={"deploymentStatus": "NotDeployed, FAILED", "queryOrder": "Ascending"}
    )
    assert [d["id"] for d in mixed_case.json()["value"]] == [d.id for d in rejected]
