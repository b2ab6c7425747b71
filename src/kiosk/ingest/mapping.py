"""An integration's mapping (Ocean's ``port-app-config``), parsed and checked, never evaluated here.

The format is Ocean's, as its users write it::

    deleteDependentEntities: true        # top-level options (Ocean's defaults when absent)
    createMissingRelatedEntities: true
    enableMergeEntity: true
    entityDeletionThreshold: 0.9
    resources:                           # synced in this order
      - kind: repository                 # one of kiosk.ingest.kinds.KINDS
        selector:
          query: 'true'                  # jq giving a boolean: is this item ingested?
          includedFiles: [README.md]     # the kind's own selector fields
        port:
          itemsToParse: .items           # optional: one entity per element of this array
          entity:
            mappings:                    # jq programs over the item
              identifier: .id
              title: .name
              blueprint: '"azureDevopsRepository"'
              properties: {url: .remoteUrl}
              relations: {project: .project.id}

Every leaf string of ``port.entity.mappings`` is a jq program, as Ocean evaluates it: ``identifier``,
``team`` and each relation may instead be a search query (``{combinator, rules: [{property,
operator, value}]}``) whose leaves are jq programs too (``combinator: '"and"'``). A YAML number or
boolean where a program is expected is taken as that jq literal (``query: true``).

What is checked at load, so a mapping that loads is one the resync can run: the top-level keys;
each resource's ``kind`` against the kinds table and its selector fields against that kind's
(an unknown one is refused with the list of known ones, where Ocean would silently ignore a
misspelt ``includedFile``); the selector fields' types; the syntax of every jq program, compiled
by libjq behind kiosk's sandbox check (:func:`kiosk.core.jq_sandbox.check_expression`), never run.
A program the whole resource depends on (``selector.query``, ``identifier``, ``blueprint``,
``itemsToParse``) must compile; one for a single field of the entity (title, icon, team, a
property, a relation) that does not is a warning (:attr:`PortAppConfig.warnings`), because Ocean
loads such a mapping and maps that field to null, and its own default mapping has one.
Problems come back as :class:`MappingProblem` (a path into the mapping document and a message),
all of them at once, for the config loader to put a file and line on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Union, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from kiosk.core.jq_sandbox import check_expression
from kiosk.core.value_kinds import value_kind
from kiosk.ingest.kinds import KINDS, KindSpec, known_kinds

__all__ = [
    "EntityConfig",
    "EntityMapping",
    "MappingError",
    "MappingLoc",
    "MappingProblem",
    "PortAppConfig",
    "PortResourceConfig",
    "ResourceConfig",
    "Rule",
    "SearchQuery",
    "Selector",
    "jq_syntax_problem",
    "ocean_quotes",
    "parse_port_app_config",
]

#: A path into the mapping document: ``("resources", 2, "selector", "includedFiles")``.
MappingLoc = tuple[str | int, ...]

_MODEL = ConfigDict(extra="forbid", frozen=True)


def _scalar_as_program(value: Any) -> Any:
    """A YAML number or boolean where a program is expected is that jq literal (``query: true``)."""
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return value


def _jq_program(value: Any) -> Any:
    """A jq program whose syntax must be right for the mapping to load (see the module docstring)."""
    value = _scalar_as_program(value)
    if not isinstance(value, str):
        return value  # pydantic's own "expected a string" follows
    problem = jq_syntax_problem(value)
    if problem is not None:
        raise PydanticCustomError("invalid_jq", "{problem}", {"problem": problem})
    return value


#: Ocean's rewrite of single-quoted strings: a ``'`` opening a string (at the start or after white
#: space, not followed by white space or ``"``) or closing one (not after white space or ``"``, at
#: the end or before white space) becomes ``"``.
_SINGLE_QUOTE: Final = re.compile(r"""(^|\s)'(?!\s|")|(?<!\s|")'(\s|$)""")


def ocean_quotes(program: str) -> str:
    """``program`` as Ocean evaluates it: single-quoted strings read as double-quoted ones
    (``.description // ''`` is ``.description // ""``); anything else unchanged."""
    if "'" not in program:
        return program
    return _SINGLE_QUOTE.sub(r'\1"\2', program)


def jq_syntax_problem(program: str) -> str | None:
    """Why ``program`` does not compile (libjq's first line, with the program), or None when it does."""
    if not program.strip():
        return "an empty jq program"
    try:
        _check_syntax(ocean_quotes(program))
    except ValueError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "syntax error")
        return f"{program!r} is not a valid jq program: {first.rstrip(':')}"
    return None


