"""Changes of an organisation, each applied consistently and reported as the events Azure sends.

Every function here makes one change the way Azure makes it (a push writes a real commit with its
tree and moves the ref; a work-item update adds a revision recording (old, new) per field; a
completed pull request writes a merge commit onto its target branch…) and returns the changed
object with the :class:`~kiosk.emulator.org.events.OrgEvent` list the change caused, in the order
Azure raises them. Publishing them is the caller's business (the ``/_emulator`` mutation routes and
the activity generator hand them to ``Emulator.publish``), so this module stays pure: no IO, no
clock (``at`` is given), no global randomness (GUIDs come from an :class:`Ids` that may be seeded).

Bad input raises :class:`~kiosk.emulator.errors.AzureError` with Azure's status and message, so an
HTTP caller can answer it as is.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Generic, TypeVar

from kiosk.emulator.errors import AzureError, repository_not_found
from kiosk.emulator.org.events import OrgEvent
from kiosk.emulator.org.model import (
    STATE_REASONS,
    Build,
    Commit,
    Deployment,
    FieldValue,
    FileChange,
    GitRef,
    GitRepository,
    Organisation,
    Project,
    PullRequest,
    Push,
    RefUpdate,
    Release,
    ReleaseEnvironment,
    RepoFile,
    Reviewer,
    User,
    WorkItem,
    WorkItemComment,
    WorkItemRevision,
    board_column,
    build_timeline,
    name_key,
    tree_sha1,
)
from kiosk.emulator.shapes_build import generated_build_json
from kiosk.emulator.shapes_events import (
    RELEASE_ENVIRONMENT_STATUS,
    deployment_completed_resource,
    push_resource,
    release_created_resource,
    repo_created_resource,
    repo_deleted_resource,
    repo_renamed_resource,
    repo_status_resource,
    work_item_resource,
    work_item_update_resource,
)
from kiosk.emulator.shapes_git import pull_request_json

__all__ = [
    "ZERO_ID",
    "Change",
    "FileEdit",
    "Ids",
    "abandon_pull_request",
    "comment_work_item",
    "complete_build",
    "complete_deployment",
    "complete_pull_request",
    "create_pull_request",
    "create_release",
    "create_repository",
    "create_work_item",
    "delete_repository",
    "delete_work_item",
    "find_user",
    "push",
    "rename_repository",
    "restore_work_item",
    "set_repository_disabled",
    "update_pull_request",
    "update_work_item",
]

ZERO_ID: Final = "0" * 40
"""The object id of a ref that does not exist (before a branch is created, after it is deleted)."""

_IDENTITY_FIELDS: Final = frozenset({"System.AssignedTo", "System.CreatedBy", "System.ChangedBy"})
_READ_ONLY_FIELDS: Final = frozenset(
    {
        "System.Id",
        "System.Rev",
        "System.TeamProject",
        "System.WorkItemType",
        "System.CreatedDate",
        "System.CreatedBy",
        "System.ChangedDate",
        "System.ChangedBy",
        "System.CommentCount",
        "System.AuthorizedDate",
        "System.RevisedDate",
    }
)
_BUILD_STATUS: Final = {
    "succeeded": "Succeeded",
    "partiallySucceeded": "PartiallySucceeded",
    "failed": "Failed",
    "canceled": "Stopped",
}
"""``buildStatus`` publisher-input values per build result."""


class Ids:
    """GUIDs for new objects: random, or from a seeded generator (the activity generator's are)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng

    def guid(self) -> str:
        if self.rng is None:
            return str(uuid.uuid4())
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


T = TypeVar("T")


@dataclass
class Change(Generic[T]):
    """What a mutation did: the changed object and the events it caused, in Azure's order."""

    value: T
    events: list[OrgEvent] = field(default_factory=list)


@dataclass(frozen=True)
class FileEdit:
    """One file change of a push: ``add``, ``edit`` or ``delete`` of ``path`` (``content`` unless deleting);
    no ``change_type``: ``add`` or ``edit``, whichever the file's existence calls for."""

    path: str
    content: str | None = None
    change_type: str = ""


# --- who --------------------------------------------------------------------------------------------


def find_user(org: Organisation, who: str | None) -> User:
    """A user by identity id, principal name or display name (any case); None: the org's first user.

    The mutation API acts as somebody; leaving it out acts as the organisation's owner, as the first
    user of a generated org is.
    """
    if who is None or not who.strip():
        first = next(iter(org.users.values()), None)
        if first is None:
            raise AzureError(400, "IdentityNotFoundException", "the organisation has no users to act as")
        return first
    found = org.user(who.strip())
    if found is None:
        key = name_key(who.strip())
        found = next((u for u in org.users.values() if name_key(u.display_name) == key), None)
    if found is None:
        raise AzureError(400, "IdentityNotFoundException", f"No identity {who[:200]!r} exists in this organization.")
    return found


def _event(
    event_type: str,
    resource: dict[str, Any],
    project_id: str | None,
    message: str,
    filters: Mapping[str, Sequence[str]],
    *,
    publisher: str = "tfs",
    version: str = "1.0",
    at: datetime,
    ids: Ids,
) -> OrgEvent:
    return OrgEvent(
        event_type=event_type,
        publisher_id=publisher,
        resource_version=version,
        resource=resource,
        project_id=project_id,
        message=message,
        detailed_message=message,
        filters={key: tuple(str(v) for v in values if v not in (None, "")) for key, values in filters.items()},
        id=ids.guid(),
        created=at,
    )


# --- repositories -----------------------------------------------------------------------------------


def create_repository(
    org: Organisation, project: Project, name: str, *, by: User, at: datetime, ids: Ids
) -> Change[GitRepository]:
    """A new, empty repository (no default branch until its first push) → ``git.repo.created``."""
    name = name.strip()
    if not name or len(name) > 255 or any(c in name for c in '\\/:*?"<>|;#$,{}+=[]') or name.startswith("."):
        raise AzureError(400, "InvalidArgumentValueException", f"TF401025: '{name[:200]}' is not a valid name.")
    remote, ssh, web = org.repository_urls(project.name, name)
    repo = GitRepository(
        id=ids.guid(),
        name=name,
        project_id=project.id,
        default_branch=None,
        size=0,
        is_disabled=False,
        is_fork=False,
        remote_url=remote,
        ssh_url=ssh,
        web_url=web,
    )
    try:
        org.add_repository(repo)
    except ValueError:
        raise _repository_name_taken(name) from None
    resource = repo_created_resource(org, repo, by, at)
    message = f"{by.display_name} created the repository {repo.name} in {project.name}."
    event = _event("git.repo.created", resource, project.id, message, {"repository": [repo.id]}, at=at, ids=ids)
    return Change(repo, [event])


def _repository_name_taken(name: str) -> AzureError:
    """Azure's 409 when a project already has a repository of that name (creating or renaming)."""
    return AzureError(
        409,
        "GitRepositoryNameAlreadyExistsException",
        f"TF400948: A Git repository with the name {name} already exists.",
    )


def rename_repository(
    org: Organisation, repo: GitRepository, new_name: str, *, by: User, at: datetime, ids: Ids
) -> Change[GitRepository]:
    """Rename ``repo`` (URLs follow; the history keeps the old name) → ``git.repo.renamed``."""
    old = repo.name
    new_name = new_name.strip()
    if not new_name:
        raise AzureError(400, "InvalidArgumentValueException", "TF401025: '' is not a valid name.")
    if new_name == old:
        return Change(repo)
    try:
        org.rename_repository(repo, new_name, at)
    except ValueError:
        raise _repository_name_taken(new_name) from None
    resource = repo_renamed_resource(org, repo, old, by, at)
    message = f"{by.display_name} renamed the repository {old} to {new_name}."
    event = _event("git.repo.renamed", resource, repo.project_id, message, {"repository": [repo.id]}, at=at, ids=ids)
    return Change(repo, [event])


def set_repository_disabled(
    org: Organisation, repo: GitRepository, disabled: bool, *, by: User, at: datetime, ids: Ids
) -> Change[GitRepository]:
    """Disable or enable ``repo`` → ``git.repo.statuschanged`` (nothing when it already is)."""
    if repo.is_disabled == disabled:
        return Change(repo)
    repo.is_disabled = disabled
    org.changed()
    resource = repo_status_resource(org, repo, by, at)
    message = f"{by.display_name} {'disabled' if disabled else 'enabled'} the repository {repo.name}."
    event = _event(
        "git.repo.statuschanged", resource, repo.project_id, message, {"repository": [repo.id]}, at=at, ids=ids
    )
    return Change(repo, [event])


def delete_repository(
    org: Organisation, repo: GitRepository, *, by: User, at: datetime, ids: Ids
) -> Change[GitRepository]:
    """Delete ``repo`` (the history keeps its id and name) → ``git.repo.deleted``."""
    resource = repo_deleted_resource(org, repo, by, at)
    org.delete_repository(repo, at)
    message = f"{by.display_name} deleted the repository {repo.name}."
    event = _event("git.repo.deleted", resource, repo.project_id, message, {"repository": [repo.id]}, at=at, ids=ids)
    return Change(repo, [event])


# --- pushes -----------------------------------------------------------------------------------------


def _full_ref(name: str) -> str:
    name = name.strip()
    if not name:
        raise AzureError(400, "InvalidArgumentValueException", "a branch name is required")
    return name if name.startswith("refs/") else f"refs/heads/{name}"


def _commit_id(tree_id: str, parents: list[str], who: User, at: datetime, message: str) -> str:
    """A commit's id the way git computes one, from its tree, parents, people and message."""
    stamp = f"{who.display_name} <{who.mail}> {int(at.timestamp())} +0000"
    text = f"tree {tree_id}\n" + "".join(f"parent {p}\n" for p in parents)
    text += f"author {stamp}\ncommitter {stamp}\n\n{message}\n"
    raw = text.encode()
    return hashlib.sha1(b"commit %d\0" % len(raw) + raw, usedforsecurity=False).hexdigest()


def _write_commit(
    repo: GitRepository,
    base: Commit | None,
    edits: Sequence[FileEdit],
    message: str,
    author: User,
    at: datetime,
    extra_parents: Sequence[str] = (),
) -> Commit:
    """A commit on top of ``base`` applying ``edits`` (the whole tree kept, as the model's commits do)."""
    tree: dict[str, RepoFile] = dict(base.files) if base is not None else {}
    changes: list[FileChange] = []
    for edit in edits:
        path = "/" + edit.path.strip().lstrip("/")
        if path == "/" or "//" in path or any(part in (".", "..") for part in path.split("/")[1:]):
            raise AzureError(400, "InvalidArgumentValueException", f"TF401019: {edit.path[:200]!r} is not a file path")
        existing = tree.get(path)
        kind = edit.change_type.lower() or ("edit" if existing is not None else "add")
        if kind == "delete":
            if existing is None:
                raise AzureError(400, "GitItemNotFoundException", f"TF401174: The item '{path}' could not be found.")
            del tree[path]
            changes.append(FileChange("delete", path, None, existing.object_id))
            continue
        if kind not in ("add", "edit"):
            raise AzureError(
                400, "InvalidArgumentValueException", f"changeType {edit.change_type!r}: add, edit or delete"
            )
        if kind == "add" and existing is not None:
            raise AzureError(409, "GitItemAlreadyExistsException", f"TF401181: The item {path} already exists.")
        if kind == "edit" and existing is None:
            raise AzureError(400, "GitItemNotFoundException", f"TF401174: The item '{path}' could not be found.")
        new = RepoFile.of(path, (edit.content or "").encode())
        tree[path] = new
        changes.append(FileChange(kind, path, new.object_id, existing.object_id if existing else None))
    if not changes:
        raise AzureError(400, "InvalidArgumentValueException", "a commit needs at least one change")
    tree_id = tree_sha1(tree)
    parents = ([base.commit_id] if base is not None else []) + list(extra_parents)
    commit_id = _commit_id(tree_id, parents, author, at, message)
    commit = Commit.authored(commit_id, tree_id, parents, author, at, message, tree, changes)
    repo.commits[commit.commit_id] = commit
    return commit


def _record_push(
    org: Organisation, repo: GitRepository, updates: list[RefUpdate], commits: list[Commit], by: User, at: datetime
) -> Push:
    """Store a push of ``commits`` moving ``updates`` (refs created, moved or deleted)."""
    record = Push(len(repo.pushes) + 1, at, by.id, updates, [c.commit_id for c in commits])
    for commit in commits:
        commit.push_id = record.push_id
    repo.pushes.append(record)
    for update in updates:
        if update.new_object_id == ZERO_ID:
            repo.refs.pop(update.name, None)
            if repo.default_branch == update.name:
                repo.default_branch = next((n for n in repo.refs if n.startswith("refs/heads/")), None)
        elif update.name in repo.refs:
            repo.refs[update.name].object_id = update.new_object_id
        else:
            repo.refs[update.name] = GitRef(update.name, update.new_object_id, by.id)
            if repo.default_branch is None and update.name.startswith("refs/heads/"):
                repo.default_branch = update.name
    head = repo.head()
    repo.size = (sum(len(f.content) for f in head.files.values()) + 512) if head is not None else 0
    org.changed()
    return record


def _usable(repo: GitRepository) -> None:
    if repo.is_disabled:
        raise repository_not_found(repo.name)


def _push_event(org: Organisation, repo: GitRepository, record: Push, by: User, at: datetime, ids: Ids) -> OrgEvent:
    branches = [u.name for u in record.ref_updates]
    shown = ", ".join(b.removeprefix("refs/heads/") for b in branches)
    message = f"{by.display_name} pushed updates to {repo.name}:{shown}"
    filters = {"repository": [repo.id], "branch": branches, "pushedby": [by.id]}
    return _event("git.push", push_resource(org, repo, record), repo.project_id, message, filters, at=at, ids=ids)


def push(
    org: Organisation,
    repo: GitRepository,
    *,
    by: User,
    at: datetime,
    ids: Ids,
    branch: str | None = None,
    base_branch: str | None = None,
    edits: Sequence[FileEdit] = (),
    comment: str = "",
    author: User | None = None,
    ref_updates: Sequence[tuple[str, str | None, str | None]] = (),
) -> Change[Push]:
    """A push → ``git.push`` (and ``git.pullrequest.updated`` for each active pull request it moves).

    Either ``branch`` with ``edits``: one commit on ``branch`` (created from ``base_branch``, else the
    default branch, when it does not exist; the repository's first branch becomes its default), or
    ``ref_updates`` ``(name, oldObjectId, newObjectId)`` without edits: create a branch at an existing
    commit (old = 40 zeros or None) or delete one (new = 40 zeros). A stated old id that is not the
    ref's current one is refused as stale (409), as Azure does.
    """
    _usable(repo)
    updates: list[RefUpdate] = []
    commits: list[Commit] = []
    if edits:
        if branch is None or ref_updates:
            raise AzureError(400, "InvalidArgumentValueException", "a push with changes names one branch")
        name = _full_ref(branch)
        current = repo.refs.get(name)
        if current is not None:
            base = repo.commits.get(current.object_id)
        elif base_branch is not None:
            base_ref = repo.refs.get(_full_ref(base_branch))
            if base_ref is None:
                raise AzureError(
                    400, "GitUnresolvableToCommitException", f"TF401175: the branch {base_branch[:200]} does not exist"
                )
            base = repo.commits.get(base_ref.object_id)
        else:
            base = repo.head()
        message = comment.strip() or f"Update {', '.join(e.path.strip().lstrip('/') for e in edits)}"
        commit = _write_commit(repo, base, edits, message, author or by, at)
        commits.append(commit)
        updates.append(RefUpdate(name, current.object_id if current else ZERO_ID, commit.commit_id))
    else:
        if not ref_updates:
            raise AzureError(400, "InvalidArgumentValueException", "a push needs changes or refUpdates")
        for raw_name, old, new in ref_updates:
            name = _full_ref(raw_name)
            current = repo.refs.get(name)
            if old not in (None, "", ZERO_ID) and (current is None or current.object_id != old.lower()):
                raise AzureError(
                    409, "GitReferenceStaleException", f"TF402455: the ref {name} is not at {old[:40]} any more"
                )
            if new is None or new.lower() == ZERO_ID:
                if current is None:
                    raise AzureError(404, "GitRefNotFoundException", f"TF401028: The reference {name} does not exist.")
                updates.append(RefUpdate(name, current.object_id, ZERO_ID))
            else:
                if current is not None:
                    raise AzureError(409, "GitReferenceStaleException", f"TF402455: the ref {name} exists already")
                if new.lower() not in repo.commits:
                    raise AzureError(400, "GitUnresolvableToCommitException", f"TF401175: no commit {new[:40]} here")
                updates.append(RefUpdate(name, ZERO_ID, new.lower()))
    record = _record_push(org, repo, updates, commits, by, at)
    events = [_push_event(org, repo, record, by, at, ids)]
    for update in updates:
        if update.new_object_id == ZERO_ID:
            continue
        for pr in org.pull_requests.values():
            if pr.repository_id == repo.id and pr.status == "active" and pr.source_ref_name == update.name:
                pr.last_merge_source_commit = update.new_object_id
                pr.merge_id = ids.guid()
                events.append(
                    _pull_request_event("git.pullrequest.updated", org, repo, pr, by, at, ids, "PushNotification")
                )
    return Change(record, events)


# --- pull requests ----------------------------------------------------------------------------------


def _pull_request_event(
    event_type: str,
    org: Organisation,
    repo: GitRepository,
    pr: PullRequest,
    by: User,
    at: datetime,
    ids: Ids,
    notification: str | None = None,
) -> OrgEvent:
    resource = pull_request_json(org, repo, pr)
    if notification == "PushNotification":
        head = repo.commits.get(pr.last_merge_source_commit)
        if head is not None:
            resource["commits"] = [
                {"commitId": head.commit_id, "url": f"{resource['repository']['url']}/commits/{head.commit_id}"}
            ]
    verb = {
        "git.pullrequest.created": "created",
        "git.pullrequest.merged": "completed",
    }.get(event_type, "updated")
    message = f"{by.display_name} {verb} pull request {pr.id} ({pr.title}) in {repo.name}"
    filters: dict[str, list[str]] = {
        "repository": [repo.id],
        "branch": [pr.target_ref_name],
        "pullrequestcreatedby": [pr.created_by],
        "pullrequestreviewerscontains": [r.user_id for r in pr.reviewers],
    }
    if notification is not None:
        filters["notificationtype"] = [notification]
    return _event(event_type, resource, repo.project_id, message, filters, at=at, ids=ids)


def _reviewers(org: Organisation, given: Mapping[str, int], author: User | None) -> list[Reviewer]:
    out = []
    for who, vote in given.items():
        user = find_user(org, who)
        if vote not in (-10, -5, 0, 5, 10):
            raise AzureError(400, "InvalidArgumentValueException", f"vote {vote}: one of -10, -5, 0, 5, 10")
        if user is author and vote != 0:
            raise AzureError(400, "InvalidArgumentValueException", "the author of a pull request does not vote on it")
        out.append(Reviewer(user.id, vote))
    return out


def create_pull_request(
    org: Organisation,
    repo: GitRepository,
    *,
    source: str,
    target: str | None,
    title: str,
    description: str = "",
    reviewers: Mapping[str, int] | None = None,
    is_draft: bool = False,
    by: User,
    at: datetime,
    ids: Ids,
) -> Change[PullRequest]:
    """An active pull request from ``source`` into ``target`` (default: the default branch).

    → ``git.pullrequest.created``.
    """
    _usable(repo)
    source_ref = repo.refs.get(_full_ref(source))
    target_name = _full_ref(target) if target else repo.default_branch
    target_ref = repo.refs.get(target_name or "")
    if source_ref is None or target_ref is None:
        missing = source if source_ref is None else (target or "the default branch")
        raise AzureError(
            400, "GitUnresolvableToCommitException", f"TF401398: The branch {missing[:200]} does not exist."
        )
    if source_ref.name == target_ref.name:
        raise AzureError(400, "InvalidArgumentValueException", "TF401399: the source and target branch are the same")
    if not title.strip():
        raise AzureError(400, "InvalidArgumentValueException", "a pull request needs a title")
    for other in org.pull_requests.values():
        if (
            other.repository_id == repo.id
            and other.status == "active"
            and (other.source_ref_name, other.target_ref_name) == (source_ref.name, target_ref.name)
        ):
            raise AzureError(
                409,
                "GitPullRequestExistsException",
                f"TF401179: An active pull request for the source and target branch already exists ({other.id}).",
            )
    pr = PullRequest(
        id=org.next_id("pullRequest"),
        repository_id=repo.id,
        status="active",
        created_by=by.id,
        creation_date=at,
        title=title.strip(),
        description=description,
        source_ref_name=source_ref.name,
        target_ref_name=target_ref.name,
        merge_status="succeeded",
        is_draft=is_draft,
        merge_id=ids.guid(),
        last_merge_source_commit=source_ref.object_id,
        last_merge_target_commit=target_ref.object_id,
        reviewers=_reviewers(org, reviewers or {}, by),
    )
    org.add_pull_request(pr)
    return Change(pr, [_pull_request_event("git.pullrequest.created", org, repo, pr, by, at, ids)])


def _active(pr: PullRequest) -> None:
    if pr.status != "active":
        raise AzureError(
            409,
            "InvalidArgumentValueException",
            f"TF401181: The pull request {pr.id} is {pr.status}; only an active pull request can change.",
        )


def update_pull_request(
    org: Organisation,
    pr: PullRequest,
    *,
    title: str | None = None,
    description: str | None = None,
    is_draft: bool | None = None,
    reviewers: Mapping[str, int] | None = None,
    by: User,
    at: datetime,
    ids: Ids,
) -> Change[PullRequest]:
    """Edit an active pull request → one ``git.pullrequest.updated`` per kind of change.

    ``reviewers`` maps a reviewer (id, principal or display name) to a vote; a new name is added
    (``ReviewersUpdateNotification``), a changed vote is a ``ReviewerVoteNotification``.
    """
    repo = org.repositories[pr.repository_id]
    _active(pr)
    kinds: list[str | None] = []
    if title is not None and title.strip() and title.strip() != pr.title:
        pr.title = title.strip()
        kinds.append(None)
    if description is not None and description != pr.description:
        pr.description = description
        if None not in kinds:
            kinds.append(None)
    if is_draft is not None and is_draft != pr.is_draft:
        pr.is_draft = is_draft
        if None not in kinds:
            kinds.append(None)
    if reviewers:
        current = {r.user_id: r for r in pr.reviewers}
        for reviewer in _reviewers(org, reviewers, org.users.get(pr.created_by)):
            before = current.get(reviewer.user_id)
            if before is None:
                pr.reviewers.append(reviewer)
                if "ReviewersUpdateNotification" not in kinds:
                    kinds.append("ReviewersUpdateNotification")
            elif before.vote != reviewer.vote:
                pr.reviewers[pr.reviewers.index(before)] = Reviewer(
                    reviewer.user_id, reviewer.vote, before.is_required, before.has_declined, before.is_flagged
                )
                if "ReviewerVoteNotification" not in kinds:
                    kinds.append("ReviewerVoteNotification")
    if kinds:
        org.changed()
    events = [_pull_request_event("git.pullrequest.updated", org, repo, pr, by, at, ids, kind) for kind in kinds]
    return Change(pr, events)


def complete_pull_request(
    org: Organisation, pr: PullRequest, *, by: User, at: datetime, ids: Ids
) -> Change[PullRequest]:
    """Merge: a merge commit on the target (a push), the pull request completed and closed →
    ``git.push``, ``git.pullrequest.merged``, ``git.pullrequest.updated`` (StatusUpdateNotification)."""
    repo = org.repositories[pr.repository_id]
    _usable(repo)
    _active(pr)
    source = repo.refs.get(pr.source_ref_name)
    target = repo.refs.get(pr.target_ref_name)
    if source is None or target is None:
        raise AzureError(409, "GitPullRequestCannotBeMergedException", "TF401192: a branch of the pull request is gone")
    source_head, target_head = repo.commits[source.object_id], repo.commits[target.object_id]
    edits = [
        FileEdit(path, f.content.decode("utf-8", "replace"), "edit" if path in target_head.files else "add")
        for path, f in source_head.files.items()
        if target_head.files.get(path) is None or target_head.files[path].object_id != f.object_id
    ]
    if edits:
        merge = _write_commit(
            repo, target_head, edits, f"Merged PR {pr.id}: {pr.title}", by, at, extra_parents=[source_head.commit_id]
        )
    else:  # nothing to bring over: Azure still records a merge commit with the target's tree
        tree_id = target_head.tree_id
        parents = [target_head.commit_id, source_head.commit_id]
        message = f"Merged PR {pr.id}: {pr.title}"
        merge = Commit(
            _commit_id(tree_id, parents, by, at, message), tree_id, parents, by.display_name, by.mail, at,
            by.display_name, by.mail, at, message, target_head.files, [],
        )  # fmt: skip
        repo.commits[merge.commit_id] = merge
    record = _record_push(org, repo, [RefUpdate(target.name, target_head.commit_id, merge.commit_id)], [merge], by, at)
    pr.status = "completed"
    pr.closed_date = at
    pr.closed_by = by.id
    pr.last_merge_source_commit = source_head.commit_id
    pr.last_merge_target_commit = target_head.commit_id
    pr.last_merge_commit = merge.commit_id
    pr.merge_status = "succeeded"
    events = [
        _push_event(org, repo, record, by, at, ids),
        _pull_request_event("git.pullrequest.merged", org, repo, pr, by, at, ids),
        _pull_request_event("git.pullrequest.updated", org, repo, pr, by, at, ids, "StatusUpdateNotification"),
    ]
    return Change(pr, events)


def abandon_pull_request(
    org: Organisation, pr: PullRequest, *, by: User, at: datetime, ids: Ids
) -> Change[PullRequest]:
    """Abandon an active pull request → ``git.pullrequest.updated`` (StatusUpdateNotification)."""
    repo = org.repositories[pr.repository_id]
    _active(pr)
    pr.status = "abandoned"
    pr.closed_date = at
    pr.closed_by = by.id
    org.changed()
    event = _pull_request_event("git.pullrequest.updated", org, repo, pr, by, at, ids, "StatusUpdateNotification")
    return Change(pr, [event])


# --- work items -------------------------------------------------------------------------------------


def _node_paths(org: Organisation, project: Project, structure: str) -> set[str]:
    """``System.AreaPath``/``IterationPath`` values of a project's nodes (``P``, ``P\\Web``), as name keys."""
    root = (org.areas if structure == "area" else org.iterations).get(project.id)
    paths = {name_key(project.name)}
    if root is None:
        return paths
    segment = "\\Area" if structure == "area" else "\\Iteration"
    for node in root.walk():
        path = node.path.lstrip("\\").replace(segment, "", 1)
        paths.add(name_key(path))
    return paths


def _work_item_type(org: Organisation, project: Project, name: str) -> str:
    for kind in org.work_item_types.get(project.id, []):
        if name_key(kind.name) == name_key(name) or name_key(kind.reference_name) == name_key(name):
            return kind.name
    raise AzureError(
        404,
        "WorkItemTypeNotFoundException",
        f"TF401326: Work item type {name[:200]} does not exist in project {project.name}.",
    )


def _states(org: Organisation, project_id: str, kind: str) -> list[str]:
    for item_type in org.work_item_types.get(project_id, []):
        if item_type.name == kind:
            return [s.name for s in item_type.states]
    return []


def _field_value(org: Organisation, name: str, value: Any) -> FieldValue:
    """A field value from JSON: identities resolved to users, others kept as scalars."""
    if name in _IDENTITY_FIELDS:
        return None if value in (None, "") else find_user(org, str(value))
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise AzureError(400, "InvalidArgumentValueException", f"TF51535: field {name}: a string, number or boolean")


def _check_field(org: Organisation, project: Project, item_id: int, name: str, value: FieldValue) -> None:
    if name in _READ_ONLY_FIELDS:
        raise AzureError(400, "WorkItemFieldInvalidException", f"TF401326: field {name} is read-only")
    if not name or len(name) > 128 or " " in name:
        raise AzureError(400, "WorkItemFieldInvalidException", f"TF51535: Cannot find field {name[:128]}.")
    for path_field, structure in (("System.AreaPath", "area"), ("System.IterationPath", "iteration")):
        if name == path_field and (
            not isinstance(value, str) or name_key(value) not in _node_paths(org, project, structure)
        ):
            raise AzureError(
                400,
                "WorkItemFieldInvalidTreeNameException",
                f"TF401347: Invalid tree name given for work item {item_id}, field '{name}'.",
            )
    if name == "System.Title" and (not isinstance(value, str) or not value.strip() or len(value) > 255):
        raise AzureError(400, "WorkItemFieldInvalidException", "TF401320: System.Title must be 1 to 255 characters")


def _transition(
    org: Organisation, item: WorkItem, state: str, reason: str | None, at: datetime
) -> dict[str, FieldValue]:
    """The fields a state change sets, as the generator sets them: Reason, StateChangeDate, closing dates."""
    states = _states(org, item.project_id, item.work_item_type)
    if state not in states:
        raise AzureError(
            400,
            "WorkItemFieldInvalidException",
            f"TF401320: '{state[:100]}' is not a state of {item.work_item_type} (one of {', '.join(states)}).",
        )
    column = board_column(item.work_item_type, state)
    fields: dict[str, FieldValue] = {
        "System.State": state,
        "System.Reason": reason or STATE_REASONS.get(state, state),
        "System.BoardColumn": column,
        "System.BoardColumnDone": False if column is not None else None,
        "Microsoft.VSTS.Common.StateChangeDate": at,
        "Microsoft.VSTS.Common.ClosedDate": at if state == "Closed" else None,
        "Microsoft.VSTS.Common.ResolvedDate": (
            at
            if state == "Resolved"
            else item.fields.get("Microsoft.VSTS.Common.ResolvedDate")
            if state == "Closed"
            else None
        ),
    }
    return fields


def _item_filters(item: WorkItem, **extra: Sequence[str]) -> dict[str, Sequence[str]]:
    return {
        "areapath": [str(item.fields.get("System.AreaPath", ""))],
        "workitemtype": [item.work_item_type],
        **extra,
    }


def _item_message(item: WorkItem, verb: str, by: User) -> str:
    return f"{item.work_item_type} #{item.id} ({item.fields.get('System.Title', '')}) {verb} by {by.display_name}"


def create_work_item(
    org: Organisation, project: Project, kind: str, fields: Mapping[str, Any], *, by: User, at: datetime, ids: Ids
) -> Change[WorkItem]:
    """A work item of ``kind`` in its type's first state → ``workitem.created``.

    ``fields`` by reference name; ``System.Title`` is required; area and iteration default to the
    project's root and must name existing nodes; ``System.State`` may start the item elsewhere.
    """
    type_name = _work_item_type(org, project, kind)
    given = {str(k): _field_value(org, str(k), v) for k, v in fields.items()}
    state = given.pop("System.State", None)
    reason = given.pop("System.Reason", None)
    if not isinstance(given.get("System.Title"), str):
        raise AzureError(400, "WorkItemFieldInvalidException", "TF401320: Rule Error for field Title: required")
    given.setdefault("System.AreaPath", project.name)
    given.setdefault("System.IterationPath", project.name)
    for name, value in given.items():
        _check_field(org, project, 0, name, value)
    states = _states(org, project.id, type_name)
    item_id = org.next_id("workItem")
    values: dict[str, FieldValue] = {
        "System.Id": item_id,
        "System.AreaPath": None,
        "System.TeamProject": project.name,
        "System.IterationPath": None,
        "System.WorkItemType": type_name,
        "System.State": states[0] if states else "New",
        "System.Reason": STATE_REASONS.get(states[0], "New") if states else "New",
        "System.CreatedDate": at,
        "System.CreatedBy": by,
        "System.ChangedDate": at,
        "System.ChangedBy": by,
        "System.CommentCount": 0,
        "Microsoft.VSTS.Common.Priority": 2,
        "Microsoft.VSTS.Common.StateChangeDate": at,
    }
    column = board_column(type_name, str(values["System.State"]))
    if column is not None:
        values["System.BoardColumn"] = column
        values["System.BoardColumnDone"] = False
    values.update({name: value for name, value in given.items() if value is not None})
    item = WorkItem(item_id, 1, project.id, values, [], [WorkItemRevision(1, by, at, {})])
    if isinstance(state, str) and state != values["System.State"]:
        values.update(
            {
                k: v
                for k, v in _transition(org, item, state, reason if isinstance(reason, str) else None, at).items()
                if v is not None
            }
        )
    org.add_work_item(item)
    event = _event(
        "workitem.created", work_item_resource(org, item), project.id, _item_message(item, "created", by),
        _item_filters(item), at=at, ids=ids,
    )  # fmt: skip
    return Change(item, [event])


def _revise(
    org: Organisation, item: WorkItem, changed: Mapping[str, FieldValue], by: User, at: datetime
) -> WorkItemRevision | None:
    """Apply ``changed`` as one new revision recording (old, new) per field that differs; None if none does."""
    recorded: dict[str, tuple[FieldValue, FieldValue]] = {}
    for name, value in changed.items():
        old = item.fields.get(name)
        if old is value or old == value:
            continue
        recorded[name] = (old, value)
    if not recorded:
        return None
    for name, (_, new) in recorded.items():
        if new is None:
            item.fields.pop(name, None)
        else:
            item.fields[name] = new
    item.rev += 1
    item.fields["System.ChangedDate"] = at
    item.fields["System.ChangedBy"] = by
    revision = WorkItemRevision(item.rev, by, at, recorded)
    item.revisions.append(revision)
    org.changed()
    return revision


def _live(item: WorkItem) -> None:
    if item.is_deleted:
        raise AzureError(
            404,
            "WorkItemUnauthorizedAccessException",
            f"TF401232: Work item {item.id} does not exist, or you do not have permissions to read it.",
        )


def update_work_item(
    org: Organisation, item: WorkItem, fields: Mapping[str, Any], *, by: User, at: datetime, ids: Ids
) -> Change[WorkItem]:
    """Change fields (``null`` clears one) → a revision and ``workitem.updated`` (nothing if nothing differs).

    A new ``System.State`` must be one of the type's states; Reason, StateChangeDate and the
    closing dates follow as the generator sets them (a given ``System.Reason`` wins).
    """
    _live(item)
    project = org.projects[item.project_id]
    given = {str(k): _field_value(org, str(k), v) for k, v in fields.items()}
    state = given.pop("System.State", None)
    reason = given.pop("System.Reason", None)
    for name, value in given.items():
        _check_field(org, project, item.id, name, value)
    if given.get("System.Title", "") is None:
        raise AzureError(400, "WorkItemFieldInvalidException", "TF401320: Rule Error for field Title: required")
    changes: dict[str, FieldValue] = dict(given)
    if isinstance(state, str) and state != item.fields.get("System.State"):
        changes.update(_transition(org, item, state, reason if isinstance(reason, str) else None, at))
    elif isinstance(reason, str):
        changes["System.Reason"] = reason
    revision = _revise(org, item, changes, by, at)
    if revision is None:
        return Change(item)
    filters = _item_filters(item, changedfields=list(revision.fields))
    event = _event(
        "workitem.updated", work_item_update_resource(org, item, revision), item.project_id,
        _item_message(item, "updated", by), filters, at=at, ids=ids,
    )  # fmt: skip
    return Change(item, [event])


def delete_work_item(org: Organisation, item: WorkItem, *, by: User, at: datetime, ids: Ids) -> Change[WorkItem]:
    """Move a work item to the recycle bin → ``workitem.deleted`` (urls into the recycle bin)."""
    _live(item)
    item.is_deleted = True
    org.changed()
    event = _event(
        "workitem.deleted", work_item_resource(org, item, deleted=True), item.project_id,
        _item_message(item, "deleted", by), _item_filters(item), at=at, ids=ids,
    )  # fmt: skip
    return Change(item, [event])


def restore_work_item(org: Organisation, item: WorkItem, *, by: User, at: datetime, ids: Ids) -> Change[WorkItem]:
    """Bring a work item back from the recycle bin → ``workitem.restored``."""
    if not item.is_deleted:
        raise AzureError(
            404,
            "WorkItemNotDeletedException",
            f"TF401232: Work item {item.id} is not in the recycle bin.",
        )
    item.is_deleted = False
    org.changed()
    event = _event(
        "workitem.restored", work_item_resource(org, item), item.project_id,
        _item_message(item, "restored", by), _item_filters(item), at=at, ids=ids,
    )  # fmt: skip
    return Change(item, [event])


def comment_work_item(
    org: Organisation, item: WorkItem, text: str, *, by: User, at: datetime, ids: Ids
) -> Change[WorkItemComment]:
    """A comment in the discussion: a WorkItemComment and a revision (``System.History``,
    ``System.CommentCount``) → ``workitem.commented`` then ``workitem.updated``."""
    _live(item)
    if not text.strip():
        raise AzureError(400, "InvalidArgumentValueException", "a comment needs text")
    comment = WorkItemComment(len(item.comments) + 1, text, by, at, by, at)
    item.comments.append(comment)
    count = item.fields.get("System.CommentCount")
    revision = _revise(
        org,
        item,
        {"System.History": text, "System.CommentCount": (count if isinstance(count, int) else 0) + 1},
        by,
        at,
    )
    assert revision is not None  # the comment count always changes
    events = [
        _event(
            "workitem.commented", work_item_resource(org, item), item.project_id,
            _item_message(item, "commented on", by), _item_filters(item, commentpattern=[text]), at=at, ids=ids,
        ),
        _event(
            "workitem.updated", work_item_update_resource(org, item, revision), item.project_id,
            _item_message(item, "updated", by), _item_filters(item, changedfields=list(revision.fields)),
            at=at, ids=ids,
        ),
    ]  # fmt: skip
    return Change(comment, events)


# --- builds and releases ----------------------------------------------------------------------------


def complete_build(
    org: Organisation,
    project: Project,
    definition_id: int,
    result: str,
    *,
    branch: str | None = None,
    by: User,
    at: datetime,
    ids: Ids,
) -> Change[Build]:
    """A finished build of a definition (queued a minute and a half before ``at``, with its timeline) →
    ``build.complete`` (resource version 2.0: the full Build)."""
    if project.configured:
        raise AzureError(
            400,
            "InvalidArgumentValueException",
            f"builds of {project.name} are its pipelines' runs: queue one (POST …/_apis/pipelines/{{id}}/runs)",
        )
    definition = org.build_definitions.get(definition_id)
    if definition is None or definition.project_id != project.id:
        raise AzureError(
            404, "DefinitionNotFoundException", f"The requested definition {definition_id} could not be found."
        )
    if result not in _BUILD_STATUS:
        raise AzureError(400, "InvalidArgumentValueException", f"result {result!r}: {', '.join(_BUILD_STATUS)}")
    repo = org.repositories.get(definition.repository_id)
    source_branch = _full_ref(branch) if branch else definition.default_branch
    head = repo.head(source_branch) if repo is not None else None
    if repo is not None and head is None:
        raise AzureError(
            400, "GitUnresolvableToCommitException", f"TF401175: the branch {source_branch} does not exist"
        )
    queued, started = at - timedelta(seconds=90), at - timedelta(seconds=85)
    same_day = sum(
        1 for b in org.builds.values() if b.definition_id == definition.id and b.queue_time.date() == queued.date()
    )
    build = Build(
        id=org.next_id("build"),
        build_number=f"{queued:%Y%m%d}.{same_day + 1}",
        status="completed",
        result=result,
        queue_time=queued,
        start_time=started,
        finish_time=at,
        definition_id=definition.id,
        project_id=project.id,
        repository_id=definition.repository_id,
        source_branch=source_branch,
        source_version=head.commit_id if head is not None else ZERO_ID,
        requested_for=by.id,
        requested_by=by.id,
        reason="manual",
        timeline=build_timeline(ids.guid, started, at, result),
    )
    org.builds[build.id] = build
    org.changed()
    message = f"Build {build.build_number} {result}"
    filters = {"definitionname": [definition.name], "buildstatus": [_BUILD_STATUS[result]]}
    event = _event(
        "build.complete", generated_build_json(org, build), project.id, message, filters, version="2.0", at=at, ids=ids
    )
    return Change(build, [event])


def create_release(
    org: Organisation,
    project: Project,
    definition_id: int,
    *,
    build_id: int | None = None,
    description: str = "",
    by: User,
    at: datetime,
    ids: Ids,
) -> Change[Release]:
    """A release of a definition, its stages not started → ``ms.vss-release.release-created-event``."""
    definition = org.release_definitions.get(definition_id)
    if definition is None or definition.project_id != project.id or definition.is_deleted:
        raise AzureError(
            404,
            "ReleaseDefinitionNotFoundException",
            f"VS402881: No release pipeline found with ID {definition_id}.",
        )
    if build_id is not None and (build_id not in org.builds or org.builds[build_id].project_id != project.id):
        raise AzureError(404, "BuildNotFoundException", f"The requested build {build_id} could not be found.")
    release_id = org.next_id("release")
    number = 1 + sum(1 for r in org.releases.values() if r.definition_id == definition.id)
    environments = [
        ReleaseEnvironment(org.next_id("releaseEnvironment"), s.name, s.rank, s.definition_environment_id or s.id)
        for s in definition.environments
    ]
    release = Release(
        release_id, f"Release-{number}", "active", definition.id, project.id, at, at, by.id, "manual",
        description, environments, build_id,
    )  # fmt: skip
    org.releases[release.id] = release
    org.changed()
    filters = {"releasedefinitionid": [str(definition.id)]}
    event = _event(
        "ms.vss-release.release-created-event", release_created_resource(org, release), project.id,
        f"Release {release.name} created by {by.display_name}.", filters, publisher="rm", version="3.0-preview.1",
        at=at, ids=ids,
    )  # fmt: skip
    return Change(release, [event])


def complete_deployment(
    org: Organisation,
    release: Release,
    environment: str,
    status: str,
    *,
    comment: str = "",
    by: User,
    at: datetime,
    ids: Ids,
) -> Change[Deployment]:
    """A finished deployment of one stage (by id or name) → ``ms.vss-release.deployment-completed-event``."""
    if status not in RELEASE_ENVIRONMENT_STATUS:
        raise AzureError(
            400, "InvalidArgumentValueException", f"status {status!r}: {', '.join(RELEASE_ENVIRONMENT_STATUS)}"
        )
    index = next(
        (
            i
            for i, e in enumerate(release.environments)
            if str(e.id) == environment.strip() or name_key(e.name) == name_key(environment.strip())
        ),
        None,
    )
    if index is None:
        raise AzureError(
            404,
            "ReleaseEnvironmentNotFoundException",
            f"VS402887: the release {release.id} has no stage {environment[:100]!r}",
        )
    if release.status != "active":
        raise AzureError(409, "InvalidRequestException", f"VS402873: the release {release.name} is {release.status}")
    stage = release.environments[index]
    updated = ReleaseEnvironment(stage.id, stage.name, stage.rank, stage.definition_environment_id, status)
    release.environments[index] = updated
    release.modified_on = at
    attempt = 1 + sum(1 for d in org.deployments.values() if d.release_environment_id == stage.id)
    deployment_status = {"canceled": "notDeployed", "rejected": "failed"}.get(status, status)
    operation = {"succeeded": "Approved", "partiallySucceeded": "PhaseSucceeded", "canceled": "Canceled"}.get(
        status, "Rejected"
    )
    deployment = Deployment(
        org.next_id("deployment"), release.id, release.definition_id, stage.id, stage.definition_environment_id,
        release.project_id, attempt, "manual", deployment_status, operation, by.id, by.id,
        at - timedelta(minutes=4), at - timedelta(minutes=3, seconds=50), at, at,
    )  # fmt: skip
    org.deployments[deployment.id] = deployment
    org.changed()
    filters = {
        "releasedefinitionid": [str(release.definition_id)],
        "releaseenvironmentid": [str(stage.definition_environment_id)],
        "releaseenvironmentstatus": [RELEASE_ENVIRONMENT_STATUS[status], status],
    }
    event = _event(
        "ms.vss-release.deployment-completed-event",
        deployment_completed_resource(org, release, updated, deployment, comment), release.project_id,
        f"Deployment of release {release.name} on stage {stage.name} {status}.", filters, publisher="rm",
        version="3.0-preview.1", at=at, ids=ids,
    )  # fmt: skip
    return Change(deployment, [event])
