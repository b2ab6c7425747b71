"""Azure's service-hook ``resource`` for each org event (reference section 6.3).

Pure functions of :mod:`kiosk.emulator.org.model` objects. What differs from the REST shapes, on
purpose, because Azure's payloads differ: work-item identity fields are strings
(``"Name <email>"``), not IdentityRefs; ``workitem.updated`` is a WorkItemUpdate (only the changed
fields, as ``{oldValue, newValue}``, with the whole revision beside it); ``workitem.deleted`` points
at the recycle bin. The ``git.repo.*`` resources are unconfirmed in the reference; they follow its
"likely" shapes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

from kiosk.emulator.org.model import (
    Commit,
    Deployment,
    FieldValue,
    GitRepository,
    Organisation,
    Push,
    Release,
    ReleaseEnvironment,
    User,
    WorkItem,
    WorkItemRevision,
)
from kiosk.emulator.shapes_core import azure_date, identity_ref, user_ref
from kiosk.emulator.shapes_git import repository_json, repository_url
from kiosk.emulator.shapes_release import deployment_json, release_environment_json, release_json, release_url
from kiosk.emulator.shapes_wit import work_item_url

__all__ = [
    "RELEASE_ENVIRONMENT_STATUS",
    "deployment_completed_resource",
    "push_resource",
    "release_created_resource",
    "repo_created_resource",
    "repo_deleted_resource",
    "repo_renamed_resource",
    "repo_status_resource",
    "work_item_resource",
    "work_item_update_resource",
]

RELEASE_ENVIRONMENT_STATUS: Final = {
    "succeeded": "4",
    "canceled": "8",
    "rejected": "16",
    "partiallySucceeded": "128",
}
"""The ``releaseEnvironmentStatus`` publisher-input values of a finished deployment (reference 6.3)."""
_REVISED_NEVER: Final = "9999-01-01T00:00:00Z"
"""Azure's ``System.RevisedDate`` of the latest revision: not revised yet."""


# --- git ------------------------------------------------------------------------------------------


def _repository_in_push(org: Organisation, repo: GitRepository) -> dict[str, Any]:
    body = repository_json(org, repo)
    return {key: body[key] for key in ("id", "name", "url", "project", "defaultBranch", "remoteUrl") if key in body}


def _commit_in_push(org: Organisation, repo: GitRepository, commit: Commit) -> dict[str, Any]:
    return {
        "commitId": commit.commit_id,
        "author": {"name": commit.author_name, "email": commit.author_email, "date": azure_date(commit.author_date)},
        "committer": {
            "name": commit.committer_name,
            "email": commit.committer_email,
            "date": azure_date(commit.committer_date),
        },
        "comment": commit.comment,
        "url": f"{repository_url(org, repo)}/commits/{commit.commit_id}",
    }


def push_resource(org: Organisation, repo: GitRepository, push: Push) -> dict[str, Any]:
    """``git.push``: the GitPush with who pushed, the repository (and its project), ref updates and commits."""
    return {
        "commits": [_commit_in_push(org, repo, repo.commits[c]) for c in push.commit_ids if c in repo.commits],
        "refUpdates": [
            {"name": u.name, "oldObjectId": u.old_object_id, "newObjectId": u.new_object_id} for u in push.ref_updates
        ],
        "repository": _repository_in_push(org, repo),
        "pushedBy": user_ref(org, push.pushed_by),
        "pushId": push.push_id,
        "date": azure_date(push.date),
        "url": f"{repository_url(org, repo)}/pushes/{push.push_id}",
    }


def repo_created_resource(org: Organisation, repo: GitRepository, by: User, at: datetime) -> dict[str, Any]:
    """``git.repo.created``: ``{repository, initiatedBy, utcTimestamp}`` (ingesters read ``repository.id``)."""
    return {
        "repository": repository_json(org, repo),
        "initiatedBy": identity_ref(org, by),
        "utcTimestamp": azure_date(at),
    }


def repo_renamed_resource(
    org: Organisation, repo: GitRepository, old_name: str, by: User, at: datetime
) -> dict[str, Any]:
    """``git.repo.renamed``: the created shape plus ``oldName`` and ``newName``."""
    return {**repo_created_resource(org, repo, by, at), "oldName": old_name, "newName": repo.name}


def repo_deleted_resource(org: Organisation, repo: GitRepository, by: User, at: datetime) -> dict[str, Any]:
    """``git.repo.deleted``: what is left of a deleted repository (its id, name and project)."""
    return {
        "repositoryId": repo.id,
        "repositoryName": repo.name,
        "projectId": repo.project_id,
        "isHardDelete": False,
        "initiatedBy": identity_ref(org, by),
        "utcTimestamp": azure_date(at),
    }


def repo_status_resource(org: Organisation, repo: GitRepository, by: User, at: datetime) -> dict[str, Any]:
    """``git.repo.statuschanged``: the repository and whether it is now disabled."""
    return {**repo_created_resource(org, repo, by, at), "disabled": repo.is_disabled}


# --- work items -----------------------------------------------------------------------------------


def _hook_value(value: FieldValue) -> Any:
    """A field value as service hooks send it: identities as ``"Name <email>"``, dates as Azure's text."""
    if isinstance(value, User):
        return f"{value.display_name} <{value.principal_name}>"
    if isinstance(value, datetime):
        return azure_date(value)
    return value


