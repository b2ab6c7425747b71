"""Auth dependencies: ``Authorization: Bearer <token>`` on every /v1 route but the token route.

Members read the catalog and run actions; admins also change it. Reporting on a run (PATCH,
logs) is for the run's own pipeline, with its report token (``Bearer krt_…``, see
:mod:`kiosk.actions.report_tokens`), and for admins: :func:`require_run_reporter`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from fastapi import Request

from kiosk.actions.report_tokens import ReportTokens, is_report_token
from kiosk.auth.clients import Principal
from kiosk.auth.tokens import verify_token
from kiosk.errors import Forbidden, Unauthorized


def current_principal(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing 'Authorization: Bearer <token>' header", code="missing_token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", code="invalid_token")
    if is_report_token(token.strip()):
        raise Unauthorized(REPORTS_ONLY_MESSAGE, code="report_token_not_accepted")
    # The signature (current key, then retired ones), then the client as it is now: revoked → 401,
    # role changed → the current role. Both in memory: no database round trip per request.
    claimed = verify_token(request.app.state.token_keys, token.strip())
    principal: Principal = request.app.state.live_clients.principal(claimed)
    request.state.principal = principal
    return principal


# ``async`` on purpose: checking a token is a few microseconds of CPU (an HMAC, no IO), and a plain
# ``def`` dependency would cost every request a hop through the thread pool (measured ~1 ms).
async def require_member(request: Request) -> Principal:
    return current_principal(request)


async def require_admin(request: Request) -> Principal:
    principal = current_principal(request)
    if not principal.is_admin:
        raise Forbidden("this needs an admin client; members may only read the catalog", code="admin_required")
    return principal


# --------------------------------------------------------------------------------- run reports

REPORTS_ONLY_MESSAGE = (
    "a run report token is accepted only for reporting on its own run "
    "(PATCH /v1/actions/runs/{id}, POST /v1/actions/runs/{id}/logs); other routes take an API token"
)


@dataclass(frozen=True)
class RunReporter:
    """Who reports on a run: an admin client (``client_id``), or the run's own pipeline, which
    presented the run's report token (``client_id`` None: no API client is involved)."""

    client_id: str | None


def _report_token(request: Request) -> str | None:
    """The bearer credential when it is a run report token (told apart by its prefix), else None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and is_report_token(token) else None


async def require_run_reporter(run_id: str, request: Request) -> RunReporter:
    """Reporting on run ``run_id`` (PATCH, logs): its own pipeline, with the run's report token, or
    an admin. A member is refused even on a run it started: a person does not report a pipeline's
    status, and a member able to do so could finish anyone's run with any link."""
    token = _report_token(request)
    if token is not None:
        tokens: ReportTokens = request.app.state.report_tokens
        tokens.check(token, run_id)
        return RunReporter(client_id=None)
    principal = await require_member(request)
    if not principal.is_admin:
        raise Forbidden(
            "members cannot report on action runs: a run takes reports from its own pipeline (with the "
            "report token kiosk sent it, context.reportToken) or from an admin client",
            code="report_forbidden",
            details={"run": run_id},
        )
    return RunReporter(client_id=principal.client_id)


def check_basic_auth(header: str, username: str, password: str) -> bool:
    """Whether ``header`` (an ``Authorization`` value) is Basic with exactly ``username:password``.

    Both parts are compared in constant time, each always (no early exit on the user name), and a
    malformed header compares as empty credentials, so the answer's timing says nothing about
    which part was wrong. Empty configured credentials never match.
    """
    scheme, _, value = header.strip().partition(" ")
    given_user, given_password = b"", b""
    if scheme.lower() == "basic":
        try:
            given_user, _, given_password = base64.b64decode(value.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            given_user, given_password = b"", b""
    user_ok = hmac.compare_digest(given_user, username.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    return user_ok and password_ok and bool(username) and bool(password)
