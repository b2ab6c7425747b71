"""The portal's web UI: server-rendered pages (Jinja2 templates, htmx vendored, a small CSS).

:func:`install_ui` mounts it on kiosk's app: the pages at ``/`` and under ``/ui/``; the API keeps
``/v1`` and its JSON errors. :func:`ui_error_page` is what the app's error handler asks first, so
a browser that hits a missing UI page gets an HTML page, and an API client still gets JSON.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from kiosk.auth.oidc import OidcClient, OidcProvider
from kiosk.auth.sessions import SessionPolicy, Sessions
from kiosk.catalog.service import Catalog
from kiosk.config.secrets import resolve_secret
from kiosk.config.signin import SignInConfig
from kiosk.store.engine import Database
from kiosk.ui.actions import build_actions_router
from kiosk.ui.assets import StaticAssets
from kiosk.ui.catalog_pages import build_catalog_router
from kiosk.ui.guard import Guard
from kiosk.ui.pages import Portal, build_router
from kiosk.ui.rendering import Renderer

__all__ = ["UI_KEY_LABEL", "install_ui", "is_ui_path", "oidc_provider", "ui_error_page"]

#: The master-key label of the UI's own key (sign-in form tokens, OIDC attempts).
UI_KEY_LABEL = b"kiosk ui sign-in"

_TITLES = {400: "Bad request", 401: "Sign-in needed", 403: "Forbidden", 404: "Not found", 405: "Not allowed"}


def is_ui_path(path: str) -> bool:
    """Whether ``path`` belongs to the UI (HTML errors) rather than the API (JSON errors)."""
    return path == "/" or path.startswith("/ui/")


def oidc_provider(config: SignInConfig, *, base_dir: Path, env: dict[str, str] | None = None) -> OidcProvider | None:
    """The configured provider with its client secret read now (a missing secret stops the start)."""
    settings = config.oidc
    if settings is None:
        return None
    secret = resolve_secret(settings.clientSecret, base_dir=base_dir, env=os.environ if env is None else env)
    return OidcProvider(
        issuer=settings.issuer,
        client_id=settings.clientId,
        client_secret=secret.reveal(),
        name=settings.name,
        scopes=tuple(settings.scopes),
        groups_claim=settings.groupsClaim,
        email_claims=tuple(settings.emailClaims),
        admin_groups=frozenset(settings.roles.admin),
        member_groups=frozenset(settings.roles.member),
        default_role=settings.defaultRole,
    )


def install_ui(
    app: FastAPI, *, db: Database, catalog: Catalog, key: bytes, config: SignInConfig, base_dir: Path
) -> Portal:
    """Mount the UI's routes on ``app`` (Port's ``_user``/``_team`` blueprints are made at the first
    sign-in, see :meth:`Portal.signed_in`: an install nobody signs in to keeps the catalog it was given)."""
    policy = SessionPolicy(
        idle=timedelta(minutes=config.session.idleMinutes), absolute=timedelta(hours=config.session.absoluteHours)
    )
    assets = StaticAssets()
    provider = oidc_provider(config, base_dir=base_dir)
    portal = Portal(
        db=db,
        catalog=catalog,
        guard=Guard(Sessions(db, policy), key, config.publicUrl),
        renderer=Renderer(assets.url),
        assets=assets,
        local_users=config.localUsers,
        oidc=OidcClient(provider) if provider else None,
    )
    app.state.portal = portal
    app.include_router(build_router())
    app.include_router(build_catalog_router())
    app.include_router(build_actions_router())  # the hub, action forms and run pages
    return portal


def ui_error_page(request: Request, status: int, message: str) -> Response | None:
    """An HTML error page when ``request`` is for the UI, else None (the API answers JSON)."""
    portal: Portal | None = getattr(request.app.state, "portal", None)
    if portal is None or not is_ui_path(request.url.path):
        return None
    return portal.error_page(request, status, _TITLES.get(status, "Error"), message)
