"""The catalog page of one blueprint: its entities a page at a time, filtered, sorted and searched
on the server, every bit of state in the URL (``q``, ``f``, ``combinator``, ``me``, ``sort``,
``after``, ``size``).

Sort keys are the columns every entity has — title (falling back to the identifier, as the page
shows it), identifier, last update and creation time — and any property of the blueprint's schema
(``sort=prop:<name>``), each ascending or descending (``-`` prefix), ties broken by the row id.
The built-in columns page by keyset: the cursor (``after``) is the last row's sort value and id,
so page 200 of a 100,000-entity blueprint costs what page 1 does. A property holds JSON of any
type (or nothing), which has no single SQL order to seek in on both engines, so a property sort
pages by offset over the same total order (missing values last, then the row id): each entity
appears once across the pages as long as the catalog does not change between them.

Filters (``f=<property>:<operator>:<value>``, repeated, joined by ``combinator=and|or``) become
the rules of Port's entity search and are compiled by :func:`kiosk.catalog.search.compile_query`,
the very code behind ``POST /v1/entities/search``. A value is typed by the property's schema
(numbers, booleans; ``in``/``notIn`` take a comma-separated list). A filter the search refuses is
reported on the page and left out.

The "Me" filter (``me=1``) keeps the entities linked to the signed-in person: those whose
relation to ``_user`` points at their ``_user`` entity (identified by their email), or whose
``format: email`` (or Port's ``format: user``) property equals their email. It is offered only
when the blueprint has such a relation or property, and is AND-ed with the other filters.

The free-text search matches the title or the identifier, case-insensitively, anywhere in them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from kiosk.catalog import search
from kiosk.catalog.indexes import PROPERTY_NAME, property_value_expression
from kiosk.errors import ValidationFailed
from kiosk.store.engine import Database
from kiosk.store.tables import blueprints, entities, entity_relations

__all__ = [
    "DEFAULT_SIZE",
    "META_PROPERTIES",
    "OPERATORS",
    "PAGE_SIZES",
    "PROPERTY_SORT",
    "SORTS",
    "BlueprintInfo",
    "CatalogPage",
    "CatalogQuery",
    "Filter",
    "blueprint_info",
    "catalog_page",
    "cell_text",
    "parse_filter",
    "property_order",
]

DEFAULT_SIZE = 50
PAGE_SIZES = (25, 50, 100)
MAX_SEARCH = 200
MAX_FILTERS = 20
MAX_VALUE = 500
#: How many of the blueprint's properties get a column of their own (all of them can sort and filter).
PROPERTY_COLUMNS = 5
PROPERTY_SORT = "prop:"

_TITLE = sa.func.coalesce(entities.c.title, entities.c.identifier)
#: The sorts offered: URL name → (column expression, label).
SORTS: dict[str, tuple[Any, str]] = {
    "title": (_TITLE, "Title"),
    "identifier": (entities.c.identifier, "Identifier"),
    "updatedAt": (entities.c.updated_at, "Last update"),
    "createdAt": (entities.c.created_at, "Created"),
}
#: Search operators the filter form offers: Port's name → label.
OPERATORS: dict[str, str] = {
    "=": "is",
    "!=": "is not",
    "contains": "contains",
    "in": "is one of (comma-separated)",
    "notIn": "is none of (comma-separated)",
    ">": "is greater than",
    ">=": "is at least",
    "<": "is less than",
    "<=": "is at most",
    "isEmpty": "is empty",
    "isNotEmpty": "is not empty",
}
_VALUELESS = frozenset({"isEmpty", "isNotEmpty"})
_LISTS = frozenset({"in", "notIn"})
#: The meta-properties every entity has, as search rules name them → label.
META_PROPERTIES: dict[str, str] = {
    "$identifier": "Identifier",
    "$title": "Title",
    "$team": "Team",
    "$createdAt": "Created",
    "$updatedAt": "Last update",
}


def property_order(name: str, spec: dict[str, Any]) -> tuple[str, str]:
    """The order properties are shown in: by title, then name. PostgreSQL's ``jsonb`` does not keep
    the order a blueprint's schema was written in, so the page picks one both engines agree on."""
    return (str(spec.get("title") or name).casefold(), name)


@dataclass(frozen=True)
class BlueprintInfo:
    """What the page needs of the blueprint: its title, its properties (schema by name) and where a
    person's email can be found in its entities (for the "Me" filter)."""

    identifier: str
    title: str
    properties: dict[str, dict[str, Any]]
    me_relations: tuple[str, ...] = ()
    me_properties: tuple[str, ...] = ()

    @property
    def has_me(self) -> bool:
        return bool(self.me_relations or self.me_properties)

    def label(self, prop: str) -> str:
        if prop in META_PROPERTIES:
            return META_PROPERTIES[prop]
        return str(self.properties.get(prop, {}).get("title") or prop)

    def filterable(self) -> list[tuple[str, str]]:
        """(name, label) of every property a filter may name: the meta ones, then the schema's."""
        return list(META_PROPERTIES.items()) + [(p, self.label(p)) for p in self.properties]


