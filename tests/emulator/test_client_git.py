"""Microsoft's client, unmodified, over Git and Policy (reference 3.3), checked against the organisation's data."""

from __future__ import annotations

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from azure.devops.v7_1.git.models import (
    GitItemDescriptor,
    GitItemRequestData,
    GitPullRequestSearchCriteria,
    GitQueryCommitsCriteria,
    GitVersionDescriptor,
)
from tests.emulator.conftest import CONFIG, PAT, EmulatorFactory, LiveEmulator
from tests.support.azure_sdk import connect, with_generated_org

from kiosk.emulator.org.model import GitRepository, Organisation, blob_sha1


@pytest.fixture
def generated(start_emulator: EmulatorFactory) -> LiveEmulator:
    return start_emulator(config=with_generated_org(CONFIG, repos=16), execute=False)


def organisation(emulator: LiveEmulator) -> Organisation:
    return emulator.server.emulator.organisation("fabrikam")


def busiest(org: Organisation) -> GitRepository:
    """An enabled repository with pull requests and more than one branch."""
    usable = [r for r in org.repositories.values() if r.default_branch and not r.is_disabled]
    return max(usable, key=lambda r: (sum(pr.repository_id == r.id for pr in org.pull_requests.values()), len(r.refs)))


def git_client(emulator: LiveEmulator):  # type: ignore[no-untyped-def]
    return connect(emulator.base_url, "fabrikam", PAT).get_client("azure.devops.v7_1.git.GitClient")


def test_repositories_and_refs(generated: LiveEmulator) -> None:
    org = organisation(generated)
    git = git_client(generated)
    everything = git.get_repositories()
    assert {r.id for r in everything} == set(org.repositories)
    assert any(r.is_disabled for r in everything)  # listed, flagged
    repo = busiest(org)
    project = org.projects[repo.project_id]
    in_project = git.get_repositories(project.name)
    assert {r.id for r in in_project} == {r.id for r in org.project_repositories(project.id)}
    shown = git.get_repository(repo.name, project.name)
    assert (shown.id, shown.name, shown.default_branch, shown.size) == (
        repo.id,
        repo.name,
        repo.default_branch,
        repo.size,
    )
    assert (shown.remote_url, shown.ssh_url, shown.web_url) == (repo.remote_url, repo.ssh_url, repo.web_url)
    assert shown.project.id == project.id and shown.project.name == project.name
    assert git.get_repository(repo.id).id == repo.id  # by GUID alone
    refs = git.get_refs(repo.id, project.id)
    assert [(r.name, r.object_id) for r in refs] == [(r.name, r.object_id) for r in repo.refs.values()]
    heads = git.get_refs(repo.id, project.id, filter="heads/")
    assert heads and all(r.name.startswith("refs/heads/") for r in heads)
    assert all(r.creator.display_name == org.users[repo.refs[r.name].creator_id].display_name for r in refs)
    paged = generated.client.get(f"/fabrikam/{project.id}/_apis/git/repositories/{repo.id}/refs", params={"$top": 1})
    assert paged.json()["count"] == 1 and (len(repo.refs) == 1 or paged.headers["x-ms-continuationtoken"] == "1")
    with pytest.raises(AzureDevOpsServiceError, match="TF401019"):
        git.get_repository("no-such-repo", project.id)


def test_items_and_their_content(generated: LiveEmulator) -> None:
    org = organisation(generated)
    git = git_client(generated)
    repo = busiest(org)
    head = repo.head()
    assert head is not None
    readme = head.files["/README.md"]
    item = git.get_item(repo.id, "/README.md", repo.project_id, include_content=True)
    assert item.object_id == readme.object_id == blob_sha1(readme.content)
    assert item.git_object_type == "blob" and item.commit_id == head.commit_id
    assert item.content == readme.content.decode()
    assert b"".join(git.get_item_content(repo.id, "/README.md", repo.project_id)) == readme.content
    assert b"".join(git.get_item_text(repo.id, "/README.md", repo.project_id)).decode() == readme.content.decode()
    everything = git.get_items(repo.id, repo.project_id, scope_path="/", recursion_level="Full")
    files = {i.path for i in everything if not i.is_folder}
    assert files == set(head.files) and everything[0].path == "/" and everything[0].is_folder
    top_level = git.get_items(repo.id, repo.project_id, scope_path="/", recursion_level="OneLevel")
    assert all(i.path.count("/") == 1 for i in top_level)
    batch = git.get_items_batch(
        GitItemRequestData(
            item_descriptors=[
                GitItemDescriptor(path="/", recursion_level="OneLevel"),
                GitItemDescriptor(path="/port.yml"),
            ]
        ),
        repo.id,
        repo.project_id,
    )
    assert [len(b) for b in batch] == [len(top_level), 1] and batch[1][0].object_id == head.files["/port.yml"].object_id
    branch = next(name for name in repo.refs if name != repo.default_branch and name.startswith("refs/heads/"))
    at_branch = git.get_item(
        repo.id,
        "/README.md",
        repo.project_id,
        version_descriptor=GitVersionDescriptor(version=branch.removeprefix("refs/heads/"), version_type="branch"),
    )
    assert at_branch.commit_id == repo.refs[branch].object_id
    with pytest.raises(AzureDevOpsServiceError, match="TF401174"):
        git.get_item(repo.id, "/no/such/file.txt", repo.project_id)


