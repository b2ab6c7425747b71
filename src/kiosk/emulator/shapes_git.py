"""Azure's JSON for git objects: repositories, refs, items (files, folders), commits, pushes, pull requests, policies.

Pure functions of :mod:`kiosk.emulator.org.model` objects (reference section 3.3). Folder object
ids are real git tree ids of the commit's files, so a folder's ``objectId`` changes exactly when
something under it does, as Azure's does.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final
from urllib.parse import urlencode

from kiosk.emulator.org.model import (
    Commit,
    FileChange,
    GitRef,
    GitRepository,
    Organisation,
    PolicyConfiguration,
    PullRequest,
    Push,
    RepoFile,
)
from kiosk.emulator.shapes_core import azure_date, project_reference, user_ref

__all__ = [
    "branch_stats_json",
    "change_counts",
    "commit_change_json",
    "commit_json",
    "folder_object_id",
    "item_json",
    "policy_json",
    "pull_request_json",
    "push_json",
    "ref_json",
    "repository_json",
    "repository_reference",
    "repository_url",
    "work_item_ref",
]

_DESCRIPTION_IN_LISTS: Final = 400
"""Azure truncates a pull request's description to 400 characters in lists."""


def repository_url(org: Organisation, repo: GitRepository) -> str:
    return f"{org.url}/{repo.project_id}/_apis/git/repositories/{repo.id}"


def repository_reference(org: Organisation, repo: GitRepository) -> dict[str, Any]:
    """The short form inside a pull request or a push."""
    project = org.projects.get(repo.project_id)
    body: dict[str, Any] = {"id": repo.id, "name": repo.name, "url": repository_url(org, repo)}
    if project is not None:
        body["project"] = project_reference(org, project)
    return body


def repository_json(org: Organisation, repo: GitRepository, *, links: bool = False) -> dict[str, Any]:
    """A ``GitRepository``."""
    body = repository_reference(org, repo)
    if repo.default_branch:
        body["defaultBranch"] = repo.default_branch
    body.update(
        {
            "size": repo.size,
            "remoteUrl": repo.remote_url,
            "sshUrl": repo.ssh_url,
            "webUrl": repo.web_url,
            "isDisabled": repo.is_disabled,
            "isInMaintenance": repo.is_in_maintenance,
        }
    )
    if repo.is_fork:
        body["isFork"] = True
        parent = org.repositories.get(repo.parent_repository_id or "")
        if parent is not None:
            body["parentRepository"] = repository_reference(org, parent)
    if links:
        url = repository_url(org, repo)
        body["_links"] = {
            "self": {"href": url},
            "project": {"href": body["project"]["url"]} if "project" in body else None,
            "web": {"href": repo.web_url},
            "ssh": {"href": repo.ssh_url},
            "commits": {"href": f"{url}/commits"},
            "refs": {"href": f"{url}/refs"},
            "pullRequests": {"href": f"{url}/pullRequests"},
            "items": {"href": f"{url}/items"},
            "pushes": {"href": f"{url}/pushes"},
        }
        body["_links"] = {k: v for k, v in body["_links"].items() if v is not None}
    return body


def ref_json(org: Organisation, repo: GitRepository, ref: GitRef) -> dict[str, Any]:
    """A ``GitRef``; its ``url`` is the refs list filtered to it, as Azure's is."""
    short = ref.name.removeprefix("refs/")
    body: dict[str, Any] = {
        "name": ref.name,
        "objectId": ref.object_id,
        "creator": user_ref(org, ref.creator_id),
        "url": f"{repository_url(org, repo)}/refs?{urlencode({'filter': short})}",
    }
    if ref.is_locked:
        body["isLocked"] = True
    return body


def _git_tree_id(entries: list[tuple[str, bool, str]]) -> str:
    """Git's tree object id for ``(name, is_folder, object id)`` entries."""
    raw = b""
    for name, is_folder, object_id in sorted(entries, key=lambda e: e[0] + ("/" if e[1] else "")):
        mode = b"40000" if is_folder else b"100644"
        raw += mode + b" " + name.encode() + b"\0" + bytes.fromhex(object_id)
    return hashlib.sha1(b"tree %d\0" % len(raw) + raw, usedforsecurity=False).hexdigest()


def folder_object_id(files: dict[str, RepoFile], folder: str) -> str:
    """The git tree id of ``folder`` (``/`` or ``/src``) in a commit whose files are ``files``."""
    prefix = folder.rstrip("/") + "/"
    children: dict[str, bool] = {}
    for path in files:
        if path.startswith(prefix):
            head, _, rest = path[len(prefix) :].partition("/")
            children[head] = children.get(head, False) or bool(rest)
    entries = []
    for name, is_folder in children.items():
        child = prefix + name
        entries.append((name, is_folder, folder_object_id(files, child) if is_folder else files[child].object_id))
    return _git_tree_id(entries)


