"""Jinja2 rendering of the UI's pages, with the headers every page carries.

Templates are package data (``kiosk/ui/templates``), autoescaped. Each HTML answer forbids
framing, inline scripts and foreign sources (Content-Security-Policy), and is never cached: it
shows who is signed in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

__all__ = ["PAGE_HEADERS", "Renderer", "iso_time", "readable_time"]

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back naive; kiosk stores them in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_time(value: object) -> str:
    """A timestamp for ``<time datetime=…>``: ISO 8601 in UTC."""
    return _utc(value).isoformat(timespec="seconds") if isinstance(value, datetime) else str(value or "")


def readable_time(value: object) -> str:
    """A timestamp for people: ``2026-12-06 21:32 UTC``."""
    return _utc(value).strftime("%Y-%m-%d %H:%M UTC") if isinstance(value, datetime) else str(value or "")


class Renderer:
    """Renders a template of the package into an :class:`HTMLResponse`."""

    def __init__(self, static_url: Callable[[str], str]) -> None:
        self.env = Environment(
            loader=PackageLoader("kiosk.ui", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,  # a typo in a template fails its test instead of rendering blank
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["static_url"] = static_url
        self.env.filters["iso"] = iso_time
        self.env.filters["when"] = readable_time

    def page(
        self, template: str, context: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
    ) -> HTMLResponse:
        base = {"user": None, "csrf_token": None, "nav": None}
        html = self.env.get_template(template).render({**base, **context})
        return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
