"""Run pages: ``/ui/runs`` (newest first; ``?mine=1`` for the signed-in person's own) and
``/ui/runs/{run_id}`` (status, label, summary, links, inputs, who started it, the entity, times
and the logs).

Who sees a run: an admin sees every run; a member sees the runs they started and the runs on an
entity (every member may read the whole catalog, so a run on an entity is as visible as the
entity). Any other run answers 404, as a run that does not exist does: its id tells nothing.
Inputs are shown as stored — secret inputs are stored masked, so they are never shown in clear,
to anyone.

While a run is in progress (or waiting for approval) its page asks, with htmx, for the live part
(status and logs) every 2 seconds; the part of a finished run carries no trigger, so polling
stops by itself. Without JavaScript the page is read as it was when loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kiosk.actions.runs import Runs
from kiosk.actions.runs.states import ACTIVE
from kiosk.actions.runs.views import decode_run_cursor, encode_run_cursor
from kiosk.auth.users import User
from kiosk.errors import KioskError, NotFound
from kiosk.store.engine import Database
from kiosk.store.tables import action_runs, actions
from kiosk.ui.pages import Portal

__all__ = ["PAGE_SIZE", "RunsPage", "build_runs_router", "can_see", "run_href", "runs_page", "safe_link", "shown_value"]

PAGE_SIZE = 50
MAX_LOG_LINES = 5000


def can_see(user: User, created_by: str | None, entity: str | None) -> bool:
    """Whether ``user`` may see a run started by ``created_by`` on ``entity`` (see the module)."""
    return user.is_admin or created_by == user.email or entity is not None


def safe_link(value: Any) -> str | None:
    """A link a pipeline reported, when it is http(s) (anything else is shown as text, not linked)."""
    if not isinstance(value, str):
        return None
    scheme = urlsplit(value).scheme.lower()
    return value if scheme in ("http", "https") else None


def shown_value(value: Any) -> str:
    """An input's value as the run page prints it (JSON for anything but a string)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def run_href(run_id: str) -> str:
    """The run's page (``/ui/runs/{run_id}``): where every run link of the portal leads."""
    return f"/ui/runs/{quote(run_id, safe='')}"


@dataclass(frozen=True)
class RunsPage:
    rows: list[dict[str, Any]]  # id, action, action_title, status, status_label, created_by, entity, created_at
    next_after: str | None


def runs_page(db: Database, user: User, *, mine: bool, after: str | None) -> RunsPage:
    """Runs newest first, those ``user`` may see (only their own with ``mine``), a page at a time."""
    where: list[Any] = []
    if mine:
        where.append(action_runs.c.created_by == user.email)
    elif not user.is_admin:
        where.append(sa.or_(action_runs.c.created_by == user.email, action_runs.c.entity.is_not(None)))
    position = _position(after) if after else None
    if position is not None:  # an unreadable cursor (a URL edited by hand) starts from the first page
        at, run_id = position
        created = action_runs.c.created_at
        where.append(sa.or_(created < at, sa.and_(created == at, action_runs.c.id < run_id)))
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(
                action_runs.c.id,
                action_runs.c.action,
                action_runs.c.status,
                action_runs.c.status_label,
                action_runs.c.created_by,
                action_runs.c.blueprint,
                action_runs.c.entity,
                action_runs.c.created_at,
                actions.c.definition,
            )
            .select_from(action_runs.outerjoin(actions, actions.c.identifier == action_runs.c.action))
            .where(*where)
            .order_by(action_runs.c.created_at.desc(), action_runs.c.id.desc())
            .limit(PAGE_SIZE + 1)
        ).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    out = []
    for r in rows:
        row = dict(r._mapping)
        definition = row.pop("definition") or {}
        row["action_title"] = definition.get("title") or row["action"]
        out.append(row)
    return RunsPage(rows=out, next_after=encode_run_cursor(rows[-1].created_at, rows[-1].id) if more else None)


def _position(cursor: str) -> tuple[datetime, str] | None:
    try:
        return decode_run_cursor(cursor)
    except KioskError:
        return None


def _run_view(runs: Runs, user: User, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The run as the API renders it and its logs (oldest first), or None when not to be shown."""
    try:
        run = runs.get_run(run_id)
    except NotFound:
        return None
    entity = run["entity"]["identifier"] if run.get("entity") else None
    if not can_see(user, run.get("createdBy"), entity):
        return None
    logs, _ = runs.list_logs(run_id, limit=MAX_LOG_LINES)
    return run, logs


def build_runs_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def portal_of(request: Request) -> Portal:
        portal: Portal = request.app.state.portal
        return portal

    def runs_of(request: Request) -> Runs:
        runs: Runs = request.app.state.runs
        return runs

    @router.get("/ui/runs")
    async def list_runs(request: Request, mine: str | None = None, after: str | None = None) -> Response:
        portal = portal_of(request)
        session = await run_in_threadpool(portal.guard.session, request)
        if session is None:
            return portal.to_sign_in(request)
        only_mine = mine == "1"
        page = await run_in_threadpool(runs_page, portal.db, session.user, mine=only_mine, after=after or None)
        params = {"mine": "1"} if only_mine else {}
        next_href = "/ui/runs?" + urlencode({**params, "after": page.next_after}) if page.next_after else None
        return portal.renderer.page(
            "runs.html",
            {
                **portal.page_context(session, "my-runs" if only_mine else None),
                "page": page,
                "mine": only_mine,
                "next_href": next_href,
                "first_href": "/ui/runs" + ("?mine=1" if only_mine else ""),
                "after": after,
            },
        )

    @router.get("/ui/runs/{run_id}")
    async def run_page(request: Request, run_id: str, part: str | None = None) -> Response:
        portal = portal_of(request)
        session = await run_in_threadpool(portal.guard.session, request)
        if session is None:
            return portal.to_sign_in(request)
        found = await run_in_threadpool(_run_view, runs_of(request), session.user, run_id)
        if found is None:
            return portal.error_page(request, 404, "Not found", "There is no such run, or it is not yours to see.")
        run, logs = found
        context = {
            **portal.page_context(session),
            "run": run,
            "logs": logs,
            "active": run["status"] in ACTIVE,
            "links": [(link, safe_link(link)) for link in run.get("link") or []],
            "inputs": [(name, shown_value(value)) for name, value in (run.get("properties") or {}).items()],
        }
        template = "_run_live.html" if part == "live" and request.headers.get("hx-request") == "true" else "run.html"
        return portal.renderer.page(template, context, headers={"Vary": "HX-Request"})

    return router
