"""How the ``kiosk`` commands report errors: one line, ``error: <message>``, and an exit code.

Exit code 2 for input the user must fix (config, usage; click uses 2 for usage errors too) and 1
for the rest; a traceback is reserved for bugs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from sqlalchemy.exc import OperationalError

from kiosk.errors import ConfigError, KioskError

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILURE", "error_exit", "fail", "one_line", "reports_errors"]

P = ParamSpec("P")
R = TypeVar("R")

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


def one_line(message: str) -> str:
    return " ".join(message.split())


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {one_line(message)}", err=True)
    return typer.Exit(code)


def error_exit(exc: BaseException) -> typer.Exit | None:
    """The one-line report and exit for an error the user can act on; None for a bug."""
    if isinstance(exc, ConfigError):
        return fail(exc.message, EXIT_BAD_INPUT)
    if isinstance(exc, KioskError):
        return fail(exc.message, EXIT_FAILURE)
    if isinstance(exc, OperationalError):
        # The driver's first line says what failed (unable to open, connection refused...);
        # the rest is SQL and a link.
        return fail(f"database: {str(exc.orig or exc).splitlines()[0]}", EXIT_FAILURE)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(f"{where}{exc.strerror or exc}", EXIT_FAILURE)
    return None


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the user-facing errors of a command into ``error: ...`` lines (typer keeps the signature)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (KioskError, OperationalError, OSError) as exc:
            exit_ = error_exit(exc)
            assert exit_ is not None
            raise exit_ from None

    return wrapper
