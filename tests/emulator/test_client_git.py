"""Microsoft's client, unmodified, over Git and Policy (reference 3.3), checked against the organisation's data."""

from __future__ import annotations

from typing import Any

import pytest
from azure.devops.exceptions import AzureDevOpsServiceError
from azure.devops.v7_1.git.models import (
    GitItemDescriptor,
    GitItemRequestData,
    GitPullRequestSearchCriteria,
    GitQueryCommitsCriteria,
    GitVersionDescriptor,
)
from tests.emulator.conftest import PAT, LiveEmulator
from tests.support.azure_sdk import connect

from kiosk.emulator.org.model import Commit, GitRepository, Organisation, blob_sha1

pytestmark = pytest.mark.generated_org(repos=16)


def busiest(org: Organisation) -> GitRepository:
    """An enabled repository with pull requests and more than one branch."""
    usable = [r for r in org.repositories.values() if r.default_branch and not r.is_disabled]
    return max(usable, key=lambda r: (sum(pr.repository_id == r.id for pr in org.pull_requests.values()), len(r.refs)))


def default_head(repo: GitRepository) -> Commit:
    """The commit the default branch points at (the generated repositories all have one)."""
    head = repo.head()
    assert head is not None
    return head


def git_client(emulator: LiveEmulator) -> Any:
    return emulator.sdk_client("azure.devops.v7_1.git.GitClient")


def test_repositories_and_refs(generated: LiveEmulator) -> None:
    org = generated.organisation()
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
    org = generated.organisation()
    git = git_client(generated)
    repo = busiest(org)
    head = default_head(repo)
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
    org = generated.organisation()
    git = git_client(generated)
    repo = busiest(org)
    head = default_head(repo)
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
    org = generated.organisation()
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
    org = generated.organisation()
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


def reachable(repo: GitRepository, commit_id: str) -> set[str]:
    """Commit ids reachable from ``commit_id`` (the test's own walk, independent of the emulator's)."""
    out: set[str] = set()
    stack = [commit_id]
    while stack:
        current = stack.pop()
        if current in repo.commits and current not in out:
            out.add(current)
            stack.extend(repo.commits[current].parents)
    return out


def test_a_commits_changes(generated: LiveEmulator) -> None:
    org = generated.organisation()
    git = git_client(generated)
    repo = busiest(org)
    commit = max(repo.commits.values(), key=lambda c: len(c.changes))
    changes = git.get_changes(commit.commit_id, repo.id, repo.project_id)
    kinds = [c.change_type for c in commit.changes]
    assert changes.change_counts == {
        "Add": kinds.count("add"),
        "Edit": kinds.count("edit"),
        "Delete": kinds.count("delete"),
    }
    assert [(c["item"]["path"], c["changeType"]) for c in changes.changes] == [
        (c.path, c.change_type) for c in commit.changes
    ]
    for shown, model in zip(changes.changes, commit.changes, strict=True):
        assert shown["item"].get("objectId") == model.object_id and shown["item"]["gitObjectType"] == "blob"
    if len(commit.changes) > 1:
        second = git.get_changes(commit.commit_id, repo.id, repo.project_id, top=1, skip=1)
        assert [c["item"]["path"] for c in second.changes] == [commit.changes[1].path]
    with pytest.raises(AzureDevOpsServiceError):
        git.get_changes("0" * 40, repo.id, repo.project_id)


def test_branch_stats(generated: LiveEmulator) -> None:
    org = generated.organisation()
    git = git_client(generated)
    repo = busiest(org)
    main = reachable(repo, repo.refs[repo.default_branch or ""].object_id)
    stats = git.get_branches(repo.id, repo.project_id)
    heads = [r for r in repo.refs.values() if r.name.startswith("refs/heads/")]
    assert [s.name for s in stats] == [r.name.removeprefix("refs/heads/") for r in heads]
    for shown, ref in zip(stats, heads, strict=True):
        mine = reachable(repo, ref.object_id)
        assert shown.commit.commit_id == ref.object_id
        assert (shown.ahead_count, shown.behind_count) == (len(mine - main), len(main - mine))
        assert shown.is_base_version is (ref.name == repo.default_branch)
    feature = next(r for r in heads if r.name != repo.default_branch)
    one = git.get_branch(repo.id, feature.name.removeprefix("refs/heads/"), repo.project_id)
    assert one.name == feature.name.removeprefix("refs/heads/") and one.commit.commit_id == feature.object_id
    against_feature = git.get_branch(
        repo.id,
        (repo.default_branch or "").removeprefix("refs/heads/"),
        repo.project_id,
        GitVersionDescriptor(version=feature.name.removeprefix("refs/heads/"), version_type="branch"),
    )
    mine = reachable(repo, feature.object_id)
    assert (against_feature.ahead_count, against_feature.behind_count) == (len(main - mine), len(mine - main))
    with pytest.raises(AzureDevOpsServiceError):
        git.get_branch(repo.id, "no-such-branch", repo.project_id)


