"""Runtime settings, read from the environment (and CLI flags, which override it).

``KIOSK_HOME`` (default ``./.kiosk``, kept 0700) holds the SQLite database, the ``credentials``
file and the generated key file ``secret.key`` (unless ``KIOSK_SECRET_KEY``/``_FILE`` give the key);
``KIOSK_DATABASE_URL`` switches to PostgreSQL; ``KIOSK_CONFIG`` names the kiosk.yaml to apply.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.errors import ConfigError
from kiosk.store.engine import sqlite_url

if TYPE_CHECKING:
    from kiosk.auth.keys import KeyRing

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class HttpLimits:
    """How long the HTTP server waits for slow clients, and how many it holds (``kiosk.web.server``).

    Without them one client can hold a connection, a file descriptor and some memory forever by
    sending a request a byte at a time; enough such clients starve everyone, ``/healthz`` included.
    """

    #: Seconds from a connection's start (or the end of its previous response) to its request's
    #: last header line (``KIOSK_HTTP_HEADER_TIMEOUT``).
    header_timeout: float = 10.0
    #: Seconds from the end of the headers to the end of the body (``KIOSK_HTTP_BODY_TIMEOUT``).
    body_timeout: float = 30.0
    #: Seconds an idle keep-alive connection stays open (``KIOSK_HTTP_KEEPALIVE_TIMEOUT``).
    keepalive_timeout: float = 5.0
    #: Open connections at most; the server also stays below its file-descriptor limit
    #: (``KIOSK_HTTP_MAX_CONNECTIONS``).
    max_connections: int = 4096

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> HttpLimits:
        env = dict(os.environ if env is None else env)
        defaults = cls()

        def seconds(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            try:
                value = float(raw) if raw else default
            except ValueError:
                raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
            if not 0 < value < 86_400:
                raise ConfigError(f"{name} must be between 0 and 86400 seconds, not {raw!r}")
            return value

        raw_max = env.get("KIOSK_HTTP_MAX_CONNECTIONS", "").strip()
        if raw_max and not (raw_max.isdigit() and int(raw_max) > 0):
            raise ConfigError(f"KIOSK_HTTP_MAX_CONNECTIONS must be a whole number above 0, not {raw_max!r}")
        return cls(
            header_timeout=seconds("KIOSK_HTTP_HEADER_TIMEOUT", defaults.header_timeout),
            body_timeout=seconds("KIOSK_HTTP_BODY_TIMEOUT", defaults.body_timeout),
            keepalive_timeout=seconds("KIOSK_HTTP_KEEPALIVE_TIMEOUT", defaults.keepalive_timeout),
            max_connections=int(raw_max) if raw_max else defaults.max_connections,
        )


def home_from_env(env: Mapping[str, str] | None = None) -> Path:
    """``KIOSK_HOME`` as an absolute path (default ``./.kiosk``): the portal's home, and the
    emulator's (its runs' work directories go under it, never beside a config file)."""
    env = os.environ if env is None else env
    return Path(env.get("KIOSK_HOME", ".kiosk")).expanduser().absolute()


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
    #: Deadlines and the connection cap of the HTTP server (``KIOSK_HTTP_*``).
    http: HttpLimits = field(default_factory=HttpLimits)
    #: The master secret(s), comma-separated, current first (``KIOSK_SECRET_KEY``); see kiosk.auth.keys.
    secret_key: str | None = field(default=None, repr=False)
    #: A file holding the master secret(s), one a line (``KIOSK_SECRET_KEY_FILE``).
    secret_key_file: Path | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = home_from_env(env)
        database_url = env.get("KIOSK_DATABASE_URL") or sqlite_url(home / "kiosk.db")
        config = env.get("KIOSK_CONFIG")
        return cls(
            home=home,
            database_url=database_url,
            config_path=Path(config) if config else None,
            token_ttl_seconds=int(env.get("KIOSK_TOKEN_TTL_SECONDS", "3600")),
            max_body_bytes=int(env.get("KIOSK_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))),
            otel=env.get("KIOSK_OTEL", "").strip().lower() in {"1", "true", "yes"},
            http=HttpLimits.from_env(env),
            secret_key=env.get("KIOSK_SECRET_KEY") or None,
            secret_key_file=Path(env["KIOSK_SECRET_KEY_FILE"]) if env.get("KIOSK_SECRET_KEY_FILE") else None,
        )

    def with_config(self, path: Path | None) -> Settings:
        return self if path is None else replace(self, config_path=path)

    @property
    def credentials_path(self) -> Path:
        return self.home / "credentials"

    def prepare_home(self) -> None:
        """Create ``KIOSK_HOME`` private (0700), or make it so, with a warning, if it is looser: it
        holds the database, the credentials file and the key file."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = stat.S_IMODE(self.home.stat().st_mode)
        if mode & 0o077:
            logging.getLogger("kiosk").warning(
                "KIOSK_HOME was open to others; setting it to 0700", extra={"path": str(self.home), "mode": oct(mode)}
            )
            os.chmod(self.home, 0o700)

    def keyring(self) -> KeyRing:
        """The master key(s): ``KIOSK_SECRET_KEY``, ``KIOSK_SECRET_KEY_FILE``, or ``$KIOSK_HOME/secret.key``."""
        from kiosk.auth.keys import load_keyring

        return load_keyring(self.home, self.secret_key, self.secret_key_file)
