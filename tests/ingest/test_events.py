"""Service-hook envelopes checked and keyed: required fields named, the identity a redelivery
repeats, and the ordering key of each event type (whole resources and org-scope minimal ones)."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.ingest.events import (
    KNOWN_EVENT_TYPES,
    EventRejected,
    event_dedupe_key,
    event_identity,
    event_job_kind,
    events_path,
    ordering_key,
    parse_event,
)

COLLECTION = "c0ffee00-0000-4000-8000-000000000001"
PROJECT = "9a1b2c3d-0000-4000-8000-000000000002"
REPO = "5e6f7a8b-0000-4000-8000-000000000003"
ORG = "https://dev.azure.com/contoso"
CONTAINERS = {
    "collection": {"id": COLLECTION, "baseUrl": ORG + "/"},
    "account": {"id": COLLECTION, "baseUrl": ORG + "/"},
    "project": {"id": PROJECT, "baseUrl": ORG + "/"},
}


def envelope(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subscriptionId": "sub-1",
        "notificationId": 3,
        "id": "event-guid-1",
        "eventType": "git.push",
        "publisherId": "tfs",
        "resource": {"pushId": 7, "repository": {"id": REPO}},
        "resourceContainers": CONTAINERS,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


# ------------------------------------------------------------------------------------- parsing


def test_a_whole_envelope_is_parsed_and_kept_as_it_came() -> None:
    body = envelope()
    event = parse_event(body)
    assert (event.event_type, event.publisher_id, event.identity) == ("git.push", "tfs", "event-guid-1")
    assert event.body is body and event.resource == body["resource"]
    assert event.known and event.object_key == f"repository:{REPO}@{COLLECTION}"


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (envelope(eventType=...), "eventType", "is required"),
        (envelope(eventType=""), "eventType", "non-empty string"),
        (envelope(eventType=5), "eventType", "non-empty string, not 5"),
        (envelope(eventType="x" * 201), "eventType", "longer than 200"),
        (envelope(publisherId=...), "publisherId", "is required"),
        (envelope(publisherId=None), "publisherId", "is required"),
        (envelope(resource=...), "resource", "is required"),
        (envelope(resource=None), "resource", "is required"),
        (envelope(resource=[1]), "resource", "JSON object, not [1]"),
        (envelope(resource="x"), "resource", "JSON object"),
        (envelope(resourceContainers=[]), "resourceContainers", "JSON object"),
        (envelope(id=..., notificationId=...), "id", "is required"),
        (envelope(id=None, notificationId=None), "id", "is required"),
        (envelope(id=""), "id", "must not be empty"),
        (envelope(id=True), "id", "string or an integer"),
        (envelope(id={"a": 1}), "id", "string or an integer"),
        (envelope(id="x" * 201), "id", "longer than 200"),
        (envelope(id=..., notificationId=1.5), "notificationId", "string or an integer"),
        ([envelope()], "body", "JSON object (a service-hook event), not list"),
        (None, "body", "not null"),
        ("text", "body", "not str"),
    ],
)
def test_what_is_missing_or_wrong_is_named(body: Any, field: str, fragment: str) -> None:
    with pytest.raises(EventRejected) as caught:
        parse_event(body)
    assert caught.value.field == field
    assert fragment in caught.value.message, caught.value.message


def test_the_identity_is_the_event_id_else_the_notification_of_its_subscription() -> None:
    assert event_identity(envelope()) == "event-guid-1"
    # Another subscription reaching the same event (same id, other notification): the same identity.
    assert event_identity(envelope(subscriptionId="sub-2", notificationId=40)) == "event-guid-1"
    assert event_identity(envelope(id=...)) == "notification:sub-1:3"
    assert event_identity(envelope(id=..., subscriptionId=...)) == "notification:-:3"
    assert event_identity(envelope(id=12)) == "12"


def test_the_path_events_are_posted_to() -> None:
    assert events_path("ado") == "/hooks/integrations/ado"


def test_job_kind_and_dedupe_key_fit_their_columns() -> None:
    kind = event_job_kind("a" * 100)
    assert kind.startswith("integration.event.") and len(kind) <= 50
    assert kind == event_job_kind("a" * 100) != event_job_kind("b")
    assert event_dedupe_key("ado", "event-guid-1") == "ado:event-guid-1"
    long = event_dedupe_key("a" * 100, "notification:" + "s" * 200 + ":" + "9" * 200)
    assert len(long) <= 300 and long.startswith("a" * 100 + ":sha256:")
    assert long != event_dedupe_key("a" * 100, "notification:" + "s" * 200 + ":" + "8" * 200)


# -------------------------------------------------------------------------------- ordering keys


def key(event_type: str, resource: dict[str, Any], containers: Any = CONTAINERS) -> str | None:
    return ordering_key(event_type, resource, containers)


REPOSITORY = {"id": REPO, "name": "web", "project": {"id": PROJECT}}
PULL_REQUEST = {"pullRequestId": 11, "repository": REPOSITORY, "status": "active"}


@pytest.mark.parametrize(
    ("event_type", "resource"),
    [
        ("git.push", {"pushId": 7, "repository": REPOSITORY, "refUpdates": []}),
        ("git.pullrequest.created", PULL_REQUEST),
        ("git.pullrequest.updated", PULL_REQUEST),
        ("git.pullrequest.merged", PULL_REQUEST),
        ("ms.vss-code.git-pullrequest-comment-event", {"comment": {"id": 1}, "pullRequest": PULL_REQUEST}),
        ("git.repo.created", {"repository": REPOSITORY, "utcTimestamp": "2024-01-01T00:00:00Z"}),
        ("git.repo.renamed", {"repository": REPOSITORY, "oldName": "w", "newName": "web"}),
        ("git.repo.statuschanged", {"repository": REPOSITORY, "disabled": True}),
        ("git.repo.deleted", {"repositoryId": REPO, "repositoryName": "web", "projectId": PROJECT}),
        # Org scope: the resource's identifying keys only; the URL still names the repository.
        ("git.push", {"pushId": 7, "url": f"{ORG}/{PROJECT}/_apis/git/repositories/{REPO}/pushes/7"}),
        (
            "git.pullrequest.updated",
            {"pullRequestId": 11, "url": f"{ORG}/{PROJECT}/_apis/git/repositories/{REPO}/pullRequests/11"},
        ),
    ],
)
def test_git_events_are_ordered_per_repository(event_type: str, resource: dict[str, Any]) -> None:
    assert key(event_type, resource) == f"repository:{REPO}@{COLLECTION}"


@pytest.mark.parametrize(
    ("event_type", "resource"),
    [
        ("workitem.created", {"id": 42, "rev": 1, "fields": {"System.Title": "t"}}),
        ("workitem.commented", {"id": 42, "rev": 3, "fields": {"System.History": "hi"}}),
        ("workitem.restored", {"id": 42, "rev": 4, "fields": {}}),
        ("workitem.deleted", {"id": 42, "rev": 5, "url": f"{ORG}/{PROJECT}/_apis/wit/recyclebin/42"}),
        # An update's own id is the update's number: the item is workItemId (or the revision's id).
        ("workitem.updated", {"id": 3, "workItemId": 42, "rev": 3, "revision": {"id": 42, "rev": 3}}),
        ("workitem.updated", {"id": 3, "rev": 3, "revision": {"id": 42, "rev": 3}}),
        ("workitem.updated", {"id": 3, "url": f"{ORG}/{PROJECT}/_apis/wit/workItems/42/updates/3"}),
        ("workitem.deleted", {"url": f"{ORG}/{PROJECT}/_apis/wit/recyclebin/42"}),
    ],
)
def test_work_item_events_are_ordered_per_work_item(event_type: str, resource: dict[str, Any]) -> None:
    assert key(event_type, resource) == f"work-item:42@{COLLECTION}"


RUN = {"id": 77, "name": "20240101.1", "state": "completed", "result": "succeeded"}


@pytest.mark.parametrize(
    ("event_type", "resource"),
    [
        ("build.complete", {"id": 77, "buildNumber": "20240101.1", "uri": "vstfs:///Build/Build/77"}),
        ("build.complete", {"url": f"{ORG}/{PROJECT}/_apis/build/Builds/77"}),
        ("ms.vss-pipelines.run-state-changed-event", {"run": RUN, "pipeline": {"id": 4}, "runId": 77}),
        ("ms.vss-pipelines.run-state-changed-event", {"run": RUN, "pipeline": {"id": 4}}),
        ("ms.vss-pipelines.stage-state-changed-event", {"stage": {"id": "s"}, "run": RUN, "runId": 77}),
        ("ms.vss-pipelines.job-state-changed-event", {"job": {"id": "j"}, "stage": {"id": "s"}, "run": RUN}),
        ("ms.vss-pipelinechecks-events.approval-pending", {"approval": {"id": "a"}, "run": RUN}),
        ("ms.vss-pipelinechecks-events.approval-completed", {"approval": {"id": "a"}, "runId": 77}),
        # Org scope (minimal): runId and runUrl survive.
        ("ms.vss-pipelines.stage-state-changed-event", {"stageName": "build", "runId": 77}),
        ("ms.vss-pipelines.run-state-changed-event", {"runUrl": f"{ORG}/{PROJECT}/_apis/pipelines/4/runs/77"}),
    ],
)
def test_a_run_and_its_build_share_one_key(event_type: str, resource: dict[str, Any]) -> None:
    assert key(event_type, resource) == f"run:77@{COLLECTION}"


RELEASE = {"id": 9, "name": "Release-9", "releaseDefinition": {"id": 2}}


@pytest.mark.parametrize(
    ("event_type", "resource"),
    [
        ("ms.vss-release.release-created-event", {"release": RELEASE, "project": {"id": PROJECT}, "id": 9}),
        ("ms.vss-release.release-abandoned-event", {"release": RELEASE, "project": {"id": PROJECT}}),
        ("ms.vss-release.release-created-event", {"id": 9, "url": f"{ORG}/{PROJECT}/_apis/Release/releases/9"}),
        (
            "ms.vss-release.deployment-started-event",
            {"environment": {"id": 31, "releaseId": 9}, "release": RELEASE, "project": {"id": PROJECT}},
        ),
        # The deployment's own id is not the release's: the release is read where it is named.
        (
            "ms.vss-release.deployment-completed-event",
            {"id": 500, "environment": {"id": 31, "releaseId": 0}, "deployment": {"id": 500, "release": RELEASE}},
        ),
        (
            "ms.vss-release.deployment-completed-event",
            {"id": 500, "url": f"{ORG}/{PROJECT}/_apis/Release/releases/9/environments/31"},
        ),
        ("ms.vss-release.deployment-approval-pending-event", {"approval": {"id": 3, "release": RELEASE}}),
    ],
)
def test_release_events_are_ordered_per_release_of_a_project(event_type: str, resource: dict[str, Any]) -> None:
    assert key(event_type, resource) == f"release:{PROJECT}/9@{COLLECTION}"


def test_a_release_without_a_project_container_takes_the_resources_project() -> None:
    containers = {"collection": {"id": COLLECTION}}
    resource = {"release": RELEASE, "project": {"id": PROJECT}}
    assert key("ms.vss-release.release-created-event", resource, containers) == f"release:{PROJECT}/9@{COLLECTION}"
    assert key("ms.vss-release.release-created-event", {"release": RELEASE}, None) == "release:9"


def test_the_organisation_is_part_of_the_key() -> None:
    item = {"id": 42}
    other = {"collection": {"id": "another-collection"}}
    assert key("workitem.created", item) != key("workitem.created", item, other)
    assert key("workitem.created", item, {"account": {"id": "acct"}}) == "work-item:42@acct"
    assert key("workitem.created", item, None) == "work-item:42"


def test_no_key_for_unknown_types_or_resources_that_name_no_object() -> None:
    assert key("tfvc.checkin", {"changesetId": 4}) is None
    assert "tfvc.checkin" not in KNOWN_EVENT_TYPES
    assert key("workitem.created", {"rev": 1}) is None
    assert key("workitem.created", {"id": 0}) is None  # Azure's "none"
    assert key("build.complete", {"id": True}) is None
    assert key("git.push", {"pushId": 7}) is None
    event = parse_event(envelope(eventType="tfvc.checkin", resource={"changesetId": 4}))
    assert not event.known and event.object_key is None


def test_every_known_type_names_its_object() -> None:
    resource = {
        "id": 5,
        "repository": {"id": REPO},
        "workItemId": 5,
        "runId": 5,
        "release": {"id": 5},
    }
    for event_type in KNOWN_EVENT_TYPES:
        assert key(event_type, resource) is not None, event_type
