"""What the area route modules share: the api-version dependency, query parameter sets, list wrapping,
paging, lookups."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Annotated, Any, Final, Protocol, TypeVar, get_type_hints

from fastapi import Depends, Query

from kiosk.emulator.errors import AzureError, repository_not_found
from kiosk.emulator.org.model import GitRepository, Organisation, Project, PullRequest, Release
from kiosk.emulator.service import Emulator
from kiosk.emulator.versioning import request_api_version
from kiosk.web.responses import FastJSONResponse

__all__ = [
    "CONTINUATION_HEADER",
    "ApiVersion",
    "DeclaredResponses",
    "Skip",
    "SkipPage",
    "SkipPaged",
    "Token",
    "TokenPage",
    "TokenPaged",
    "Top",
    "continuation_page",
    "existing",
    "find_project",
    "find_pull_request",
    "find_release",
    "find_repository",
    "from_query",
    "in_project",
    "org_and_project",
    "skip_page",
    "wrapped",
]

T = TypeVar("T")


class _HasProject(Protocol):
    @property
    def project_id(self) -> str: ...


InProject = TypeVar("InProject", bound=_HasProject)

ApiVersion = Annotated[str, Depends(request_api_version)]
DeclaredResponses = dict[int | str, dict[str, Any]]
"""What a route declares it answers besides success (FastAPI's ``responses=``): status code → description."""
Top = Annotated[int | None, Query(alias="$top", ge=0, le=100_000)]
"""``$top``: how many items a list returns at most."""
Skip = Annotated[int | None, Query(alias="$skip", ge=0, le=100_000_000)]
"""``$skip``: how many items a ``$top``/``$skip`` list passes over."""
Token = Annotated[str | None, Query(alias="continuationToken", pattern=r"^[0-9]{1,9}$")]
"""The ``continuationToken`` a token-paged list gave (the emulator's are offsets)."""
CONTINUATION_HEADER: Final = "x-ms-continuationtoken"
DEFAULT_PAGE: Final = 100


def from_query(cls: type[T]) -> Callable[..., Awaitable[T]]:
    """A FastAPI dependency building ``cls`` (a dataclass of ``Annotated[..., Query(...)]`` fields) from the query.

    Azure serves many lists twice, at org and at project level, with the same query parameters: one
    dataclass holds them, and each route takes it as ``Annotated[Cls, Depends(from_query(Cls))]``.
    The OpenAPI description (which schemathesis fuzzes) lists the fields as the route's query
    parameters, in field order; FastAPI lists a route's own query parameters first, then its
    dependencies' in signature order, so a route declares these before ``api_version`` and keeps no
    query parameter of its own after them. ``Depends(Cls)`` alone would build the same, but FastAPI
    calls a class in its thread pool, a hop of ~100 µs per request on the list endpoints' speed
    target; this coroutine runs on the event loop.
    """
    hints = get_type_hints(cls, include_extras=True)  # each field's annotation read where it is declared
    parameters = [
        inspect.Parameter(
            field.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if field.default is MISSING else field.default,
            annotation=hints[field.name],
        )
        for field in fields(cls)  # type: ignore[arg-type]
    ]

    async def build(**values: Any) -> T:
        return cls(**values)

    # FastAPI reads a dependency's parameters from its signature.
    build.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    build.__name__ = f"{cls.__name__}_from_query"
    return build


@dataclass(frozen=True, slots=True)
class SkipPage:
    """``$top``/``$skip``: which page of a list paged without a token."""

    top: Top = None
    skip: Skip = None


@dataclass(frozen=True, slots=True)
class TokenPage:
    """``$top`` and ``continuationToken``: which page of a token-paged list."""

    top: Top = None
    token: Token = None


SkipPaged = Annotated[SkipPage, Depends(from_query(SkipPage))]
TokenPaged = Annotated[TokenPage, Depends(from_query(TokenPage))]


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


def org_and_project(emulator: Emulator, org: str, project: str | None) -> tuple[Organisation, Project | None]:
    """The org, and the project a route's ``{project}`` names (None at org level), or Azure's 404."""
    data = emulator.organisation(org)
    return data, (find_project(data, project) if project is not None else None)


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


def existing(item: T | None, type_key: str, message: str) -> T:
    """``item`` (what a lookup found), or Azure's 404 ``type_key`` when there is none."""
    if item is None:
        raise AzureError(404, type_key, message)
    return item


def in_project(item: InProject | None, project: Project, type_key: str, message: str) -> InProject:
    """``item`` (looked up by id) when it is ``project``'s, else Azure's 404 ``type_key``: another project's
    object is as missing as one that does not exist."""
    if item is None or item.project_id != project.id:
        raise AzureError(404, type_key, message)
    return item


def find_release(org: Organisation, project: Project, release_id: int) -> Release:
    """A release of ``project`` by id, or Azure's 404 (VS402880)."""
    message = f"VS402880: Release with id {release_id} does not exist. Specify a valid id and try again."
    return in_project(org.releases.get(release_id), project, "ReleaseNotFoundException", message)
