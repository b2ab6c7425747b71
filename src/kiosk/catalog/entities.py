"""Entity documents in Port's format: parsing, merging and validating them, without IO.

The bulk endpoint runs these functions 20,000 times per call, so they are plain Python over
plain dicts (no pydantic model per entity): the parse is a handful of type checks.

Relations are carried in a canonical form, ``{relation: [target identifiers]}``, and rendered back
to Port's form (a string for single relations, a list for ``many``) only on output.

An entity document nested deeper than :data:`~kiosk.core.json_depth.MAX_JSON_DEPTH` is refused here,
per entity (``json_too_deep``, status 400): it could not be stored (orjson writes at most 254
levels, and the bulk writer wraps each entity in two more) or read back by jq, and checking
each entity on its own lets a bulk call store the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kiosk.catalog.blueprints import CompiledBlueprint
from kiosk.catalog.identifiers import is_entity_identifier
from kiosk.catalog.validation import EntityError, undeclared
from kiosk.core.json_depth import depth_message, exceeds_depth, too_deep_at

ENTITY_KEYS = frozenset({"identifier", "title", "icon", "blueprint", "team", "properties", "relations"})
Relations = dict[str, list[str]]


@dataclass
class EntityIn:
    """A parsed entity write. ``None`` means "not given" (matters when merging)."""

    identifier: str
    title: str | None = None
    title_given: bool = False
    icon: str | None = None
    icon_given: bool = False
    team: list[str] | None = None
    properties: dict[str, Any] | None = None
    relations: dict[str, Any] | None = None


@dataclass
class StoredEntity:
    id: int
    identifier: str
    title: str | None
    icon: str | None
    team: list[str]
    properties: dict[str, Any]
    relations: Relations = field(default_factory=dict)


@dataclass
class ResolvedEntity:
    identifier: str
    title: str | None
    icon: str | None
    team: list[str]
    properties: dict[str, Any]
    relations: Relations
    #: relation names whose edges must be rewritten (all of them unless merging)
    touched_relations: frozenset[str]


def parse_entity(raw: Any, blueprint: str, *, identifier: str | None = None, check_depth: bool = True) -> EntityIn:
    """Check an entity document's shape. ``identifier`` is given for PATCH (it comes from the path).

    ``check_depth=False`` when the caller knows the document is within the depth limit (a bulk call
    checks its whole list first, in one pass, and asks for the per-entity check only if it fails).
    """
    if not isinstance(raw, dict):
        raise EntityError("an entity must be a JSON object", code="invalid_entity")
    if check_depth and exceeds_depth(raw):
        # The path goes into ``field``, which the error's message starts with.
        where = too_deep_at(raw)
        raise EntityError(depth_message("the entity"), code="json_too_deep", field=where or None, status=400)
    unknown = raw.keys() - ENTITY_KEYS
    if unknown:
        name = sorted(unknown)[0]
        raise EntityError(
            f"unknown field {name!r} (allowed: {', '.join(sorted(ENTITY_KEYS))})",
            code="unknown_field",
            field=name,
        )
    ident = raw.get("identifier", identifier)
    if identifier is not None and ident != identifier:
        raise EntityError("identifier cannot be changed", field="identifier")
    if not is_entity_identifier(ident):
        raise EntityError(
            "identifier must be 1-1000 characters of A-Z a-z 0-9 @ _ . + : \\ / = -",
            code="invalid_identifier",
            field="identifier",
        )
    bp = raw.get("blueprint")
    if bp is not None and bp != blueprint:
        raise EntityError(f"blueprint {bp!r} does not match the path's {blueprint!r}", field="blueprint")
    entity = EntityIn(identifier=str(ident))
    if "title" in raw:
        title = raw["title"]
        if title is not None and (not isinstance(title, str) or len(title) > 1000):
            raise EntityError("title must be a string of at most 1000 characters", field="title")
        entity.title, entity.title_given = title, True
    if "icon" in raw:
        icon = raw["icon"]
        if icon is not None and (not isinstance(icon, str) or len(icon) > 200):
            raise EntityError("icon must be a string of at most 200 characters", field="icon")
        entity.icon, entity.icon_given = icon, True
    if "team" in raw:
        team = raw["team"]
        if team is None:
            team = []
        elif isinstance(team, str):
            team = [team]
        if not isinstance(team, list) or not all(isinstance(t, str) and 0 < len(t) <= 200 for t in team):
            raise EntityError("team must be a team name or a list of team names", field="team")
        entity.team = team
    if "properties" in raw:
        props = raw["properties"]
        if not isinstance(props, dict):  # null too: Port refuses it, so does kiosk
            raise EntityError("properties must be an object", field="properties")
        entity.properties = props
    if "relations" in raw:
        rels = raw["relations"]
        if not isinstance(rels, dict):  # null too: Port refuses it, so does kiosk
            raise EntityError("relations must be an object", field="relations")
        entity.relations = rels
    return entity


def _canonical_relation(name: str, value: Any, many: bool) -> list[str]:
    where = f"relations.{name}"
    if value is None:
        return []
    if many:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise EntityError(f"{where} is a many-relation: give a list of identifiers", field=where)
        seen: dict[str, None] = {}
        for item in value:
            if not is_entity_identifier(item):
                raise EntityError(f"{where} holds {item!r}, which is not an entity identifier", field=where)
            seen[item] = None
        return list(seen)
    if not is_entity_identifier(value):
        raise EntityError(f"{where} must be one entity identifier (the relation is not 'many')", field=where)
    return [value]


def merged_properties(stored: Mapping[str, Any] | None, given: Mapping[str, Any]) -> dict[str, Any]:
    """An entity's properties after a write, by Port's rule: ``given`` over ``stored`` (a merge,
    PATCH or ``merge=true``) or alone (``stored`` None: a replacement), a null value clearing its
    property. Public so that whatever predicts a write's outcome (a change check before writing)
    applies the catalog's own rule rather than a copy of it."""
    if stored is None:
        return {key: value for key, value in given.items() if value is not None}
    properties = dict(stored)
    for key, value in given.items():
        if value is None:
            properties.pop(key, None)
        else:
            properties[key] = value
    return properties


