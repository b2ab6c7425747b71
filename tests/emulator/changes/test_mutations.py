"""Each mutation of an organisation (kiosk.emulator.org.changes): its effect on the model and the events
it returns, with their resources in Azure's service-hook shapes (reference 6.3) and their filters."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from kiosk.emulator.errors import AzureError
from kiosk.emulator.org import changes
from kiosk.emulator.org.changes import ZERO_ID, FileEdit, Ids
from kiosk.emulator.org.generate import generate_org
from kiosk.emulator.org.model import GitRepository, Organisation, Project, User, blob_sha1

AT = datetime(2026, 1, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def org() -> Organisation:
    return generate_org("acme", "http://127.0.0.1:8001", projects=3, repos=6, workitems=40, seed=7)


@pytest.fixture
def ids() -> Ids:
    return Ids(random.Random(3))


def _project(org: Organisation) -> Project:
    return next(p for p in org.projects.values() if any(d.project_id == p.id for d in org.build_definitions.values()))


def _owner(org: Organisation) -> User:
    return changes.find_user(org, None)


def _repo_with_main(org: Organisation, project: Project, ids: Ids) -> GitRepository:
    repo = changes.create_repository(org, project, "svc", by=_owner(org), at=AT, ids=ids).value
    changes.push(org, repo, by=_owner(org), at=AT, ids=ids, branch="main", edits=[FileEdit("README.md", "hi", "add")])
    return repo


def test_find_user_by_id_principal_display_name_or_the_first_user(org: Organisation) -> None:
    user = list(org.users.values())[3]
    for key in (user.id, user.principal_name.upper(), user.display_name.lower()):
        assert changes.find_user(org, key) is user
    assert changes.find_user(org, None) is next(iter(org.users.values()))
    with pytest.raises(AzureError) as caught:
        changes.find_user(org, "nobody@example.com")
    assert caught.value.status == 400


def test_repository_created_renamed_disabled_deleted(org: Organisation, ids: Ids) -> None:
    project, by = _project(org), _owner(org)
    created = changes.create_repository(org, project, "Payments API", by=by, at=AT, ids=ids)
    repo = created.value
    assert org.repository("payments api", project.id) is repo and repo.default_branch is None
    (event,) = created.events
    assert (event.event_type, event.publisher_id, event.project_id) == ("git.repo.created", "tfs", project.id)
    assert event.resource["repository"]["id"] == repo.id and event.filters == {"repository": (repo.id,)}
    assert event.resource["initiatedBy"]["id"] == by.id
    with pytest.raises(AzureError) as caught:
        changes.create_repository(org, project, "PAYMENTS api", by=by, at=AT, ids=ids)
    assert caught.value.status == 409

    (renamed,) = changes.rename_repository(org, repo, "ledger", by=by, at=AT, ids=ids).events
    assert renamed.event_type == "git.repo.renamed"
    assert (renamed.resource["oldName"], renamed.resource["newName"]) == ("Payments API", "ledger")
    assert org.history[-1].kind == "repository" and org.history[-1].old_name == "Payments API"
    assert repo.web_url.endswith("/_git/ledger")

    (disabled,) = changes.set_repository_disabled(org, repo, True, by=by, at=AT, ids=ids).events
    assert disabled.event_type == "git.repo.statuschanged" and disabled.resource["disabled"] is True
    assert changes.set_repository_disabled(org, repo, True, by=by, at=AT, ids=ids).events == []

    (deleted,) = changes.delete_repository(org, repo, by=by, at=AT, ids=ids).events
    assert deleted.event_type == "git.repo.deleted"
    assert deleted.resource["repositoryId"] == repo.id and deleted.resource["projectId"] == project.id
    assert repo.id not in org.repositories and org.history[-1].action == "deleted"


def test_a_push_creates_updates_and_deletes_branches(org: Organisation, ids: Ids) -> None:
    project, by = _project(org), _owner(org)
    repo = changes.create_repository(org, project, "svc", by=by, at=AT, ids=ids).value
    first = changes.push(
        org,
        repo,
        by=by,
        at=AT,
        ids=ids,
        branch="main",
        edits=[FileEdit("/README.md", "hello\n", "add")],
        comment="Init",
    )
    (event,) = first.events
    head = repo.head()
    assert head is not None and repo.default_branch == "refs/heads/main"
    assert head.files["/README.md"].object_id == blob_sha1(b"hello\n") and head.comment == "Init"
    assert repo.pushes[-1] is first.value and head.push_id == first.value.push_id
    resource = event.resource
    assert resource["refUpdates"] == [
        {"name": "refs/heads/main", "oldObjectId": ZERO_ID, "newObjectId": head.commit_id}
    ]
    assert resource["commits"][0]["commitId"] == head.commit_id and resource["pushedBy"]["id"] == by.id
    assert resource["repository"]["project"]["id"] == project.id and resource["pushId"] == 1
    assert event.filters["repository"] == (repo.id,) and event.filters["branch"] == ("refs/heads/main",)

    edited = changes.push(
        org, repo, by=by, at=AT + timedelta(minutes=1), ids=ids, branch="refs/heads/main",
        edits=[FileEdit("/README.md", "changed\n"), FileEdit("/src/app.py", "print()\n", "add")],
    )  # fmt: skip
    second = repo.head()
    assert second is not None and second.parents == [head.commit_id]
    assert sorted(second.files) == ["/README.md", "/src/app.py"]
    assert [(c.change_type, c.path) for c in second.changes] == [("edit", "/README.md"), ("add", "/src/app.py")]
    assert edited.events[0].resource["refUpdates"][0]["oldObjectId"] == head.commit_id

    branched = changes.push(org, repo, by=by, at=AT, ids=ids, ref_updates=[("feature/x", None, second.commit_id)])
    assert repo.refs["refs/heads/feature/x"].object_id == second.commit_id
    assert branched.events[0].resource["refUpdates"][0]["oldObjectId"] == ZERO_ID
    removed = changes.push(org, repo, by=by, at=AT, ids=ids, ref_updates=[("feature/x", second.commit_id, ZERO_ID)])
    assert "refs/heads/feature/x" not in repo.refs
    assert removed.events[0].resource["refUpdates"][0]["newObjectId"] == ZERO_ID
    assert [p.push_id for p in repo.pushes] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"branch": "main", "edits": [FileEdit("/README.md", "x", "add")]}, 409),  # exists already
        ({"branch": "main", "edits": [FileEdit("/nope.md", "x", "edit")]}, 400),
        ({"branch": "main", "edits": [FileEdit("/nope.md", None, "delete")]}, 400),
        ({"branch": "main", "edits": [FileEdit("/../x", "x", "add")]}, 400),
        ({"ref_updates": [("main", "1" * 40, None)]}, 409),  # stale old id
        ({"ref_updates": [("gone", None, ZERO_ID)]}, 404),
        ({"ref_updates": [("new", None, "2" * 40)]}, 400),  # no such commit
        ({}, 400),
    ],
)
def test_a_bad_push_is_refused_and_changes_nothing(
    org: Organisation, ids: Ids, kwargs: dict[str, object], status: int
) -> None:
    repo = _repo_with_main(org, _project(org), ids)
    before = (dict(repo.refs), len(repo.pushes))
    with pytest.raises(AzureError) as caught:
        changes.push(org, repo, by=_owner(org), at=AT, ids=ids, **kwargs)  # type: ignore[arg-type]
    assert caught.value.status == status
    assert (dict(repo.refs), len(repo.pushes)) == before


def test_pull_request_created_updated_by_a_push_voted_and_merged(org: Organisation, ids: Ids) -> None:
    project, by = _project(org), _owner(org)
    repo = _repo_with_main(org, project, ids)
    changes.push(org, repo, by=by, at=AT, ids=ids, branch="feature/x", edits=[FileEdit("/a.txt", "a\n", "add")])
    reviewer = list(org.users.values())[1]
    created = changes.create_pull_request(
        org, repo, source="feature/x", target="main", title="Add a", reviewers={reviewer.principal_name: 0},
        by=by, at=AT, ids=ids,
    )  # fmt: skip
    pr = created.value
    (event,) = created.events
    assert event.event_type == "git.pullrequest.created" and event.resource["pullRequestId"] == pr.id
    assert event.filters == {
        "repository": (repo.id,),
        "branch": ("refs/heads/main",),
        "pullrequestcreatedby": (by.id,),
        "pullrequestreviewerscontains": (reviewer.id,),
    }
    with pytest.raises(AzureError) as caught:
        changes.create_pull_request(org, repo, source="feature/x", target=None, title="again", by=by, at=AT, ids=ids)
    assert caught.value.status == 409

    pushed = changes.push(org, repo, by=by, at=AT, ids=ids, branch="feature/x", edits=[FileEdit("/a.txt", "b\n")])
    assert [e.event_type for e in pushed.events] == ["git.push", "git.pullrequest.updated"]
    assert pushed.events[1].filters["notificationtype"] == ("PushNotification",)
    assert pr.last_merge_source_commit == repo.refs["refs/heads/feature/x"].object_id
    assert pushed.events[1].resource["commits"][0]["commitId"] == pr.last_merge_source_commit

    voted = changes.update_pull_request(
        org, pr, title="Add a and b", reviewers={reviewer.id: 10}, by=reviewer, at=AT, ids=ids
    )
    kinds = [e.filters.get("notificationtype", ()) for e in voted.events]
    assert kinds == [(), ("ReviewerVoteNotification",)]
    assert pr.title == "Add a and b" and pr.reviewers[0].vote == 10

    merged = changes.complete_pull_request(org, pr, by=reviewer, at=AT + timedelta(hours=1), ids=ids)
    assert [e.event_type for e in merged.events] == ["git.push", "git.pullrequest.merged", "git.pullrequest.updated"]
    main = repo.head()
    assert main is not None and pr.last_merge_commit == main.commit_id
    assert main.parents == [pr.last_merge_target_commit, pr.last_merge_source_commit]
    assert main.files["/a.txt"].content == b"b\n"
    assert (pr.status, pr.closed_by, pr.closed_date) == ("completed", reviewer.id, AT + timedelta(hours=1))
    assert merged.events[1].resource["status"] == "completed" and merged.events[1].resource["closedDate"]
    with pytest.raises(AzureError) as again:
        changes.abandon_pull_request(org, pr, by=by, at=AT, ids=ids)
    assert again.value.status == 409


def test_an_abandoned_pull_request_is_closed(org: Organisation, ids: Ids) -> None:
    project, by = _project(org), _owner(org)
    repo = _repo_with_main(org, project, ids)
    changes.push(
        org, repo, by=by, at=AT, ids=ids, ref_updates=[("spike", None, repo.refs["refs/heads/main"].object_id)]
    )
    pr = changes.create_pull_request(org, repo, source="spike", target=None, title="Spike", by=by, at=AT, ids=ids).value
    (event,) = changes.abandon_pull_request(org, pr, by=by, at=AT, ids=ids).events
    assert event.filters["notificationtype"] == ("StatusUpdateNotification",)
    assert event.resource["status"] == "abandoned" and pr.closed_date == AT


def test_work_item_created_updated_commented_deleted_restored(org: Organisation, ids: Ids) -> None:
    project, by = _project(org), _owner(org)
    assignee = list(org.users.values())[2]
    area = f"{project.name}\\{org.areas[project.id].children[0].name}"
    created = changes.create_work_item(
        org, project, "bug", {"System.Title": "Crash", "System.AssignedTo": assignee.principal_name,
                              "System.AreaPath": area}, by=by, at=AT, ids=ids,
    )  # fmt: skip
    item = created.value
    assert org.work_items[item.id] is item and item.rev == 1
    assert (item.fields["System.State"], item.fields["System.WorkItemType"]) == ("New", "Bug")
    (event,) = created.events
    fields = event.resource["fields"]
    assert fields["System.AssignedTo"] == f"{assignee.display_name} <{assignee.principal_name}>"
    assert fields["System.CreatedBy"] == f"{by.display_name} <{by.principal_name}>"
    assert event.resource["url"].endswith(f"/_apis/wit/workItems/{item.id}") and "project" not in event.resource
    assert event.filters == {"areapath": (area,), "workitemtype": ("Bug",)}

    later = AT + timedelta(hours=2)
    updated = changes.update_work_item(org, item, {"System.State": "Resolved", "System.Title": "Crash on start"},
                                       by=assignee, at=later, ids=ids)  # fmt: skip
    assert item.rev == 2 and item.fields["System.Reason"] == "Code complete"
    assert item.fields["Microsoft.VSTS.Common.ResolvedDate"] == later
    assert item.fields_at(1)["System.State"] == "New" and item.fields_at(1)["System.Title"] == "Crash"
    (update,) = updated.events
    resource = update.resource
    assert (resource["id"], resource["workItemId"], resource["rev"]) == (2, item.id, 2)
    assert resource["fields"]["System.State"] == {"oldValue": "New", "newValue": "Resolved"}
    assert resource["fields"]["System.Rev"] == {"oldValue": 1, "newValue": 2}
    assert "Microsoft.VSTS.Common.ResolvedDate" in resource["fields"]
    assert "oldValue" not in resource["fields"]["Microsoft.VSTS.Common.ResolvedDate"]  # set the first time
    assert "System.AreaPath" not in resource["fields"]  # only what changed…
    assert resource["revision"]["fields"]["System.AreaPath"] == area  # …and the whole revision beside it
    assert resource["revision"]["fields"]["System.ChangedBy"].endswith(f"<{assignee.principal_name}>")
    assert resource["url"].endswith(f"/workItems/{item.id}/updates/2")
    assert set(update.filters["changedfields"]) >= {"System.State", "System.Title", "System.Reason"}
    assert (
        changes.update_work_item(org, item, {"System.Title": "Crash on start"}, by=by, at=later, ids=ids).events == []
    )

    commented = changes.comment_work_item(org, item, "Seen on Linux too", by=by, at=later, ids=ids)
    assert [e.event_type for e in commented.events] == ["workitem.commented", "workitem.updated"]
    assert commented.events[0].resource["fields"]["System.History"] == "Seen on Linux too"
    assert commented.events[0].filters["commentpattern"] == ("Seen on Linux too",)
    assert item.comments[0].text == "Seen on Linux too" and item.fields["System.CommentCount"] == 1

    (deleted,) = changes.delete_work_item(org, item, by=by, at=later, ids=ids).events
    assert item.is_deleted and deleted.resource["url"].endswith(f"/_apis/wit/recyclebin/{item.id}")
    assert deleted.resource["_links"]["self"]["href"] == deleted.resource["url"]
    with pytest.raises(AzureError) as gone:
        changes.update_work_item(org, item, {"System.Title": "x"}, by=by, at=later, ids=ids)
    assert gone.value.status == 404
    (restored,) = changes.restore_work_item(org, item, by=by, at=later, ids=ids).events
    assert restored.event_type == "workitem.restored" and not item.is_deleted


@pytest.mark.parametrize(
    ("kind", "fields", "status"),
    [
        ("Bug", {}, 400),  # no title
        ("Spaceship", {"System.Title": "x"}, 404),
        ("Bug", {"System.Title": "x", "System.AreaPath": "Elsewhere\\Web"}, 400),
        ("Bug", {"System.Title": "x", "System.State": "Flying"}, 400),
        ("Bug", {"System.Title": "x", "System.AssignedTo": "nobody@example.com"}, 400),
        ("Bug", {"System.Title": "x", "System.Id": 5}, 400),
    ],
)
def test_a_bad_work_item_is_refused(
    org: Organisation, ids: Ids, kind: str, fields: dict[str, object], status: int
) -> None:
    count = len(org.work_items)
    with pytest.raises(AzureError) as caught:
        changes.create_work_item(org, _project(org), kind, fields, by=_owner(org), at=AT, ids=ids)
    assert caught.value.status == status and len(org.work_items) == count


def test_a_completed_build_with_its_timeline(org: Organisation, ids: Ids) -> None:
    project = _project(org)
    definition = next(d for d in org.build_definitions.values() if d.project_id == project.id)
    change = changes.complete_build(org, project, definition.id, "canceled", by=_owner(org), at=AT, ids=ids)
    build = change.value
    assert org.builds[build.id] is build and build.status == "completed" and build.finish_time == AT
    assert [s.type for s in build.timeline] == ["Stage", "Phase", "Job", "Task", "Task", "Task"]
    (event,) = change.events
    assert (event.event_type, event.resource_version) == ("build.complete", "2.0")
    assert event.resource["id"] == build.id and event.resource["definition"]["id"] == definition.id
    assert event.resource["uri"] == f"vstfs:///Build/Build/{build.id}"
    assert event.filters == {"definitionname": (definition.name,), "buildstatus": ("Stopped",)}
    with pytest.raises(AzureError) as caught:
        changes.complete_build(org, project, 99_999, "succeeded", by=_owner(org), at=AT, ids=ids)
    assert caught.value.status == 404


def test_a_release_and_a_completed_deployment(org: Organisation, ids: Ids) -> None:
    project, by = _project(org), _owner(org)
    definition = next(d for d in org.release_definitions.values() if d.project_id == project.id)
    created = changes.create_release(org, project, definition.id, by=by, at=AT, ids=ids)
    release = created.value
    assert [e.status for e in release.environments] == ["notStarted"] * len(definition.environments)
    (event,) = created.events
    assert (event.event_type, event.publisher_id) == ("ms.vss-release.release-created-event", "rm")
    assert event.resource["release"]["id"] == release.id and event.resource["project"]["id"] == project.id
    assert event.filters == {"releasedefinitionid": (str(definition.id),)}

    stage = release.environments[0]
    done = changes.complete_deployment(org, release, stage.name.upper(), "succeeded", by=by, at=AT, ids=ids)
    deployment = done.value
    assert release.environments[0].status == "succeeded" and org.deployments[deployment.id] is deployment
    (completed,) = done.events
    resource = completed.resource
    assert resource["deployment"]["release"]["id"] == release.id
    assert resource["environment"]["releaseId"] == release.id
    assert resource["environment"]["definitionEnvironmentId"] == stage.definition_environment_id
    assert completed.filters["releaseenvironmentstatus"] == ("4", "succeeded")
    assert completed.filters["releaseenvironmentid"] == (str(stage.definition_environment_id),)
    with pytest.raises(AzureError) as caught:
        changes.complete_deployment(org, release, "Mars", "succeeded", by=by, at=AT, ids=ids)
    assert caught.value.status == 404


def test_seeded_ids_repeat(org: Organisation) -> None:
    first = changes.create_repository(org, _project(org), "a", by=_owner(org), at=AT, ids=Ids(random.Random(9)))
    second = generate_org("acme", "http://127.0.0.1:8001", projects=3, repos=6, workitems=40, seed=7)
    again = changes.create_repository(
        second, _project(second), "a", by=_owner(second), at=AT, ids=Ids(random.Random(9))
    )
    assert first.value.id == again.value.id and first.events[0].id == again.events[0].id