@lru_cache(maxsize=4096)
def _check_syntax(program: str) -> None:
    # Cached (~3 ms a compile): the same few programs recur across resources and reloads of the file.
    check_expression(program)


#: A jq program (text) that must compile for the mapping to load: selector queries, identifiers,
#: blueprints, ``itemsToParse``: with one of those broken, no item of the resource could be mapped.
Jq = Annotated[str, BeforeValidator(_jq_program)]
#: A jq program for one field of the entity (title, icon, team, a property or a relation). Ocean
#: loads a mapping whose field program does not compile and maps that field to null (reporting a
#: misconfiguration); its own default mapping has one (``// ''``). So does kiosk, so such a
#: mapping works unchanged: :attr:`PortAppConfig.warnings` lists each one, with its place.
FieldJq = Annotated[str, BeforeValidator(_scalar_as_program)]


class Rule(BaseModel):
    """One rule of a search query; each field is a jq program (``property: '"$identifier"'``)."""

    model_config = _MODEL

    property: FieldJq
    operator: FieldJq
    value: FieldJq


def _rule_or_query(value: Any) -> str:
    return "query" if isinstance(value, Mapping) and "combinator" in value else "rule"


class SearchQuery(BaseModel):
    """A Port search that finds the entity (identifier, team or relation target) instead of naming it."""

    model_config = _MODEL

    combinator: FieldJq
    rules: list[
        Annotated[
            Annotated[Rule, Tag("rule")] | Annotated[SearchQuery, Tag("query")],
            Discriminator(_rule_or_query),
        ]
    ] = Field(min_length=1)


def _program_or_query(value: Any) -> str:
    return "query" if isinstance(value, Mapping) else "jq"


#: A jq program, or a search query where Ocean accepts one.
JqOrQuery = Annotated[
    Annotated[Jq, Tag("jq")] | Annotated[SearchQuery, Tag("query")],
    Discriminator(_program_or_query),
]
#: The same for an entity's field (team, a relation): its programs are :data:`FieldJq`.
FieldJqOrQuery = Annotated[
    Annotated[FieldJq, Tag("jq")] | Annotated[SearchQuery, Tag("query")],
    Discriminator(_program_or_query),
]


class EntityMapping(BaseModel):
    """``port.entity.mappings``: how one item becomes one entity (Ocean's ``EntityMapping``)."""

    model_config = _MODEL

    identifier: JqOrQuery
    title: FieldJq | None = None
    icon: FieldJq | None = None
    blueprint: Jq
    team: FieldJqOrQuery | None = None
    properties: dict[str, FieldJq] = Field(default_factory=dict)
    relations: dict[str, FieldJqOrQuery] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _identifier_query_compiles(self) -> EntityMapping:
        # An identifier search query decides which entity an item updates: a broken one maps nothing.
        if isinstance(self.identifier, SearchQuery):
            for program in _programs(self.identifier):
                problem = jq_syntax_problem(program)
                if problem is not None:
                    raise PydanticCustomError("invalid_jq", "identifier: {problem}", {"problem": problem})
        return self

    def field_programs(self) -> list[tuple[MappingLoc, str]]:
        """The programs of the entity's fields (title, icon, team, properties, relations), each with its
        place under ``mappings``."""
        out: list[tuple[MappingLoc, str]] = []
        for name in ("title", "icon", "team"):
            value = getattr(self, name)
            if value is not None:
                out += [((name, *loc), program) for loc, program in _located_programs(value)]
        for key, program in self.properties.items():
            out.append((("properties", key), program))
        for key, relation in self.relations.items():
            out += [(("relations", key, *loc), program) for loc, program in _located_programs(relation)]
        return out

    def programs(self) -> list[str]:
        """Every jq program of this mapping, in document order (for the resync's compile step)."""
        return [*_programs(self.identifier), self.blueprint, *(program for _, program in self.field_programs())]


