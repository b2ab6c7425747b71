"""Blueprint documents in Port's format: parsing, normalising and checking them.

A blueprint is stored as its normalised Port document; this module is pure (no IO) so the API,
``kiosk apply`` and the tests share one definition of what a valid blueprint is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import fastjsonschema
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from kiosk.catalog.identifiers import SCHEMA_IDENTIFIER, is_schema_identifier
from kiosk.catalog.validation import FORMAT_CHECKS, PropertiesValidator
from kiosk.core.json_depth import MAX_JSON_DEPTH, depth_message, exceeds_depth, too_deep_at
from kiosk.errors import BadRequest, ValidationFailed

PROPERTY_TYPES = {"string", "number", "integer", "boolean", "object", "array"}
#: Port's formats plus the JSON-schema ones users already write.
PROPERTY_FORMATS = {
    "url",
    "email",
    "date-time",
    "markdown",
    "yaml",
    "user",
    "team",
    "entity",
    "timer",
    "ipv4",
    "ipv6",
    "proto",
    "date",
    "uri",
}
INDEX_KEY = "x-kiosk-index"
#: JSON-schema keywords of a property definition and the JSON type their value must have. Checked
#: as Port checks them, strictly: Python's ``True == 1`` and fastjsonschema's truthiness tests
#: would otherwise accept ``"uniqueItems": "false"`` (as true) and ``"minLength": true`` (as 1).
BOOLEAN_KEYWORDS = ("uniqueItems", "readOnly", "writeOnly", "deprecated", INDEX_KEY)
COUNT_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
TEXT_KEYWORDS = ("title", "description", "icon", "pattern")


class RelationDef(BaseModel):
    """A relation between blueprints. Its flags are JSON booleans, as Port requires: pydantic's lax
    mode would turn ``"false"`` into False and ``0`` into False, accepting what Port refuses."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(pattern=SCHEMA_IDENTIFIER.pattern, max_length=100)
    title: str | None = None
    description: str | None = None
    required: StrictBool = False
    many: StrictBool = False


class SchemaDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    properties: dict[str, dict[str, Any]] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)


class BlueprintDoc(BaseModel):
    """A Port blueprint. Unknown keys are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    identifier: str = Field(pattern=SCHEMA_IDENTIFIER.pattern, min_length=1, max_length=100)
    title: str | None = Field(default=None, max_length=1000)
    icon: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10000)
    schema_: SchemaDef = Field(default_factory=SchemaDef, alias="schema")
    relations: dict[str, RelationDef] = Field(default_factory=dict)
    mirrorProperties: dict[str, Any] = Field(default_factory=dict)
    calculationProperties: dict[str, Any] = Field(default_factory=dict)
    aggregationProperties: dict[str, Any] = Field(default_factory=dict)
    teamInheritance: dict[str, Any] | None = None
    changelogDestination: dict[str, Any] | None = None
    ownership: dict[str, Any] | None = None

    @field_validator("relations")
    @classmethod
    def _relation_names(cls, value: dict[str, RelationDef]) -> dict[str, RelationDef]:
        for name in value:
            if not is_schema_identifier(name):
                raise ValueError(f"relation identifier {name!r} must match {SCHEMA_IDENTIFIER.pattern}")
        return value

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


def _format_pydantic_error(error: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_input=False)
    ]
    first = details[0]
    return f"{first['field']}: {first['message']}", details


def parse_blueprint(raw: Any) -> BlueprintDoc:
    """Validate a blueprint document's shape and its property definitions."""
    if not isinstance(raw, dict):
        raise ValidationFailed("a blueprint must be a JSON object", code="invalid_blueprint")
    if exceeds_depth(raw):  # the API's bodies are checked already; kiosk.yaml's are not
        where = too_deep_at(raw)
        raise BadRequest(
            depth_message("the blueprint", where),
            code="json_too_deep",
            details={"field": where, "limit": MAX_JSON_DEPTH},
        )
    try:
        doc = BlueprintDoc.model_validate(raw)
    except ValidationError as exc:
        message, details = _format_pydantic_error(exc)
        ident = raw.get("identifier") if isinstance(raw.get("identifier"), str) else None
        prefix = f"blueprint {ident!r}: " if ident else "blueprint: "
        raise ValidationFailed(prefix + message, code="invalid_blueprint", details=details) from None
    _check_schema(doc)
    return doc


