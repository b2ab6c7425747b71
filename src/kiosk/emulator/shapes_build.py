"""Azure's JSON for an organisation's build definitions, builds and build timelines (reference 3.5).

Pure functions of :mod:`kiosk.emulator.org.model` objects. Runs of the emulator's configured
pipelines keep their own shapes (:func:`kiosk.emulator.shapes.build_json`); these are the
generated organisation's history.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import quote

from kiosk.emulator.models import stable_id
from kiosk.emulator.org.model import Build, BuildDefinition, Commit, GitRepository, Organisation, TimelineStep
from kiosk.emulator.shapes import run_outcome_json
from kiosk.emulator.shapes_core import azure_date, identity_ref, project_reference, user_ref
from kiosk.emulator.shapes_git import repository_url

__all__ = [
    "build_change_json",
    "build_definition_json",
    "generated_build_json",
    "generated_pipeline_json",
    "generated_run_json",
    "generated_timeline_json",
]

_MESSAGE_IN_CHANGES = 200
"""A build change's ``message`` is the commit message cut to this many characters (``messageTruncated``)."""


def _definition_url(org: Organisation, definition: BuildDefinition) -> str:
    return f"{org.url}/{definition.project_id}/_apis/build/Definitions/{definition.id}?revision={definition.revision}"


def _queue(build_queue_id: int, name: str) -> dict[str, Any]:
    return {"id": build_queue_id, "name": name, "pool": {"id": 1, "name": name, "isHosted": True}}


def build_definition_json(org: Organisation, definition: BuildDefinition, *, full: bool = False) -> dict[str, Any]:
    """A ``BuildDefinitionReference`` (lists) or, with ``full``, the definition with repository and process."""
    project = org.projects[definition.project_id]
    web = f"{org.url}/{quote(project.name, safe='')}/_build/definition?definitionId={definition.id}"
    body: dict[str, Any] = {
        "_links": {"self": {"href": _definition_url(org, definition)}, "web": {"href": web}},
        "quality": "definition",
        "authoredBy": user_ref(org, definition.authored_by),
        "drafts": [],
        "queue": _queue(9, "Azure Pipelines"),
        "id": definition.id,
        "name": definition.name,
        "url": _definition_url(org, definition),
        "uri": f"vstfs:///Build/Definition/{definition.id}",
        "path": definition.path,
        "type": "build",
        "queueStatus": definition.queue_status,
        "revision": definition.revision,
        "createdDate": azure_date(definition.created_date),
        "project": project_reference(org, project),
    }
    if full:
        repo = org.repositories.get(definition.repository_id)
        body["repository"] = {
            "id": definition.repository_id,
            "type": "TfsGit",
            "name": repo.name if repo is not None else None,
            "url": repo.remote_url if repo is not None else None,
            "defaultBranch": definition.default_branch,
            "clean": None,
            "checkoutSubmodules": False,
            "properties": {"reportBuildStatus": "true"},
        }
        body["process"] = {"yamlFilename": definition.yaml_filename, "type": 2}
        body.update({"triggers": [], "variables": {}, "options": [], "retentionRules": [], "tags": []})
        body["jobAuthorizationScope"] = "projectCollection"
        body["badgeEnabled"] = False
    return body


def _pipeline_url(org: Organisation, definition: BuildDefinition) -> str:
    return f"{org.url}/{definition.project_id}/_apis/pipelines/{definition.id}?revision={definition.revision}"


def generated_pipeline_json(org: Organisation, definition: BuildDefinition) -> dict[str, Any]:
    """A generated build definition as the Pipelines API shows it (a ``Pipeline``: the same id, name, folder)."""
    project = org.projects[definition.project_id]
    web = f"{org.url}/{quote(project.name, safe='')}/_build/definition?definitionId={definition.id}"
    return {
        "_links": {"self": {"href": _pipeline_url(org, definition)}, "web": {"href": web}},
        "configuration": {
            "path": definition.yaml_filename,
            "repository": {"id": definition.repository_id, "type": "azureReposGit"},
            "type": "yaml",
        },
        "url": _pipeline_url(org, definition),
        "id": definition.id,
        "revision": definition.revision,
        "name": definition.name,
        "folder": definition.path,
    }


_RUN_STATES = {"completed": "completed", "inProgress": "inProgress", "cancelling": "canceling"}
"""A build's status → the Runs API's RunState (``notStarted`` has no counterpart: ``unknown``)."""


def generated_run_json(org: Organisation, build: Build) -> dict[str, Any]:
    """A generated build as the Runs API lists it (``_apis/pipelines/{id}/runs``): a ``Run`` of its definition."""
    definition = org.build_definitions[build.definition_id]
    project = org.projects[build.project_id]
    url = f"{org.url}/{project.id}/_apis/pipelines/{definition.id}/runs/{build.id}"
    web = f"{org.url}/{quote(project.name, safe='')}/_build/results?buildId={build.id}"
    pipeline = {
        "url": _pipeline_url(org, definition),
        "id": definition.id,
        "revision": definition.revision,
        "name": definition.name,
        "folder": definition.path,
    }
    body: dict[str, Any] = {
        "_links": {
            "self": {"href": url},
            "web": {"href": web},
            "pipeline": {"href": _pipeline_url(org, definition)},
        },
        "pipeline": pipeline,
        "state": _RUN_STATES.get(build.status, "unknown"),
        "createdDate": azure_date(build.queue_time),
        "url": url,
        "id": build.id,
        "name": build.build_number,
    }
    body.update(run_outcome_json(build.result, build.finish_time))
    return body


