"""The mutation API: change an organisation over HTTP, and the service-hook events each change raises.

``/_emulator/orgs/{org}/projects/{project}/…`` (the org's PAT, as every ``/_emulator/orgs`` route):
repositories (create, rename / disable, delete), pushes, pull requests (create; PATCH edits, votes,
completes or abandons), work items (create, update, delete, restore, comment), builds (a finished
build of a definition), releases and their deployments. Each answers ``{"value": <the changed
object in its REST shape>, "events": [{"id", "eventType"}]}``: the events are already published
(``Emulator.publish``), so service-hook subscribers get them as they would from Azure.

The routes are thin: bodies are validated here (Azure's 400 for a bad one), the change itself is
:mod:`kiosk.emulator.org.changes`. ``GET /_emulator/activity`` reports the activity generator.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypedDict, TypeVar

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from kiosk.emulator.bodies import check_json_content_type, has_body, parse_json, read_body, validated
from kiosk.emulator.errors import AzureError
from kiosk.emulator.org import changes
from kiosk.emulator.org.changes import Change, FileEdit, Ids
from kiosk.emulator.org.model import Organisation, Project, User, WorkItem
from kiosk.emulator.routes.common import find_project, find_pull_request, find_release, find_repository, in_project
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_build import generated_build_json
from kiosk.emulator.shapes_git import pull_request_json, push_json, repository_json
from kiosk.emulator.shapes_release import deployment_json, release_json
from kiosk.emulator.shapes_wit import work_item_json
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_change_routes"]

_MAX_BODY: Final = 4 * 1024 * 1024
_PREFIX: Final = "/_emulator/orgs/{org}/projects/{project}"
Model = TypeVar("Model", bound=BaseModel)
Responses = Callable[..., dict[int | str, dict[str, Any]]]
JsonBody = Callable[..., dict[str, Any]]
WorkItemId = Annotated[int, PathParam(ge=1, le=2_147_483_647)]
PullRequestId = Annotated[int, PathParam(ge=1, le=2_147_483_647)]
ReleaseId = Annotated[int, PathParam(ge=1, le=2_147_483_647)]
Actor = Annotated[
    str | None,
    Field(
        max_length=256,
        description="Who makes the change: a user id, principal name or display name (default: the org's first user).",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True, strict=True)


class RepositoryCreate(_Body):
    name: str = Field(min_length=1, max_length=255)
    by: Actor = None


class RepositoryUpdate(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=255, description="A new name.")
    is_disabled: bool | None = Field(default=None, alias="isDisabled")
    by: Actor = None


class FileChangeBody(_Body):
    path: str = Field(min_length=1, max_length=1000, pattern=r"^/?[^/]+(/[^/]+)*$")
    content: str | None = Field(default=None, max_length=1024 * 1024)
    change_type: Literal["add", "edit", "delete"] | None = Field(
        default=None, alias="changeType", description="Left out: add or edit, whichever the file calls for."
    )


class RefUpdateBody(_Body):
    name: str = Field(min_length=1, max_length=400)
    old_object_id: str | None = Field(default=None, alias="oldObjectId", pattern=r"^[0-9a-fA-F]{40}$")
    new_object_id: str | None = Field(default=None, alias="newObjectId", pattern=r"^[0-9a-fA-F]{40}$")


class PushCreate(_Body):
    """Either ``branch`` and ``changes`` (one commit), or ``refUpdates`` (create or delete branches)."""

    branch: str | None = Field(default=None, min_length=1, max_length=400)
    base_branch: str | None = Field(default=None, alias="baseBranch", min_length=1, max_length=400)
    changes: list[FileChangeBody] = Field(default_factory=list, max_length=1000)
    ref_updates: list[RefUpdateBody] = Field(default_factory=list, alias="refUpdates", max_length=100)
    comment: str = Field(default="", max_length=10_000)
    author: Actor = None
    by: Actor = None


Votes = Annotated[
    dict[str, Literal[-10, -5, 0, 5, 10]],
    Field(description="Reviewer (id, principal or display name) → vote: 10, 5, 0, -5, -10.", max_length=50),
]


class PullRequestCreate(_Body):
    source_ref_name: str = Field(alias="sourceRefName", min_length=1, max_length=400)
    target_ref_name: str | None = Field(default=None, alias="targetRefName", min_length=1, max_length=400)
    title: str = Field(min_length=1, max_length=400)
    description: str = Field(default="", max_length=4000)
    reviewers: Votes = Field(default_factory=dict)
    is_draft: bool = Field(default=False, alias="isDraft")
    by: Actor = None


class PullRequestUpdate(_Body):
    title: str | None = Field(default=None, min_length=1, max_length=400)
    description: str | None = Field(default=None, max_length=4000)
    is_draft: bool | None = Field(default=None, alias="isDraft")
    reviewers: Votes = Field(default_factory=dict)
    status: Literal["completed", "abandoned"] | None = None
    by: Actor = None


FieldValues = Annotated[
    dict[str, str | int | float | bool | None],
    Field(description="Fields by reference name (System.Title, System.State…); null clears one.", max_length=200),
]


class WorkItemCreate(_Body):
    type: str = Field(min_length=1, max_length=128, description="The work item type (Bug, Task, User Story…).")
    fields: FieldValues
    by: Actor = None


class WorkItemUpdate(_Body):
    fields: FieldValues
    by: Actor = None


class ActorOnly(_Body):
    by: Actor = None


class CommentCreate(_Body):
    text: str = Field(min_length=1, max_length=100_000)
    by: Actor = None


class BuildCreate(_Body):
    definition_id: int = Field(alias="definitionId", ge=1, le=2_147_483_647)
    result: Literal["succeeded", "partiallySucceeded", "failed", "canceled"] = "succeeded"
    source_branch: str | None = Field(default=None, alias="sourceBranch", min_length=1, max_length=400)
    by: Actor = None


class ReleaseCreate(_Body):
    definition_id: int = Field(alias="definitionId", ge=1, le=2_147_483_647)
    build_id: int | None = Field(default=None, alias="buildId", ge=1, le=2_147_483_647)
    description: str = Field(default="", max_length=4000)
    by: Actor = None


class DeploymentCreate(_Body):
    environment: str = Field(min_length=1, max_length=256, description="The release's stage, by id or name.")
    status: Literal["succeeded", "partiallySucceeded", "rejected", "canceled"] = "succeeded"
    comment: str = Field(default="", max_length=4000)
    by: Actor = None


async def _body(request: Request, model: type[Model], *, required: bool = True) -> Model:
    """The JSON body as ``model``: 415 unless JSON, 413 when too large, Azure's 400 when it is missing
    (unless not ``required``: then no body is ``{}``) or does not validate."""
    present = has_body(request)
    check_json_content_type(request.headers.get("content-type"), has_body=present)
    if required and not present:
        raise AzureError(400, "ArgumentException", "body: a JSON body is required")
    return validated(model, parse_json(await read_body(request, _MAX_BODY) or b"{}"))


def _now() -> datetime:
    return datetime.now(UTC)


class Stamp(TypedDict):
    """The keywords every mutation of :mod:`kiosk.emulator.org.changes` takes: who, when, and the ids."""

    by: User
    at: datetime
    ids: Ids


def _work_item(org: Organisation, project: Project, work_item_id: int) -> WorkItem:
    message = f"TF401232: Work item {work_item_id} does not exist, or you do not have permissions to read it."
    return in_project(org.work_items.get(work_item_id), project, "WorkItemUnauthorizedAccessException", message)


def add_change_routes(app: FastAPI, emulator: Emulator, responses: Responses, json_body: JsonBody) -> None:
    """Add the mutation routes and ``GET /_emulator/activity``.

    ``responses(*codes)`` declares a route's error answers, ``json_body(model)`` its request body
    (both app.py's, so these routes are described as the others are).
    """
    write = responses(400, 401, 403, 404, 409, 413, 415)
    ids = Ids()

    def _answer(org: str, change: Change[Any], value: dict[str, Any], status: int = 200) -> Response:
        for event in change.events:
            emulator.publish(org, event)
        events = [{"id": e.id, "eventType": e.event_type} for e in change.events]
        return FastJSONResponse({"value": value, "events": events}, status_code=status)

    def stamp(data: Organisation, who: str | None) -> Stamp:
        """Who makes a change (``by``: a user of ``data``, else its first) and when, with the ids it takes."""
        return {"by": changes.find_user(data, who), "at": _now(), "ids": ids}

    def created(path: str, body: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``POST {_PREFIX}/{path}`` taking a ``body`` and answering 201 with what it created."""
        return app.post(f"{_PREFIX}/{path}", status_code=201, responses=write, openapi_extra=json_body(body))

    def _scope(org: str, project: str) -> tuple[Organisation, Project]:
        data = emulator.organisation(org)
        return data, find_project(data, project)

    # -- repositories

    @created("repositories", RepositoryCreate)
    async def create_repository(org: str, project: str, request: Request) -> Response:
        """A new, empty repository → ``git.repo.created``."""
        data, found = _scope(org, project)
        body = await _body(request, RepositoryCreate)
        change = changes.create_repository(data, found, body.name, **stamp(data, body.by))
        return _answer(org, change, repository_json(data, change.value, links=True), 201)

    @app.patch(f"{_PREFIX}/repositories/{{repository}}", responses=write, openapi_extra=json_body(RepositoryUpdate))
    async def update_repository(org: str, project: str, repository: str, request: Request) -> Response:
        """Rename (``git.repo.renamed``) and/or disable or enable (``git.repo.statuschanged``) a repository."""
        data, found = _scope(org, project)
        repo = find_repository(data, repository, found)
        body = await _body(request, RepositoryUpdate)
        who = stamp(data, body.by)
        done = Change(repo)
        if body.name is not None:
            done.events += changes.rename_repository(data, repo, body.name, **who).events
        if body.is_disabled is not None:
            done.events += changes.set_repository_disabled(data, repo, body.is_disabled, **who).events
        return _answer(org, done, repository_json(data, repo, links=True))

    @app.delete(f"{_PREFIX}/repositories/{{repository}}", responses=write)
    async def delete_repository(org: str, project: str, repository: str) -> Response:
        """Delete a repository (its id and name stay in the history) → ``git.repo.deleted``."""
        data, found = _scope(org, project)
        repo = find_repository(data, repository, found)
        change = changes.delete_repository(data, repo, **stamp(data, None))
        return _answer(org, change, repository_json(data, repo))

    @created("repositories/{repository}/pushes", PushCreate)
    async def create_push(org: str, project: str, repository: str, request: Request) -> Response:
        """A commit of ``changes`` on ``branch``, or ``refUpdates`` creating/deleting branches → ``git.push``."""
        data, found = _scope(org, project)
        repo = find_repository(data, repository, found)
        body = await _body(request, PushCreate)
        who = stamp(data, body.by)
        author = changes.find_user(data, body.author) if body.author is not None else None
        change = changes.push(
            data,
            repo,
            **who,
            branch=body.branch,
            base_branch=body.base_branch,
            edits=[FileEdit(c.path, c.content, c.change_type or "") for c in body.changes],
            comment=body.comment,
            author=author,
            ref_updates=[(u.name, u.old_object_id, u.new_object_id) for u in body.ref_updates],
        )
        return _answer(org, change, push_json(data, repo, change.value, details=True), 201)

    # -- pull requests

    @created("repositories/{repository}/pullrequests", PullRequestCreate)
    async def create_pull_request(org: str, project: str, repository: str, request: Request) -> Response:
        """An active pull request → ``git.pullrequest.created``."""
        data, found = _scope(org, project)
        repo = find_repository(data, repository, found)
        body = await _body(request, PullRequestCreate)
        change = changes.create_pull_request(
            data,
            repo,
            source=body.source_ref_name,
            target=body.target_ref_name,
            title=body.title,
            description=body.description,
            reviewers=body.reviewers,
            is_draft=body.is_draft,
            **stamp(data, body.by),
        )
        return _answer(org, change, pull_request_json(data, repo, change.value), 201)

    @app.patch(
        f"{_PREFIX}/pullrequests/{{pull_request_id}}", responses=write, openapi_extra=json_body(PullRequestUpdate)
    )
    async def update_pull_request(org: str, project: str, pull_request_id: PullRequestId, request: Request) -> Response:
        """Edit, vote, then complete (merge) or abandon a pull request, in that order."""
        data, found = _scope(org, project)
        pr = find_pull_request(data, pull_request_id, found)
        body = await _body(request, PullRequestUpdate)
        who = stamp(data, body.by)
        done = changes.update_pull_request(
            data,
            pr,
            title=body.title,
            description=body.description,
            is_draft=body.is_draft,
            reviewers=body.reviewers,
            **who,
        )
        if body.status == "completed":
            done.events += changes.complete_pull_request(data, pr, **who).events
        elif body.status == "abandoned":
            done.events += changes.abandon_pull_request(data, pr, **who).events
        return _answer(org, done, pull_request_json(data, data.repositories[pr.repository_id], pr))

    # -- work items

    @created("workitems", WorkItemCreate)
    async def create_work_item(org: str, project: str, request: Request) -> Response:
        """A work item of ``type`` with ``fields`` → ``workitem.created``."""
        data, found = _scope(org, project)
        body = await _body(request, WorkItemCreate)
        change = changes.create_work_item(data, found, body.type, body.fields, **stamp(data, body.by))
        return _answer(org, change, work_item_json(data, change.value, expand="all"), 201)

    @app.patch(f"{_PREFIX}/workitems/{{work_item_id}}", responses=write, openapi_extra=json_body(WorkItemUpdate))
    async def update_work_item(org: str, project: str, work_item_id: WorkItemId, request: Request) -> Response:
        """Change fields (a revision) → ``workitem.updated``; no event when nothing differs."""
        data, found = _scope(org, project)
        item = _work_item(data, found, work_item_id)
        body = await _body(request, WorkItemUpdate)
        change = changes.update_work_item(data, item, body.fields, **stamp(data, body.by))
        return _answer(org, change, work_item_json(data, item, expand="all"))

    @app.delete(f"{_PREFIX}/workitems/{{work_item_id}}", responses=write)
    async def delete_work_item(org: str, project: str, work_item_id: WorkItemId) -> Response:
        """Move a work item to the recycle bin → ``workitem.deleted``."""
        data, found = _scope(org, project)
        item = _work_item(data, found, work_item_id)
        change = changes.delete_work_item(data, item, **stamp(data, None))
        return _answer(org, change, work_item_json(data, item, expand="all"))

    @app.post(
        f"{_PREFIX}/workitems/{{work_item_id}}/restore",
        responses=write,
        openapi_extra=json_body(ActorOnly, required=False),
    )
    async def restore_work_item(org: str, project: str, work_item_id: WorkItemId, request: Request) -> Response:
        """Bring a work item back from the recycle bin → ``workitem.restored``."""
        data, found = _scope(org, project)
        item = _work_item(data, found, work_item_id)
        body = await _body(request, ActorOnly, required=False)
        change = changes.restore_work_item(data, item, **stamp(data, body.by))
        return _answer(org, change, work_item_json(data, item, expand="all"))

    @created("workitems/{work_item_id}/comments", CommentCreate)
    async def comment_work_item(org: str, project: str, work_item_id: WorkItemId, request: Request) -> Response:
        """A comment in the discussion → ``workitem.commented`` and ``workitem.updated``."""
        data, found = _scope(org, project)
        item = _work_item(data, found, work_item_id)
        body = await _body(request, CommentCreate)
        change = changes.comment_work_item(data, item, body.text, **stamp(data, body.by))
        return _answer(org, change, work_item_json(data, item, expand="all"), 201)

    # -- builds and releases

    @created("builds", BuildCreate)
    async def complete_build(org: str, project: str, request: Request) -> Response:
        """A finished build of a (generated project's) definition → ``build.complete``."""
        data, found = _scope(org, project)
        body = await _body(request, BuildCreate)
        change = changes.complete_build(
            data,
            found,
            body.definition_id,
            body.result,
            branch=body.source_branch,
            **stamp(data, body.by),
        )
        return _answer(org, change, generated_build_json(data, change.value), 201)

    @created("releases", ReleaseCreate)
    async def create_release(org: str, project: str, request: Request) -> Response:
        """A release of a definition → ``ms.vss-release.release-created-event``."""
        data, found = _scope(org, project)
        body = await _body(request, ReleaseCreate)
        change = changes.create_release(
            data,
            found,
            body.definition_id,
            build_id=body.build_id,
            description=body.description,
            **stamp(data, body.by),
        )
        return _answer(org, change, release_json(data, change.value, full=True), 201)

    @created("releases/{release_id}/deployments", DeploymentCreate)
    async def complete_deployment(org: str, project: str, release_id: ReleaseId, request: Request) -> Response:
        """A finished deployment of one of the release's stages → ``ms.vss-release.deployment-completed-event``."""
        data, found = _scope(org, project)
        release = find_release(data, found, release_id)
        body = await _body(request, DeploymentCreate)
        change = changes.complete_deployment(
            data,
            release,
            body.environment,
            body.status,
            comment=body.comment,
            **stamp(data, body.by),
        )
        return _answer(org, change, deployment_json(data, change.value), 201)

    # -- the activity generator

    @app.get("/_emulator/activity", responses=responses(400, 401, 403))
    async def activity() -> Response:
        """What the activity generator made so far (``running: false`` and no counts when it is off)."""
        generator = getattr(app.state, "activity", None)
        if generator is None:
            return FastJSONResponse(
                {"running": False, "rate": None, "seed": None, "total": 0, "kinds": {}, "events": {}}
            )
        return FastJSONResponse(generator.describe())
