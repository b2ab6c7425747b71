"""What the emulator publishes and consumes, as Azure lists it: publishers, event types, consumers.

A subscription names a publisher, one of its event types and a consumer action; Azure refuses
(400) any other combination, and any publisher input (filter) the event type does not take. The
tables here are that contract, and the ``…/hooks/publishers``, ``…/eventTypes`` and
``…/consumers`` routes answer them in Azure's shapes (reference 3.11). Each event type lists the
filters Azure's subscription dialog offers for it; ``projectId`` is accepted by all of them.

Pure data and pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CONFIDENTIAL_INPUTS",
    "CONSUMER_ACTION_ID",
    "CONSUMER_ID",
    "EVENT_TYPES",
    "PUBLISHERS",
    "SERVER_INPUTS",
    "EventType",
    "Publisher",
    "consumer_action_json",
    "consumer_json",
    "event_type",
    "event_type_json",
    "publisher_json",
]

CONSUMER_ID: Final = "webHooks"
CONSUMER_ACTION_ID: Final = "httpRequest"
PROJECT_INPUT: Final = "projectId"
SERVER_INPUTS: Final = frozenset({"hostid", "tfssubscriptionid"})
"""Publisher inputs the server adds itself (lower-cased); a client echoing them back is not refused."""
CONFIDENTIAL_INPUTS: Final = frozenset({"basicAuthPassword"})
"""Consumer inputs Azure never returns (shown as ``********``)."""


@dataclass(frozen=True)
class Publisher:
    id: str
    name: str
    description: str
    service_instance_type: str


@dataclass(frozen=True)
class EventType:
    id: str
    publisher_id: str
    name: str
    description: str
    resource_versions: tuple[str, ...]
    inputs: tuple[str, ...]
    """The publisher inputs (filters) this event type takes, besides ``projectId``."""

    @property
    def default_version(self) -> str:
        return self.resource_versions[-1]


PUBLISHERS: Final = {
    "tfs": Publisher(
        "tfs", "Azure DevOps", "Events of Azure Repos, Boards and Builds", "00025394-6065-48ca-87d9-7f5672854ef7"
    ),
    "pipelines": Publisher(
        "pipelines",
        "Azure Pipelines",
        "Events of YAML pipeline runs, stages and jobs",
        "0000005b-0000-8888-8000-000000000000",
    ),
    "rm": Publisher("rm", "Release Management", "Events of classic releases", "0000000d-0000-8888-8000-000000000000"),
}

_PR = ("repository", "branch", "pullrequestCreatedBy", "pullrequestReviewersContains")
_WORK_ITEM = ("areaPath", "workItemType")


def _tfs(event_id: str, name: str, description: str, inputs: tuple[str, ...], *versions: str) -> EventType:
    return EventType(event_id, "tfs", name, description, versions or ("1.0",), inputs)


def _pipelines(event_id: str, name: str, description: str, inputs: tuple[str, ...]) -> EventType:
    return EventType(event_id, "pipelines", name, description, ("5.1-preview.1",), inputs)


def _rm(event_id: str, name: str, description: str, inputs: tuple[str, ...]) -> EventType:
    return EventType(event_id, "rm", name, description, ("3.0-preview.1",), inputs)


_ALL: Final = (
    _tfs("git.push", "Code pushed", "Code is pushed to a Git repository.", ("repository", "branch", "pushedBy")),
    _tfs("git.pullrequest.created", "Pull request created", "A pull request is created in a Git repository.", _PR),
    _tfs(
        "git.pullrequest.updated",
        "Pull request updated",
        "A pull request is updated: status, review list, reviewer vote changed or the source branch is updated.",
        (*_PR, "notificationType"),
    ),
    _tfs("git.pullrequest.merged", "Pull request merge attempted", "A pull request merge was attempted.", _PR),
    _tfs(
        "ms.vss-code.git-pullrequest-comment-event",
        "Pull request commented on",
        "A pull request is commented on.",
        ("repository", "branch"),
        "2.0",
    ),
    _tfs("git.repo.created", "Repository created", "A new Git repository is created.", ()),
    _tfs("git.repo.forked", "Repository forked", "A Git repository is forked.", ("repository",)),
    _tfs("git.repo.renamed", "Repository renamed", "A Git repository is renamed.", ("repository",)),
    _tfs("git.repo.deleted", "Repository deleted", "A Git repository is deleted.", ("repository",)),
    _tfs("git.repo.undeleted", "Repository undeleted", "A deleted Git repository is restored.", ("repository",)),
    _tfs(
        "git.repo.statuschanged",
        "Repository status changed",
        "A Git repository is disabled or enabled.",
        ("repository",),
    ),
    _tfs("workitem.created", "Work item created", "A new work item is created.", _WORK_ITEM),
    _tfs("workitem.updated", "Work item updated", "A work item is changed.", (*_WORK_ITEM, "changedFields")),
    _tfs("workitem.deleted", "Work item deleted", "A work item is deleted.", _WORK_ITEM),
    _tfs("workitem.restored", "Work item restored", "A deleted work item is restored.", _WORK_ITEM),
    _tfs(
        "workitem.commented",
        "Work item commented on",
        "A work item is commented on.",
        (*_WORK_ITEM, "commentPattern"),
    ),
    _tfs("build.complete", "Build completed", "A build completes.", ("definitionName", "buildStatus"), "1.0", "2.0"),
    _pipelines(
        "ms.vss-pipelines.run-state-changed-event",
        "Run state changed",
        "The state of a pipeline run changed.",
        ("pipelineId", "runStateId", "runResultId"),
    ),
    _pipelines(
        "ms.vss-pipelines.stage-state-changed-event",
        "Run stage state changed",
        "The state of a stage of a pipeline run changed.",
        ("pipelineId", "stageNameId", "stageStateId", "stageResultId"),
    ),
    _pipelines(
        "ms.vss-pipelines.job-state-changed-event",
        "Run job state changed",
        "The state of a job of a pipeline run changed.",
        ("pipelineId", "stageNameId", "jobNameId", "jobStateId", "jobResultId"),
    ),
    _pipelines(
        "ms.vss-pipelinechecks-events.approval-pending",
        "Run stage waiting for approval",
        "An approval is pending for a stage of a pipeline run.",
        ("pipelineId", "stageNameId", "environmentName"),
    ),
    _pipelines(
        "ms.vss-pipelinechecks-events.approval-completed",
        "Run stage approval completed",
        "An approval of a stage of a pipeline run completed.",
        ("pipelineId", "stageNameId", "environmentName"),
    ),
    _pipelines(
        "ms.vss-pipelinechecks-events.check-updated-event",
        "Check updated",
        "A check of a pipeline run was updated.",
        ("pipelineId",),
    ),
    _rm(
        "ms.vss-release.release-created-event",
        "Release created",
        "A release is created.",
        ("releaseDefinitionId",),
    ),
    _rm(
        "ms.vss-release.release-abandoned-event",
        "Release abandoned",
        "A release is abandoned.",
        ("releaseDefinitionId",),
    ),
    _rm(
        "ms.vss-release.deployment-started-event",
        "Release deployment started",
        "A deployment of a release to a stage started.",
        ("releaseDefinitionId", "releaseEnvironmentId"),
    ),
    _rm(
        "ms.vss-release.deployment-completed-event",
        "Release deployment completed",
        "A deployment of a release to a stage completed.",
        ("releaseDefinitionId", "releaseEnvironmentId", "releaseEnvironmentStatus"),
    ),
)

EVENT_TYPES: Final = {event.id: event for event in _ALL}
"""Every event type served, by id (Azure's ids are case-sensitive; lookups here are too)."""


def event_type(publisher_id: str, event_id: str) -> EventType | None:
    """The event type ``event_id`` of ``publisher_id``, or None when that publisher has no such event."""
    found = EVENT_TYPES.get(event_id)
    return found if found is not None and found.publisher_id == publisher_id else None


# ---------------------------------------------------------------------------------------------- JSON


def _input(
    input_id: str,
    name: str,
    description: str,
    *,
    confidential: bool = False,
    required: bool = False,
    pattern: str | None = None,
    max_length: int | None = None,
) -> dict[str, Any]:
    validation: dict[str, Any] = {"dataType": "string", "isRequired": required}
    if pattern is not None:
        validation["pattern"] = pattern
    if max_length is not None:
        validation["maxLength"] = max_length
    return {
        "id": input_id,
        "name": name,
        "description": description,
        "inputMode": "passwordBox" if confidential else "textBox",
        "isConfidential": confidential,
        "useInDefaultDescription": input_id == "url",
        "validation": validation,
    }


_FILTER_NAMES: Final = {
    "projectId": "Project",
    "repository": "Repository",
    "branch": "Branch",
    "pushedBy": "Pushed by a member of group",
    "pullrequestCreatedBy": "Pull request created by a member of group",
    "pullrequestReviewersContains": "Reviewer includes a member of group",
    "notificationType": "Change",
    "areaPath": "Area path",
    "workItemType": "Work item type",
    "changedFields": "Field",
    "commentPattern": "Contains string",
    "definitionName": "Build pipeline",
    "buildStatus": "Build status",
    "pipelineId": "Pipeline",
    "runStateId": "State",
    "runResultId": "Result",
    "stageNameId": "Stage",
    "stageStateId": "State",
    "stageResultId": "Result",
    "jobNameId": "Job",
    "jobStateId": "State",
    "jobResultId": "Result",
    "environmentName": "Environment",
    "releaseDefinitionId": "Release pipeline",
    "releaseEnvironmentId": "Stage",
    "releaseEnvironmentStatus": "Status",
}


def _url(base: str, org: str, path: str) -> str:
    return f"{base}/{org}/_apis/hooks/{path}"


def event_type_json(base: str, org: str, event: EventType) -> dict[str, Any]:
    """An ``EventTypeDescriptor``: the event's filters as input descriptors."""
    inputs = [_input(PROJECT_INPUT, "Project", "Only events of this project (empty: any project).")]
    inputs += [
        _input(i, _FILTER_NAMES.get(i, i), f"Only events whose {_FILTER_NAMES.get(i, i).lower()} matches.")
        for i in event.inputs
    ]
    return {
        "publisherId": event.publisher_id,
        "id": event.id,
        "name": event.name,
        "description": event.description,
        "supportedResourceVersions": list(event.resource_versions),
        "inputDescriptors": inputs,
        "url": _url(base, org, f"publishers/{event.publisher_id}/eventTypes/{event.id}"),
    }


def publisher_json(base: str, org: str, publisher: Publisher) -> dict[str, Any]:
    """A ``Publisher`` with its supported events."""
    url = _url(base, org, f"publishers/{publisher.id}")
    return {
        "_links": {"self": {"href": url}},
        "id": publisher.id,
        "name": publisher.name,
        "description": publisher.description,
        "supportedEvents": [event_type_json(base, org, e) for e in _ALL if e.publisher_id == publisher.id],
        "inputDescriptors": [_input(PROJECT_INPUT, "Project", "Only events of this project (empty: any project).")],
        "serviceInstanceType": publisher.service_instance_type,
        "url": url,
    }


_CONSUMER_INPUTS: Final = (
    _input("url", "URL", "The URL to which an HTTP POST is sent.", required=True, max_length=2048),
    _input("acceptUntrustedCerts", "Accept untrusted SSL certificates", "Accept any certificate of the target."),
    _input(
        "basicAuthUsername",
        "Basic authentication username",
        "Sent with basic auth.",
        pattern=r"^\S{1,256}$",
        max_length=256,
    ),
    _input(
        "basicAuthPassword",
        "Basic authentication password",
        "Sent with basic auth (HTTPS targets only).",
        confidential=True,
        pattern=r"^\S{1,256}$",
        max_length=256,
    ),
    _input("httpHeaders", "HTTP headers", "Extra headers, one `Name: value` per line."),
    _input("resourceDetailsToSend", "Resource details to send", "all, minimal or none."),
    _input("messagesToSend", "Messages to send", "all, text, html, markdown or none."),
    _input("detailedMessagesToSend", "Detailed messages to send", "all, text, html, markdown or none."),
)


def consumer_action_json(base: str, org: str) -> dict[str, Any]:
    """The one ``ConsumerAction`` served: webHooks' ``httpRequest`` (POST the event as JSON)."""
    url = _url(base, org, f"consumers/{CONSUMER_ID}/actions/{CONSUMER_ACTION_ID}")
    return {
        "_links": {"self": {"href": url}},
        "id": CONSUMER_ACTION_ID,
        "consumerId": CONSUMER_ID,
        "name": "Post via HTTP",
        "description": "This action posts a JSON object representation of the event to the specified URL.",
        "supportedEventTypes": list(EVENT_TYPES),
        "supportedResourceVersions": {e.id: list(e.resource_versions) for e in _ALL},
        "allowResourceVersionOverride": True,
        "inputDescriptors": list(_CONSUMER_INPUTS[1:]),
        "url": url,
    }


def consumer_json(base: str, org: str) -> dict[str, Any]:
    """The one ``Consumer`` served: Web Hooks."""
    url = _url(base, org, f"consumers/{CONSUMER_ID}")
    return {
        "_links": {"self": {"href": url}},
        "id": CONSUMER_ID,
        "name": "Web Hooks",
        "description": "Provides event communication via HTTP.",
        "imageUrl": "",
        "informationUrl": "https://go.microsoft.com/fwlink/?LinkID=396756",
        "authenticationType": "none",
        "inputDescriptors": [_CONSUMER_INPUTS[0]],
        "actions": [consumer_action_json(base, org)],
        "url": url,
    }
