"""Who is signed in, and the checks every state-changing form passes (CSRF token and Origin).

- The session cookie (``kiosk_session``) is ``HttpOnly``, ``SameSite=Lax``, ``Path=/`` and
  ``Secure`` unless the portal's public URL is plain http on a loopback address (a developer's
  machine, where there is no TLS to require).
- A POST from a page passes when its ``Origin`` (or, lacking one, its ``Referer``) is the
  portal's own origin and its ``csrf_token`` field equals the session's token (constant time).
  Before sign-in there is no session: the sign-in form's token is an HMAC of a random cookie set
  with the form (double submit, signed), so a foreign site cannot post a sign-in either.
- API clients are untouched: /v1 routes read only the ``Authorization`` header, never cookies.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from kiosk.auth.sessions import Session, Sessions, csrf_matches

__all__ = ["SESSION_COOKIE", "SIGN_IN_COOKIE", "Guard"]

SESSION_COOKIE = "kiosk_session"
SIGN_IN_COOKIE = "kiosk_sign_in"
OIDC_COOKIE = "kiosk_oidc"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass
class Guard:
    """The request-level half of sign-in: cookies, the current session, CSRF and Origin checks."""

    sessions: Sessions
    key: bytes  # derived from the master key: signs the sign-in form's token and the OIDC attempt
    public_url: str | None = None

    # ------------------------------------------------------------------------- where we are

    def base_url(self, request: Request) -> str:
        """The portal's URL as browsers use it: ``signIn.publicUrl``, else the request's own."""
        return (self.public_url or str(request.base_url)).rstrip("/")

    def secure_cookies(self, request: Request) -> bool:
        parts = urlsplit(self.base_url(request))
        return not (parts.scheme == "http" and _is_loopback(parts.hostname or ""))

    def set_cookie(self, request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure_cookies(request),
            httponly=True,
            samesite="lax",
        )

    def clear_cookie(self, request: Request, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure_cookies(request), httponly=True, samesite="lax")

    # ------------------------------------------------------------------------- sessions

    def session(self, request: Request) -> Session | None:
        """The live session of this browser, or None (found once per request)."""
        if "kiosk_session" not in request.scope.setdefault("state", {}):
            found = self.sessions.find(request.cookies.get(SESSION_COOKIE))
            request.scope["state"]["kiosk_session"] = found
        session: Session | None = request.scope["state"]["kiosk_session"]
        return session

    # ------------------------------------------------------------------------- CSRF

    def origin_ok(self, request: Request) -> bool:
        """Whether the request comes from one of the portal's own pages (Origin, else Referer)."""
        given = request.headers.get("origin") or request.headers.get("referer")
        if not given or given == "null":
            return False
        allowed = {_origin(self.base_url(request)), _origin(str(request.base_url))}
        return _origin(given) in allowed

    def session_form_ok(self, request: Request, session: Session, token: str | None) -> bool:
        return self.origin_ok(request) and csrf_matches(session.csrf_token, token)

    def sign_in_form_token(self, nonce: str) -> str:
        """The sign-in form's token for the browser holding ``nonce`` in its sign-in cookie."""
        return hmac.new(self.key, b"sign-in form\x00" + nonce.encode(), hashlib.sha256).hexdigest()

    def new_sign_in_nonce(self) -> str:
        return secrets.token_urlsafe(24)

    def sign_in_form_ok(self, request: Request, token: str | None) -> bool:
        nonce = request.cookies.get(SIGN_IN_COOKIE)
        if not nonce or not self.origin_ok(request):
            return False
        return csrf_matches(self.sign_in_form_token(nonce), token)
