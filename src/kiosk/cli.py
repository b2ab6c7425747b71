"""The ``kiosk`` command: serve the portal, apply kiosk.yaml, manage API credentials.

Errors a user can cause (a bad config, an unreachable database, a missing file) are printed as
one line, ``error: <message>``, with exit code 2 for bad input (config, usage) and 1 for the
rest; a traceback is reserved for bugs. Heavy imports (the web app, the catalog) happen inside
the commands so ``kiosk version`` and ``--help`` stay instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError

import kiosk
from kiosk.cli_api import actions_app, deliveries_app, runs_app
from kiosk.cli_demo import demo
from kiosk.cli_errors import error_exit, reports_errors
from kiosk.cli_pipelines import emulator, pipeline_app, send, sign
from kiosk.cli_receivers import receivers_app
from kiosk.errors import ConfigError, KioskError
from kiosk.settings import Settings

if TYPE_CHECKING:
    from kiosk.store import Database

__all__ = ["app", "main"]

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="kiosk",
    help="kiosk: a self-hosted developer portal for teams on Azure DevOps.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
credentials_app = typer.Typer(
    name="credentials", help="Create, list and revoke API clients (client id + secret).", no_args_is_help=True
)
keys_app = typer.Typer(
    name="keys",
    help="The master key that signs tokens and seals secrets (kept outside the database).",
    no_args_is_help=True,
)
app.add_typer(credentials_app)
app.add_typer(keys_app)
app.add_typer(pipeline_app)
app.add_typer(actions_app)
app.add_typer(runs_app)
app.add_typer(deliveries_app)
app.add_typer(receivers_app)
app.command()(emulator)
app.command()(demo)
app.command()(sign)
app.command()(send)


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


class LogFormat(StrEnum):
    json = "json"
    text = "text"


class Role(StrEnum):
    member = "member"
    admin = "admin"


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


def _settings(config: Path | None = None) -> Settings:
    """Settings from the environment, ``--config`` on top; KIOSK_HOME created private if missing."""
    settings = Settings.from_env().with_config(config)
    if not settings.home.exists():
        settings.home.mkdir(parents=True, mode=0o700)
        os.chmod(settings.home, 0o700)  # mkdir's mode is filtered by the umask
    return settings


@contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    """The migrated database for a one-shot command, closed when the command ends."""
    from kiosk.store import create_database, upgrade_to_head

    try:
        db = create_database(settings.database_url)
    except ValueError as exc:  # unsupported URL scheme
        raise ConfigError(f"KIOSK_DATABASE_URL: {exc}") from None
    try:
        upgrade_to_head(db)
        yield db
    finally:
        db.dispose()


def _quiet_logging() -> None:
    """One-shot commands talk through their own output; only warnings go to the log."""
    from kiosk.logs import configure_logging

    configure_logging("WARNING", json=False)


@app.command()
def version() -> None:
    """Print the kiosk version."""
    typer.echo(f"kiosk {kiosk.__version__}")


@app.command()
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

    settings = _settings(config)
    configure_logging(log_level.value.upper(), json=log_format is LogFormat.json)

    from kiosk.web.app import create_app

    # create_app migrates, bootstraps and applies kiosk.yaml before returning, so a broken config
    # or database is reported here as one line, before the port is bound.
    app_ = create_app(settings)
    from kiosk.web.runtime import tune_for_server
    from kiosk.web.server import server_config

    tune_for_server()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - display only
    sys.stdout.write(serve_banner(settings, shown, port))
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


def serve_banner(settings: Settings, host: str, port: int) -> str:
    """What ``kiosk serve`` (and ``kiosk demo``) print on start: where, which database, the credentials file."""
    return (
        f"kiosk {kiosk.__version__} serving on http://{host}:{port}  (API docs: http://{host}:{port}/docs)\n"
        f"  database:    {_display_url(settings.database_url)}\n"
        f"  credentials: {settings.credentials_path} (admin clientId/clientSecret)\n"
    )


def _display_url(url: str) -> str:
    """A database URL without its credentials (user:password@ never reaches the terminal)."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2] if sep else url


