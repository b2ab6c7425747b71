"""The ``kiosk`` command: the typer app that gathers every command group, and its entry point.

Each group lives in its own module (``serve``, ``demo``, ``emulator``, ``credentials``, ``actions``,
``receivers``, ``pipelines``, ``signing``, ``integrations``); this module only registers them, in the order
``kiosk --help`` lists them. Errors a user can cause (a bad config, an unreachable database, a
missing file) are printed as one line, ``error: <message>``, with exit code 2 for bad input
(config, usage) and 1 for the rest; a traceback is reserved for bugs (:mod:`kiosk.cli.errors`).
Heavy imports (the web app, the catalog) happen inside the commands so ``kiosk version`` and
``--help`` stay instant.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from sqlalchemy.exc import OperationalError

import kiosk
from kiosk.cli.actions import actions_app, deliveries_app, runs_app
from kiosk.cli.credentials import credentials_app, keys_app
from kiosk.cli.demo import demo
from kiosk.cli.emulator import emulator_app
from kiosk.cli.errors import error_exit
from kiosk.cli.integrations import integrations_app
from kiosk.cli.pipelines import pipeline_app
from kiosk.cli.receivers import receivers_app
from kiosk.cli.serve import apply, serve
from kiosk.cli.signing import send, sign
from kiosk.cli.users import users_app
from kiosk.errors import KioskError

__all__ = ["app", "main"]

app = typer.Typer(
    name="kiosk",
    help="kiosk: a self-hosted developer portal for teams on Azure DevOps.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def version() -> None:
    """Print the kiosk version."""
    typer.echo(f"kiosk {kiosk.__version__}")


# ``kiosk --help`` lists the commands in this order, then the groups in theirs.
for command in (demo, sign, send, version, serve, apply):
    app.command()(command)
for group in (
    emulator_app,
    credentials_app,
    users_app,
    keys_app,
    pipeline_app,
    actions_app,
    runs_app,
    deliveries_app,
    receivers_app,
    integrations_app,
):
    app.add_typer(group)


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
