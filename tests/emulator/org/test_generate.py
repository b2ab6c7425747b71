"""Generated organisations: deterministic, consistent links, realistic content."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime

import pytest

from kiosk.emulator.org.generate import DEFAULT_NOW, GenerateSettings, add_configured_project, generate_org
from kiosk.emulator.org.model import Organisation, User, blob_sha1, name_key

BASE = "http://127.0.0.1:8123"


@pytest.fixture(scope="module")
def org() -> Organisation:
    return generate_org("Fabrikam", BASE, projects=7, repos=60, workitems=3000, seed=7)


def _plain(fields: dict[str, object]) -> dict[str, object]:
    """Fields with identities as their ids (users compare by identity, not by value)."""
    return {name: value.id if isinstance(value, User) else value for name, value in fields.items()}


def _fingerprint(org: Organisation) -> list[object]:
    return [
        org.id,
        [
            (p.id, p.name, p.visibility, p.revision, p.default_team_id, sorted(p.properties))
            for p in org.projects.values()
        ],
        [(u.id, u.descriptor, u.principal_name) for u in org.users.values()],
        [(r.id, r.name, r.is_disabled, r.is_fork, sorted(r.refs), list(r.commits)) for r in org.repositories.values()],
        [(p.id, p.status, p.reviewers, p.closed_date) for p in org.pull_requests.values()],
        [(b.id, b.result, b.queue_time) for b in org.builds.values()],
        [(w.id, w.rev, _plain(w.fields), w.relations, w.is_deleted) for w in org.work_items.values()],
        [(h.kind, h.action, h.old_name, h.new_name) for h in org.history],
    ]


def test_the_same_seed_gives_the_same_organisation(org: Organisation) -> None:
    again = generate_org("Fabrikam", BASE, projects=7, repos=60, workitems=3000, seed=7)
    assert _fingerprint(again) == _fingerprint(org)
    other = generate_org("Fabrikam", BASE, projects=7, repos=60, workitems=3000, seed=8)
    assert _fingerprint(other) != _fingerprint(org)


def test_counts(org: Organisation) -> None:
    assert len(org.projects) == 7  # the deleted one is only in the history
    deleted = [h for h in org.history if h.kind == "repository" and h.action == "deleted"]
    assert len(org.repositories) + len(deleted) == 60
    assert len(org.work_items) == 3000
    assert sorted(org.work_items) == list(range(1, 3001))
    assert sorted(org.pull_requests) == list(range(1, len(org.pull_requests) + 1))
    assert sorted(org.builds) == list(range(1, len(org.builds) + 1))


def test_empty_projects_exist_and_hold_nothing(org: Organisation) -> None:
    empty = [p for p in org.projects.values() if not org.project_repositories(p.id)]
    assert empty, "some projects have no repositories"
    for project in empty:
        assert not any(w.project_id == project.id for w in org.work_items.values())
        assert project.default_team_id in org.teams  # every project has its default team


def test_links_resolve(org: Organisation) -> None:
    for pr in org.pull_requests.values():
        repo = org.repositories[pr.repository_id]
        assert pr.source_ref_name.startswith("refs/heads/") and pr.target_ref_name == repo.default_branch
        assert pr.created_by in org.users and all(r.user_id in org.users for r in pr.reviewers)
        assert pr.last_merge_target_commit in repo.commits
    for item in org.work_items.values():
        assert item.project_id in org.projects
        parent = item.parent_id
        if parent is not None:
            assert parent in org.work_items
            assert any(r.target == item.id and r.name == "Child" for r in org.work_items[parent].relations)
        project = org.projects[item.project_id]
        assert item.fields["System.TeamProject"] == project.name
        assert str(item.fields["System.AreaPath"]).startswith(project.name)
        area_paths = {node.path.replace("\\Area", "", 1).lstrip("\\") for node in org.areas[project.id].walk()}
        assert item.fields["System.AreaPath"] in area_paths
        iteration_paths = {n.path.replace("\\Iteration", "", 1).lstrip("\\") for n in org.iterations[project.id].walk()}
        assert item.fields["System.IterationPath"] in iteration_paths
    for build in org.builds.values():
        definition = org.build_definitions[build.definition_id]
        assert definition.repository_id == build.repository_id and build.repository_id in org.repositories
        assert build.source_version in org.repositories[build.repository_id].commits
        assert build.requested_for in org.users
    for release in org.releases.values():
        assert release.definition_id in org.release_definitions and release.build_id in org.builds
    for deployment in org.deployments.values():
        assert deployment.release_id in org.releases
    for environment in org.environments.values():
        assert all(record.owner_id in org.builds for record in environment.deployments)
    for policy in org.policies.values():
        scope = policy.settings["scope"]
        assert isinstance(scope, list) and scope[0]["repositoryId"] in org.repositories
    for wiki in org.wikis.values():
        assert wiki.project_id in org.projects
        assert wiki.type == "projectWiki" or wiki.repository_id in org.repositories
    for team in org.teams.values():
        assert team.project_id in org.projects and all(member in org.users for member in team.member_ids)
        assert org.boards[team.id]
    for group in org.groups.values():
        assert all(org.subject(descriptor) is not None for descriptor in group.member_descriptors)


def test_git_data_is_a_real_small_tree(org: Organisation) -> None:
    full = [r for r in org.repositories.values() if r.default_branch]
    assert full
    for repo in full:
        head = repo.head()
        assert head is not None
        assert {"/README.md", "/CODEOWNERS", "/port.yml"} <= set(head.files)
        assert all(f.object_id == blob_sha1(f.content) for f in head.files.values())
        for ref in repo.refs.values():
            assert ref.object_id in repo.commits
        for commit in repo.commits.values():
            assert all(parent in repo.commits for parent in commit.parents)
            assert commit.push_id is not None and repo.pushes[commit.push_id - 1].push_id == commit.push_id
        assert [p.push_id for p in repo.pushes] == list(range(1, len(repo.pushes) + 1))
        assert repo.size > 0


def test_urls_use_the_base_url(org: Organisation) -> None:
    for repo in org.repositories.values():
        project = org.projects[repo.project_id]
        assert repo.remote_url.startswith(f"{BASE}/Fabrikam/")
        assert repo.web_url.endswith("/_git/" + repo.remote_url.rsplit("/_git/", 1)[1])
        assert org.repository(repo.name, project.id) is repo  # the URL names its current name
        assert repo.ssh_url.startswith("git@127.0.0.1:v3/Fabrikam/")


def test_names_are_unique_case_insensitively_within_their_scope(org: Organisation) -> None:
    def unique(names: list[str]) -> bool:
        return len({name_key(n) for n in names}) == len(names)

    assert unique([p.name for p in org.projects.values()])
    assert unique([u.principal_name for u in org.users.values()])
    for project in org.projects.values():
        assert unique([r.name for r in org.project_repositories(project.id)])
        assert unique([t.name for t in org.project_teams(project.id)])


def test_realistic_variety(org: Organisation) -> None:
    names = [p.name for p in org.projects.values()] + [r.name for r in org.repositories.values()]
    assert any(" " in n for n in names) and any(not n.isascii() for n in names)
    assert any(not u.display_name.isascii() for u in org.users.values())
    repos = list(org.repositories.values())
    assert any(r.is_disabled for r in repos) and any(r.is_fork for r in repos)
    assert any(r.default_branch is None for r in repos)  # an empty repository
    assert {(h.kind, h.action) for h in org.history} >= {
        ("repository", "renamed"),
        ("repository", "deleted"),
        ("project", "deleted"),
    }
    statuses = Counter(pr.status for pr in org.pull_requests.values())
    assert set(statuses) == {"active", "completed", "abandoned"}
    for pr in org.pull_requests.values():
        assert (pr.closed_date is None) == (pr.status == "active")
        assert pr.closed_date is None or pr.closed_date > pr.creation_date
    results = {b.result for b in org.builds.values()}
    assert {"succeeded", "failed"} <= results
    types = Counter(w.work_item_type for w in org.work_items.values())
    assert set(types) == {"Epic", "Feature", "User Story", "Task", "Bug", "Issue"}
    states = {str(w.fields["System.State"]) for w in org.work_items.values()}
    assert {"New", "Active", "Closed"} <= states
    assert any("System.Tags" in w.fields for w in org.work_items.values())
    assert any(w.is_deleted for w in org.work_items.values())
    assert sum(1 for w in org.work_items.values() if w.parent_id is not None) > 1000
    assert any(u.access_level.license_display_name == "Stakeholder" for u in org.users.values())


def test_revisions_tell_the_state_history(org: Organisation) -> None:
    for item in list(org.work_items.values())[:500]:
        assert [r.rev for r in item.revisions] == list(range(1, item.rev + 1))
        state_changes = [r.fields["System.State"] for r in item.revisions[1:]]
        if state_changes:
            assert state_changes[-1][1] == item.fields["System.State"]
            assert all(a[1] == b[0] for a, b in itertools.pairwise(state_changes))
        created, changed = item.fields["System.CreatedDate"], item.fields["System.ChangedDate"]
        assert isinstance(created, datetime) and isinstance(changed, datetime)
        assert created <= changed <= DEFAULT_NOW


def test_configured_projects_join_with_their_own_ids_and_generated_names_avoid_them() -> None:
    org = generate_org(
        "demo", BASE, projects=3, repos=5, workitems=20, seed=1, reserved_project_names=["PAYMENTS platform"]
    )
    assert org.project("Payments Platform") is None
    project = add_configured_project(org, "Payments Platform", "ae8e9761-6532-570e-880a-fd845b4177a6")
    assert org.project("payments platform") is project and project.configured
    assert project.id == "ae8e9761-6532-570e-880a-fd845b4177a6"
    assert project.default_team_id in org.teams and project.id in org.areas and project.id in org.iterations
    assert len({*org.teams}) == len(org.teams)  # its GUIDs do not repeat the generated ones
    ids = [t.id for t in org.teams.values()] + [g.id for g in org.groups.values()] + [u.id for u in org.users.values()]
    assert len(ids) == len(set(ids))
    assert add_configured_project(org, "PAYMENTS PLATFORM", "ignored") is project


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="workitems must not be negative"):
        GenerateSettings(workitems=-1)
    with pytest.raises(ValueError, match="need at least one project"):
        GenerateSettings(projects=0, repos=3)
    empty = generate_org("acme", BASE, projects=0, repos=0, workitems=0, seed=0, now=datetime(2026, 3, 1, tzinfo=UTC))
    assert not empty.projects and empty.users


def test_earlier_revisions_are_rebuilt_from_the_changes(org: Organisation) -> None:
    closed = next(w for w in org.work_items.values() if w.fields["System.State"] == "Closed" and w.rev >= 3)
    first = closed.fields_at(1)
    assert first["System.State"] == closed.revisions[1].fields["System.State"][0]
    assert first["System.ChangedDate"] == closed.fields["System.CreatedDate"]
    assert "Microsoft.VSTS.Common.ClosedDate" not in first
    assert closed.fields_at(closed.rev) == closed.fields
    created = closed.update_fields(1)
    assert created["System.Title"] == (None, closed.fields["System.Title"])
    last = closed.update_fields(closed.rev)
    assert last["System.State"][1] == "Closed" and "System.Title" not in last
    with pytest.raises(ValueError, match="has revisions 1 to"):
        closed.fields_at(closed.rev + 1)
