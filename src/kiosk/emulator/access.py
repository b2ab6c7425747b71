"""Who may call the emulator: personal access tokens per org, and no requests from other web origins.

Azure DevOps answers nothing but its public incoming-webhook trigger without a personal access
token (``Authorization: Basic base64(":" + PAT)``, any user name; ``Bearer`` too), and a PAT opens
its own organisation only. The emulator does the same, because it runs pipelines' scripts on the
developer's machine: a web page the developer happens to visit must not be able to register a
pipeline and run it. So, in this order, before any route runs:

1. **Origin.** A request carrying an ``Origin`` that is not the emulator's own (its base URL's
   ``scheme://host:port``), or ``Sec-Fetch-Site: cross-site``, is refused with 403, on every route
   including the public trigger: browsers send these headers, servers and ``curl`` do not, and
   comparing with the configured base URL (not the ``Host`` header) also stops DNS rebinding.
2. **PAT.** Every route except the trigger (``/{org}/_apis/public/…``) and ``/_emulator/healthz``
   needs a PAT. A route under an org needs one of that org's PATs; the emulator's own routes
   (``/_emulator/…``, the OpenAPI description) need a PAT of any org, or of the org they name. An
   org created at run time (``POST /_emulator/orgs/{org}/…``) accepts the PAT that created it.
   A missing or wrong token gets Azure's 401: ``WWW-Authenticate: TFS-Federated`` (and Bearer and
   Basic realm entries), ``X-TFS-FedAuthRedirect``, and TF400813 — in Azure's error JSON when no
   token was sent (Azure's "anonymous" answer, a service error to Microsoft's client), as plain
   text with ``X-VSS-AuthenticateError: InvalidToken`` when a token was sent that opens nothing
   here (Microsoft's client then raises ``AzureDevOpsAuthenticationError``, as against Azure).

Tokens are compared as SHA-256 digests with :func:`hmac.compare_digest`, against every stored
token without stopping at the first match, so the time taken says nothing about any of them.
``settings.allowAnonymous: true`` turns the PAT check off (never the Origin check).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Final
from urllib.parse import quote, urlsplit

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from kiosk.emulator.errors import azure_error_body

__all__ = ["AccessPolicy", "RequestGuard", "own_origin"]

_PUBLIC: Final = re.compile(r"^/[^/]+/_apis/public/|^/_emulator/healthz/?$")
_EMULATOR_ORG: Final = re.compile(r"^/_emulator/(?:orgs|runs)/([^/]+)")
_FRAMEWORK: Final = "Microsoft.TeamFoundation.Framework.Server"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def own_origin(base_url: str) -> str:
    """``scheme://host[:port]`` of ``base_url`` as a browser writes it in ``Origin`` (default port omitted)."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AccessPolicy:
    """The orgs' PATs (as digests), and which orgs a presented token opens. Thread-safe."""

    def __init__(self, tokens: Mapping[str, Iterable[str]], *, allow_anonymous: bool = False) -> None:
        self.allow_anonymous = allow_anonymous
        self._lock = threading.Lock()
        self._entries: list[tuple[str, bytes]] = []
        for org, values in tokens.items():
            for value in values:
                self.grant(org, value)

    def grant(self, org: str, token: str) -> None:
        """Let ``token`` open ``org`` (config, or an org created at run time by this token)."""
        if not token:
            return
        entry = (org.lower(), _digest(token))
        with self._lock:
            if entry not in self._entries:
                self._entries.append(entry)

    def orgs_for(self, token: str) -> frozenset[str]:
        """The orgs (lower case) ``token`` opens; empty when it opens none. Constant time per stored token."""
        given = _digest(token)
        with self._lock:
            entries = list(self._entries)
        found = set()
        for org, stored in entries:
            if hmac.compare_digest(given, stored):
                found.add(org)
        return frozenset(found)