def _located_programs(value: str | SearchQuery | Rule) -> list[tuple[MappingLoc, str]]:
    """Each program in a field's value with its place inside that value (``()`` for a plain program)."""
    if isinstance(value, str):
        return [((), value)]
    if isinstance(value, Rule):
        return [(("property",), value.property), (("operator",), value.operator), (("value",), value.value)]
    out: list[tuple[MappingLoc, str]] = [(("combinator",), value.combinator)]
    for i, rule in enumerate(value.rules):
        out += [(("rules", i, *loc), program) for loc, program in _located_programs(rule)]
    return out


def _programs(value: str | SearchQuery | Rule) -> list[str]:
    return [program for _, program in _located_programs(value)]


class EntityConfig(BaseModel):
    """``port.entity``: holds the ``mappings``."""

    model_config = _MODEL

    mappings: EntityMapping


class PortResourceConfig(BaseModel):
    """``port:`` of a resource: the entity mapping, and optionally an array each element of which is mapped."""

    model_config = _MODEL

    entity: EntityConfig
    itemsToParse: Jq | None = None
    itemsToParseName: str = "item"
    itemsToParseTopLevelTransform: bool = True


class Selector(BaseModel):
    """A resource's ``selector``: ``query`` plus, in each kind's subclass, that kind's own fields."""

    model_config = _MODEL

    query: Jq


class ResourceConfig(BaseModel):
    """One entry of ``resources:``: a kind, its selector and its mapping."""

    model_config = _MODEL

    kind: str
    selector: Selector
    port: PortResourceConfig

    def selector_value(self, name: str) -> Any:
        """A kind-specific selector field by Ocean's name (``includedFiles``), its default when unset."""
        return getattr(self.selector, name)


def _selector_model(kind: KindSpec) -> type[Selector]:
    fields: dict[str, Any] = {
        field.name: (field.type, ... if field.required else Field(default=field.default)) for field in kind.selector
    }
    name = "".join(part.title() for part in kind.name.split("-")) + "Selector"
    return create_model(name, __base__=Selector, __doc__=f"The {kind.name} kind's selector.", **fields)


def _resource_model(kind: KindSpec) -> type[ResourceConfig]:
    name = "".join(part.title() for part in kind.name.split("-")) + "Resource"
    return create_model(
        name,
        __base__=ResourceConfig,
        __doc__=f"A {kind.name} resource.",
        kind=(cast(Any, Literal)[kind.name], ...),
        selector=(_selector_model(kind), ...),
    )


_RESOURCE_MODELS = {name: _resource_model(kind) for name, kind in KINDS.items()}


def _resource_kind(value: Any) -> str | None:
    kind = value.get("kind") if isinstance(value, Mapping) else None
    return kind if isinstance(kind, str) else None


# A tagged union over the kinds, the tag being the kind itself: a resource's errors are those of its
# own kind's model only, never every kind's complaints at once.
if TYPE_CHECKING:
    _AnyResource = ResourceConfig
else:
    _AnyResource = Annotated[
        Union[tuple(Annotated[model, Tag(name)] for name, model in _RESOURCE_MODELS.items())],  # noqa: UP007
        Discriminator(_resource_kind),
    ]


class PortAppConfig(BaseModel):
    """The whole mapping: Ocean's top-level options and the resources, in sync order.

    ``specPath``, ``useDefaultBranch`` and ``branch`` are the Azure DevOps integration's GitOps
    options (``port.yml`` in repositories); they are accepted so Ocean's own default mapping, which
    sets ``useDefaultBranch``, loads unchanged.
    """

    model_config = _MODEL

    deleteDependentEntities: bool = True
    createMissingRelatedEntities: bool = True
    enableMergeEntity: bool = True
    entityDeletionThreshold: float = Field(default=0.9, ge=0, le=1)
    specPath: str | list[str] = "port.yml"
    useDefaultBranch: bool | None = None
    branch: str = "main"
    resources: list[_AnyResource] = Field(default_factory=list)

    @field_validator("resources", mode="before")
    @classmethod
    def _no_resources_is_empty(cls, value: Any) -> Any:
        # ``resources:`` with nothing under it parses as null: no resources.
        return [] if value is None else value

    def kinds(self) -> list[str]:
        """The kinds the resources name, each once, in sync order."""
        return list(dict.fromkeys(resource.kind for resource in self.resources))

    @property
    def warnings(self) -> list[MappingProblem]:
        """Entity fields whose program does not compile: Ocean (and kiosk) map them to null."""
        found: list[MappingProblem] = []
        for i, resource in enumerate(self.resources):
            for loc, program in resource.port.entity.mappings.field_programs():
                problem = jq_syntax_problem(program)
                if problem is not None:
                    where: MappingLoc = ("resources", i, "port", "entity", "mappings", *loc)
                    found.append(MappingProblem(where, f"{problem}; this field maps to null"))
        return found