@app.command()
@reports_errors
def apply(config: ConfigOption = None) -> None:
    """Apply kiosk.yaml to the catalog (idempotent) and print what changed."""
    from kiosk.config import apply_config, load_config

    settings = _settings(config)
    if settings.config_path is None:
        raise ConfigError("no config to apply: pass --config FILE or set KIOSK_CONFIG")
    _quiet_logging()
    loaded = load_config(settings.config_path)  # before touching the database

    from kiosk.actions.automations import Automations
    from kiosk.actions.service import Actions
    from kiosk.catalog.service import Catalog
    from kiosk.core import jq_engine

    jq_engine.configure(loaded.jq.limits())  # automations' conditions run bounded, as in the server
    with _database(settings) as db:
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


@credentials_app.command("create")
@reports_errors
def credentials_create(
    role: Annotated[Role, typer.Option(help="admin may change blueprints and clients; member may not.")],
    name: Annotated[str | None, typer.Option(help="A note saying who or what uses it.")] = None,
) -> None:
    """Create an API client and print its id and secret (the secret is shown only this once)."""
    from kiosk.auth.clients import create_client
    from kiosk.logs import register_secret

    _quiet_logging()
    with _database(_settings()) as db:
        client_id, secret = create_client(db, role.value, name)
    register_secret(secret)
    typer.echo(f"client id:     {client_id}")
    typer.echo(f"client secret: {secret}")
    typer.echo("Store the secret now: kiosk keeps only its hash and cannot show it again.", err=True)


@credentials_app.command("list")
@reports_errors
def credentials_list() -> None:
    """List API clients (ids, roles, names; never secrets)."""
    from kiosk.auth.clients import list_clients

    _quiet_logging()
    with _database(_settings()) as db:
        clients = list_clients(db)
    table = Table()
    for column in ("client id", "role", "name", "created", "revoked"):
        table.add_column(column)

    def when(value: object) -> str:
        return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value or "")

    for client in clients:
        table.add_row(
            str(client["client_id"]),
            str(client["role"]),
            str(client.get("name") or ""),
            when(client.get("created_at")),
            when(client.get("revoked_at")),
        )
    Console().print(table)


@credentials_app.command("revoke")
@reports_errors
def credentials_revoke(client_id: Annotated[str, typer.Argument(help="The client id (kc_...).")]) -> None:
    """Revoke an API client: its secret gets no token, its tokens are refused within seconds."""
    from kiosk.auth.clients import revoke_client

    _quiet_logging()
    with _database(_settings()) as db:
        row = revoke_client(db, client_id)
    typer.echo(f"revoked {row['client_id']} ({row['role']}) at {row['revoked_at'].isoformat(timespec='seconds')}")


@keys_app.command("rotate")
@reports_errors
def keys_rotate() -> None:
    """Re-seal stored secrets under the current master key, after a new key was put first.

    Put the new key first and the old one after it (KIOSK_SECRET_KEY=new,old, or one per line in
    the key file), restart every process with that, then run this.
    """
    from kiosk.actions.secrets import SecretBox
    from kiosk.auth.keystore import bind_keyring, migrate_legacy_keys, reseal_stored

    _quiet_logging()
    settings = _settings()
    ring = settings.keyring()
    with _database(settings) as db:
        bind_keyring(db, ring)
        migrate_legacy_keys(db, ring)
        report = reseal_stored(db, SecretBox.from_keyring(ring))
    typer.echo(
        f"re-sealed {report.runs} run input set(s) and {report.bodies} delivery body(ies) "
        f"under key {ring.current.key_id} (from {ring.source})"
    )
    if report.unopened:
        for item in report.unopened:
            typer.echo(f"not re-sealed: {item}", err=True)
        raise ConfigError(f"{len(report.unopened)} sealed item(s) did not open with any key; keep the old keys")
    if ring.retired:
        retired = ", ".join(k.key_id for k in ring.retired)
        hours = settings.token_ttl_seconds / 3600
        typer.echo(
            f"nothing is sealed under the retired key(s) {retired} any more. Tokens they signed stay valid until "
            f"they expire: drop them from the key source {hours:g} hour(s) after every process runs with the new key."
        )
    else:
        typer.echo("the key source holds no retired key; nothing else to do.")


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``kiosk`` script and ``python -m kiosk``.

    The commands report their own errors; this is the backstop for the ones raised outside a
    command body (while building settings from a bad environment, for instance).
    """
    try:
        return app(args=argv, prog_name="kiosk")
    except (KioskError, OperationalError, OSError) as exc:
        exit_ = error_exit(exc)
        assert exit_ is not None
        sys.exit(exit_.exit_code)
