"""``kiosk serve`` and ``kiosk apply``: run the portal, apply kiosk.yaml to its catalog.

Heavy imports (uvicorn, the web app, the catalog) happen inside the commands so ``kiosk version``
and ``--help`` stay instant.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kiosk.cli.errors import reports_errors
from kiosk.cli.settings import display_host, load_settings, open_database, quiet_logging, serve_banner
from kiosk.errors import ConfigError

__all__ = ["ConfigOption", "apply", "serve"]


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


class LogFormat(StrEnum):
    json = "json"
    text = "text"


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="kiosk.yaml to apply (overrides $KIOSK_CONFIG).",
        dir_okay=False,
        show_default=False,
    ),
]


@reports_errors
def serve(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    log_level: Annotated[LogLevel, typer.Option(help="Lowest level logged.", case_sensitive=False)] = LogLevel.info,
    log_format: Annotated[
        LogFormat, typer.Option(help="json: one object per line; text: for a terminal.", case_sensitive=False)
    ] = LogFormat.json,
) -> None:
    """Run the portal (API, UI, delivery workers) until SIGTERM or Ctrl-C."""
    import uvicorn

    from kiosk.logs import configure_logging

    settings = load_settings(config)
    configure_logging(log_level.value.upper(), json=log_format is LogFormat.json)

    from kiosk.web.app import create_app

    # create_app migrates, bootstraps and applies kiosk.yaml before returning, so a broken config
    # or database is reported here as one line, before the port is bound.
    app_ = create_app(settings)
    from kiosk.runtime.tuning import tune_for_server
    from kiosk.web.server import server_config

    tune_for_server()
    sys.stdout.write(serve_banner(settings, display_host(host), port))
    sys.stdout.flush()
    server = uvicorn.Server(
        server_config(
            app_,
            host,
            port,
            settings.http,
            log_config=None,  # keep kiosk's redacting handler (configure_logging routes uvicorn's loggers)
            log_level=log_level.value,
            timeout_graceful_shutdown=10,
        )
    )
    server.run()


@reports_errors
def apply(config: ConfigOption = None) -> None:
    """Apply kiosk.yaml to the catalog (idempotent) and print what changed."""
    from kiosk.config import apply_config, load_config

    settings = load_settings(config)
    if settings.config_path is None:
        raise ConfigError("no config to apply: pass --config FILE or set KIOSK_CONFIG")
    quiet_logging()
    loaded = load_config(settings.config_path)  # before touching the database

    from kiosk.actions.automations import Automations
    from kiosk.actions.service import Actions
    from kiosk.catalog.service import Catalog
    from kiosk.core import jq_engine

    jq_engine.configure(loaded.jq.limits())  # automations' conditions run bounded, as in the server
    with open_database(settings) as db:
        # The same wiring as the server: entities kiosk.yaml changes fire automations (their
        # deliveries are stored here and sent by the server's worker).
        actions = Actions(
            db, azure_orgs=loaded.azureDevOps.orgs, sign_webhooks=loaded.delivery.signing_secret is not None
        )
        report = apply_config(Catalog(db, listener=Automations(actions)), loaded, actor="kiosk apply", actions=actions)

    table = Table(title=f"Applied {settings.config_path}")
    table.add_column("kind")
    table.add_column("blueprint")
    table.add_column("identifier")
    table.add_column("status")
    style = {"created": "green", "updated": "yellow", "unchanged": "dim"}
    for result in report.results:
        status = f"[{style[result.status]}]{result.status}[/]"
        table.add_row(result.kind, result.blueprint or "", result.identifier, status)
    console = Console()
    console.print(table)
    counts = report.counts()
    console.print(f"{counts['created']} created, {counts['updated']} updated, {counts['unchanged']} unchanged")
