"""Runtime settings, read from the environment (and CLI flags, which override it).

``KIOSK_HOME`` (default ``./.kiosk``) holds the SQLite database and the ``credentials`` file;
``KIOSK_DATABASE_URL`` switches to PostgreSQL; ``KIOSK_CONFIG`` names the kiosk.yaml to apply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from kiosk.store.engine import sqlite_url

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    config_path: Path | None = None
    token_ttl_seconds: int = 3600
    #: Largest request body accepted; a bulk call of 20,000 entities fits, 50 MB does not.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Create an admin client (and write $KIOSK_HOME/credentials) on first start.
    bootstrap_admin: bool = True
    #: FastAPI's native OpenTelemetry spans/metrics/logs (``KIOSK_OTEL=true``), for a process whose
    #: OpenTelemetry SDK is configured. Off by default: kiosk's own metrics are Prometheus
    #: (``/metrics``), and with it on FastAPI asks the global providers on every request
    #: whether they are configured (~9 µs a request, measured, ~3 % of a receiver's event).
    otel: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("KIOSK_HOME", ".kiosk")).expanduser().absolute()
        database_url = env.get("KIOSK_DATABASE_URL") or sqlite_url(home / "kiosk.db")
        config = env.get("KIOSK_CONFIG")
        return cls(
            home=home,
            database_url=database_url,
            config_path=Path(config) if config else None,
            token_ttl_seconds=int(env.get("KIOSK_TOKEN_TTL_SECONDS", "3600")),
            max_body_bytes=int(env.get("KIOSK_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))),
            otel=env.get("KIOSK_OTEL", "").strip().lower() in {"1", "true", "yes"},
        )

    def with_config(self, path: Path | None) -> Settings:
        return self if path is None else replace(self, config_path=path)

    @property
    def credentials_path(self) -> Path:
        return self.home / "credentials"
