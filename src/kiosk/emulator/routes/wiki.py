"""Wiki routes (reference 3.10): wikis (org- and project-scoped), pages by path or id, pagesbatch.

A page asked for with ``Accept: text/plain`` answers its markdown (what
``WikiClient.get_page_text`` reads); JSON otherwise, with the page's version in ``ETag``.
``pagesbatch`` is Azure's paged page list: ``top`` and ``continuationToken`` in the POST body,
the next token in the ``x-ms-continuationtoken`` header, sent only while pages remain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Query, Request
from starlette.responses import PlainTextResponse, Response

from kiosk.emulator.bodies import read_json
from kiosk.emulator.errors import AzureError
from kiosk.emulator.org.model import Organisation, Project, Wiki, WikiPage
from kiosk.emulator.routes.common import (
    ApiVersion,
    DeclaredResponses,
    continuation_page,
    existing,
    find_project,
    from_query,
    wrapped,
)
from kiosk.emulator.routes.query_params import enum_pattern
from kiosk.emulator.service import Emulator
from kiosk.emulator.shapes_wiki import (
    ROOT_PATH,
    page_detail_json,
    page_etag,
    page_json,
    page_tree,
    root_page_json,
    wiki_json,
)
from kiosk.web.responses import FastJSONResponse

__all__ = ["add_wiki_routes"]

_MAX_BATCH_BODY: Final = 64 * 1024
_BATCH_MAX_TOP: Final = 100
_RECURSION: Final = {"none": 0, "onelevel": 1, "onelevelplusnestedemptyfolders": 1, "full": 1_000}
_BATCH_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["top"],
    "properties": {
        "top": {"type": "integer", "minimum": 1, "maximum": _BATCH_MAX_TOP},
        "continuationToken": {"type": ["string", "null"], "pattern": "^[0-9]{1,9}$"},
        "pageViewsForDays": {"type": "integer", "minimum": 0, "maximum": 30},
    },
}
_PAGE_RESPONSES: Final[DeclaredResponses] = {
    200: {
        "description": "The page (JSON), or its markdown when the request accepts text/plain.",
        "content": {"application/json": {"schema": {"type": "object"}}, "text/plain": {"schema": {"type": "string"}}},
    }
}

Recursion = Annotated[str | None, Query(alias="recursionLevel", pattern=enum_pattern(_RECURSION))]
IncludeContent = Annotated[bool, Query(alias="includeContent")]


def _find_wiki(org: Organisation, id_or_name: str, project_id: str | None) -> Wiki:
    message = f"The wiki {id_or_name[:200]} does not exist or you do not have permissions to access it."
    return existing(org.wiki(id_or_name, project_id), "WikiNotFoundException", message)


def _wants_text(request: Request) -> bool:
    """Whether the caller asked for the page's markdown (``Accept: text/plain``) rather than JSON."""
    accept = request.headers.get("accept", "").lower()
    return "text/plain" in accept and "application/json" not in accept


def _page_response(
    request: Request, org: Organisation, wiki: Wiki, page: WikiPage | None, tree: PageTreeQuery
) -> Response:
    """The page (``None``: the root) as JSON or markdown, with its ``ETag``."""
    content = page.content if page is not None else ""
    headers = {"ETag": page_etag(content)}
    if _wants_text(request):
        return PlainTextResponse(content, headers=headers)
    depth = _RECURSION[(tree.recursion_level or "none").lower()]
    if page is None:
        return FastJSONResponse(root_page_json(org, wiki, depth=depth), headers=headers)
    shown = page_json(org, wiki, page, depth=depth, include_content=tree.include_content)
    return FastJSONResponse(shown, headers=headers)


def _batch_request(body: Any) -> tuple[int, str | None, bool]:
    """``top``, ``continuationToken`` and whether view statistics were asked for, checked as Azure does."""
    if not isinstance(body, dict):
        raise AzureError(400, "ArgumentException", "pagesBatchRequest: a JSON object is required")
    top = body.get("top")
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= _BATCH_MAX_TOP:
        raise AzureError(400, "ArgumentOutOfRangeException", f"top: an integer from 1 to {_BATCH_MAX_TOP} is required")
    token = body.get("continuationToken")
    if token is not None and (not isinstance(token, str) or not token.isdigit() or len(token) > 9):
        raise AzureError(400, "ArgumentException", "continuationToken: not a token this wiki returned")
    days = body.get("pageViewsForDays")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 30):
        raise AzureError(400, "ArgumentOutOfRangeException", "pageViewsForDays: an integer from 0 to 30 is required")
    return top, token, bool(days)


def _wikis(org: Organisation, project: Project | None) -> Response:
    """The ``WikiV2`` list (unpaged) of ``project``, or of every project the org has."""
    listed = [
        wiki
        for wiki in org.wikis.values()
        if (wiki.project_id == project.id if project is not None else wiki.project_id in org.projects)
    ]
    return wrapped([wiki_json(org, wiki) for wiki in listed])