@dataclass(frozen=True)
class MappingProblem:
    """One thing wrong with a mapping: where in the document, and what."""

    loc: MappingLoc
    message: str


class MappingError(ValueError):
    """A mapping that cannot be used; ``problems`` holds every one found, in document order."""

    def __init__(self, problems: Sequence[MappingProblem]) -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else MappingProblem((), "invalid mapping")
        super().__init__(f"{_format(first.loc) or 'mapping'}: {first.message}")


def parse_port_app_config(data: Any) -> PortAppConfig:
    """Validate a mapping document (plain JSON-like data); :class:`MappingError` lists every problem."""
    if not isinstance(data, Mapping):
        raise MappingError([MappingProblem((), f"a mapping must be a mapping of options, not {value_kind(data)}")])
    try:
        return PortAppConfig.model_validate(data)
    except ValidationError as exc:
        raise MappingError([_problem(error, data) for error in exc.errors(include_url=False)]) from None


def _problem(error: ErrorDetails, data: Any) -> MappingProblem:
    loc = _document_loc(data, error["loc"])
    kind = error["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found") and len(loc) == 2 and loc[0] == "resources":
        known = ", ".join(known_kinds())
        given = _at(data, loc).get("kind") if isinstance(_at(data, loc), Mapping) else None
        if given is None:
            return MappingProblem((*loc, "kind"), f"field required (known kinds: {known})")
        return MappingProblem((*loc, "kind"), f"unknown kind {given!r} (known kinds: {known})")
    if kind == "extra_forbidden":
        key = loc[-1] if loc else "?"
        if len(loc) == 4 and loc[0] == "resources" and loc[2] == "selector":
            resource_kind = _at(data, loc[:2]).get("kind")
            known = ", ".join(KINDS[resource_kind].selector_names())
            return MappingProblem(loc, f"unknown selector field {key!r} for kind {resource_kind!r} (known: {known})")
        if len(loc) == 1:
            known = ", ".join(PortAppConfig.model_fields)
            return MappingProblem(loc, f"unknown key {key!r} (known keys: {known})")
        return MappingProblem(loc, f"unknown key {key!r}")
    if kind == "missing":
        return MappingProblem(loc, "field required")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return MappingProblem(loc, f"expected a mapping, got {value_kind(error.get('input'))}")
    if kind == "list_type":
        return MappingProblem(loc, f"expected a list, got {value_kind(error.get('input'))}")
    if kind == "string_type":
        return MappingProblem(loc, f"expected a string (a jq program), got {value_kind(error.get('input'))}")
    message = error["msg"]
    if message[:1].isupper() and not message[1:2].isupper():
        message = message[:1].lower() + message[1:]
    return MappingProblem(loc, message)


def _document_loc(data: Any, loc: Sequence[str | int]) -> MappingLoc:
    """pydantic's ``loc`` without the union tags it inserts (a kind name, ``jq``/``query``/``rule``).

    A tag is recognised by not being a place in the document; the last part is kept when it names a
    key missing from a mapping ("field required" points at the key that should be there).
    """
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        found, child = _child(node, part)
        if found:
            node = child
            out.append(part)
        elif i == len(loc) - 1 and isinstance(node, Mapping) and isinstance(part, str) and part not in KINDS:
            out.append(part)
    return tuple(out)


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    """``(True, node[part])`` when ``part`` is a key or an index of ``node``, else ``(False, None)``."""
    if isinstance(node, Mapping) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def _at(data: Any, loc: Sequence[str | int]) -> Any:
    node = data
    for part in loc:
        node = node[part]
    return node


def _format(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
