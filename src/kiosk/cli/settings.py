"""What the commands that run kiosk on this machine share: settings, the database, logging, the banner.

``kiosk serve``, ``apply``, ``demo``, ``credentials`` and ``keys`` all work on the kiosk home of
``$KIOSK_HOME`` (its database, its credentials file); ``serve`` and ``demo`` print the same banner.
They live here, below every command module, so no command module imports another.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import kiosk
from kiosk.errors import ConfigError
from kiosk.settings import Settings

if TYPE_CHECKING:
    from kiosk.store import Database

__all__ = ["display_host", "load_settings", "open_database", "quiet_logging", "serve_banner"]


def load_settings(config: Path | None = None) -> Settings:
    """Settings from the environment, ``--config`` on top; KIOSK_HOME created private if missing."""
    settings = Settings.from_env().with_config(config)
    if not settings.home.exists():
        settings.home.mkdir(parents=True, mode=0o700)
        os.chmod(settings.home, 0o700)  # mkdir's mode is filtered by the umask
    return settings


@contextmanager
def open_database(settings: Settings) -> Iterator[Database]:
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


def quiet_logging() -> None:
    """One-shot commands talk through their own output; only warnings go to the log."""
    from kiosk.logs import configure_logging

    configure_logging("WARNING", json=False)


def display_host(host: str) -> str:
    """The host to print in a URL the user will open: a wildcard address is reached on loopback."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - display only


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