def presented_token(authorization: str | None) -> str | None:
    """The PAT in an ``Authorization`` header (Basic with any user name, or Bearer); ``""`` if unreadable."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    return ""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestGuard:
    """ASGI middleware applying the Origin rule and the PAT rule (see the module docstring).

    Pure ASGI (no ``BaseHTTPMiddleware``): it adds a few header lookups to the trigger's hot path
    and nothing else; a caller's orgs are left in ``scope["state"]["pat_orgs"]`` and the token in
    ``scope["state"]["pat"]`` for the routes that create orgs.
    """

    def __init__(self, app: ASGIApp, *, base_url: str, policy: AccessPolicy, known_org: Callable[[str], bool]) -> None:
        self.app = app
        self.origin = own_origin(base_url)
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.known_org = known_org  # org name → whether the emulator serves it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is not None and origin.strip().lower().rstrip("/") != self.origin:
            await self._refuse_origin(send, f"Requests from the web origin {origin.strip()[:200]!r} are refused")
            return
        site = _header(scope, b"sec-fetch-site")
        if site is not None and site.strip().lower() == "cross-site":
            await self._refuse_origin(send, "Cross-site requests (Sec-Fetch-Site: cross-site) are refused")
            return
        path: str = scope["path"]
        if _PUBLIC.match(path) or self.policy.allow_anonymous:
            await self.app(scope, receive, send)
            return
        token = presented_token(_header(scope, b"authorization"))
        orgs = self.policy.orgs_for(token) if token else frozenset()
        required = self._org_of(path)
        if not orgs or (required is not None and self.known_org(required) and required.lower() not in orgs):
            await self._unauthorized(send, scope, given=token is not None)
            return
        state = scope.setdefault("state", {})
        state["pat"] = token
        state["pat_orgs"] = orgs
        await self.app(scope, receive, send)

    @staticmethod
    def _org_of(path: str) -> str | None:
        """The org a path addresses: ``/{org}/…``, ``/_emulator/orgs/{org}/…``, ``/_emulator/runs/{org}/…``."""
        match = _EMULATOR_ORG.match(path)
        if match is not None:
            return match.group(1)
        first = path.split("/", 2)[1] if path.count("/") >= 1 else ""
        if not first or first.startswith("_") or first == "openapi.json":
            return None
        return first

    async def _refuse_origin(self, send: Send, reason: str) -> None:
        message = (
            f"{reason}: the emulator answers only its own origin {self.origin} and callers that send no Origin "
            "(servers, scripts, curl)."
        )
        body = azure_error_body(message, "CrossOriginRequestException")
        await _send(send, 403, orjson.dumps(body), [])

    async def _unauthorized(self, send: Send, scope: Scope, *, given: bool) -> None:
        path = scope["path"]
        body = azure_error_body(
            "TF400813: The user '' is not authorized to access this resource. Send a personal access token of "
            "the organization: Authorization: Basic base64(':' + PAT).",
            "UnauthorizedRequestException",
            f"{_FRAMEWORK}.UnauthorizedRequestException, {_FRAMEWORK}",
        )
        headers = [
            (b"www-authenticate", b"Bearer"),
            (b"www-authenticate", f'Basic realm="{self.base_url}/"'.encode("latin-1", "replace")),
            (b"www-authenticate", b"TFS-Federated"),
            (
                b"x-tfs-fedauthredirect",
                f"{self.base_url}/_signin?realm=emulator&reply_to={quote(path)}".encode(),
            ),
        ]
        if given:
            # A token that opens nothing here: Azure's answer is not its error JSON (Microsoft's client raises
            # AzureDevOpsAuthenticationError for it, not a service error), so the reason goes as plain text.
            headers.append((b"x-vss-authenticateerror", b"InvalidToken"))
            text = (
                "TF400813: The personal access token presented is not one of this organization's. Send a "
                "personal access token of the organization: Authorization: Basic base64(':' + PAT)."
            )
            await _send(send, 401, text.encode(), headers, content_type=b"text/plain; charset=utf-8")
            return
        await _send(send, 401, orjson.dumps(body), headers)


async def _send(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    content_type: bytes = b"application/json; charset=utf-8",
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
