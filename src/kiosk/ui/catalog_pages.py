"""The catalog's pages: a blueprint's entities (``/ui/catalog/{blueprint}``: filters, sorting on any
property, paging) and one entity (``/ui/catalog/{blueprint}/{identifier}``: its fields, relations,
the tabs of related blueprints, the action runs on it).

Both are read-only for every signed-in person (members and admins see the same catalog; the API's
read routes are open to both roles too); signed-out browsers are sent to sign in and come back.
The pages' state lives wholly in their URLs, so a link shows what the person saw, and htmx only
swaps the catalog's results in place (the full page works without JavaScript).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from kiosk.ui.catalog import (
    DEFAULT_SIZE,
    OPERATORS,
    PROPERTY_COLUMNS,
    PROPERTY_SORT,
    SORTS,
    BlueprintInfo,
    CatalogQuery,
    blueprint_info,
    catalog_page,
    cell_text,
)
from kiosk.ui.entity import OVERVIEW, RUNS, entity_href, entity_view, related_page, runs_on
from kiosk.ui.pages import Portal

__all__ = ["build_catalog_router", "catalog_href"]


def catalog_href(path: str, query: CatalogQuery, **changes: Any) -> str:
    """The catalog page's URL for ``query`` with ``changes`` (only the non-default values)."""
    state: dict[str, Any] = {
        "q": query.q,
        "f": [f.param for f in query.filters],
        "combinator": query.combinator,
        "me": "1" if query.me else None,
        "sort": query.sort_param,
        "size": query.size,
        "after": None,
    }
    state.update(changes)
    defaults = {"sort": "title", "size": DEFAULT_SIZE, "combinator": "and"}
    params = [(k, v) for k, v in state.items() if v and defaults.get(k) != v]
    return path + ("?" + urlencode(params, doseq=True) if params else "")


def _catalog_context(path: str, info: BlueprintInfo, query: CatalogQuery) -> dict[str, Any]:
    """The sortable column headers (each links to its sort, the current one reversed), the filter
    form's choices, the links that remove one filter, and the first page."""
    shown = list(info.properties)[:PROPERTY_COLUMNS]
    if query.property_sort is not None and query.property_sort not in shown:
        shown.append(query.property_sort)  # the sorted property always has its column
    sorts = [(name, label) for name, (_, label) in SORTS.items()]
    sorts[2:2] = [(PROPERTY_SORT + p, info.label(p)) for p in shown]  # after title and identifier
    columns = []
    for name, label in sorts:
        current = name == query.sort
        target = ("" if current and query.descending else "-" if current else "") + name
        aria = ("descending" if query.descending else "ascending") if current else None
        columns.append({"label": label, "href": catalog_href(path, query, sort=target), "aria_sort": aria})
    all_sorts = [(name, label) for name, (_, label) in SORTS.items()]
    all_sorts += [(PROPERTY_SORT + p, info.label(p)) for p in info.properties]
    active = [
        {
            "label": f"{info.label(f.prop)} {OPERATORS[f.operator]}" + (f" {f.value}" if f.value else ""),
            "remove_href": catalog_href(path, query, f=[g.param for g in query.filters if g is not f]),
        }
        for f in query.filters
    ]
    return {
        "columns": columns,
        "shown_properties": shown,
        "sort_label": dict(all_sorts)[query.sort].lower(),
        "sort_choices": all_sorts,
        "filter_properties": info.filterable(),
        "operators": list(OPERATORS.items()),
        "active_filters": active,
        "has_me": info.has_me,
        "me_href": catalog_href(path, query, me=None if query.me else "1"),
        "combinator_href": catalog_href(path, query, combinator="and" if query.combinator == "or" else "or"),
        "first_href": catalog_href(path, query),
        "default_size": DEFAULT_SIZE,
        "base_path": path,
        "query": query,
        "cell": cell_text,
        "entity_href": entity_href,
    }


