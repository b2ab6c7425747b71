"""Request body size limit, enforced before and while the body is read.

Checking Content-Length alone is not enough: a chunked request has none, so the byte count is
also enforced on the stream itself, and the request is cut off as soon as it passes the limit
(nothing past the limit is buffered).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kiosk.errors import PayloadTooLarge
from kiosk.web.responses import error_response


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"request body is larger than the {self.max_bytes} byte limit",
            code="payload_too_large",
            details={"limitBytes": self.max_bytes},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    response = error_response(400, "bad_request", "Content-Length is not a valid number")
                    await response(scope, receive, send)
                    return
                if declared > self.max_bytes:
                    err = self._too_large()
                    await error_response(413, err.code, err.message, err.details)(scope, receive, send)
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)
