"""The UI's routes in this slice: home, sign-in (local form and OIDC), sign-out, static files
(the catalog's pages are in :mod:`kiosk.ui.catalog_pages`).

Every route is left out of the OpenAPI document (it describes the API). Pages need a session:
without one a page redirects to the sign-in form with ``next`` set, so the person lands where they
were going. Database and argon2 work runs in the thread pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from kiosk.auth.oidc import OidcClient, OidcError, begin_sign_in, email_of, open_attempt, role_for, seal_attempt
from kiosk.auth.people_blueprints import ensure_people_blueprints, upsert_user_entity
from kiosk.auth.sessions import Session
from kiosk.auth.users import User, authenticate_local, upsert_oidc_user
from kiosk.catalog.service import Catalog
from kiosk.errors import KioskError
from kiosk.store.engine import Database
from kiosk.ui.assets import STATIC_PREFIX, StaticAssets
from kiosk.ui.guard import OIDC_COOKIE, SESSION_COOKIE, SIGN_IN_COOKIE, Guard
from kiosk.ui.home import home_view
from kiosk.ui.rendering import Renderer

__all__ = ["SIGN_IN_PATH", "Portal", "build_router", "safe_next"]

log = logging.getLogger("kiosk.ui")

SIGN_IN_PATH = "/ui/sign-in"
OIDC_START_PATH = "/ui/sign-in/oidc"
OIDC_CALLBACK_PATH = "/ui/sign-in/oidc/callback"
MAX_FORM_FIELD = 2048


def safe_next(value: str | None) -> str:
    """``value`` when it is a path on this site, else ``/``: never a redirect to another host
    (``//evil.example``, ``/\\evil.example`` and absolute URLs are refused)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 2000:
        return "/"
    if any(ord(c) < 0x20 for c in value):
        return "/"
    return value


@dataclass
class Portal:
    """What the UI's routes work with (kept on ``app.state.portal``)."""

    db: Database
    catalog: Catalog
    guard: Guard
    renderer: Renderer
    assets: StaticAssets
    local_users: bool
    oidc: OidcClient | None
    people_blueprints_ready: bool = False  # _user and _team checked (and made if missing) once per process

    def error_page(self, request: Request, status: int, title: str, message: str) -> Response:
        session = self.guard.session(request)
        return self.renderer.page(
            "error.html",
            {
                "status": status,
                "title": title,
                "message": message,
                "user": session.user if session else None,
                "csrf_token": session.csrf_token if session else None,
            },
            status=status,
        )

    def forbidden(self, request: Request) -> Response:
        return self.error_page(
            request,
            403,
            "Request refused",
            "This form could not be accepted: it did not come from a kiosk page of this session. "
            "Reload the page and try again.",
        )

    def to_sign_in(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{SIGN_IN_PATH}?next={quote(target, safe='')}", status_code=303)

    def page_context(self, session: Session, nav: str | None = None) -> dict[str, Any]:
        return {"user": session.user, "csrf_token": session.csrf_token, "nav": nav}

    async def sign_in_page(
        self, request: Request, next_path: str, *, error: str | None = None, email: str = "", status: int = 200
    ) -> Response:
        nonce = request.cookies.get(SIGN_IN_COOKIE) or self.guard.new_sign_in_nonce()
        response = self.renderer.page(
            "sign_in.html",
            {
                "form_token": self.guard.sign_in_form_token(nonce),
                "next_path": next_path,
                "error": error,
                "email": email,
                "local_users": self.local_users,
                "oidc_name": self.oidc.provider.name if self.oidc else None,
            },
            status=status,
        )
        self.guard.set_cookie(request, response, SIGN_IN_COOKIE, nonce, max_age=3600)
        return response

    async def signed_in(self, request: Request, user: User, next_path: str) -> Response:
        """Start the session (a new id; the browser's previous one ended) and go to ``next_path``."""
        previous = request.cookies.get(SESSION_COOKIE)
        session_id = await run_in_threadpool(self.guard.sessions.start, user, replacing=previous)
        # Sessions whose browser never came back are found by nobody: each sign-in sweeps them.
        await run_in_threadpool(self.guard.sessions.prune)
        try:
            if not self.people_blueprints_ready:
                await run_in_threadpool(ensure_people_blueprints, self.catalog)
                self.people_blueprints_ready = True
            await run_in_threadpool(upsert_user_entity, self.catalog, user)
        except (KioskError, SQLAlchemyError):  # the sign-in stands; a catalog refusal is logged, not shown
            log.exception("could not upsert the _user entity of %s", user.email)
        response = RedirectResponse(next_path, status_code=303)
        max_age = int(self.guard.sessions.policy.absolute.total_seconds())
        self.guard.set_cookie(request, response, SESSION_COOKIE, session_id, max_age=max_age)
        self.guard.clear_cookie(request, response, SIGN_IN_COOKIE)
        return response


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value[:MAX_FORM_FIELD] if isinstance(value, str) else ""


def build_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def portal_of(request: Request) -> Portal:
        portal: Portal = request.app.state.portal
        return portal

    @router.get("/")
    async def home(request: Request) -> Response:
        portal = portal_of(request)
        session = await run_in_threadpool(portal.guard.session, request)
        if session is None:
            return portal.to_sign_in(request)
        view = await run_in_threadpool(home_view, portal.db, session.user.email)
        return portal.renderer.page(
            "home.html",
            {
                **portal.page_context(session, "home"),
                "blueprints": view.blueprints,
                "action_count": view.action_count,
                "runs": view.runs,
            },
        )

    @router.get(SIGN_IN_PATH)
    async def sign_in_form(request: Request, next: str | None = None) -> Response:
        portal = portal_of(request)
        next_path = safe_next(next)
        if await run_in_threadpool(portal.guard.session, request):
            return RedirectResponse(next_path, status_code=303)
        return await portal.sign_in_page(request, next_path)

    @router.post(SIGN_IN_PATH)
    async def sign_in(request: Request) -> Response:
        portal = portal_of(request)
        form = await request.form()
        if not portal.guard.sign_in_form_ok(request, _field(form, "csrf_token")):
            return portal.forbidden(request)
        next_path = safe_next(_field(form, "next"))
        email = _field(form, "email")
        if not portal.local_users:
            return portal.error_page(request, 404, "Not found", "Local sign-in is turned off on this kiosk.")
        user = await run_in_threadpool(authenticate_local, portal.db, email, _field(form, "password"))
        if user is None:
            log.info("local sign-in refused")
            return await portal.sign_in_page(
                request, next_path, error="The email or the password is not right.", email=email, status=401
            )
        log.info("signed in %s (local)", user.email)
        return await portal.signed_in(request, user, next_path)

    @router.post("/ui/sign-out")
    async def sign_out(request: Request) -> Response:
        portal = portal_of(request)
        session = await run_in_threadpool(portal.guard.session, request)
        if session is None:
            return RedirectResponse(SIGN_IN_PATH, status_code=303)
        form = await request.form()
        if not portal.guard.session_form_ok(request, session, _field(form, "csrf_token")):
            return portal.forbidden(request)
        await run_in_threadpool(portal.guard.sessions.end, request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse(SIGN_IN_PATH, status_code=303)
        portal.guard.clear_cookie(request, response, SESSION_COOKIE)
        return response

    @router.get(OIDC_START_PATH)
    async def oidc_start(request: Request, next: str | None = None) -> Response:
        portal = portal_of(request)
        if portal.oidc is None:
            return portal.error_page(request, 404, "Not found", "No OpenID Connect provider is configured.")
        attempt = begin_sign_in(safe_next(next))
        redirect_uri = portal.guard.base_url(request) + OIDC_CALLBACK_PATH
        try:
            url = await portal.oidc.authorization_url(attempt, redirect_uri)
        except (OidcError, httpx.HTTPError, ValueError) as exc:
            log.warning("OIDC provider unavailable: %s", exc)
            return portal.error_page(request, 502, "Sign-in unavailable", f"The sign-in provider is unavailable: {exc}")
        response = RedirectResponse(url, status_code=303)
        portal.guard.set_cookie(request, response, OIDC_COOKIE, seal_attempt(portal.guard.key, attempt), max_age=600)
        return response

    @router.get(OIDC_CALLBACK_PATH)
    async def oidc_callback(
        request: Request, code: str | None = None, state: str | None = None, error: str | None = None
    ) -> Response:
        portal = portal_of(request)
        if portal.oidc is None:
            return portal.error_page(request, 404, "Not found", "No OpenID Connect provider is configured.")
        oidc = portal.oidc
        try:
            if error:
                raise OidcError(f"the provider answered {error[:100]!r}")
            attempt = open_attempt(portal.guard.key, request.cookies.get(OIDC_COOKIE))
            redirect_uri = portal.guard.base_url(request) + OIDC_CALLBACK_PATH
            claims = await oidc.finish(attempt, state, code, redirect_uri)
            role = role_for(oidc.provider, claims)
            email = email_of(oidc.provider, claims)
            name = claims.get("name") if isinstance(claims.get("name"), str) else None
            user = await run_in_threadpool(upsert_oidc_user, portal.db, email, str(claims["sub"]), name, role)
        except (OidcError, KioskError, httpx.HTTPError, ValueError) as exc:
            log.warning("OIDC sign-in refused: %s", exc)
            response = portal.error_page(request, 403, "Sign-in refused", f"Sign-in failed: {exc}")
            portal.guard.clear_cookie(request, response, OIDC_COOKIE)
            return response
        log.info("signed in %s (OIDC, %s)", user.email, user.role)
        response = await portal.signed_in(request, user, attempt.next_path)
        portal.guard.clear_cookie(request, response, OIDC_COOKIE)
        return response

    @router.get(STATIC_PREFIX + "/{digest}/{name}")
    async def static_file(request: Request, digest: str, name: str) -> Response:
        portal = portal_of(request)
        found = portal.assets.response(digest, name)
        if found is None:
            return portal.error_page(request, 404, "Not found", "There is no such file.")
        return found

    return router
