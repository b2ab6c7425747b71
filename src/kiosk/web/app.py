"""The FastAPI application factory.

``create_app`` does the start-up work synchronously — migrations, the token key, the first admin,
applying kiosk.yaml — so a broken database or config stops ``kiosk serve`` with one clear line
before the server listens, rather than a half-started server.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response

from kiosk import __version__
from kiosk.actions.automations import Automations
from kiosk.actions.report_tokens import ReportTokens
from kiosk.actions.runs import Runs, fail_run_for_delivery
from kiosk.actions.secrets import SecretBox
from kiosk.actions.service import Actions
from kiosk.auth.clients import bootstrap_admin
from kiosk.auth.keys import TOKEN_LABEL
from kiosk.auth.keystore import bind_keyring, migrate_legacy_keys
from kiosk.auth.live import LiveClients
from kiosk.catalog.service import Catalog
from kiosk.config.integrations import resolve_integrations
from kiosk.config.model import KioskConfig
from kiosk.config.resolved import resolve_config_secrets
from kiosk.core import jq_engine
from kiosk.delivery.worker import DeliveryWorker, FinalOutcome
from kiosk.errors import KioskError, Unauthorized
from kiosk.ingest.events_queue import stored_event_counts
from kiosk.ingest.store import IngestStore
from kiosk.runtime.background import Background
from kiosk.runtime.integrations import IntegrationRunner
from kiosk.runtime.tasks import TaskContext, build_tasks
from kiosk.settings import Settings
from kiosk.store import create_database, upgrade_to_head
from kiosk.ui import UI_KEY_LABEL, install_ui, ui_error_page
from kiosk.web.bodies import COMPONENTS
from kiosk.web.limits import BodyLimitMiddleware
from kiosk.web.metrics import Metrics, MetricsMiddleware
from kiosk.web.responses import FastJSONResponse, allowed_methods, error_response, errors
from kiosk.web.routes import actions as action_routes
from kiosk.web.routes import auth as auth_routes
from kiosk.web.routes import azure_hooks as azure_hook_routes
from kiosk.web.routes import blueprints as blueprint_routes
from kiosk.web.routes import deliveries as delivery_routes
from kiosk.web.routes import entities as entity_routes
from kiosk.web.routes import integration_hooks as integration_hook_routes
from kiosk.web.routes import integrations as integration_routes
from kiosk.web.routes.receivers import install_receivers

log = logging.getLogger("kiosk.web")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KioskError)
    async def kiosk_error(_: Request, exc: KioskError) -> Response:
        headers = {"WWW-Authenticate": exc.challenge} if isinstance(exc, Unauthorized) else None
        return error_response(exc.status_code, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def request_validation(_: Request, exc: RequestValidationError) -> Response:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"field": "request", "message": "invalid"}
        return error_response(422, "invalid_request", f"{first['field']}: {first['message']}", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method served at this path, not only the first route's
            headers["Allow"] = ", ".join(allowed_methods(request.app.router.routes, request.scope))
        page = ui_error_page(request, exc.status_code, "There is no such page." if exc.status_code == 404 else message)
        if page is not None:  # a browser on the UI gets an HTML page; the API keeps its JSON errors
            page.headers.update(headers)
            return page
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), message, headers=headers)

    @app.exception_handler(IntegrityError)
    async def integrity(_: Request, exc: IntegrityError) -> Response:
        # Two writers raced for the same identifier: the loser gets a retryable conflict.
        log.info("integrity conflict: %s", exc.orig)
        return error_response(409, "conflict", "the object was changed by a concurrent request; retry")

    @app.exception_handler(OperationalError)
    async def operational(_: Request, exc: OperationalError) -> Response:
        log.warning("database unavailable: %s", exc.orig)
        return error_response(
            503,
            "database_unavailable",
            "the database is busy or unreachable; retry shortly",
            headers={"Retry-After": "1"},
        )


def _install_ops_routes(app: FastAPI, metrics: Metrics) -> None:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    public: dict[str, Any] = {"security": []}  # no token needed: declared so in the OpenAPI document

    @app.get("/healthz", tags=["operations"], openapi_extra=public)
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "version": __version__}

    @app.get("/readyz", tags=["operations"], openapi_extra=public, responses=errors(503))
    async def readyz(request: Request) -> Response:
        try:
            await run_in_threadpool(request.app.state.db.ping)
        except Exception as exc:  # any failure to reach the database means "not ready"
            log.warning("readiness check failed: %s", type(exc).__name__)
            return error_response(503, "database_unreachable", "the database cannot be reached")
        return FastJSONResponse({"ok": True, "database": request.app.state.db.dialect})

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse, openapi_extra=public)
    async def metrics_endpoint() -> Response:
        # In the thread pool: the integrations' figures are read from the database at each scrape.
        body = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def _announce_admin(settings: Settings, pair: tuple[str, str]) -> None:
    # Printed once, to the terminal only (never to the log): the operator needs it to log in.
    client_id, secret = pair
    sys.stdout.write(
        "\nkiosk created its first admin client (shown once; also saved to "
        f"{settings.credentials_path}, mode 0600):\n  clientId:     {client_id}\n  clientSecret: {secret}\n\n"
    )
    sys.stdout.flush()


def create_app(settings: Settings) -> FastAPI:
    """Build the app: open and migrate the database, bootstrap credentials, apply kiosk.yaml."""
    settings.prepare_home()
    keyring = settings.keyring()  # outside the database; a bad key source stops the start here
    db = create_database(settings.database_url)
    upgrade_to_head(db)
    bind_keyring(db, keyring)  # a process given another key than the database uses stops here
    migrate_legacy_keys(db, keyring)  # an install from before key files: keys out of the database
    catalog = Catalog(db)
    if settings.bootstrap_admin:
        pair = bootstrap_admin(db, settings.credentials_path)
        if pair:
            _announce_admin(settings, pair)
    config = KioskConfig()
    if settings.config_path is not None:
        from kiosk.config.loader import load_config

        config = load_config(settings.config_path)
    # Secrets resolved now: a missing variable stops the start with one line naming it.
    config_dir = settings.config_path.resolve().parent if settings.config_path is not None else Path.cwd()
    secrets = resolve_config_secrets(config, base_dir=config_dir, env=os.environ)
    integrations = resolve_integrations(config, env=os.environ, base_dir=config_dir)
    # User jq runs in bounded worker processes (kiosk.core.jq_engine); applying kiosk.yaml may use them.
    jq_engine.configure(config.jq.limits())
    actions = Actions(
        db,
        azure_orgs=config.azureDevOps.orgs,
        sign_webhooks=config.delivery.signing_secret is not None,
    )
    # Wired before kiosk.yaml is applied: an entity it changes fires automations like any write.
    automations = Automations(actions)
    catalog.listener = automations
    if settings.config_path is not None:
        from kiosk.config.apply import apply_config

        apply_config(catalog, config, actions=actions)

    def delivery_ended(outcome: FinalOutcome) -> None:
        # A delivery that will never arrive means the pipeline never started: say so on the run.
        if outcome.status == "dead" and outcome.run_id is not None:
            reason = outcome.error or f"HTTP {outcome.status_code}"
            fail_run_for_delivery(
                db, outcome.run_id, f"{reason} (after {outcome.attempts} attempt(s))", listener=automations
            )

    box = SecretBox.from_keyring(keyring)
    report_tokens = ReportTokens.from_keyring(keyring)
    # run_listener: a synchronized WEBHOOK run finished by its delivery fires run automations too.
    worker = DeliveryWorker(
        db,
        config.delivery,
        config.egress,
        secrets.signing_secret,
        on_final=delivery_ended,
        box=box,
        run_listener=automations,
        report_tokens=report_tokens,
    )
    automations.notify = worker.notify
    live_clients = LiveClients(db)  # who holds a valid token now: reloaded every second (kiosk.auth.live)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything long-running starts and stops here, and only here: ``background`` is built
        # below, once the receivers are installed (kiosk.runtime.background).
        background.start()
        try:
            yield
        finally:
            await run_in_threadpool(background.stop)

    app = FastAPI(
        title="kiosk",
        version=__version__,
        description="Developer self-service portal for teams on Azure DevOps. Catalog API in Port's formats.",
        lifespan=lifespan,
        docs_url="/docs",
        default_response_class=FastJSONResponse,
        telemetry=None if settings.otel else {"tracing": False, "metrics": False, "logs": False},
    )
    metrics = Metrics()
    # The integrations' resyncs: queued, leased and run by kiosk.runtime.integrations, started by
    # the lifespan with the rest of the background work.
    integration_runner = IntegrationRunner(
        db,
        IngestStore(db, catalog),
        integrations,
        on_finished=lambda name, state: metrics.resyncs.labels(name, state.status).inc(),
        public_url=config.azureDevOps.publicUrl,  # the base of integrations' service hooks without appHost
    )
    metrics.watch_integrations(integration_runner.snapshot)
    metrics.watch_event_processing(integration_runner.event_processing)
    metrics.watch_integration_events(functools.partial(stored_event_counts, db, list(integration_runner.integrations)))
    app.state.settings = settings
    app.state.db = db
    app.state.catalog = catalog
    app.state.metrics = metrics
    app.state.keyring = keyring
    app.state.token_key = keyring.derive(TOKEN_LABEL)  # signs new tokens
    app.state.token_keys = keyring.derive_all(TOKEN_LABEL)  # verify tokens: current key, then retired ones
    app.state.live_clients = live_clients
    app.state.report_tokens = report_tokens
    app.state.actions = actions
    app.state.automations = automations
    app.state.runs = Runs(db, catalog, actions, box, notify=worker.notify, listener=automations)
    app.state.config = config
    app.state.config_secrets = secrets
    app.state.delivery_worker = worker
    app.state.integrations = integration_runner
    _install_error_handlers(app)
    _install_ops_routes(app, metrics)
    app.include_router(auth_routes.router)
    app.include_router(blueprint_routes.router)
    app.include_router(entity_routes.router)
    app.include_router(action_routes.router)
    app.include_router(delivery_routes.router)
    app.include_router(azure_hook_routes.router)
    app.include_router(integration_routes.router)
    app.include_router(integration_hook_routes.router)
    # The portal's pages at / and /ui/ (kiosk.ui); after the API's routes, which it never shadows.
    install_ui(app, db=db, catalog=catalog, key=keyring.derive(UI_KEY_LABEL), config=config.signIn, base_dir=config_dir)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # After the middlewares: the receivers' lane goes in front of them (see kiosk.web.lane).
    receivers = install_receivers(app, db=db, config=config, secrets=secrets, runs=app.state.runs, catalog=catalog)
    tasks = build_tasks(TaskContext(db, config, secrets, run_listener=automations))
    background = Background(
        db,
        receivers=receivers,
        delivery=worker,
        live_clients=live_clients,
        tasks=tasks,
        integrations=integration_runner,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},  # Azure DevOps service hooks
            }
            schema["security"] = [{"bearer": []}]  # routes without it say so (security: [])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory kiosk.web.app:app_from_env``."""
    return create_app(Settings.from_env())