@dataclass(frozen=True, slots=True)
class PageTreeQuery:
    """How much of a page tree: ``recursionLevel`` levels of sub-pages, with their content or not."""

    recursion_level: Recursion = None
    include_content: IncludeContent = False


PageTreeParams = Annotated[PageTreeQuery, Depends(from_query(PageTreeQuery))]


@dataclass(frozen=True, slots=True)
class PagePath:
    """A page's ``path`` in its wiki (``/`` is the root)."""

    path: Annotated[str, Query(max_length=1000)] = ROOT_PATH


PagePathParams = Annotated[PagePath, Depends(from_query(PagePath))]


def add_wiki_routes(app: FastAPI, emulator: Emulator, read: DeclaredResponses, write: DeclaredResponses) -> None:
    """Add the wiki routes over each org's wikis."""

    def wiki_of(org: str, project: str, wiki: str) -> tuple[Organisation, Wiki]:
        """The org, and the project's wiki by GUID or name (Azure's 404 for either missing)."""
        data = emulator.organisation(org)
        return data, _find_wiki(data, wiki, find_project(data, project).id)

    @app.get("/{org}/_apis/wiki/wikis", responses=read)
    async def org_wikis(org: str, api_version: ApiVersion) -> Response:
        """Every wiki of the organisation (``WikiV2`` list, unpaged)."""
        return _wikis(emulator.organisation(org), None)

    @app.get("/{org}/{project}/_apis/wiki/wikis", responses=read)
    async def project_wikis(org: str, project: str, api_version: ApiVersion) -> Response:
        data = emulator.organisation(org)
        return _wikis(data, find_project(data, project))

    @app.get("/{org}/_apis/wiki/wikis/{wiki}", responses=read)
    async def org_wiki(org: str, wiki: str, api_version: ApiVersion) -> Response:
        """A wiki by GUID or name, in any project."""
        data = emulator.organisation(org)
        return FastJSONResponse(wiki_json(data, _find_wiki(data, wiki, None)))

    @app.get("/{org}/{project}/_apis/wiki/wikis/{wiki}", responses=read)
    async def project_wiki(org: str, project: str, wiki: str, api_version: ApiVersion) -> Response:
        data, found = wiki_of(org, project, wiki)
        return FastJSONResponse(wiki_json(data, found))

    @app.post(
        "/{org}/{project}/_apis/wiki/wikis/{wiki}/pagesbatch",
        responses=write,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}},
    )
    async def pages_batch(org: str, project: str, wiki: str, request: Request, api_version: ApiVersion) -> Response:
        """``WikiPageDetail`` list, depth first; body ``top`` (1 to 100) and ``continuationToken``."""
        body = await read_json(request, _MAX_BATCH_BODY)
        top, token, view_stats = _batch_request(body)
        _, found = wiki_of(org, project, wiki)
        page, next_token = continuation_page(page_tree(found), top, token)
        return wrapped([page_detail_json(p, with_view_stats=view_stats) for p in page], token=next_token)

    @app.get("/{org}/{project}/_apis/wiki/wikis/{wiki}/pages", responses={**read, **_PAGE_RESPONSES})
    async def page_by_path(
        org: str,
        project: str,
        wiki: str,
        request: Request,
        at: PagePathParams,
        tree: PageTreeParams,
        api_version: ApiVersion,
    ) -> Response:
        """A page by path (``/`` is the root), with ``recursionLevel`` levels of sub-pages."""
        data, found = wiki_of(org, project, wiki)
        wanted = "/" + at.path.strip().strip("/")
        if wanted == ROOT_PATH:
            return _page_response(request, data, found, None, tree)
        key = wanted.casefold()
        page = next((p for p in found.pages if p.path.casefold() == key), None)
        if page is None:
            raise AzureError(
                404,
                "WikiPageNotFoundException",
                f"The page '{wanted[:300]}' specified is not found in the wiki.",
            )
        return _page_response(request, data, found, page, tree)

    @app.get("/{org}/{project}/_apis/wiki/wikis/{wiki}/pages/{page_id}", responses={**read, **_PAGE_RESPONSES})
    async def page_by_id(
        org: str,
        project: str,
        wiki: str,
        page_id: int,
        request: Request,
        tree: PageTreeParams,
        api_version: ApiVersion,
    ) -> Response:
        """A page by id."""
        data, found = wiki_of(org, project, wiki)
        page = next((p for p in found.pages if p.id == page_id), None)
        if page is None:
            raise AzureError(
                404, "WikiPageNotFoundException", f"The page with id {page_id} specified is not found in the wiki."
            )
        return _page_response(request, data, found, page, tree)