def _tab_href(path: str, tab: str, cursor: str | None = None) -> str:
    params = [(k, v) for k, v in (("tab", tab if tab != OVERVIEW else None), ("cursor", cursor)) if v]
    return path + ("?" + urlencode(params) if params else "")


def build_catalog_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def portal_of(request: Request) -> Portal:
        portal: Portal = request.app.state.portal
        return portal

    @router.get("/ui/catalog/{blueprint}")
    async def catalog(
        request: Request,
        blueprint: str,
        q: str | None = None,
        sort: str | None = None,
        after: str | None = None,
        size: int | None = None,
        f: list[str] = Query(default=[]),  # FastAPI reads a repeated parameter through Query
        combinator: str | None = None,
        me: str | None = None,
        fp: str | None = None,
        fo: str | None = None,
        fv: str | None = None,
    ) -> Response:
        portal = portal_of(request)
        session = await run_in_threadpool(portal.guard.session, request)
        if session is None:
            return portal.to_sign_in(request)
        info = await run_in_threadpool(blueprint_info, portal.db, blueprint)
        if info is None:
            return portal.error_page(request, 404, "Not found", f"There is no blueprint {blueprint!r}.")
        if fp is not None and fo is not None:
            # The add-filter form (no JavaScript needed): its three fields become one more ``f``
            # and the browser is sent to that URL, so the state stays in the one shape.
            current = CatalogQuery.from_url(info, q, sort, None, size, f, combinator, me)
            added = [*(x.param for x in current.filters), f"{fp}:{fo}:{fv or ''}"]
            return RedirectResponse(catalog_href(request.url.path, current, f=added), status_code=303)
        query = CatalogQuery.from_url(info, q, sort, after, size, f, combinator, me)
        page = await run_in_threadpool(catalog_page, portal.db, info, query, session.user.email)
        path = request.url.path
        context = {**portal.page_context(session), **_catalog_context(path, info, query), "page": page}
        context["next_href"] = catalog_href(path, query, after=page.next_after) if page.next_after else None
        # An htmx request (sort, search, next page) swaps the results only; the URL still holds the state.
        template = "_catalog_table.html" if request.headers.get("hx-request") == "true" else "catalog.html"
        return portal.renderer.page(template, context, headers={"Vary": "HX-Request"})

    @router.get("/ui/catalog/{blueprint}/{identifier:path}")
    async def entity(
        request: Request, blueprint: str, identifier: str, tab: str | None = None, cursor: str | None = None
    ) -> Response:
        portal = portal_of(request)
        session = await run_in_threadpool(portal.guard.session, request)
        if session is None:
            return portal.to_sign_in(request)
        view = await run_in_threadpool(entity_view, portal.catalog, blueprint, identifier)
        if view is None:
            return portal.error_page(
                request, 404, "Not found", f"There is no entity {identifier!r} of blueprint {blueprint!r}."
            )
        current = next((t for t in view.tabs if t.key == tab), view.tabs[0])
        path = entity_href(blueprint, identifier)
        context: dict[str, Any] = {
            **portal.page_context(session),
            "view": view,
            "entity": view.entity,
            "catalog_href": f"/ui/catalog/{blueprint}",
            "tabs": [{"tab": t, "href": _tab_href(path, t.key), "current": t is current} for t in view.tabs],
            "current": current,
            "related": None,
            "runs": None,
            "next_href": None,
            "first_href": None,
        }
        if current.key == RUNS:
            context["runs"] = await run_in_threadpool(runs_on, portal.db, blueprint, identifier)
        elif current.key != OVERVIEW:
            related = await run_in_threadpool(related_page, portal.catalog, view.entity, current, cursor)
            context["related"] = related
            if related.next_cursor:
                context["next_href"] = _tab_href(path, current.key, related.next_cursor)
            context["first_href"] = _tab_href(path, current.key) if cursor else None
        return portal.renderer.page("entity.html", context)

    return router
