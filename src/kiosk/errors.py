"""kiosk's one exception tree.

Every error a user can cause is a :class:`KioskError` carrying the HTTP status, a short machine
code and a message that names the problem, so the web layer turns it into Port's error shape
``{ok: false, error, message, details}`` and the CLI into one clear line. Anything else that
escapes is a bug.

    KioskError
      BadRequest            400  malformed input that is not even the right shape
      Unauthorized          401  missing or wrong credentials / token
      Forbidden             403  authenticated but the role may not do this
      NotFound              404  unknown blueprint, entity, client ...
      Conflict              409  already exists, still referenced, ...
      PayloadTooLarge       413  body or batch over the limit
      ValidationFailed      422  well-formed, but breaks a schema or a rule
      ServiceUnavailable    503  kiosk cannot do it now (every jq worker busy); try again
      ConfigError           --   kiosk.yaml is wrong (file, line, field)
"""

from __future__ import annotations

from typing import Any


class KioskError(Exception):
    """Base of every error kiosk raises on purpose.

    A subclass names its HTTP status and default machine code in its class line
    (``class NotFound(KioskError, status=404, code="not_found")``); a raise may pass another
    ``code`` for one occurrence.
    """

    status_code: int = 400
    code: str = "bad_request"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_code = status
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class BadRequest(KioskError, status=400, code="bad_request"):
    """Malformed input that is not even the right shape."""


class Unauthorized(KioskError, status=401, code="unauthorized"):
    """Missing or wrong credentials or token. ``challenge`` is the ``WWW-Authenticate`` answered:
    a bearer token for the API, basic auth where Azure DevOps posts service hooks."""

    def __init__(
        self, message: str, *, code: str | None = None, details: Any = None, challenge: str = "Bearer"
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.challenge = challenge


class Forbidden(KioskError, status=403, code="forbidden"):
    """Authenticated, but the role may not do this."""


class NotFound(KioskError, status=404, code="not_found"):
    """Unknown blueprint, entity, client ..."""


class Conflict(KioskError, status=409, code="conflict"):
    """Already exists, still referenced, ..."""


class PayloadTooLarge(KioskError, status=413, code="payload_too_large"):
    """Body or batch over the limit."""


class ValidationFailed(KioskError, status=422, code="validation_failed"):
    """Well-formed, but breaks a schema or a rule."""


class ServiceUnavailable(KioskError, status=503, code="unavailable"):
    """kiosk cannot do it now (every jq worker busy); try again."""


class ConfigError(KioskError, status=400, code="config_error"):
    """kiosk.yaml (or another config input) is invalid; the message names file, line and field."""
