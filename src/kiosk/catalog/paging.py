"""Keyset paging by row id: the opaque ``from`` cursors the list and search routes hand out.

A cursor names the last row of the page it ends (``e<id>``, base64url): the next page starts
after it, so a page is one indexed range scan however deep it is, and rows written meanwhile do
not shift the pages. Entities, search results, run logs and receiver events page this way.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiosk.errors import BadRequest

MAX_PAGE = 10_000
DEFAULT_PAGE = 1_000


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"e{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The id a cursor ends at; 0 (from the start) for none; 400 for one this server never gave."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("e"):
            raise ValueError(raw)
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the 'from' cursor is not one this server gave out", code="invalid_cursor") from None


def check_limit(limit: int, maximum: int = MAX_PAGE) -> int:
    if not 1 <= limit <= maximum:
        raise BadRequest(f"limit must be between 1 and {maximum}", code="invalid_limit")
    return limit


def page_after(
    conn: Connection, query: sa.Select[Any], id_column: sa.ColumnElement[int], after: int, limit: int
) -> tuple[Sequence[Any], str | None]:
    """The rows of ``query`` after id ``after``, ``limit`` at most, in id order; and the cursor of
    the next page (None on the last). One row more than the page is read to know whether there is
    a next one."""
    rows = conn.execute(query.where(id_column > after).order_by(id_column).limit(limit + 1)).all()
    page = rows[:limit]
    return page, encode_cursor(page[-1].id) if len(rows) > limit else None