_CONTENT_TYPES: Final = {".md": "text/markdown", ".yml": "text/yaml", ".yaml": "text/yaml", ".json": "application/json"}


def item_json(
    org: Organisation,
    repo: GitRepository,
    commit: Commit,
    path: str,
    *,
    version: str,
    version_type: str,
    content: bool = False,
    metadata: bool = False,
) -> dict[str, Any]:
    """A ``GitItem``: a file (``blob``, with its text when asked) or a folder (``tree``)."""
    query = urlencode({"path": path, "versionType": version_type, "version": version, "versionOptions": "None"})
    found = commit.files.get(path)
    body: dict[str, Any] = {
        "objectId": found.object_id if found is not None else folder_object_id(commit.files, path),
        "gitObjectType": "blob" if found is not None else "tree",
        "commitId": commit.commit_id,
        "path": path,
    }
    if found is None:
        body["isFolder"] = True
    if metadata:
        name = path.rsplit("/", 1)[-1]
        extension = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        meta: dict[str, Any] = {"fileName": name}
        if found is not None:
            meta.update(
                {
                    "extension": extension,
                    "contentType": _CONTENT_TYPES.get(extension, "text/plain"),
                    "encoding": 65001,
                    "isBinary": False,
                }
            )
        else:
            meta["isFolder"] = True
        body["contentMetadata"] = meta
    if content and found is not None:
        body["content"] = found.content.decode("utf-8", "replace")
    body["url"] = f"{repository_url(org, repo)}/items?{query}"
    return body


def _person(name: str, email: str, when: Any) -> dict[str, Any]:
    return {"name": name, "email": email, "date": azure_date(when)}


def change_counts(commit: Commit) -> dict[str, int]:
    """``{Add, Edit, Delete}``: how many of each kind of change ``commit`` made."""
    counts = {"Add": 0, "Edit": 0, "Delete": 0}
    for change in commit.changes:
        key = change.change_type.capitalize()
        counts[key] = counts.get(key, 0) + 1
    return counts


def commit_change_json(org: Organisation, repo: GitRepository, commit: Commit, change: FileChange) -> dict[str, Any]:
    """A ``GitChange`` of ``…/commits/{id}/changes``: the item (a blob) and what happened to it.

    The item's ``url`` reads it at this commit, or, for a deletion, at the first parent (where it still exists).
    """
    at = commit.commit_id if change.change_type != "delete" or not commit.parents else commit.parents[0]
    query = urlencode({"path": change.path, "versionType": "Commit", "version": at})
    item: dict[str, Any] = {"gitObjectType": "blob", "path": change.path}
    if change.object_id is not None:
        item["objectId"] = change.object_id
    if change.original_object_id is not None:
        item["originalObjectId"] = change.original_object_id
    item["commitId"] = commit.commit_id
    item["url"] = f"{repository_url(org, repo)}/items?{query}"
    return {"item": item, "changeType": change.change_type}


def branch_stats_json(
    org: Organisation, repo: GitRepository, ref_name: str, commit: Commit, ahead: int, behind: int, is_base: bool
) -> dict[str, Any]:
    """A ``GitBranchStats``: the branch's head commit and how far it is ahead of and behind the base."""
    return {
        "commit": commit_json(org, repo, commit),
        "name": ref_name.removeprefix("refs/heads/"),
        "aheadCount": ahead,
        "behindCount": behind,
        "isBaseVersion": is_base,
    }


def work_item_ref(org: Organisation, work_item_id: int) -> dict[str, str]:
    """A ``ResourceRef`` to a work item (a pull request's or a build's linked work items)."""
    return {"id": str(work_item_id), "url": f"{org.url}/_apis/wit/workItems/{work_item_id}"}


def commit_json(org: Organisation, repo: GitRepository, commit: Commit, *, full: bool = False) -> dict[str, Any]:
    """A ``GitCommitRef`` (lists) or, with ``full``, a ``GitCommit`` (parents, tree, push)."""
    counts = change_counts(commit)
    first_line = commit.comment.split("\n", 1)[0]
    body: dict[str, Any] = {
        "commitId": commit.commit_id,
        "author": _person(commit.author_name, commit.author_email, commit.author_date),
        "committer": _person(commit.committer_name, commit.committer_email, commit.committer_date),
        "comment": first_line if not full else commit.comment,
        "changeCounts": {"Add": counts.get("Add", 0), "Edit": counts.get("Edit", 0), "Delete": counts.get("Delete", 0)},
        "url": f"{repository_url(org, repo)}/commits/{commit.commit_id}",
        "remoteUrl": f"{repo.web_url}/commit/{commit.commit_id}",
    }
    if first_line != commit.comment and not full:
        body["commentTruncated"] = True
    if full:
        body["parents"] = list(commit.parents)
        body["treeId"] = commit.tree_id
        if commit.push_id is not None:
            push = next((p for p in repo.pushes if p.push_id == commit.push_id), None)
            if push is not None:
                body["push"] = {
                    "pushId": push.push_id,
                    "date": azure_date(push.date),
                    "pushedBy": user_ref(org, push.pushed_by),
                }
    return body


