"""Structured logging with redaction: one JSON object per line on stderr.

kiosk handles client secrets, bearer tokens and webhook signing secrets, and logs are the usual
place such values leak (an ``Authorization`` header echoed in a debug line, a token in an access
log's query string). So redaction is not left to each call site: every record passes through
:class:`RedactingFilter` on the way to the handler, which masks

* values under secret-looking keys (``secret``, ``password``, ``token``, ``authorization``,
  ``signature``, ``credentials`` ... anywhere in the ``extra`` fields, however deeply nested);
* ``Bearer xxx`` / ``Basic xxx`` and ``token=xxx``-style pairs inside messages;
* every value registered with :func:`register_secret` (resolved config secrets, generated client
  secrets), wherever it appears in a message, an extra field or a traceback.

uvicorn's own loggers are routed through the same handler so access and error lines get the
same treatment (start uvicorn with ``log_config=None`` so it does not install its own).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "configure_logging",
    "redact_text",
    "redact_value",
    "register_secret",
]

REDACTED = "***"

#: Values shorter than this are not registered: masking every "1" or "ab" in every log line would
#: destroy the logs while protecting nothing a guess would not find.
MIN_SECRET_LENGTH = 4

_secret_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_secrets_pattern: re.Pattern[str] | None = None

#: Key names whose values are always masked (compared lower-case with ``_``/``-`` removed, as a
#: substring, so ``clientSecret``, ``client_secret``, ``x-port-signature`` all match).
_SECRET_KEY_PARTS = ("secret", "password", "passwd", "token", "authorization", "signature", "credential", "apikey")

_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_SECRET_WORD = r"[A-Za-z_-]*(?:secret|password|passwd|token|signature|credentials?|api[_-]?key)[A-Za-z_-]*"  # noqa: S105
#: ``token=abc`` in query strings and key=value text, and ``"clientSecret": "abc"`` in echoed JSON.
#: Prose such as "invalid token: expired" is left alone (no ``=``, key not quoted).
_KEY_EQUALS_VALUE = re.compile(rf"(?P<head>\b{_SECRET_WORD}=)[^\s&,;\"']+", re.IGNORECASE)
_JSON_KEY_VALUE = re.compile(
    rf"""(?P<head>["']{_SECRET_WORD}["']\s*:\s*)(?:"[^"]*"|'[^']*'|[^\s,}}\]]+)""", re.IGNORECASE
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``. uvicorn's
# ``color_message`` is the same text with terminal escapes: noise in a JSON line.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in any later log output of this process."""
    global _secrets, _secrets_pattern
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    with _secret_lock:
        if value in _secrets:
            return
        _secrets = _secrets | {value}
        # Longest first so a secret that contains another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secrets_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def _is_secret_key(key: str) -> bool:
    norm = key.lower().replace("_", "").replace("-", "")
    return any(part in norm for part in _SECRET_KEY_PARTS)


def redact_text(text: str) -> str:
    """Mask registered secrets, auth-header credentials and ``key=value`` secrets in free text."""
    pattern = _secrets_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _KEY_EQUALS_VALUE.sub(lambda m: m.group("head") + REDACTED, text)
    return _JSON_KEY_VALUE.sub(lambda m: f'{m.group("head")}"{REDACTED}"', text)


def redact_value(value: Any, *, key: str | None = None) -> Any:
    """A copy of ``value`` with secret-keyed entries masked and strings passed through :func:`redact_text`."""
    if key is not None and _is_secret_key(key) and value is not None:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    # Anything else is logged by its str(), which could carry a secret as well.
    return redact_text(str(value))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS and not k.startswith("_")}


class RedactingFilter(logging.Filter):
    """Rewrite each record in place so no formatter or handler ever sees the clear values.

    The message is rendered (``msg % args``) here, then masked, because a secret is just as
    likely to arrive in ``args`` as in the format string.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact_text(message)
        record.args = None
        for key, value in _extras(record).items():
            setattr(record, key, redact_value(value, key=key))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
            record.exc_info = None  # formatters would render the clear traceback again
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra}`` on one line; ``exc`` holds a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            doc.setdefault(key, value)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal: ``ts LEVEL logger: msg key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += " " + extras
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


_HANDLER_NAME = "kiosk"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def configure_logging(level: str = "INFO", json: bool = True) -> logging.Handler:
    """Install the redacting stderr handler on the root logger (idempotent) and return it.

    uvicorn's loggers lose their own handlers and propagate to root, so their lines are
    formatted and redacted like kiosk's.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in UVICORN_LOGGERS:
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
        uv.setLevel(numeric)
    return handler