def blueprint_info(db: Database, blueprint: str) -> BlueprintInfo | None:
    """The blueprint's :class:`BlueprintInfo`; None when it does not exist. Properties whose name
    search cannot address (outside :data:`~kiosk.catalog.indexes.PROPERTY_NAME`) are left out."""
    with db.connect() as conn:
        definition = conn.execute(
            sa.select(blueprints.c.definition).where(blueprints.c.identifier == blueprint)
        ).scalar_one_or_none()
    if definition is None:
        return None
    schema = (definition.get("schema") or {}).get("properties") or {}
    usable = {
        name: spec if isinstance(spec, dict) else {} for name, spec in schema.items() if PROPERTY_NAME.fullmatch(name)
    }
    properties = dict(sorted(usable.items(), key=lambda item: property_order(item[0], item[1])))
    relations = definition.get("relations") or {}
    return BlueprintInfo(
        identifier=blueprint,
        title=str(definition.get("title") or blueprint),
        properties=properties,
        me_relations=tuple(n for n, r in relations.items() if isinstance(r, dict) and r.get("target") == "_user"),
        me_properties=tuple(n for n, spec in properties.items() if spec.get("format") in ("email", "user")),
    )


@dataclass(frozen=True)
class Filter:
    """One filter of the URL, with the search rule it became."""

    prop: str
    operator: str
    value: str
    rule: dict[str, Any] = field(compare=False, hash=False)

    @property
    def param(self) -> str:
        return f"{self.prop}:{self.operator}:{self.value}"


def _typed(info: BlueprintInfo, prop: str, text: str) -> Any:
    """``text`` as the JSON value the property holds (number, boolean or string)."""
    kind = info.properties.get(prop, {}).get("type")
    if kind in ("number", "integer"):
        number = float(text)
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text.lower() == "true"
    return text


def parse_filter(info: BlueprintInfo, raw: str) -> Filter:
    """``<property>:<operator>:<value>`` as a :class:`Filter`; ``ValueError`` saying what is wrong."""
    prop, _, rest = raw.partition(":")
    operator, _, value = rest.partition(":")
    if prop not in META_PROPERTIES and prop not in info.properties:
        raise ValueError(f"{info.title} has no property {prop!r}")
    if operator not in OPERATORS:
        raise ValueError(f"{operator!r} is not a filter operator")
    value = value.strip()[:MAX_VALUE]
    rule: dict[str, Any] = {"property": prop, "operator": operator}
    if operator in _LISTS:
        rule["value"] = [_typed(info, prop, v.strip()) for v in value.split(",") if v.strip()]
    elif operator not in _VALUELESS:
        if not value:
            raise ValueError(f"the filter on {info.label(prop)} needs a value")
        rule["value"] = _typed(info, prop, value)
    else:
        value = ""
    try:
        search.parse_query({"combinator": "and", "rules": [rule]})
    except ValidationFailed as exc:
        raise ValueError(str(exc)) from None
    return Filter(prop, operator, value, rule)


@dataclass(frozen=True)
class CatalogQuery:
    """The page's state as its URL gives it, already made valid (unknown values fall back)."""

    blueprint: str
    q: str = ""
    sort: str = "title"
    descending: bool = False
    after: str | None = None
    size: int = DEFAULT_SIZE
    filters: tuple[Filter, ...] = ()
    combinator: str = "and"
    me: bool = False
    problems: tuple[str, ...] = ()  # filters of the URL left out, and why

    @classmethod
    def from_url(
        cls,
        info: BlueprintInfo,
        q: str | None,
        sort: str | None,
        after: str | None,
        size: int | None,
        filters: list[str] | None = None,
        combinator: str | None = None,
        me: str | None = None,
    ) -> CatalogQuery:
        raw_sort = sort or "title"
        descending = raw_sort.startswith("-")
        name = raw_sort.removeprefix("-")
        if name not in SORTS and name.removeprefix(PROPERTY_SORT) not in info.properties:
            name, descending = "title", False
        parsed: list[Filter] = []
        problems: list[str] = []
        for raw in (filters or [])[:MAX_FILTERS]:
            try:
                parsed.append(parse_filter(info, raw))
            except ValueError as exc:
                problems.append(f"Filter “{raw[:100]}” left out: {exc}")
        return cls(
            blueprint=info.identifier,
            q=(q or "").strip()[:MAX_SEARCH],
            sort=name,
            descending=descending,
            after=after or None,
            size=size if size in PAGE_SIZES else DEFAULT_SIZE,
            filters=tuple(parsed),
            combinator="or" if combinator == "or" else "and",
            me=me == "1" and info.has_me,
            problems=tuple(problems),
        )

    @property
    def sort_param(self) -> str:
        return ("-" if self.descending else "") + self.sort

    @property
    def property_sort(self) -> str | None:
        """The property sorted on, or None for a built-in column."""
        return self.sort.removeprefix(PROPERTY_SORT) if self.sort.startswith(PROPERTY_SORT) else None