def push_json(
    org: Organisation, repo: GitRepository, push: Push, *, details: bool = False, ref_updates: bool = False
) -> dict[str, Any]:
    """A ``GitPush``; with ``details`` its commits and ref updates (the single-push answer), with
    ``ref_updates`` its ref updates alone (a list's ``searchCriteria.includeRefUpdates``)."""
    body: dict[str, Any] = {
        "repository": repository_json(org, repo),
        "pushedBy": user_ref(org, push.pushed_by),
        "pushId": push.push_id,
        "date": azure_date(push.date),
        "url": f"{repository_url(org, repo)}/pushes/{push.push_id}",
    }
    if details or ref_updates:
        body["refUpdates"] = [
            {"repositoryId": repo.id, "name": u.name, "oldObjectId": u.old_object_id, "newObjectId": u.new_object_id}
            for u in push.ref_updates
        ]
    if details:
        body["commits"] = [commit_json(org, repo, repo.commits[c]) for c in push.commit_ids if c in repo.commits]
    return body


def pull_request_url(org: Organisation, repo: GitRepository, pull_request: PullRequest) -> str:
    return f"{repository_url(org, repo)}/pullRequests/{pull_request.id}"


def pull_request_json(
    org: Organisation, repo: GitRepository, pull_request: PullRequest, *, in_list: bool = False
) -> dict[str, Any]:
    """A ``GitPullRequest`` (description cut to 400 characters in lists, as Azure does)."""
    url = repository_url(org, repo)
    description = pull_request.description
    if in_list and len(description) > _DESCRIPTION_IN_LISTS:
        description = description[:_DESCRIPTION_IN_LISTS]
    reviewers = []
    for reviewer in pull_request.reviewers:
        ref = user_ref(org, reviewer.user_id) or {"id": reviewer.user_id}
        reviewers.append(
            {
                **ref,
                "reviewerUrl": f"{url}/pullRequests/{pull_request.id}/reviewers/{reviewer.user_id}",
                "vote": reviewer.vote,
                "hasDeclined": reviewer.has_declined,
                "isRequired": reviewer.is_required,
                "isFlagged": reviewer.is_flagged,
            }
        )
    body: dict[str, Any] = {
        "repository": repository_reference(org, repo),
        "pullRequestId": pull_request.id,
        "codeReviewId": pull_request.id,
        "status": pull_request.status,
        "createdBy": user_ref(org, pull_request.created_by),
        "creationDate": azure_date(pull_request.creation_date),
        "title": pull_request.title,
        "description": description,
        "sourceRefName": pull_request.source_ref_name,
        "targetRefName": pull_request.target_ref_name,
        "mergeStatus": pull_request.merge_status,
        "isDraft": pull_request.is_draft,
        "mergeId": pull_request.merge_id,
        "lastMergeSourceCommit": _commit_ref(url, pull_request.last_merge_source_commit),
        "lastMergeTargetCommit": _commit_ref(url, pull_request.last_merge_target_commit),
        "reviewers": reviewers,
        "url": pull_request_url(org, repo, pull_request),
        "supportsIterations": True,
    }
    if pull_request.last_merge_commit:
        body["lastMergeCommit"] = _commit_ref(url, pull_request.last_merge_commit)
    if pull_request.closed_date is not None:
        body["closedDate"] = azure_date(pull_request.closed_date)
    if pull_request.closed_by:
        body["closedBy"] = user_ref(org, pull_request.closed_by)
    if pull_request.labels:
        body["labels"] = [{"id": f"{pull_request.id}-{n}", "name": n, "active": True} for n in pull_request.labels]
    return body


def _commit_ref(repo_url: str, commit_id: str) -> dict[str, str]:
    return {"commitId": commit_id, "url": f"{repo_url}/commits/{commit_id}"}


def policy_json(org: Organisation, policy: PolicyConfiguration) -> dict[str, Any]:
    """A ``PolicyConfiguration`` (settings with their ``scope`` list, as Azure keeps them)."""
    project_url = f"{org.url}/{policy.project_id}/_apis"
    return {
        "createdBy": user_ref(org, policy.created_by),
        "createdDate": azure_date(policy.created_date),
        "isEnabled": policy.is_enabled,
        "isBlocking": policy.is_blocking,
        "isDeleted": policy.is_deleted,
        "settings": policy.settings,
        "isEnterpriseManaged": False,
        "_links": {
            "self": {"href": f"{project_url}/policy/configurations/{policy.id}"},
            "policyType": {"href": f"{project_url}/policy/types/{policy.type_id}"},
        },
        "revision": policy.revision,
        "id": policy.id,
        "url": f"{project_url}/policy/configurations/{policy.id}",
        "type": {
            "id": policy.type_id,
            "url": f"{project_url}/policy/types/{policy.type_id}",
            "displayName": policy.type_display_name,
        },
    }
