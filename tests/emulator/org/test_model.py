"""The organisation model: Azure's ids, case-insensitive lookups, renames and deletions in the history."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest

from kiosk.emulator.org.model import (
    POLICY_MINIMUM_REVIEWERS,
    AccessLevel,
    ClassificationNode,
    GitRef,
    GitRepository,
    Group,
    Organisation,
    PolicyConfiguration,
    Project,
    RepoFile,
    Team,
    User,
    WikiPage,
    WorkItem,
    WorkItemRelation,
    blob_sha1,
)

AT = datetime(2026, 1, 5, tzinfo=UTC)


def _org() -> Organisation:
    return Organisation("Fabrikam", "5a1e8a8b-0000-4000-8000-000000000001", "http://127.0.0.1:8001/")


def _project(
    org: Organisation, name: str = "Données Clients", project_id: str = "0f8e5b7c-1111-4000-8000-000000000001"
) -> Project:
    return org.add_project(Project(project_id, name, "", "wellFormed", "private", 1, AT))


def _repo(org: Organisation, project: Project, name: str, repo_id: str) -> GitRepository:
    remote, ssh, web = org.repository_urls(project.name, name)
    return org.add_repository(
        GitRepository(repo_id, name, project.id, "refs/heads/main", 1, False, False, remote, ssh, web)
    )


def test_blob_ids_are_gits_object_ids() -> None:
    content = "héllo wörld\n".encode()
    expected = subprocess.run(["git", "hash-object", "--stdin"], input=content, capture_output=True, check=True)
    assert blob_sha1(content) == expected.stdout.decode().strip()
    assert RepoFile.of("/README.md", content).object_id == blob_sha1(content)


def test_projects_are_found_by_id_and_by_name_in_any_case() -> None:
    org = _org()
    project = _project(org)
    assert org.project("DONNÉES CLIENTS") is project
    assert org.project("données clients") is project
    assert org.project(project.id.upper()) is project
    assert org.project("Other") is None
    with pytest.raises(ValueError, match="exists already"):
        _project(org, "DONNÉES clients", "0f8e5b7c-1111-4000-8000-000000000002")


def test_repository_urls_are_built_from_the_base_url_and_follow_renames() -> None:
    org = _org()
    project = _project(org)
    repo = _repo(org, project, "Web Portal", "7d2c0000-0000-4000-8000-000000000001")
    assert repo.remote_url == "http://127.0.0.1:8001/Fabrikam/Donn%C3%A9es%20Clients/_git/Web%20Portal"
    assert repo.web_url == repo.remote_url
    assert repo.ssh_url == "git@127.0.0.1:v3/Fabrikam/Donn%C3%A9es%20Clients/Web%20Portal"
    assert org.repository("web portal", project.id) is repo
    assert org.repository(repo.id) is repo
    assert org.repository(repo.id, "another-project") is None
    before = org.changes
    org.rename_repository(repo, "Portal", AT)
    assert org.changes == before + 1
    assert repo.remote_url.endswith("/_git/Portal")
    assert org.repository("web portal", project.id) is None
    assert org.repository("PORTAL", project.id) is repo
    entry = org.history[-1]
    assert (entry.kind, entry.action, entry.object_id, entry.old_name, entry.new_name) == (
        "repository",
        "renamed",
        repo.id,
        "Web Portal",
        "Portal",
    )


def test_renaming_onto_a_taken_name_is_refused_and_a_project_rename_moves_its_repos_urls() -> None:
    org = _org()
    project = _project(org)
    first = _repo(org, project, "api", "7d2c0000-0000-4000-8000-000000000001")
    _repo(org, project, "web", "7d2c0000-0000-4000-8000-000000000002")
    with pytest.raises(ValueError, match="exists already"):
        org.rename_repository(first, "WEB", AT)
    org.rename_project(project, "Clients", AT)
    assert org.project("clients") is project and org.project("Données Clients") is None
    assert first.remote_url == "http://127.0.0.1:8001/Fabrikam/Clients/_git/api"
    assert project.revision == 2


def test_deleted_things_leave_the_lookups_and_stay_in_the_history() -> None:
    org = _org()
    project = _project(org)
    repo = _repo(org, project, "api", "7d2c0000-0000-4000-8000-000000000001")
    org.delete_repository(repo, AT)
    assert org.repository(repo.id) is None and org.repository("api", project.id) is None
    org.delete_project(project, AT)
    assert org.project(project.name) is None
    assert [(e.kind, e.action) for e in org.history] == [("repository", "deleted"), ("project", "deleted")]
    assert [e.change for e in org.history] == sorted(e.change for e in org.history)


def test_integer_ids_increase_per_kind() -> None:
    org = _org()
    assert [org.next_id("workItem") for _ in range(3)] == [1, 2, 3]
    assert org.next_id("build") == 1
    assert org.next_id("workItem") == 4


def test_teams_users_and_memberships() -> None:
    org = _org()
    project = _project(org)
    user = org.add_user(
        User(
            "9c1b0000-0000-4000-8000-000000000001",
            "aad.abc",
            "Zoe.Adams@contoso.example",
            "Zoë Adams",
            "Zoe.Adams@contoso.example",
            "aad",
            "1",
            "tenant",
            AccessLevel(),
            AT,
            AT,
        )
    )
    group = org.add_group(
        Group(
            "4f000000-0000-4000-8000-000000000001",
            "vssgp.xyz",
            "Contributors",
            "[Données Clients]\\Contributors",
            "",
            "vstfs:///Classification/TeamProject/x",
            "vsts",
            "4f",
            project.id,
            [user.descriptor],
        )
    )
    team = org.add_team(Team("3e000000-0000-4000-8000-000000000001", "Web Team", project.id, member_ids=[user.id]))
    assert org.user("zoe.adams@CONTOSO.example") is user
    assert org.user(user.id) is user
    assert org.subject("vssgp.xyz") is group
    assert org.memberships_up(user.descriptor) == [group]
    assert org.team(project.id, "web team") is team
    assert org.team(project.id, team.id) is team
    assert org.team("another", "Web Team") is None
    assert org.project_teams(project.id) == [team]


def test_a_repositorys_head_and_a_work_items_parent() -> None:
    org = _org()
    project = _project(org)
    repo = _repo(org, project, "api", "7d2c0000-0000-4000-8000-000000000001")
    assert repo.head() is None
    repo.refs["refs/heads/main"] = GitRef("refs/heads/main", "a" * 40, "someone")
    assert repo.head() is None  # no such commit recorded
    item = WorkItem(
        2,
        1,
        project.id,
        {"System.WorkItemType": "Task"},
        [WorkItemRelation("System.LinkTypes.Hierarchy-Reverse", 1, "Parent")],
    )
    assert item.parent_id == 1 and item.work_item_type == "Task"
    assert WorkItem(1, 1, project.id, {}).parent_id is None


def test_policies_nodes_and_wiki_pages() -> None:
    policy = PolicyConfiguration(1, "p", POLICY_MINIMUM_REVIEWERS, "u", AT, {"minimumApproverCount": 2})
    assert policy.type_display_name == "Minimum number of reviewers"
    root = ClassificationNode(
        1, "g1", "P", "area", "\\P\\Area", [ClassificationNode(2, "g2", "Web", "area", "\\P\\Area\\Web")]
    )
    assert [node.path for node in root.walk()] == ["\\P\\Area", "\\P\\Area\\Web"]
    assert WikiPage(3, "/Runbooks/On call", 0, "").git_item_path == "/Runbooks/On-call.md"