def test_commits_and_pushes(generated: LiveEmulator) -> None:
    org = organisation(generated)
    git = git_client(generated)
    repo = busiest(org)
    head = repo.head()
    assert head is not None
    commits = git.get_commits(repo.id, GitQueryCommitsCriteria(), repo.project_id)
    assert commits[0].commit_id == head.commit_id and {c.commit_id for c in commits} <= set(repo.commits)
    for listed in commits:
        model = repo.commits[listed.commit_id]
        assert listed.author.name == model.author_name and listed.author.email == model.author_email
        assert listed.author.date is not None and listed.comment == model.comment.split("\n")[0]
    assert len(git.get_commits(repo.id, GitQueryCommitsCriteria(top=1), repo.project_id)) == 1
    single = git.get_commit(head.commit_id, repo.id, repo.project_id)
    assert single.parents == head.parents and single.tree_id == head.tree_id
    pushes = git.get_pushes(repo.id, repo.project_id)
    assert [p.push_id for p in pushes] == sorted((p.push_id for p in repo.pushes), reverse=True)
    assert all(p.pushed_by.id in org.users and p.repository.id == repo.id for p in pushes)
    detail = git.get_push(repo.id, pushes[-1].push_id, repo.project_id)
    assert detail.ref_updates and [c.commit_id for c in detail.commits] == repo.pushes[0].commit_ids


def test_pull_requests(generated: LiveEmulator) -> None:
    org = organisation(generated)
    git = git_client(generated)
    repo = busiest(org)
    mine = [pr for pr in org.pull_requests.values() if pr.repository_id == repo.id]
    active = git.get_pull_requests(repo.id, GitPullRequestSearchCriteria(), repo.project_id)  # default: active
    assert {p.pull_request_id for p in active} == {pr.id for pr in mine if pr.status == "active"}
    every = git.get_pull_requests(repo.id, GitPullRequestSearchCriteria(status="all"), repo.project_id)
    assert [p.pull_request_id for p in every] == sorted((pr.id for pr in mine), reverse=True)
    for listed in every:
        model = org.pull_requests[listed.pull_request_id]
        assert (listed.status, listed.title, listed.source_ref_name) == (
            model.status,
            model.title,
            model.source_ref_name,
        )
        assert listed.created_by.id == model.created_by and listed.repository.id == repo.id
        assert (listed.closed_date is None) is (model.closed_date is None)
        assert [r.vote for r in listed.reviewers] == [r.vote for r in model.reviewers]
        assert len(listed.description) <= 400
    project_wide = git.get_pull_requests_by_project(repo.project_id, GitPullRequestSearchCriteria(status="all"))
    assert {p.pull_request_id for p in every} <= {p.pull_request_id for p in project_wide}
    assert (
        len(
            git.get_pull_requests_by_project(repo.project_id, GitPullRequestSearchCriteria(status="all"), top=1, skip=1)
        )
        == 1
    )
    first = mine[0]
    by_id = git.get_pull_request_by_id(first.id)
    assert by_id.pull_request_id == first.id and by_id.description == first.description
    assert git.get_pull_request_by_id(first.id, repo.project_id).title == first.title
    with pytest.raises(AzureDevOpsServiceError, match="TF401180"):
        git.get_pull_request_by_id(999_999)


def test_branch_policies(generated: LiveEmulator) -> None:
    org = organisation(generated)
    connection = connect(generated.base_url, "fabrikam", PAT)
    policy = connection.get_client("azure.devops.v7_1.policy.PolicyClient")
    repo = busiest(org)
    configured = [p for p in org.policies.values() if p.project_id == repo.project_id]
    listed = policy.get_policy_configurations(repo.project_id)
    assert [p.id for p in listed] == [p.id for p in configured]
    for shown in listed:
        model = org.policies[shown.id]
        assert shown.type.id == model.type_id and shown.type.display_name == model.type_display_name
        assert shown.is_blocking == model.is_blocking and shown.settings == model.settings
    assert {p.type.display_name for p in listed} >= {"Minimum number of reviewers", "Work item linking"}
    assert policy.get_policy_configuration(repo.project_id, listed[0].id).id == listed[0].id
    scoped = next(s["repositoryId"] for p in configured for s in p.settings["scope"] if s.get("repositoryId"))  # type: ignore[attr-defined,union-attr]
    by_repo = connection.get_client("azure.devops.v7_1.git.GitClient").get_policy_configurations(
        repo.project_id, repository_id=scoped
    )
    assert by_repo.policy_configurations and all(
        any(s.get("repositoryId") in (scoped, None) for s in p.settings["scope"]) for p in by_repo.policy_configurations
    )
