"""Azure's JSON for environments and their deployment records (reference 3.6), and for classic release
definitions, releases and deployments (reference 3.7).

Pure functions of :mod:`kiosk.emulator.org.model` objects. Release URLs are the ``vsrm`` host's
paths served on the org's own host, as Azure DevOps Server serves them:
``{org}/{projectId}/_apis/Release/…``.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from kiosk.emulator.models import stable_id
from kiosk.emulator.org.model import (
    Deployment,
    Environment,
    EnvironmentDeployment,
    Organisation,
    Project,
    Release,
    ReleaseDefinition,
    ReleaseEnvironment,
)
from kiosk.emulator.shapes_core import azure_date, links_json, user_ref

__all__ = [
    "DEFINITION_EXPANDS",
    "RELEASE_EXPANDS",
    "deployment_json",
    "environment_json",
    "environment_record_json",
    "release_definition_json",
    "release_environment_json",
    "release_json",
]

DEFINITION_EXPANDS: Final = frozenset(
    {"none", "environments", "artifacts", "triggers", "variables", "tags", "lastrelease"}
)
RELEASE_EXPANDS: Final = frozenset(
    {"none", "environments", "artifacts", "approvals", "manualinterventions", "variables", "tags"}
)
_DISTRIBUTED_TASK_OWNER: Final = "00025394-6065-48ca-87d9-7f5672854ef7"
"""The service that owns environment deployment records (Azure Pipelines' distributed task service)."""


def _short_identity(org: Organisation, user_id: str) -> dict[str, Any] | None:
    """The identity an environment names its creator with: id, display name, unique name only."""
    user = org.users.get(user_id)
    if user is None:
        return None
    return {"displayName": user.display_name, "id": user.id, "uniqueName": user.principal_name}


def _project_ref(project: Project) -> dict[str, Any]:
    return {"id": project.id, "name": project.name}


def _web(org: Organisation, project: Project) -> str:
    return f"{org.url}/{quote(project.name, safe='')}"


# --- environments ---------------------------------------------------------------------------------


def environment_json(org: Organisation, environment: Environment, *, resources: bool = False) -> dict[str, Any]:
    """An ``EnvironmentInstance``; ``resources`` (``expands=resourceReferences``): none are registered."""
    project = org.projects[environment.project_id]
    body: dict[str, Any] = {
        "id": environment.id,
        "name": environment.name,
        "description": environment.description,
        "createdBy": _short_identity(org, environment.created_by),
        "createdOn": azure_date(environment.created_on),
        "lastModifiedBy": _short_identity(org, environment.created_by),
        "lastModifiedOn": azure_date(environment.last_modified_on),
        "project": _project_ref(project),
    }
    if resources:
        body["resources"] = []
    return body


def _build_owner(org: Organisation, project: Project, kind: str, owner_id: int, name: str) -> dict[str, Any]:
    """A ``TaskOrchestrationOwner``: the build definition or the build (run) behind a deployment record."""
    if kind == "definition":
        api = f"{org.url}/{project.id}/_apis/build/Definitions/{owner_id}"
        web = f"{_web(org, project)}/_build/definition?definitionId={owner_id}"
    else:
        api = f"{org.url}/{project.id}/_apis/build/Builds/{owner_id}"
        web = f"{_web(org, project)}/_build/results?buildId={owner_id}"
    return {"_links": {"web": {"href": web}, "self": {"href": api}}, "id": owner_id, "name": name}


def environment_record_json(org: Organisation, record: EnvironmentDeployment) -> dict[str, Any]:
    """An ``EnvironmentDeploymentExecutionRecord``: which run deployed to the environment, and how it ended."""
    environment = org.environments[record.environment_id]
    project = org.projects[environment.project_id]
    return {
        "id": record.id,
        "requestIdentifier": stable_id(org.name.lower(), "environment-request", str(record.id)),
        "environmentId": record.environment_id,
        "serviceOwner": _DISTRIBUTED_TASK_OWNER,
        "scopeId": project.id,
        "planType": "Build",
        "planId": record.plan_id,
        "stageName": record.stage_name,
        "jobName": record.job_name,
        "stageAttempt": record.stage_attempt,
        "jobAttempt": record.job_attempt,
        "definition": _build_owner(org, project, "definition", record.definition_id, record.definition_name),
        "owner": _build_owner(org, project, "build", record.owner_id, record.owner_name),
        "result": record.result,
        "queueTime": azure_date(record.queue_time),
        "startTime": azure_date(record.start_time),
        "finishTime": azure_date(record.finish_time),
    }


# --- release definitions --------------------------------------------------------------------------


def _release_api(org: Organisation, project_id: str) -> str:
    return f"{org.url}/{project_id}/_apis/Release"


def definition_url(org: Organisation, definition: ReleaseDefinition) -> str:
    return f"{_release_api(org, definition.project_id)}/definitions/{definition.id}"


def release_url(org: Organisation, release: Release) -> str:
    return f"{_release_api(org, release.project_id)}/releases/{release.id}"


def _definition_links(org: Organisation, project: Project, definition: ReleaseDefinition) -> dict[str, Any]:
    web = f"{_web(org, project)}/_release?definitionId={definition.id}"
    return links_json(self=definition_url(org, definition), web=web)


def _shallow_reference(item_id: int, name: str, url: str, links: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A release area ``…ShallowReference``: id and name, what more the type has, then its url and links."""
    return {"id": item_id, "name": name, **more, "url": url, "_links": links}


def _definition_reference(org: Organisation, definition: ReleaseDefinition) -> dict[str, Any]:
    """A ``ReleaseDefinitionShallowReference``."""
    project = org.projects[definition.project_id]
    url, links = definition_url(org, definition), _definition_links(org, project, definition)
    return _shallow_reference(
        definition.id, definition.name, url, links, path=definition.path, projectReference=_project_ref(project)
    )


def _release_links(org: Organisation, project: Project, release: Release) -> dict[str, Any]:
    web = f"{_web(org, project)}/_releaseProgress?releaseId={release.id}&_a=release-pipeline-progress"
    return links_json(self=release_url(org, release), web=web)


def _release_reference(org: Organisation, release: Release) -> dict[str, Any]:
    """A ``ReleaseShallowReference``."""
    project = org.projects[release.project_id]
    return _shallow_reference(
        release.id, release.name, release_url(org, release), _release_links(org, project, release)
    )


def _artifacts(org: Organisation, build_id: int | None, *, with_version: bool) -> list[dict[str, Any]]:
    """The primary Build artifact: the build definition a release deploys (and, for a release, which build)."""
    build = org.builds.get(build_id) if build_id is not None else None
    if build is None:
        return []
    definition = org.build_definitions.get(build.definition_id)
    project = org.projects.get(build.project_id)
    if definition is None or project is None:
        return []
    reference: dict[str, Any] = {
        "definition": {"id": str(definition.id), "name": definition.name},
        "project": {"id": project.id, "name": project.name},
        "defaultVersionType": {"id": "latestType", "name": "Latest"},
    }
    if with_version:
        reference["version"] = {"id": str(build.id), "name": build.build_number}
        reference["branch"] = {"id": build.source_branch, "name": build.source_branch}
        reference["sourceVersion"] = {"id": build.source_version, "name": build.source_version}
    return [
        {
            "sourceId": f"{project.id}:{definition.id}",
            "type": "Build",
            "alias": f"_{definition.name}",
            "definitionReference": reference,
            "isPrimary": True,
            "isRetained": False,
        }
    ]


def _releases_of(org: Organisation, definition: ReleaseDefinition) -> list[Release]:
    return [release for release in org.releases.values() if release.definition_id == definition.id]


def _approvals(rank: int) -> dict[str, Any]:
    """Automated approvals (nobody has to approve), as a stage without approvers has them."""
    return {
        "approvals": [{"rank": 1, "isAutomated": True, "isNotificationOn": False, "id": rank}],
        "approvalOptions": None,
    }


def _definition_stage_json(
    org: Organisation, definition: ReleaseDefinition, stage: ReleaseEnvironment, releases: list[Release]
) -> dict[str, Any]:
    """A ``ReleaseDefinitionEnvironment`` (a stage of the definition)."""
    body: dict[str, Any] = {
        "id": stage.id,
        "name": stage.name,
        "rank": stage.rank,
        "owner": user_ref(org, definition.created_by),
        "variables": {},
        "variableGroups": [],
        "preDeployApprovals": _approvals(stage.rank * 2 - 1),
        "postDeployApprovals": _approvals(stage.rank * 2),
        "deployPhases": [],
        "environmentOptions": {"emailNotificationType": "OnlyOnFailure", "skipArtifactsDownload": False},
        "demands": [],
        "conditions": [{"name": "ReleaseStarted", "conditionType": "event", "value": ""}] if stage.rank == 1 else [],
        "executionPolicy": {"concurrencyCount": 1, "queueDepthCount": 0},
        "schedules": [],
        "retentionPolicy": {"daysToKeep": 30, "releasesToKeep": 3, "retainBuild": True},
        "properties": {},
        "environmentTriggers": [],
    }
    deployed = [r for r in releases if any(e.definition_environment_id == stage.id for e in r.environments)]
    if deployed:
        body["currentRelease"] = _release_reference(org, max(deployed, key=lambda r: r.id))
    return body


def release_definition_json(
    org: Organisation, definition: ReleaseDefinition, expands: frozenset[str] = frozenset(), *, full: bool = False
) -> dict[str, Any]:
    """A ``ReleaseDefinition``: the list form, plus what ``expands`` names; ``full`` (a single definition) has
    everything but the last release."""
    project = org.projects[definition.project_id]
    releases = _releases_of(org, definition)
    body: dict[str, Any] = {
        "source": "userInterface",
        "revision": definition.revision,
        "description": definition.description,
        "createdBy": user_ref(org, definition.created_by),
        "createdOn": azure_date(definition.created_on),
        "modifiedBy": user_ref(org, definition.created_by),
        "modifiedOn": azure_date(definition.modified_on),
        "isDeleted": definition.is_deleted,
        "variableGroups": [],
        "releaseNameFormat": definition.release_name_format,
        "properties": {},
        "id": definition.id,
        "name": definition.name,
        "path": definition.path,
        "projectReference": _project_ref(project),
        "url": definition_url(org, definition),
        "_links": _definition_links(org, project, definition),
    }
    if full or "environments" in expands:
        body["environments"] = [_definition_stage_json(org, definition, s, releases) for s in definition.environments]
    if full or "artifacts" in expands:
        first = min(releases, key=lambda r: r.id) if releases else None
        body["artifacts"] = _artifacts(org, first.build_id if first else None, with_version=False)
    if full or "triggers" in expands:
        body["triggers"] = []
    if full or "variables" in expands:
        body["variables"] = {}
    if full or "tags" in expands:
        body["tags"] = list(definition.tags)
    if "lastrelease" in expands and releases:
        last = max(releases, key=lambda r: r.id)
        body["lastRelease"] = {
            "id": last.id,
            "name": last.name,
            "_links": {},
            "artifacts": [],
            "description": last.description,
            "releaseDefinition": {"id": definition.id, "projectReference": None, "_links": {}},
            "createdOn": azure_date(last.created_on),
            "createdBy": user_ref(org, last.created_by),
            "modifiedBy": user_ref(org, last.created_by),
            "reason": last.reason,
        }
    return body


# --- releases and deployments ---------------------------------------------------------------------


def _deployments_of(org: Organisation, release: Release, environment: ReleaseEnvironment) -> list[Deployment]:
    return [
        d for d in org.deployments.values() if d.release_id == release.id and d.release_environment_id == environment.id
    ]


def _deploy_step_json(org: Organisation, deployment: Deployment) -> dict[str, Any]:
    """A ``DeploymentAttempt`` of a release stage."""
    return {
        "id": deployment.id,
        "deploymentId": deployment.id,
        "attempt": deployment.attempt,
        "reason": deployment.reason,
        "status": deployment.deployment_status,
        "operationStatus": deployment.operation_status,
        "releaseDeployPhases": [],
        "requestedBy": user_ref(org, deployment.requested_by),
        "requestedFor": user_ref(org, deployment.requested_for),
        "queuedOn": azure_date(deployment.queued_on),
        "lastModifiedBy": user_ref(org, deployment.requested_by),
        "lastModifiedOn": azure_date(deployment.last_modified_on),
        "hasStarted": True,
        "tasks": [],
        "runPlanId": stable_id(org.name.lower(), "release-plan", str(deployment.id)),
        "issues": [],
    }


def release_environment_url(org: Organisation, release: Release, environment: ReleaseEnvironment) -> str:
    return f"{release_url(org, release)}/environments/{environment.id}"


def release_environment_json(org: Organisation, release: Release, environment: ReleaseEnvironment) -> dict[str, Any]:
    """A ``ReleaseEnvironment``: one stage of a release, with its deployment attempts."""
    definition = org.release_definitions.get(release.definition_id)
    deployments = _deployments_of(org, release, environment)
    body: dict[str, Any] = {
        "id": environment.id,
        "releaseId": release.id,
        "name": environment.name,
        "status": environment.status,
        "variables": {},
        "variableGroups": [],
        "preDeployApprovals": [],
        "postDeployApprovals": [],
        "deploySteps": [_deploy_step_json(org, d) for d in deployments],
        "rank": environment.rank,
        "definitionEnvironmentId": environment.definition_environment_id,
        "environmentOptions": {"emailNotificationType": "OnlyOnFailure", "skipArtifactsDownload": False},
        "demands": [],
        "conditions": [],
        "createdOn": azure_date(release.created_on),
        "modifiedOn": azure_date(max((d.last_modified_on for d in deployments), default=release.modified_on)),
        "workflowTasks": [],
        "deployPhasesSnapshot": [],
        "owner": user_ref(org, release.created_by),
        "schedules": [],
        "release": _release_reference(org, release),
        "releaseCreatedBy": user_ref(org, release.created_by),
        "triggerReason": "After successful deployment of previous stage"
        if environment.rank > 1
        else "After release creation",
        "processParameters": {},
    }
    if definition is not None:
        body["releaseDefinition"] = _definition_reference(org, definition)
    for deployment in reversed(deployments):
        if deployment.completed_on is not None:
            minutes = (deployment.completed_on - deployment.started_on).total_seconds() / 60
            body["timeToDeploy"] = round(minutes, 2)
            break
    return body


def release_json(
    org: Organisation, release: Release, expands: frozenset[str] = frozenset(), *, full: bool = False
) -> dict[str, Any]:
    """A ``Release``: the list form, plus what ``expands`` names; ``full`` (a single release) has its stages
    and artifacts."""
    project = org.projects[release.project_id]
    definition = org.release_definitions.get(release.definition_id)
    body: dict[str, Any] = {
        "id": release.id,
        "name": release.name,
        "status": release.status,
        "createdOn": azure_date(release.created_on),
        "modifiedOn": azure_date(release.modified_on),
        "modifiedBy": user_ref(org, release.created_by),
        "createdBy": user_ref(org, release.created_by),
        "createdFor": user_ref(org, release.created_by),
        "variables": {},
        "variableGroups": [],
        "releaseDefinitionRevision": definition.revision if definition is not None else 1,
        "description": release.description,
        "reason": release.reason,
        "releaseNameFormat": definition.release_name_format if definition is not None else "Release-$(rev:r)",
        "keepForever": False,
        "definitionSnapshotRevision": 1,
        "logsContainerUrl": f"{release_url(org, release)}/logs",
        "url": release_url(org, release),
        "_links": _release_links(org, project, release),
        "tags": list(release.tags),
        "triggeringArtifactAlias": None,
        "projectReference": _project_ref(project),
        "properties": {},
    }
    if definition is not None:
        body["releaseDefinition"] = _definition_reference(org, definition)
    if full or "environments" in expands:
        body["environments"] = [release_environment_json(org, release, e) for e in release.environments]
    if full or "artifacts" in expands:
        body["artifacts"] = _artifacts(org, release.build_id, with_version=True)
    return body


def deployment_json(org: Organisation, deployment: Deployment) -> dict[str, Any]:
    """A ``Deployment``: one attempt at deploying one stage of one release."""
    project = org.projects[deployment.project_id]
    release = org.releases.get(deployment.release_id)
    definition = org.release_definitions.get(deployment.release_definition_id)
    body: dict[str, Any] = {
        "id": deployment.id,
        "definitionEnvironmentId": deployment.definition_environment_id,
        "attempt": deployment.attempt,
        "reason": deployment.reason,
        "deploymentStatus": deployment.deployment_status,
        "operationStatus": deployment.operation_status,
        "requestedBy": user_ref(org, deployment.requested_by),
        "requestedFor": user_ref(org, deployment.requested_for),
        "queuedOn": azure_date(deployment.queued_on),
        "startedOn": azure_date(deployment.started_on),
        "completedOn": azure_date(deployment.completed_on),
        "lastModifiedOn": azure_date(deployment.last_modified_on),
        "lastModifiedBy": user_ref(org, deployment.requested_by),
        "conditions": [],
        "preDeployApprovals": [],
        "postDeployApprovals": [],
        "projectReference": _project_ref(project),
        "_links": {},
    }
    if release is not None:
        body["release"] = {
            **_release_reference(org, release),
            "artifacts": _artifacts(org, release.build_id, with_version=True),
            "webAccessUri": _release_links(org, project, release)["web"]["href"],
        }
        environment = next((e for e in release.environments if e.id == deployment.release_environment_id), None)
        if environment is not None:
            body["releaseEnvironment"] = {
                "id": environment.id,
                "name": environment.name,
                "url": release_environment_url(org, release, environment),
                "_links": {},
            }
    if definition is not None:
        body["releaseDefinition"] = _definition_reference(org, definition)
    return body
