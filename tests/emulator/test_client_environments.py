"""Microsoft's client, unmodified, over environments (reference 3.6): environments and deployment records."""

from __future__ import annotations

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from tests.emulator.conftest import LiveEmulator

from kiosk.emulator.org.model import Environment, Organisation, Project


def deployed(org: Organisation) -> tuple[Project, list[Environment]]:
    """A project whose environments have deployment records, and its environments."""
    for project in org.projects.values():
        environments = [e for e in org.environments.values() if e.project_id == project.id]
        if environments and all(len(e.deployments) > 2 for e in environments):
            return project, environments
    raise AssertionError("the generated org has a project with deployments")


def test_environments_filtered_by_name_and_paged(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.task_agent.TaskAgentClient")
    project, environments = deployed(org)
    listed = client.get_environments(project.name)
    assert [(e.id, e.name, e.description) for e in listed] == [(e.id, e.name, e.description) for e in environments]
    creator = org.users[environments[0].created_by]
    assert (listed[0].created_by.id, listed[0].created_by.display_name) == (creator.id, creator.display_name)
    assert listed[0].created_on == environments[0].created_on
    assert listed[0].last_modified_on == environments[0].last_modified_on
    assert (listed[0].project.id, listed[0].project.name) == (project.id, project.name)

    assert [e.name for e in client.get_environments(project.id, name="STAGING")] == ["staging"]
    assert [e.name for e in client.get_environments(project.id, name="*o*")] == ["production"]
    assert client.get_environments(project.id, name="stag") == []

    path = f"/fabrikam/{project.id}/_apis/distributedtask/environments"
    tokens = generated.page_tokens(path, 2)
    assert len(tokens) == 2
    pages = [client.get_environments(project.id, top=2, continuation_token=token) for token in tokens]
    assert [e.id for page in pages for e in page] == [e.id for e in environments]

    one = client.get_environment_by_id(project.name, environments[1].id)
    assert (one.id, one.name, one.resources) == (environments[1].id, environments[1].name, None)
    expanded = client.get_environment_by_id(project.name, environments[1].id, expands="resourceReferences")
    assert expanded.resources == []
    with pytest.raises(AzureDevOpsServiceError) as missing:
        client.get_environment_by_id(project.name, 999_999)
    assert missing.value.type_key == "EnvironmentNotFoundException"


def test_deployment_records_newest_first_paged_by_top_or_dollar_top(generated: LiveEmulator) -> None:
    org = generated.organisation()
    client = generated.sdk_client("azure.devops.v7_1.task_agent.TaskAgentClient")
    project, environments = deployed(org)
    environment = environments[0]
    newest_first = sorted(environment.deployments, key=lambda r: r.id, reverse=True)
    records = client.get_environment_deployment_execution_records(project.name, environment.id)
    assert [r.id for r in records] == [r.id for r in newest_first]
    record, model = records[0], newest_first[0]
    build = org.builds[model.owner_id]
    assert (record.environment_id, record.plan_type, record.scope_id) == (environment.id, "Build", project.id)
    assert (record.stage_name, record.job_name, record.result) == (model.stage_name, model.job_name, model.result)
    assert (record.owner.id, record.owner.name) == (build.id, build.build_number)
    assert (record.definition.id, record.definition.name) == (build.definition_id, model.definition_name)
    assert record.owner._links.additional_properties["self"]["href"].endswith(f"/_apis/build/Builds/{build.id}")
    assert (record.queue_time, record.start_time, record.finish_time) == (
        model.queue_time,
        model.start_time,
        model.finish_time,
    )

    path = f"/fabrikam/{project.id}/_apis/distributedtask/environments/{environment.id}/environmentdeploymentrecords"
    for parameter in ("top", "$top"):
        tokens = generated.page_tokens(path, 2, parameter)
        assert len(tokens) == (len(newest_first) + 1) // 2
    tokens = generated.page_tokens(path, 2, "top")
    pages = [
        client.get_environment_deployment_execution_records(project.name, environment.id, top=2, continuation_token=t)
        for t in tokens
    ]
    assert [r.id for page in pages for r in page] == [r.id for r in newest_first]
    both = generated.client.get(path, params={"top": 1, "$top": 3})
    assert both.json()["count"] == 1  # ``top`` wins