def test_a_pull_requests_commits_and_work_items(generated: LiveEmulator) -> None:
    from kiosk.emulator.org.model import WorkItemRelation

    org = generated.organisation()
    git = git_client(generated)
    repo = busiest(org)
    pr = next(p for p in org.pull_requests.values() if p.repository_id == repo.id)
    expected = reachable(repo, pr.last_merge_source_commit) - reachable(repo, pr.last_merge_target_commit)
    commits = git.get_pull_request_commits(repo.id, pr.id, repo.project_id)
    assert expected and {c.commit_id for c in commits} == expected and len(commits) == len(expected)
    path = f"/fabrikam/{repo.project_id}/_apis/git/repositories/{repo.id}/pullRequests/{pr.id}/commits"
    first = generated.client.get(path, params={"$top": 1})
    assert first.json()["count"] == 1
    if len(expected) > 1:
        token = first.headers["x-ms-continuationtoken"]
        rest = git.get_pull_request_commits(repo.id, pr.id, repo.project_id, continuation_token=token)
        assert len(rest) == len(expected) - 1
    else:
        assert "x-ms-continuationtoken" not in first.headers
    assert git.get_pull_request_work_item_refs(repo.id, pr.id, repo.project_id) == []
    listed, linked = list(org.work_items.values())[:2]
    pr.work_item_ids.append(listed.id)
    artifact = f"vstfs:///Git/PullRequestId/{repo.project_id}%2F{repo.id}%2F{pr.id}"
    linked.relations.append(WorkItemRelation("ArtifactLink", artifact, "Pull Request"))
    refs = git.get_pull_request_work_item_refs(repo.id, pr.id, repo.project_id)
    assert [r.id for r in refs] == [str(listed.id), str(linked.id)]
    assert refs[0].url == f"{generated.base_url}/fabrikam/_apis/wit/workItems/{listed.id}"


def test_commit_and_push_search_criteria(generated: LiveEmulator) -> None:
    from azure.devops.v7_1.git.models import GitPushSearchCriteria

    org = generated.organisation()
    git = git_client(generated)
    repo = busiest(org)
    everything = git.get_commits(repo.id, GitQueryCommitsCriteria(), repo.project_id)
    newest_first = [c.commit_id for c in everything]
    oldest_first = git.get_commits(repo.id, GitQueryCommitsCriteria(show_oldest_commits_first=True), repo.project_id)
    assert [c.commit_id for c in oldest_first] == newest_first[::-1]
    chosen = newest_first[-2:]
    by_ids = git.get_commits(repo.id, GitQueryCommitsCriteria(ids=chosen), repo.project_id)
    assert {c.commit_id for c in by_ids} == set(chosen)
    readme = git.get_commits(repo.id, GitQueryCommitsCriteria(item_path="/README.md"), repo.project_id)
    assert {c.commit_id for c in readme} == {
        c for c in newest_first if any(ch.path == "/README.md" for ch in repo.commits[c].changes)
    }
    middle = repo.commits[newest_first[len(newest_first) // 2]].committer_date.replace(microsecond=0)
    since = git.get_commits(repo.id, GitQueryCommitsCriteria(from_date=f"{middle:%Y-%m-%dT%H:%M:%SZ}"), repo.project_id)
    assert {c.commit_id for c in since} == {c for c in newest_first if repo.commits[c].committer_date >= middle}
    bad = generated.client.get(
        f"/fabrikam/{repo.project_id}/_apis/git/repositories/{repo.id}/commits",
        params={"searchCriteria.fromDate": "yesterday"},
    )
    assert bad.status_code == 400
    pusher = repo.pushes[0].pushed_by
    mine = git.get_pushes(repo.id, repo.project_id, search_criteria=GitPushSearchCriteria(pusher_id=pusher))
    assert [p.push_id for p in mine] == sorted((p.push_id for p in repo.pushes if p.pushed_by == pusher), reverse=True)
    with_updates = git.get_pushes(
        repo.id, repo.project_id, search_criteria=GitPushSearchCriteria(include_ref_updates=True)
    )
    assert all(p.ref_updates for p in with_updates)
    assert all(p.ref_updates is None for p in git.get_pushes(repo.id, repo.project_id))
