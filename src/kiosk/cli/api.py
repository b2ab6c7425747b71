"""The API client of the ``kiosk`` commands that talk to a running kiosk: actions, runs, deliveries, receivers.

They go through the API (not the database) so they work against any kiosk, local or remote, with
the same permissions a script would have. The server is ``--url`` / ``$KIOSK_URL`` (default
http://127.0.0.1:8000); the client id and secret come from ``$KIOSK_CLIENT_ID`` and
``$KIOSK_CLIENT_SECRET``, or else from ``$KIOSK_HOME/credentials`` (what the first start wrote).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from kiosk.errors import BadRequest, KioskError

if TYPE_CHECKING:
    import httpx

__all__ = ["Api", "UrlOption", "answer_json"]

UrlOption = Annotated[str, typer.Option("--url", envvar="KIOSK_URL", help="The kiosk server.")]


class Api:
    """An authenticated httpx client for one kiosk server; errors become one-line KioskErrors."""

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=30.0)
        client_id, secret = _credentials()
        answer = self.call("POST", "/v1/auth/access_token", json={"clientId": client_id, "clientSecret": secret})
        self._http.headers["Authorization"] = f"Bearer {answer['accessToken']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KioskError(f"cannot reach kiosk at {self.url}: {exc}") from None
        return answer_json(response, method, path)


def answer_json(response: httpx.Response, method: str, path: str) -> Any:
    """A server's JSON answer (None when it is not JSON), or, for an HTTP error, a one-line KioskError
    with the server's ``message``: kiosk's API and the emulator's both put the reason there."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        message = body.get("message") if isinstance(body, dict) else response.text[:200]
        raise KioskError(f"{method} {path}: HTTP {response.status_code}: {message}")
    return body


def _credentials() -> tuple[str, str]:
    client_id, secret = os.environ.get("KIOSK_CLIENT_ID"), os.environ.get("KIOSK_CLIENT_SECRET")
    if client_id and secret:
        return client_id, secret
    path = Path(os.environ.get("KIOSK_HOME", ".kiosk")) / "credentials"
    try:
        data = orjson.loads(path.read_bytes())
        return str(data["clientId"]), str(data["clientSecret"])
    except (OSError, ValueError, KeyError, TypeError):
        raise BadRequest(
            f"no API credentials: set KIOSK_CLIENT_ID and KIOSK_CLIENT_SECRET, or point KIOSK_HOME at a "
            f"kiosk home with a credentials file ({path} is missing or unreadable)"
        ) from None
