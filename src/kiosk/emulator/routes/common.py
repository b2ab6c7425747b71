"""What the area route modules share: the api-version dependency, list wrapping, paging, lookups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Final, TypeVar

from fastapi import Depends, Query

from kiosk.emulator.errors import AzureError, repository_not_found
from kiosk.emulator.org.model import GitRepository, Organisation, Project, PullRequest, Release
from kiosk.emulator.versioning import request_api_version
from kiosk.web.responses import FastJSONResponse

__all__ = [
    "CONTINUATION_HEADER",
    "ApiVersion",
    "Skip",
    "Token",
    "Top",
    "continuation_page",
    "find_project",
    "find_pull_request",
    "find_release",
    "find_repository",
    "skip_page",
    "wrapped",
]

T = TypeVar("T")

ApiVersion = Annotated[str, Depends(request_api_version)]
Top = Annotated[int | None, Query(alias="$top", ge=0, le=100_000)]
"""``$top``: how many items a list returns at most."""
Skip = Annotated[int | None, Query(alias="$skip", ge=0, le=100_000_000)]
"""``$skip``: how many items a ``$top``/``$skip`` list passes over."""
Token = Annotated[str | None, Query(alias="continuationToken", pattern=r"^[0-9]{1,9}$")]
"""The ``continuationToken`` a token-paged list gave (the emulator's are offsets)."""
CONTINUATION_HEADER: Final = "x-ms-continuationtoken"
DEFAULT_PAGE: Final = 100


def wrapped(items: list[dict[str, Any]], *, token: str | None = None) -> FastJSONResponse:
    """Azure's ``{count, value}`` list, with the next page's token in ``x-ms-continuationtoken`` if there is one."""
    headers = {CONTINUATION_HEADER: token} if token is not None else None
    return FastJSONResponse({"count": len(items), "value": items}, headers=headers)


def _count(name: str, value: str | int | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AzureError(400, "ArgumentException", f"{name}: {str(value)[:40]!r} is not an integer") from None
    if number < 0:
        raise AzureError(400, "ArgumentOutOfRangeException", f"{name} must not be negative")
    return number


def continuation_page(
    items: Sequence[T], top: int | None, token: str | None, *, default: int = DEFAULT_PAGE
) -> tuple[Sequence[T], str | None]:
    """A page of ``items`` from the offset ``token`` (Azure's tokens are opaque; here: how many were returned)."""
    start = _count("continuationToken", token, 0)
    size = _count("$top", top, default) or default
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def skip_page(items: Sequence[T], top: int | None, skip: int | None, *, default: int = DEFAULT_PAGE) -> Sequence[T]:
    """``$top``/``$skip`` paging (no token: a client stops on a short or empty page)."""
    start = _count("$skip", skip, 0)
    size = _count("$top", top, default)
    return items[start : start + size]


def find_project(org: Organisation, id_or_name: str) -> Project:
    """A project by GUID or name, or Azure's 404 (TF200016)."""
    project = org.project(id_or_name)
    if project is None:
        raise AzureError(
            404,
            "ProjectDoesNotExistWithNameException",
            f"TF200016: The following project does not exist: {id_or_name[:200]}. Verify that the name of the "
            "project is correct and that the project exists on the specified Azure DevOps Server.",
        )
    return project


def find_repository(org: Organisation, id_or_name: str, project: Project | None) -> GitRepository:
    """A repository by GUID (any project when none is given) or by name within ``project``, or Azure's 404."""
    repo = org.repository(id_or_name, project.id if project is not None else None)
    if repo is None:
        raise repository_not_found(id_or_name[:200])
    return repo


def find_pull_request(org: Organisation, pull_request_id: int, project: Project | None) -> PullRequest:
    """A pull request by id (within ``project``'s repositories when one is given), or Azure's 404 (TF401180)."""
    pr = org.pull_requests.get(pull_request_id)
    repo = org.repositories.get(pr.repository_id) if pr is not None else None
    if pr is None or repo is None or (project is not None and repo.project_id != project.id):
        raise AzureError(404, "GitPullRequestNotFoundException", "TF401180: The requested pull request was not found.")
    return pr


def find_release(org: Organisation, project: Project, release_id: int) -> Release:
    """A release of ``project`` by id, or Azure's 404 (VS402880)."""
    release = org.releases.get(release_id)
    if release is None or release.project_id != project.id:
        raise AzureError(
            404,
            "ReleaseNotFoundException",
            f"VS402880: Release with id {release_id} does not exist. Specify a valid id and try again.",
        )
    return release
