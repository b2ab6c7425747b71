"""``kiosk credentials`` and ``kiosk keys``: the API clients and the master key of the local kiosk home.

They work on the database of ``$KIOSK_HOME`` (or ``$KIOSK_DATABASE_URL``) directly, not over the
API: they make the clients the API-backed commands and scripts sign in with, and re-seal what is
stored when the master key changes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kiosk.cli.errors import reports_errors
from kiosk.cli.settings import load_settings, open_database, quiet_logging
from kiosk.errors import ConfigError

__all__ = ["credentials_app", "keys_app"]

credentials_app = typer.Typer(
    name="credentials", help="Create, list and revoke API clients (client id + secret).", no_args_is_help=True
)
keys_app = typer.Typer(
    name="keys",
    help="The master key that signs tokens and seals secrets (kept outside the database).",
    no_args_is_help=True,
)


class Role(StrEnum):
    member = "member"
    admin = "admin"


@credentials_app.command("create")
@reports_errors
def credentials_create(
    role: Annotated[Role, typer.Option(help="admin may change blueprints and clients; member may not.")],
    name: Annotated[str | None, typer.Option(help="A note saying who or what uses it.")] = None,
) -> None:
    """Create an API client and print its id and secret (the secret is shown only this once)."""
    from kiosk.auth.clients import create_client
    from kiosk.logs import register_secret

    quiet_logging()
    with open_database(load_settings()) as db:
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

    quiet_logging()
    with open_database(load_settings()) as db:
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

    quiet_logging()
    with open_database(load_settings()) as db:
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

    quiet_logging()
    settings = load_settings()
    ring = settings.keyring()
    with open_database(settings) as db:
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
