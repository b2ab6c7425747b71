"""``kiosk users create|list|set-role``, end to end on a SQLite database."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from kiosk.auth.users import authenticate_local
from kiosk.cli.app import app
from kiosk.store import create_database

runner = CliRunner()
PASSWORD = "correct horse battery staple"


def test_create_with_password_on_stdin_list_and_set_role(home: Path) -> None:
    created = runner.invoke(
        app,
        ["users", "create", "--email", "Ann@Example.com", "--role", "member", "--name", "Ann", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert created.exit_code == 0, created.output
    assert "created ann@example.com (member)" in created.stdout

    listed = runner.invoke(app, ["users", "list"])
    assert listed.exit_code == 0, listed.output
    assert "ann@example.com" in listed.stdout and "member" in listed.stdout and "local" in listed.stdout
    assert PASSWORD not in listed.stdout and "argon2" not in listed.stdout

    promoted = runner.invoke(app, ["users", "set-role", "ann@example.com", "admin"])
    assert promoted.exit_code == 0 and "ann@example.com is now admin" in promoted.stdout

    db = create_database(f"sqlite:///{home}/kiosk.db")
    user = authenticate_local(db, "ann@example.com", PASSWORD)
    assert user is not None and user.role == "admin"
    db.dispose()


def test_prompted_password_is_asked_twice(home: Path) -> None:
    mismatch = runner.invoke(
        app, ["users", "create", "--email", "bob@example.com", "--role", "admin"], input=f"{PASSWORD}\nsomething else\n"
    )
    assert mismatch.exit_code != 0 and "created" not in mismatch.stdout
    ok = runner.invoke(
        app, ["users", "create", "--email", "bob@example.com", "--role", "admin"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert ok.exit_code == 0, ok.output
    assert PASSWORD not in ok.output  # hidden input is not echoed


def test_refusals_are_one_line(home: Path) -> None:
    weak = runner.invoke(
        app, ["users", "create", "--email", "c@example.com", "--role", "member", "--password-stdin"], input="short\n"
    )
    assert weak.exit_code == 1 and "error: the password must have at least 12 characters" in weak.output
    runner.invoke(
        app, ["users", "create", "--email", "c@example.com", "--role", "member", "--password-stdin"], input=PASSWORD
    )
    again = runner.invoke(
        app, ["users", "create", "--email", "c@example.com", "--role", "member", "--password-stdin"], input=PASSWORD
    )
    assert again.exit_code != 0 and "already exists" in again.output
    unknown = runner.invoke(app, ["users", "set-role", "nobody@example.com", "admin"])
    assert unknown.exit_code != 0 and "no user nobody@example.com" in unknown.output
    bad_role = runner.invoke(app, ["users", "set-role", "c@example.com", "root"])
    assert bad_role.exit_code == 2