def resolve_entity(
    compiled: CompiledBlueprint,
    incoming: EntityIn,
    existing: StoredEntity | None,
    *,
    merge: bool,
) -> ResolvedEntity:
    """The entity as it will be stored: merged (PATCH / ``merge=true``) or replaced.

    Runs once per entity in bulk calls, hence the fast path for the common "no base" case.
    """
    base = existing if (merge and existing is not None) else None
    given_props = incoming.properties or {}
    if base is None:
        properties = merged_properties(None, given_props)
        relations: Relations = {}
    else:
        properties = merged_properties(base.properties, given_props)
        relations = {k: list(v) for k, v in base.relations.items()}

    given = incoming.relations or {}
    many = compiled.relation_many
    for name, value in given.items():
        is_many = many.get(name)
        if is_many is None:
            raise undeclared("relation", name, compiled.identifier)
        if not is_many and value.__class__ is str and is_entity_identifier(value):
            relations[name] = [value]
        else:
            relations[name] = _canonical_relation(name, value, is_many)
    for name in compiled.required_relations:
        if not relations.get(name):
            raise EntityError(
                f"relation {name!r} is required", code="missing_required_relation", field=f"relations.{name}"
            )

    if base is None:
        return ResolvedEntity(
            identifier=incoming.identifier,
            title=incoming.title,
            icon=incoming.icon,
            team=incoming.team if incoming.team is not None else [],
            properties=properties,
            relations={k: v for k, v in relations.items() if v},
            touched_relations=compiled.relation_names,
        )
    return ResolvedEntity(
        identifier=incoming.identifier,
        title=incoming.title if incoming.title_given else base.title,
        icon=incoming.icon if incoming.icon_given else base.icon,
        team=incoming.team if incoming.team is not None else list(base.team),
        properties=properties,
        relations={k: v for k, v in relations.items() if v},
        touched_relations=frozenset(given),
    )


def validate_properties(compiled: CompiledBlueprint, properties: dict[str, Any]) -> None:
    """Check ``properties`` against the blueprint, in place (defaults, normalised date-times)."""
    compiled.validator(properties)


def render_relations(blueprint: dict[str, Any], relations: Relations) -> dict[str, Any]:
    """Port's output form: every defined relation present, single ones as str or null."""
    out: dict[str, Any] = {}
    for name, rel in (blueprint.get("relations") or {}).items():
        targets = relations.get(name, [])
        out[name] = list(targets) if rel.get("many") else (targets[0] if targets else None)
    return out