def _item_links(org: Organisation, item: WorkItem) -> dict[str, Any]:
    url = work_item_url(org, item)
    return {
        "self": {"href": url},
        "workItemUpdates": {"href": f"{url}/updates"},
        "workItemRevisions": {"href": f"{url}/revisions"},
        "workItemComments": {"href": f"{url}/comments"},
        "workItemType": {
            "href": f"{org.url}/{item.project_id}/_apis/wit/workItemTypes/{quote(item.work_item_type, safe='')}"
        },
        "fields": {"href": f"{org.url}/{item.project_id}/_apis/wit/fields"},
    }


def work_item_resource(org: Organisation, item: WorkItem, *, deleted: bool = False) -> dict[str, Any]:
    """``workitem.created`` / ``.restored`` / ``.commented`` / ``.deleted``: the item as of its latest revision.

    ``deleted``: ``url`` and ``_links.self`` lead to the recycle bin, where Azure keeps the item.
    """
    fields = {name: _hook_value(value) for name, value in item.fields.items()}
    fields["System.Rev"] = item.rev
    links = _item_links(org, item)
    url = work_item_url(org, item)
    if deleted:
        url = f"{org.url}/{item.project_id}/_apis/wit/recyclebin/{item.id}"
        links["self"] = {"href": url}
    return {"id": item.id, "rev": item.rev, "fields": fields, "_links": links, "url": url}


def work_item_update_resource(org: Organisation, item: WorkItem, revision: WorkItemRevision) -> dict[str, Any]:
    """``workitem.updated``: a WorkItemUpdate (only what ``revision`` changed) with the full revision beside it."""
    url = work_item_url(org, item)
    previous = item.revisions[revision.rev - 2] if revision.rev >= 2 else None
    changed: dict[str, dict[str, Any]] = {"System.Rev": {"oldValue": revision.rev - 1, "newValue": revision.rev}}
    if previous is not None:
        changed["System.AuthorizedDate"] = {
            "oldValue": azure_date(previous.revised_date),
            "newValue": azure_date(revision.revised_date),
        }
        changed["System.RevisedDate"] = {"oldValue": azure_date(revision.revised_date), "newValue": _REVISED_NEVER}
        changed["System.ChangedDate"] = {
            "oldValue": azure_date(previous.revised_date),
            "newValue": azure_date(revision.revised_date),
        }
        if previous.revised_by is not revision.revised_by:
            changed["System.ChangedBy"] = {
                "oldValue": _hook_value(previous.revised_by),
                "newValue": _hook_value(revision.revised_by),
            }
    for name, (old, new) in revision.fields.items():
        entry: dict[str, Any] = {}
        if old is not None:
            entry["oldValue"] = _hook_value(old)
        if new is not None:
            entry["newValue"] = _hook_value(new)
        changed[name] = entry
    full = {name: _hook_value(value) for name, value in item.fields_at(revision.rev).items()}
    full["System.Rev"] = revision.rev
    body: dict[str, Any] = {
        "id": revision.rev,
        "workItemId": item.id,
        "rev": revision.rev,
        "revisedBy": identity_ref(org, revision.revised_by),
        "revisedDate": _REVISED_NEVER,
        "fields": changed,
    }
    if revision.relations_added:
        body["relations"] = {
            "added": [
                {
                    "rel": r.rel,
                    "url": f"{org.url}/_apis/wit/workItems/{r.target}" if isinstance(r.target, int) else r.target,
                    "attributes": {"isLocked": False, "name": r.name},
                }
                for r in revision.relations_added
            ]
        }
    body["_links"] = {
        "self": {"href": f"{url}/updates/{revision.rev}"},
        "workItemUpdates": {"href": f"{url}/updates"},
        "parent": {"href": url},
    }
    body["url"] = f"{url}/updates/{revision.rev}"
    body["revision"] = {
        "id": item.id,
        "rev": revision.rev,
        "fields": full,
        "_links": {"self": {"href": f"{url}/revisions/{revision.rev}"}, "parent": {"href": url}},
        "url": f"{url}/revisions/{revision.rev}",
    }
    return body


# --- releases -------------------------------------------------------------------------------------


def _project_ref(org: Organisation, project_id: str) -> dict[str, Any]:
    project = org.projects.get(project_id)
    return {"id": project_id, "name": project.name if project is not None else None}


def release_created_resource(org: Organisation, release: Release) -> dict[str, Any]:
    """``ms.vss-release.release-created-event``: ``{release, project}`` (plus ``id``/``url``)."""
    return {
        "release": release_json(org, release, full=True),
        "project": _project_ref(org, release.project_id),
        "id": release.id,
        "url": release_url(org, release),
    }


def deployment_completed_resource(
    org: Organisation, release: Release, environment: ReleaseEnvironment, deployment: Deployment, comment: str
) -> dict[str, Any]:
    """``ms.vss-release.deployment-completed-event``: the stage, the release, the deployment, with real ids
    on both paths ingesters read (``deployment.release.id`` and ``environment.releaseId``)."""
    return {
        "id": deployment.id,
        "url": f"{release_url(org, release)}/environments/{environment.id}",
        "stageName": environment.name,
        "attemptId": deployment.attempt,
        "environment": release_environment_json(org, release, environment),
        "release": release_json(org, release, full=True),
        "project": _project_ref(org, release.project_id),
        "deployment": deployment_json(org, deployment),
        "comment": comment,
        "data": {},
    }