def _build_url(org: Organisation, build: Build) -> str:
    return f"{org.url}/{build.project_id}/_apis/build/Builds/{build.id}"


def generated_build_json(org: Organisation, build: Build) -> dict[str, Any]:
    """A ``Build`` of the generated history."""
    project = org.projects[build.project_id]
    definition = org.build_definitions.get(build.definition_id)
    repo = org.repositories.get(build.repository_id)
    url = _build_url(org, build)
    web = f"{org.url}/{quote(project.name, safe='')}/_build/results?buildId={build.id}"
    plan_id = _plan_id(org, build)
    project_ref = project_reference(org, project)
    body: dict[str, Any] = {
        "_links": {
            "self": {"href": url},
            "web": {"href": web},
            "timeline": {"href": f"{url}/Timeline"},
        },
        "id": build.id,
        "buildNumber": build.build_number,
        "buildNumberRevision": 1,
        "status": build.status,
        "queueTime": azure_date(build.queue_time),
        "url": url,
        "uri": f"vstfs:///Build/Build/{build.id}",
        "sourceBranch": build.source_branch,
        "sourceVersion": build.source_version,
        "queue": _queue(build.queue_id, build.queue_name),
        "priority": "normal",
        "reason": build.reason,
        "requestedFor": user_ref(org, build.requested_for),
        "requestedBy": user_ref(org, build.requested_by),
        "lastChangedDate": azure_date(build.finish_time or build.start_time or build.queue_time),
        "lastChangedBy": user_ref(org, build.requested_by),
        "orchestrationPlan": {"planId": plan_id},
        "plans": [{"planId": plan_id}],
        "logs": {"id": 0, "type": "Container", "url": f"{url}/logs"},
        "repository": {
            "id": build.repository_id,
            "type": "TfsGit",
            "name": repo.name if repo is not None else None,
            "url": repo.remote_url if repo is not None else None,
            "clean": None,
            "checkoutSubmodules": False,
        },
        "retainedByRelease": False,
        "triggeredByBuild": None,
        "tags": list(build.tags),
        "triggerInfo": {},
        "appendCommitMessageToRunName": True,
        "project": project_ref,
    }
    if definition is not None:
        body["definition"] = {
            "id": definition.id,
            "name": definition.name,
            "path": definition.path,
            "type": "build",
            "queueStatus": definition.queue_status,
            "revision": definition.revision,
            "url": _definition_url(org, definition),
            "uri": f"vstfs:///Build/Definition/{definition.id}",
            "project": project_ref,
        }
    if build.start_time is not None:
        body["startTime"] = azure_date(build.start_time)
    if build.finish_time is not None:
        body["finishTime"] = azure_date(build.finish_time)
    if build.result is not None:
        body["result"] = build.result
    return body


def _plan_id(org: Organisation, build: Build) -> str:
    return _plan_id_of(org.name.lower(), build.id)


@lru_cache(maxsize=65_536)
def _plan_id_of(org_key: str, build_id: int) -> str:
    """A build's orchestration plan GUID (a name-based UUID: costly enough to keep, ~30 µs)."""
    return stable_id(org_key, "plan", str(build_id))


def _record_json(step: TimelineStep) -> dict[str, Any]:
    return {
        "previousAttempts": [],
        "id": step.id,
        "parentId": step.parent_id,
        "type": step.type,
        "name": step.name,
        "startTime": azure_date(step.start_time),
        "finishTime": azure_date(step.finish_time),
        "currentOperation": None,
        "percentComplete": 100 if step.state == "completed" else None,
        "state": step.state,
        "result": step.result,
        "changeId": step.order,
        "workerName": "Azure Pipelines 2" if step.type == "Job" else None,
        "order": step.order,
        "errorCount": 1 if step.result == "failed" else 0,
        "warningCount": 0,
        "log": None,
        "issues": [],
        "attempt": 1,
        "identifier": None,
    }


def generated_timeline_json(org: Organisation, build: Build) -> dict[str, Any]:
    """A build's ``Timeline`` (records, no wrapper)."""
    url = _build_url(org, build)
    return {
        "records": [_record_json(step) for step in build.timeline],
        "lastChangedBy": "00000002-0000-8888-8000-000000000000",
        "lastChangedOn": azure_date(build.finish_time or build.queue_time),
        "id": _plan_id(org, build),
        "changeId": len(build.timeline),
        "url": f"{url}/Timeline",
    }


def build_change_json(org: Organisation, repo: GitRepository, commit: Commit) -> dict[str, Any]:
    """A build ``Change``: one commit the build brought, with its author as an identity when the org knows them."""
    author = identity_ref(org, org.user(commit.author_email)) or {
        "displayName": commit.author_name,
        "uniqueName": commit.author_email,
    }
    body: dict[str, Any] = {
        "id": commit.commit_id,
        "message": commit.comment[:_MESSAGE_IN_CHANGES],
        "type": "TfsGit",
        "author": author,
        "timestamp": azure_date(commit.author_date),
        "location": f"{repository_url(org, repo)}/commits/{commit.commit_id}",
        "displayUri": f"{repo.web_url}/commit/{commit.commit_id}",
    }
    if len(commit.comment) > _MESSAGE_IN_CHANGES:
        body["messageTruncated"] = True
    push = next((p for p in repo.pushes if p.push_id == commit.push_id), None) if commit.push_id else None
    pusher = org.users.get(push.pushed_by) if push is not None else None
    if pusher is not None:
        body["pusher"] = pusher.principal_name
    return body
