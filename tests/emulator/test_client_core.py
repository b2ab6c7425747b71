"""Microsoft's client, unmodified, over Core (reference 3.1): projects (paged), a project, teams, team members."""

from __future__ import annotations

import pytest
from tests.emulator.conftest import LiveEmulator


def test_projects_as_azure_lists_them(generated: LiveEmulator) -> None:
    org = generated.organisation()
    core = generated.sdk_client("azure.devops.v7_1.core.CoreClient")
    projects = core.get_projects()
    assert [p.id for p in projects] == list(org.projects)  # the configured "web" among them
    assert "web" in [p.name for p in projects]
    for reference in projects:
        model = org.projects[reference.id]
        assert (reference.name, reference.state, reference.visibility) == (model.name, model.state, model.visibility)
        assert reference.revision == model.revision and reference.last_update_time is not None
        assert reference.url == f"{generated.base_url}/fabrikam/_apis/projects/{model.id}"
    # Paging: $top with the continuation token in x-ms-continuationtoken (the client returns one page).
    first = generated.client.get("/fabrikam/_apis/projects", params={"$top": 2})
    assert first.json()["count"] == 2 and first.headers["x-ms-continuationtoken"] == "2"
    rest = generated.client.get("/fabrikam/_apis/projects", params={"$top": 2, "continuationToken": "2"})
    seen = [p["id"] for p in first.json()["value"] + rest.json()["value"]]
    assert seen == list(org.projects)[: len(seen)] and (
        len(seen) == len(org.projects) or "x-ms-continuationtoken" in rest.headers
    )
    assert len(core.get_projects(top=1)) == 1


def test_a_project_its_teams_and_members(generated: LiveEmulator) -> None:
    org = generated.organisation()
    core = generated.sdk_client("azure.devops.v7_1.core.CoreClient")
    model = next(p for p in org.projects.values() if not p.configured)
    by_name = core.get_project(model.name)
    by_id = core.get_project(model.id, include_capabilities=True)
    assert by_name.id == by_id.id == model.id
    assert by_id.capabilities["versioncontrol"]["sourceControlType"] == "Git"
    assert by_id.capabilities["processTemplate"]["templateName"] == model.process_template
    default_team = org.teams[model.default_team_id or ""]
    assert (by_id.default_team.id, by_id.default_team.name) == (default_team.id, default_team.name)
    raw = generated.client.get(f"/fabrikam/_apis/projects/{model.id}").json()  # (the client drops _links' keys)
    assert raw["_links"]["self"]["href"] == by_id.url
    teams = core.get_teams(model.id)
    assert {t.id for t in teams} == {t.id for t in org.project_teams(model.id)}
    for team in teams:
        assert team.project_id == model.id and team.project_name == model.name
        assert team.url.endswith(f"/_apis/projects/{model.id}/teams/{team.id}")
    assert core.get_team(model.id, default_team.name).id == default_team.id
    members = core.get_team_members_with_extended_properties(model.id, default_team.id)
    assert [m.identity.id for m in members] == default_team.member_ids
    for member in members:
        user = org.users[member.identity.id]
        assert member.identity.display_name == user.display_name
        assert member.identity.unique_name == user.principal_name and member.identity.descriptor == user.descriptor
        assert bool(member.is_team_admin) is (user.id in default_team.admin_ids)
    assert len(core.get_team_members_with_extended_properties(model.id, default_team.id, top=1)) == 1


def test_unknown_projects_and_teams_are_azures_404(generated: LiveEmulator) -> None:
    from azure.devops.exceptions import AzureDevOpsServiceError

    core = generated.sdk_client("azure.devops.v7_1.core.CoreClient")
    with pytest.raises(AzureDevOpsServiceError, match="TF200016") as missing:
        core.get_project("No Such Project")
    assert missing.value.type_key == "ProjectDoesNotExistWithNameException"
    with pytest.raises(AzureDevOpsServiceError):
        core.get_team("web", "No Such Team")


def test_project_properties_with_wildcards(generated: LiveEmulator) -> None:
    org = generated.organisation()
    core = generated.sdk_client("azure.devops.v7_1.core.CoreClient")
    model = next(p for p in org.projects.values() if any(".Tag." in k for k in p.properties))
    everything = {p.name: p.value for p in core.get_project_properties(model.id)}
    assert everything["System.Process Template"] == model.process_template
    assert everything["System.Microsoft.TeamFoundation.Team.Default"] == model.default_team_id
    assert everything["System.SourceControlGitEnabled"] == "True"
    tags = core.get_project_properties(model.id, keys=["Microsoft.TeamFoundation.Project.Tag.*"])
    assert {p.name for p in tags} == {
        k for k in model.properties if k.startswith("Microsoft.TeamFoundation.Project.Tag.")
    }
    assert all(p.value == "true" for p in tags)
    two = core.get_project_properties(model.id, keys=["system.process template", "System.*TemplateId"])
    assert {p.name for p in two} == {
        "System.Process Template",
        "System.CurrentProcessTemplateId",
        "System.OriginalProcessTemplateId",
    }


def test_every_team_of_the_organisation(generated: LiveEmulator) -> None:
    org = generated.organisation()
    core = generated.sdk_client("azure.devops.v7_1.core.CoreClient")
    teams = core.get_all_teams()
    assert [t.id for t in teams] == list(org.teams)
    for team in teams:
        model = org.teams[team.id]
        assert (team.name, team.project_id, team.project_name) == (
            model.name,
            model.project_id,
            org.projects[model.project_id].name,
        )
    paged: list[str] = []
    while True:  # $top/$skip, no token: a client stops on a short page
        page = core.get_all_teams(top=2, skip=len(paged))
        paged += [t.id for t in page]
        if len(page) < 2:
            break
    assert paged == list(org.teams)
    caller = next(iter(org.users))  # a PAT names no user: the caller is the org's first user (as WIQL's @Me)
    mine = [t.id for t in core.get_all_teams(mine=True)]
    assert mine and mine == [t.id for t in org.teams.values() if caller in t.member_ids] and len(mine) < len(org.teams)
