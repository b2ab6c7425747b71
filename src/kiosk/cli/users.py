"""``kiosk users``: the portal's local users (email + password), and every user's role.

Like ``kiosk credentials`` it works on the database of ``$KIOSK_HOME`` (or ``$KIOSK_DATABASE_URL``)
directly. The password is asked twice on a terminal, or read from standard input with
``--password-stdin`` (one line, for scripts); it is never an option, so it stays out of shell
history and process listings.
"""

from __future__ import annotations

import sys
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kiosk.cli.errors import reports_errors
from kiosk.cli.settings import load_settings, open_database, quiet_logging
from kiosk.errors import BadRequest

__all__ = ["users_app"]

users_app = typer.Typer(name="users", help="Create and list the portal's users; set their roles.", no_args_is_help=True)


class Role(StrEnum):
    member = "member"
    admin = "admin"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("create")
@reports_errors
def users_create(
    email: Annotated[str, typer.Option(help="The person's email: their sign-in name and _user identifier.")],
    role: Annotated[Role, typer.Option(help="admin may change the catalog; member reads it and runs actions.")],
    name: Annotated[str | None, typer.Option(help="The name shown in the portal.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (one line).")
    ] = False,
) -> None:
    """Create a local user who signs in with an email and a password (hashed with argon2)."""
    from kiosk.auth.users import create_user

    quiet_logging()
    password = _read_password(password_stdin)
    if not password:
        raise BadRequest("the password is empty", code="weak_password")
    with open_database(load_settings()) as db:
        user = create_user(db, email, role.value, password, name=name)
    typer.echo(f"created {user.email} ({user.role})")


@users_app.command("list")
@reports_errors
def users_list() -> None:
    """List the users (local and OIDC) with their roles; never passwords."""
    from kiosk.auth.users import list_users

    quiet_logging()
    with open_database(load_settings()) as db:
        users = list_users(db)
    table = Table()
    for column in ("email", "name", "role", "kind", "created", "last sign-in"):
        table.add_column(column)

    def when(value: object) -> str:
        return value.isoformat(timespec="seconds") if isinstance(value, datetime) else ""

    for user in users:
        table.add_row(
            str(user["email"]),
            str(user["name"] or ""),
            str(user["role"]),
            str(user["kind"]),
            when(user["createdAt"]),
            when(user["lastSignInAt"]),
        )
    Console(width=200).print(table)


@users_app.command("set-role")
@reports_errors
def users_set_role(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    role: Annotated[Role, typer.Argument(help="admin or member.")],
) -> None:
    """Set a user's role (an OIDC user's role is set again from their groups at each sign-in)."""
    from kiosk.auth.users import set_role

    quiet_logging()
    with open_database(load_settings()) as db:
        user = set_role(db, email, role.value)
    typer.echo(f"{user.email} is now {user.role}")
