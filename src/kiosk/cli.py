"""The ``kiosk`` command: serve the portal, apply kiosk.yaml, manage API credentials.

Errors a user can cause (a bad config, an unreachable database, a missing file) are printed as
one line, ``error: <message>``, with exit code 2 for bad input (config, usage) and 1 for the
rest; a traceback is reserved for bugs. Heavy imports (the web app, the catalog) happen inside
the commands so ``kiosk version`` and ``--help`` stay instant.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
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
from kiosk.errors import BadRequest, ConfigError, KioskError
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
    name="credentials", help="Create and list API clients (client id + secret).", no_args_is_help=True
)
app.add_typer(credentials_app)

#: Exit code for input the user must fix (kiosk.yaml, flags); click uses 2 for usage errors too.
EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


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


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {_one_line(message)}", err=True)
    return typer.Exit(code)


def _error_exit(exc: BaseException) -> typer.Exit | None:
    """The one-line report and exit for an error the user can act on; None for a bug."""
    if isinstance(exc, ConfigError):
        return _fail(exc.message, EXIT_BAD_INPUT)
    if isinstance(exc, KioskError):
        return _fail(exc.message, EXIT_FAILURE)
    if isinstance(exc, OperationalError):
        # The driver's first line says what failed (unable to open, connection refused...);
        # the rest is SQL and a link.
        return _fail(f"database: {str(exc.orig or exc).splitlines()[0]}", EXIT_FAILURE)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_FAILURE)
    return None


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the user-facing errors of a command into ``error: ...`` lines (typer keeps the signature)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (KioskError, OperationalError, OSError) as exc:
            exit_ = _error_exit(exc)
            assert exit_ is not None
            raise exit_ from None

    return wrapper


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

    tune_for_server()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - display only
    sys.stdout.write(
        f"kiosk {kiosk.__version__} serving on http://{shown}:{port}  (API docs: http://{shown}:{port}/docs)\n"
        f"  database:    {_display_url(settings.database_url)}\n"
        f"  credentials: {settings.credentials_path} (admin clientId/clientSecret)\n"
    )
    sys.stdout.flush()
    uvicorn.run(
        app_,
        host=host,
        port=port,
        log_config=None,  # keep kiosk's redacting handler (configure_logging routes uvicorn's loggers)
        log_level=log_level.value,
        timeout_graceful_shutdown=10,
        server_header=False,
    )


SecretOption = Annotated[
    str,
    typer.Option(
        "--secret",
        envvar="KIOSK_WEBHOOK_SECRET",
        help="The incoming webhook's secret (or set $KIOSK_WEBHOOK_SECRET, which keeps it out of ps).",
        show_default=False,
    ),
]
BodyArgument = Annotated[Path, typer.Argument(help="The JSON body to sign (read as bytes).", show_default=False)]


def _webhook_body(path: Path, raw: bool) -> bytes:
    """The bytes to sign and send: the file minified (what Azure expects), or as it is with --raw."""
    from kiosk.core.signing import minify_json

    data = path.read_bytes()
    if raw:
        return data
    try:
        return minify_json(data)
    except ValueError as exc:
        raise BadRequest(f"{path}: {exc}") from None


@app.command()
@reports_errors
def sign(
    body: BodyArgument,
    secret: SecretOption,
    raw: Annotated[bool, typer.Option(help="Sign the file's bytes as they are instead of minified.")] = False,
) -> None:
    """Print the HMAC-SHA1 checksum Azure's incoming webhook expects for BODY."""
    from kiosk.core.signing import sign_azure_checksum

    typer.echo(sign_azure_checksum(secret, _webhook_body(body, raw)))


@app.command()
@reports_errors
def send(
    url: Annotated[
        str, typer.Argument(help="The incoming webhook URL (…/_apis/public/distributedtask/webhooks/NAME).")
    ],
    body: BodyArgument,
    secret: SecretOption,
    header: Annotated[str, typer.Option(help="Header that carries the checksum.")] = "X-Port-Signature",
    raw: Annotated[bool, typer.Option(help="Send the file's bytes as they are instead of minified.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.", min=0.1)] = 30.0,
) -> None:
    """Minify BODY, sign it and POST it to an Azure Pipelines incoming webhook; print the answer."""
    import httpx

    from kiosk.core.signing import sign_azure_checksum

    if not url.startswith(("http://", "https://")):
        raise BadRequest(f"URL must start with http:// or https://, not {url!r}")
    payload = _webhook_body(body, raw)
    headers = {"Content-Type": "application/json", header: sign_azure_checksum(secret, payload)}
    try:
        response = httpx.post(url, content=payload, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise KioskError(f"could not reach {url}: {exc}") from None
    typer.echo(f"HTTP {response.status_code}")
    if response.content:
        typer.echo(response.text)
    if response.status_code >= 300:
        raise typer.Exit(EXIT_FAILURE)


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

    from kiosk.catalog.service import Catalog

    with _database(settings) as db:
        report = apply_config(Catalog(db), loaded, actor="kiosk apply")

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
    for column in ("client id", "role", "name", "created"):
        table.add_column(column)
    for client in clients:
        created = client.get("created_at")
        table.add_row(
            str(client["client_id"]),
            str(client["role"]),
            str(client.get("name") or ""),
            created.isoformat(timespec="seconds") if isinstance(created, datetime) else str(created or ""),
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``kiosk`` script and ``python -m kiosk``.

    The commands report their own errors; this is the backstop for the ones raised outside a
    command body (while building settings from a bad environment, for instance).
    """
    try:
        return app(args=argv, prog_name="kiosk")
    except (KioskError, OperationalError, OSError) as exc:
        exit_ = _error_exit(exc)
        assert exit_ is not None
        sys.exit(exit_.exit_code)
