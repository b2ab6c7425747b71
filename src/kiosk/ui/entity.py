"""What the entity page shows: one entity's fields, each property displayed by its schema's type
and format, its relations as links, the tabs of related blueprints, and the runs on it.

Related entities are listed through kiosk's own search (``relatedTo``, as ``/v1/entities/search``
answers it), so the page and the API never disagree about what is related. Markdown properties are
rendered by markdown-it with raw HTML turned off: tags in the text come out escaped, and links whose
scheme is ``javascript:``, ``vbscript:``, ``file:`` or ``data:`` (other than images) are not made
links at all (markdown-it's own link check), so a property value cannot run script in the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import sqlalchemy as sa
from markdown_it import MarkdownIt
from markupsafe import Markup

from kiosk.catalog.service import Catalog
from kiosk.errors import BadRequest, NotFound
from kiosk.store.engine import Database
from kiosk.store.tables import action_runs
from kiosk.ui.catalog import property_order
from kiosk.ui.runs import run_href

__all__ = [
    "OVERVIEW",
    "RELATED_PAGE",
    "RUNS",
    "RUNS_SHOWN",
    "EntityView",
    "PropertyView",
    "RelatedPage",
    "Tab",
    "entity_href",
    "entity_view",
    "property_view",
    "related_page",
    "render_markdown",
    "runs_on",
]

RELATED_PAGE = 25
RUNS_SHOWN = 50
OVERVIEW = "overview"
RUNS = "runs"

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False})


def render_markdown(text: str) -> Markup:
    """``text`` as HTML that is safe to put in the page (see the module's docstring)."""
    return Markup(_MARKDOWN.render(text))  # noqa: S704 - markdown-it escapes raw HTML with html=False


def entity_href(blueprint: str, identifier: str) -> str:
    """The entity page's path; both parts quoted (identifiers may hold ``/``, ``?`` or ``#``)."""
    return f"/ui/catalog/{quote(blueprint, safe='')}/{quote(identifier, safe='')}"


@dataclass(frozen=True)
class PropertyView:
    """One property as the page shows it: ``kind`` picks the template's markup for ``value``."""

    name: str
    title: str
    kind: str  # empty | text | url | email | datetime | markdown | boolean | number | list | json
    value: Any


def _is_web_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def property_view(name: str, schema: dict[str, Any], value: Any) -> PropertyView:
    """How to show ``value`` of the property ``name`` whose schema is ``schema``."""
    title = str(schema.get("title") or name)
    fmt = schema.get("format")
    if value is None or value == "" or value == [] or value == {}:
        return PropertyView(name, title, "empty", None)
    if isinstance(value, str):
        if fmt == "url" and _is_web_url(value):
            return PropertyView(name, title, "url", value)
        if fmt == "email" and "@" in value and not any(c in value for c in "?&#/\\:"):
            return PropertyView(name, title, "email", value)
        if fmt == "date-time":
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return PropertyView(name, title, "text", value)
            return PropertyView(name, title, "datetime", when)
        if fmt == "markdown":
            return PropertyView(name, title, "markdown", render_markdown(value))
        return PropertyView(name, title, "text", value)
    if isinstance(value, bool):
        return PropertyView(name, title, "boolean", value)
    if isinstance(value, int | float):
        return PropertyView(name, title, "number", value)
    if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
        return PropertyView(name, title, "list", [str(v) for v in value])
    return PropertyView(name, title, "json", orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@dataclass(frozen=True)
class Tab:
    """A section of the page with its own URL (``?tab=<key>``)."""

    key: str  # overview | runs | upstream:<blueprint> | downstream:<blueprint>
    label: str
    direction: str | None = None
    blueprint: str | None = None


@dataclass(frozen=True)
class RelatedPage:
    rows: list[dict[str, Any]]  # identifier, title, href
    next_cursor: str | None


@dataclass
class EntityView:
    entity: dict[str, Any]
    blueprint_title: str
    properties: list[PropertyView]
    relations: list[dict[str, Any]]  # name, title, target, many, links: [{identifier, href}]
    created_at: datetime | None = None
    updated_at: datetime | None = None
    tabs: list[Tab] = field(default_factory=list)


def _tabs(blueprint: str, definition: dict[str, Any], all_blueprints: list[dict[str, Any]]) -> list[Tab]:
    titles = {b["identifier"]: str(b.get("title") or b["identifier"]) for b in all_blueprints}
    upstream = sorted({str(r.get("target")) for r in (definition.get("relations") or {}).values()} & titles.keys())
    downstream = sorted(
        b["identifier"]
        for b in all_blueprints
        if any(r.get("target") == blueprint for r in (b.get("relations") or {}).values())
    )
    tabs = [Tab(OVERVIEW, "Overview"), Tab(RUNS, "Action runs")]
    tabs += [Tab(f"upstream:{b}", f"{titles[b]} (this entity points to)", "upstream", b) for b in upstream]
    tabs += [Tab(f"downstream:{b}", f"{titles[b]} (pointing here)", "downstream", b) for b in downstream]
    return tabs


def _instant(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def entity_view(catalog: Catalog, blueprint: str, identifier: str) -> EntityView | None:
    """The entity's page data; None when the blueprint or the entity does not exist."""
    try:
        definition = catalog.get_blueprint(blueprint)
        entity = catalog.get_entity(blueprint, identifier)
    except NotFound:
        return None
    schema = (definition.get("schema") or {}).get("properties") or {}
    stored = entity.get("properties") or {}
    specs = {name: spec if isinstance(spec, dict) else {} for name, spec in schema.items()}
    ordered = sorted(specs.items(), key=lambda item: property_order(item[0], item[1]))
    properties = [property_view(name, spec, stored.get(name)) for name, spec in ordered]
    relations = []
    for name, spec in (definition.get("relations") or {}).items():
        value = (entity.get("relations") or {}).get(name)
        targets = value if isinstance(value, list) else [value] if value else []
        target = str(spec.get("target"))
        relations.append(
            {
                "name": name,
                "title": str(spec.get("title") or name),
                "target": target,
                "many": bool(spec.get("many")),
                "links": [{"identifier": t, "href": entity_href(target, t)} for t in targets],
            }
        )
    return EntityView(
        entity=entity,
        blueprint_title=str(definition.get("title") or blueprint),
        properties=properties,
        relations=relations,
        created_at=_instant(entity.get("createdAt")),
        updated_at=_instant(entity.get("updatedAt")),
        tabs=_tabs(blueprint, definition, catalog.list_blueprints()),
    )


def related_page(catalog: Catalog, entity: dict[str, Any], tab: Tab, cursor: str | None) -> RelatedPage:
    """One page of the entities of ``tab.blueprint`` related to ``entity`` in ``tab.direction``,
    found by kiosk's search (``relatedTo``); a stale or edited cursor starts from the first page."""
    query = {
        "combinator": "and",
        "rules": [
            {"property": "$blueprint", "operator": "=", "value": tab.blueprint},
            {
                "operator": "relatedTo",
                "blueprint": entity["blueprint"],
                "value": entity["identifier"],
                "direction": tab.direction,
            },
        ],
    }
    try:
        found, next_cursor = catalog.search(query, limit=RELATED_PAGE, cursor=cursor)
    except BadRequest:  # only the cursor can be bad: the query is built here
        found, next_cursor = catalog.search(query, limit=RELATED_PAGE)
    rows = [
        {
            "identifier": e["identifier"],
            "title": e["title"] or e["identifier"],
            "href": entity_href(e["blueprint"], e["identifier"]),
        }
        for e in found
    ]
    return RelatedPage(rows=rows, next_cursor=next_cursor)


def runs_on(db: Database, blueprint: str, identifier: str) -> list[dict[str, Any]]:
    """The latest action runs on the entity, newest first (id, action, status, label, who, when)."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(
                action_runs.c.id,
                action_runs.c.action,
                action_runs.c.status,
                action_runs.c.status_label,
                action_runs.c.created_by,
                action_runs.c.created_at,
            )
            .where(action_runs.c.blueprint == blueprint, action_runs.c.entity == identifier)
            .order_by(action_runs.c.created_at.desc(), action_runs.c.id.desc())
            .limit(RUNS_SHOWN)
        ).all()
    return [{**r._mapping, "href": run_href(r.id)} for r in rows]
