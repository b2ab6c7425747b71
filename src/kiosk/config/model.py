"""The shape of kiosk.yaml, as pydantic models, plus a map from field paths back to YAML lines.

Each top-level section is one field of :class:`KioskConfig`; adding a section (``actions``,
``integrations``, ``receivers`` ...) is adding one field with its model. Unknown top-level keys
are refused so a typo such as ``entitites:`` fails loudly instead of applying nothing.

Blueprint and entity *contents* are kept as plain dicts checked only shallowly (an identifier
that is a string of the allowed characters, no duplicates): the catalog service owns the deep
rules, and checking them twice would let the two definitions drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictStr, field_validator

from kiosk.catalog.identifiers import ENTITY_IDENTIFIER, SCHEMA_IDENTIFIER

__all__ = [
    "BlueprintSpec",
    "EntitySpec",
    "KioskConfig",
    "Loc",
    "SourceMap",
    "format_loc",
]

#: A path into the config, as pydantic reports it: ``("blueprints", 1, "relations", "owner")``.
Loc = tuple[str | int, ...]

EntityIdentifier = Annotated[StrictStr, Field(min_length=1, max_length=1000, pattern=ENTITY_IDENTIFIER.pattern)]
#: Blueprint identifiers are stricter than entity ones in the catalog (they end up in JSON paths
#: and index names); checking that here gives the error a line number.
SchemaIdentifier = Annotated[StrictStr, Field(min_length=1, max_length=100, pattern=SCHEMA_IDENTIFIER.pattern)]


def format_loc(loc: Sequence[str | int]) -> str:
    """``("blueprints", 1, "relations", "owner")`` -> ``blueprints[1].relations.owner``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _position(lc: Any, kind: str, part: str | int) -> int | None:
    """0-based line of a mapping key / sequence item; None when ruamel kept none (``<<:`` merges)."""
    if lc is None:
        return None
    try:
        return int(getattr(lc, kind)(part)[0])
    except (KeyError, IndexError, TypeError):
        return None


@dataclass(frozen=True)
class SourceMap:
    """Where each part of a loaded config came from, to put file and line into error messages.

    ``root`` is the ruamel.yaml round-trip tree; its mappings and sequences carry ``.lc``
    positions (0-based), which :meth:`line` turns into the 1-based line of the deepest node on
    ``loc`` that exists (a missing field points at the mapping that should have held it).
    """

    path: Path
    root: Any

    def line(self, loc: Sequence[str | int]) -> int:
        node = self.root
        lc = getattr(node, "lc", None)
        line = (lc.line + 1) if lc is not None and lc.line is not None else 1
        for part in loc:
            lc = getattr(node, "lc", None)
            if isinstance(node, dict) and part in node:
                position = _position(lc, "key", part)
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                position = _position(lc, "item", part)
                node = node[part]
            else:
                break
            if position is not None:
                line = position + 1
        return line

    def describe(self, loc: Sequence[str | int]) -> str:
        """``kiosk.yaml:14: blueprints[1].relations.owner``."""
        where = f"{self.path}:{self.line(loc)}"
        field = format_loc(loc)
        return f"{where}: {field}" if field else where


class _CatalogDoc(BaseModel):
    """A Port document kept whole: every key passes through to the catalog untouched."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def document(self) -> dict[str, Any]:
        """The Port document to hand to the catalog service."""
        return self.model_dump()


class BlueprintSpec(_CatalogDoc):
    """A Port blueprint: identifier, title, icon, description, schema, relations, ..."""

    identifier: SchemaIdentifier

    def relation_targets(self) -> list[str]:
        """Blueprints this one's relations point at (for ordering), in definition order."""
        relations = (self.model_extra or {}).get("relations")
        if not isinstance(relations, dict):
            return []
        return [r["target"] for r in relations.values() if isinstance(r, dict) and isinstance(r.get("target"), str)]


class EntitySpec(_CatalogDoc):
    """A Port entity plus the ``blueprint`` it belongs to."""

    identifier: EntityIdentifier
    blueprint: SchemaIdentifier

    @property
    def key(self) -> tuple[str, str]:
        return (self.blueprint, self.identifier)

    def entity_document(self) -> dict[str, Any]:
        """The entity as the catalog takes it (the blueprint travels in the call, not the body)."""
        doc = self.document()
        doc.pop("blueprint", None)
        return doc

    def relation_values(self) -> dict[str, list[str]]:
        """``{relation: [target identifiers]}`` whatever form (str, list, null) the file used."""
        relations = (self.model_extra or {}).get("relations")
        out: dict[str, list[str]] = {}
        if not isinstance(relations, dict):
            return out
        for name, value in relations.items():
            if isinstance(value, str):
                out[str(name)] = [value]
            elif isinstance(value, list):
                out[str(name)] = [v for v in value if isinstance(v, str)]
        return out


class KioskConfig(BaseModel):
    """The whole of kiosk.yaml. One field per top-level section."""

    # Sections will hold secret references; a rejected literal must not reach ValidationError's text.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    blueprints: list[BlueprintSpec] = Field(default_factory=list)
    entities: list[EntitySpec] = Field(default_factory=list)

    _source: SourceMap | None = PrivateAttr(default=None)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_section_is_empty(cls, value: Any) -> Any:
        # ``entities:`` with nothing under it parses as null; it means "none".
        return [] if value is None else value

    @property
    def source(self) -> SourceMap | None:
        """Where this config was loaded from (None when built in code)."""
        return self._source

    def with_source(self, source: SourceMap) -> KioskConfig:
        self._source = source
        return self

    def describe(self, loc: Sequence[str | int]) -> str:
        """``file:line: field`` when the config came from a file, else just the field path."""
        if self._source is not None:
            return self._source.describe(loc)
        return format_loc(loc) or "config"

    def consistency_errors(self) -> list[tuple[Loc, str]]:
        """Rules across items that pydantic checks one item at a time cannot see."""
        errors: list[tuple[Loc, str]] = []
        seen_bp: dict[str, int] = {}
        for i, bp in enumerate(self.blueprints):
            if bp.identifier in seen_bp:
                errors.append(
                    (
                        ("blueprints", i, "identifier"),
                        f"duplicate blueprint identifier {bp.identifier!r} (also blueprints[{seen_bp[bp.identifier]}])",
                    )
                )
            else:
                seen_bp[bp.identifier] = i
        seen_ent: dict[tuple[str, str], int] = {}
        for i, ent in enumerate(self.entities):
            if ent.key in seen_ent:
                errors.append(
                    (
                        ("entities", i, "identifier"),
                        f"duplicate entity {ent.identifier!r} of blueprint {ent.blueprint!r} "
                        f"(also entities[{seen_ent[ent.key]}])",
                    )
                )
            else:
                seen_ent[ent.key] = i
        return errors
