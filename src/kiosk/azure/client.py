"""A small Azure DevOps REST client: the calls kiosk makes, with Azure's auth and error handling.

Authentication is a personal access token sent as basic auth with an empty user name (Azure's
rule); every call carries an ``api-version``. Errors become :class:`AzureDevOpsError` carrying the
status and Azure's own message (from its ``{"message", "typeKey"}`` error body), so a failure
reads "403 TF400813: …" rather than a bare status code. The PAT never appears in an error.
"""

from __future__ import annotations

import base64
from typing import Any, Final

import httpx

__all__ = ["API_VERSION", "AzureDevOpsClient", "AzureDevOpsError"]

API_VERSION: Final = "7.1"


class AzureDevOpsError(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"{status} {message}" if status is not None else message)
        self.status = status
        self.message = message


class AzureDevOpsClient:
    """One organisation: ``{base_url}/{org}``."""

    def __init__(self, base_url: str, org: str, pat: str | None, *, timeout: float = 30.0) -> None:
        self.org = org
        self.root = f"{base_url.rstrip('/')}/{org}"
        headers = {"Accept": "application/json"}
        if pat:
            headers["Authorization"] = "Basic " + base64.b64encode(f":{pat}".encode()).decode()
        self._http = httpx.Client(headers=headers, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None) -> Any:
        """Call ``{org}/{path}``; the decoded JSON answer (None for an empty one)."""
        query = {"api-version": API_VERSION, **(params or {})}
        try:
            response = self._http.request(method, f"{self.root}/{path.lstrip('/')}", json=json, params=query)
        except httpx.HTTPError as exc:
            raise AzureDevOpsError(None, f"cannot reach {self.root}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 300:
            raise AzureDevOpsError(response.status_code, _error_message(response))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AzureDevOpsError(response.status_code, "the answer is not JSON") from None

    # -------------------------------------------------------------- service hooks

    def subscriptions(self) -> list[dict[str, Any]]:
        answer = self.request("GET", "_apis/hooks/subscriptions")
        return list(answer.get("value", [])) if isinstance(answer, dict) else []

    def create_subscription(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", "_apis/hooks/subscriptions", json=body))

    def delete_subscription(self, subscription_id: str) -> None:
        self.request("DELETE", f"_apis/hooks/subscriptions/{subscription_id}")


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    text = response.text.strip().splitlines()
    return text[0][:300] if text else response.reason_phrase
