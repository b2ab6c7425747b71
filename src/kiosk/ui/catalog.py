"""The catalog page of one blueprint: its entities a page at a time, sorted and searched on the
server, every bit of state in the URL (``q``, ``sort``, ``after``, ``size``).

Paging is by keyset, not offset: the cursor (``after``) is the last row's sort value and id, so
page 200 of a 100,000-entity blueprint costs what page 1 does. Sort keys are the columns every
entity has — title (falling back to the identifier, as the page shows it), identifier, last update
and creation time — each ascending or descending (``-`` prefix), ties broken by the row id. The
free-text search matches the title or the identifier, case-insensitively, anywhere in them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from kiosk.store.engine import Database
from kiosk.store.tables import blueprints, entities

__all__ = ["DEFAULT_SIZE", "PAGE_SIZES", "SORTS", "CatalogPage", "CatalogQuery", "catalog_page"]

DEFAULT_SIZE = 50
PAGE_SIZES = (25, 50, 100)
MAX_SEARCH = 200

_TITLE = sa.func.coalesce(entities.c.title, entities.c.identifier)
#: The sorts offered: URL name → (column expression, label).
SORTS: dict[str, tuple[Any, str]] = {
    "title": (_TITLE, "Title"),
    "identifier": (entities.c.identifier, "Identifier"),
    "updatedAt": (entities.c.updated_at, "Last update"),
    "createdAt": (entities.c.created_at, "Created"),
}


@dataclass(frozen=True)
class CatalogQuery:
    """The page's state as its URL gives it, already made valid (unknown values fall back)."""

    blueprint: str
    q: str = ""
    sort: str = "title"
    descending: bool = False
    after: str | None = None
    size: int = DEFAULT_SIZE

    @classmethod
    def from_url(
        cls, blueprint: str, q: str | None, sort: str | None, after: str | None, size: int | None
    ) -> CatalogQuery:
        raw_sort = sort or "title"
        descending = raw_sort.startswith("-")
        name = raw_sort.lstrip("-")
        if name not in SORTS:
            name, descending = "title", False
        return cls(
            blueprint=blueprint,
            q=(q or "").strip()[:MAX_SEARCH],
            sort=name,
            descending=descending,
            after=after or None,
            size=size if size in PAGE_SIZES else DEFAULT_SIZE,
        )

    @property
    def sort_param(self) -> str:
        return ("-" if self.descending else "") + self.sort


@dataclass(frozen=True)
class CatalogPage:
    """One page of a blueprint's entities and what the page needs around them."""

    title: str
    rows: list[dict[str, Any]]  # identifier, title, updated_at, created_at
    total: int  # entities matching the search
    next_after: str | None  # the cursor of the next page, None on the last


def _encode(value: Any, row_id: int) -> str:
    plain = value.isoformat() if isinstance(value, datetime) else value
    return base64.urlsafe_b64encode(orjson.dumps([plain, row_id])).decode().rstrip("=")


def _decode(cursor: str, sort: str) -> tuple[Any, int] | None:
    try:
        value, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if sort in ("updatedAt", "createdAt"):
            value = datetime.fromisoformat(value)
        elif not isinstance(value, str):
            return None
        return value, int(row_id)
    except (ValueError, TypeError):
        return None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def catalog_page(db: Database, query: CatalogQuery) -> CatalogPage | None:
    """The page ``query`` asks for; None when the blueprint does not exist. An unreadable cursor
    starts from the first page (a URL edited by hand is not an error worth a page)."""
    key, _ = SORTS[query.sort]
    where: list[Any] = [entities.c.blueprint == query.blueprint]
    if query.q:
        pattern = f"%{_escape_like(query.q.lower())}%"
        where.append(
            sa.or_(
                sa.func.lower(entities.c.identifier).like(pattern, escape="\\"),
                sa.func.lower(sa.func.coalesce(entities.c.title, "")).like(pattern, escape="\\"),
            )
        )
    page_where = list(where)
    position = _decode(query.after, query.sort) if query.after else None
    if position is not None:
        value, row_id = position
        if query.descending:
            page_where.append(sa.or_(key < value, sa.and_(key == value, entities.c.id < row_id)))
        else:
            page_where.append(sa.or_(key > value, sa.and_(key == value, entities.c.id > row_id)))
    order = (key.desc(), entities.c.id.desc()) if query.descending else (key.asc(), entities.c.id.asc())
    with db.connect() as conn:
        definition = conn.execute(
            sa.select(blueprints.c.definition).where(blueprints.c.identifier == query.blueprint)
        ).scalar_one_or_none()
        if definition is None:
            return None
        total = conn.execute(sa.select(sa.func.count()).select_from(entities).where(*where)).scalar_one()
        rows = conn.execute(
            sa.select(
                entities.c.id,
                entities.c.identifier,
                _TITLE.label("title"),
                entities.c.updated_at,
                entities.c.created_at,
                key.label("sort_key"),
            )
            .where(*page_where)
            .order_by(*order)
            .limit(query.size + 1)
        ).all()
    more = len(rows) > query.size
    rows = rows[: query.size]
    return CatalogPage(
        title=str(definition.get("title") or query.blueprint),
        rows=[
            {"identifier": r.identifier, "title": r.title, "updated_at": r.updated_at, "created_at": r.created_at}
            for r in rows
        ],
        total=int(total),
        next_after=_encode(rows[-1].sort_key, rows[-1].id) if more and rows else None,
    )