def _check_schema(doc: BlueprintDoc) -> None:
    where = f"blueprint {doc.identifier!r}"
    props = doc.schema_.properties
    for name, spec in props.items():
        field = f"schema.properties.{name}"
        if not is_schema_identifier(name):
            raise ValidationFailed(
                f"{where}: {field}: property identifier must match {SCHEMA_IDENTIFIER.pattern}",
                code="invalid_blueprint",
                details={"field": field},
            )
        ptype = spec.get("type")
        if ptype not in PROPERTY_TYPES:
            raise ValidationFailed(
                f"{where}: {field}.type must be one of {sorted(PROPERTY_TYPES)}, got {ptype!r}",
                code="invalid_blueprint",
                details={"field": f"{field}.type"},
            )
        fmt = spec.get("format")
        if fmt is not None and fmt not in PROPERTY_FORMATS:
            raise ValidationFailed(
                f"{where}: {field}.format {fmt!r} is not one of {sorted(PROPERTY_FORMATS)}",
                code="invalid_blueprint",
                details={"field": f"{field}.format"},
            )
        _check_keyword_types(spec, field, where)
        if name in doc.relations:
            raise ValidationFailed(
                f"{where}: {name!r} is both a property and a relation",
                code="invalid_blueprint",
                details={"field": field},
            )
    for req in doc.schema_.required:
        if req not in props:
            raise ValidationFailed(
                f"{where}: schema.required names {req!r}, which is not a property",
                code="invalid_blueprint",
                details={"field": "schema.required"},
            )
    try:
        compile_entity_schema(doc.to_document())
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise ValidationFailed(
            f"{where}: schema is not valid JSON schema: {exc}",
            code="invalid_blueprint",
            details={"field": "schema"},
        ) from None


def _check_keyword_types(spec: dict[str, Any], field: str, where: str) -> None:
    """The JSON type of each keyword's value (see :data:`BOOLEAN_KEYWORDS`), then ``items``'."""

    def refuse(key: str, what: str) -> ValidationFailed:
        return ValidationFailed(
            f"{where}: {field}.{key} must be {what}", code="invalid_blueprint", details={"field": f"{field}.{key}"}
        )

    for key in BOOLEAN_KEYWORDS:
        if key in spec and type(spec[key]) is not bool:
            raise refuse(key, "true or false")
    for key in COUNT_KEYWORDS:
        value = spec.get(key)
        if key in spec and (type(value) is not int or value < 0):
            raise refuse(key, "a non-negative integer")
    for key in NUMBER_KEYWORDS:
        if key in spec and type(spec[key]) not in (int, float):
            raise refuse(key, "a number")
    for key in TEXT_KEYWORDS:
        if key in spec and type(spec[key]) is not str:
            raise refuse(key, "a string")
    extra = spec.get("additionalProperties")
    if "additionalProperties" in spec and type(extra) is not bool and not isinstance(extra, dict):
        raise refuse("additionalProperties", "true, false or a schema object")
    items = spec.get("items")
    if isinstance(items, dict):
        _check_keyword_types(items, f"{field}.items", where)


def entity_json_schema(blueprint: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema an entity's ``properties`` object must satisfy."""
    schema = blueprint.get("schema") or {}
    props = {
        name: {k: v for k, v in spec.items() if k != INDEX_KEY} for name, spec in schema.get("properties", {}).items()
    }
    return {
        "type": "object",
        "properties": props,
        "required": list(schema.get("required", [])),
        "additionalProperties": False,
    }


def compile_entity_schema(blueprint: dict[str, Any]) -> Any:
    """The whole schema through fastjsonschema: proves a blueprint's schema is valid JSON schema."""
    return fastjsonschema.compile(entity_json_schema(blueprint), formats=FORMAT_CHECKS)


@dataclass(frozen=True)
class CompiledBlueprint:
    """A stored blueprint plus what writes need from it, built once per blueprint version."""

    document: dict[str, Any]
    validator: PropertiesValidator
    property_names: frozenset[str]
    relation_names: frozenset[str]
    #: relation name -> is it a many-relation
    relation_many: dict[str, bool]
    required_relations: tuple[str, ...]
    #: properties with an expression index: their values must fit in an index entry
    indexed: frozenset[str]

    @property
    def identifier(self) -> str:
        return str(self.document["identifier"])

    @property
    def relations(self) -> dict[str, dict[str, Any]]:
        return dict(self.document.get("relations") or {})

    @property
    def required_properties(self) -> list[str]:
        return list((self.document.get("schema") or {}).get("required", []))

    @classmethod
    def build(cls, document: dict[str, Any]) -> CompiledBlueprint:
        props = (document.get("schema") or {}).get("properties", {})
        rels: dict[str, dict[str, Any]] = document.get("relations") or {}
        return cls(
            document=document,
            validator=PropertiesValidator(document),
            property_names=frozenset(props),
            relation_names=frozenset(rels),
            relation_many={name: bool(r.get("many")) for name, r in rels.items()},
            required_relations=tuple(name for name, r in rels.items() if r.get("required")),
            indexed=frozenset(name for name, spec in props.items() if spec.get(INDEX_KEY) is True),
        )

    def indexed_properties(self) -> list[str]:
        return sorted(self.indexed)