@dataclass(frozen=True)
class CatalogPage:
    """One page of a blueprint's entities and what the page needs around them."""

    title: str
    rows: list[dict[str, Any]]  # identifier, title, updated_at, created_at, properties
    total: int  # entities matching the search and filters
    next_after: str | None  # the cursor of the next page, None on the last


def _encode(value: Any, row_id: int) -> str:
    plain = value.isoformat() if isinstance(value, datetime) else value
    return base64.urlsafe_b64encode(orjson.dumps([plain, row_id])).decode().rstrip("=")


def _raw_cursor(cursor: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _decode(cursor: str, sort: str) -> tuple[Any, int] | None:
    try:
        value, row_id = _raw_cursor(cursor)
        if sort in ("updatedAt", "createdAt"):
            value = datetime.fromisoformat(value)
        elif not isinstance(value, str):
            return None
        return value, int(row_id)
    except (ValueError, TypeError):
        return None


def _decode_offset(cursor: str) -> int:
    try:
        marker, offset = _raw_cursor(cursor)
    except (ValueError, TypeError):
        return 0
    return offset if marker == "o" and isinstance(offset, int) and offset > 0 else 0


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _me_clause(db: Database, info: BlueprintInfo, email: str) -> Any:
    """Entities linked to the person ``email``: a relation to their ``_user`` entity, or an email property."""
    parts: list[Any] = []
    if info.me_relations:
        person = entities.alias("person")
        parts.append(
            entities.c.id.in_(
                sa.select(entity_relations.c.entity_id)
                .join(person, person.c.id == entity_relations.c.target_id)
                .where(
                    entity_relations.c.relation.in_(info.me_relations),
                    person.c.blueprint == "_user",
                    person.c.identifier == email,
                )
            )
        )
    if info.me_properties:
        rules = [{"property": p, "operator": "=", "value": email} for p in info.me_properties]
        parts.append(search.compile_query({"combinator": "or", "rules": rules}, db))
    return sa.or_(*parts)


def catalog_page(db: Database, info: BlueprintInfo, query: CatalogQuery, email: str | None = None) -> CatalogPage:
    """The page ``query`` asks for (``email``: the signed-in person, for the "Me" filter). An
    unreadable cursor starts from the first page (a URL edited by hand is not an error worth a page)."""
    where: list[Any] = [entities.c.blueprint == query.blueprint]
    if query.q:
        pattern = f"%{_escape_like(query.q.lower())}%"
        where.append(
            sa.or_(
                sa.func.lower(entities.c.identifier).like(pattern, escape="\\"),
                sa.func.lower(sa.func.coalesce(entities.c.title, "")).like(pattern, escape="\\"),
            )
        )
    if query.filters:
        rules = [f.rule for f in query.filters]
        where.append(search.compile_query({"combinator": query.combinator, "rules": rules}, db))
    if query.me and email:
        where.append(_me_clause(db, info, email))
    page_where = list(where)
    offset = 0
    prop = query.property_sort
    order: tuple[Any, ...]
    if prop is not None:
        key = property_value_expression(db.dialect, prop)
        missing_last = sa.case((key.is_(None), 1), else_=0)
        direction = (key.desc(), entities.c.id.desc()) if query.descending else (key.asc(), entities.c.id.asc())
        order = (missing_last, *direction)
        offset = _decode_offset(query.after) if query.after else 0
    else:
        key, _ = SORTS[query.sort]
        position = _decode(query.after, query.sort) if query.after else None
        if position is not None:
            value, row_id = position
            if query.descending:
                page_where.append(sa.or_(key < value, sa.and_(key == value, entities.c.id < row_id)))
            else:
                page_where.append(sa.or_(key > value, sa.and_(key == value, entities.c.id > row_id)))
        order = (key.desc(), entities.c.id.desc()) if query.descending else (key.asc(), entities.c.id.asc())
    with db.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(entities).where(*where)).scalar_one()
        rows = conn.execute(
            sa.select(
                entities.c.id,
                entities.c.identifier,
                _TITLE.label("title"),
                entities.c.properties,
                entities.c.updated_at,
                entities.c.created_at,
                (key if prop is None else sa.literal(None)).label("sort_key"),
            )
            .where(*page_where)
            .order_by(*order)
            .limit(query.size + 1)
            .offset(offset)
        ).all()
    more = len(rows) > query.size
    rows = rows[: query.size]
    next_after = None
    if more and rows:
        next_after = _encode("o", offset + query.size) if prop is not None else _encode(rows[-1].sort_key, rows[-1].id)
    return CatalogPage(
        title=info.title,
        rows=[
            {
                "identifier": r.identifier,
                "title": r.title,
                "properties": r.properties or {},
                "updated_at": r.updated_at,
                "created_at": r.created_at,
            }
            for r in rows
        ],
        total=int(total),
        next_after=next_after,
    )


def cell_text(value: Any, limit: int = 80) -> str:
    """A property's value in a table cell: short plain text (the entity page shows it in full)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict | list):
        text = orjson.dumps(value).decode()
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
