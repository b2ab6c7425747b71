"""An action's ``userInputs``: checking the definition, then checking a run's values against it.

Port's user inputs look like JSON schema (``properties`` with ``type``, ``format``, ``enum``,
``default``, ``required``) but mean a little more: ``format: entity`` names a blueprint whose
entity the value must be, ``format: secret`` marks a value that must never be stored or shown
in clear. This module is pure: entity existence is the run service's business, so validation
hands back the entity references to look up rather than looking them up itself.

Every error names the input as ``properties.<name>`` (the run body's path) and never repeats
the value: it may be a secret.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from kiosk.catalog.dates import canonical_datetime
from kiosk.catalog.identifiers import is_entity_identifier, is_schema_identifier
from kiosk.catalog.validation import FORMAT_CHECKS
from kiosk.core.jq_sandbox import compile_jq
from kiosk.errors import ValidationFailed

__all__ = [
    "INPUT_TYPES",
    "MASK",
    "EntityRef",
    "InputSpec",
    "UserInputs",
    "ValidatedInputs",
    "compile_user_inputs",
    "is_jq_rule",
]

#: What every API answer and log shows in place of a secret input's value.
MASK = "****"

INPUT_TYPES = frozenset({"string", "number", "boolean", "object", "array"})
#: Formats an input may carry, each only on a string (or on the items of an array of strings).
STRING_FORMATS = frozenset({"entity", "user", "team", "url", "email", "yaml", "date-time", "secret", "multi-line"})
#: Keys that describe an input (for a form) without constraining its value.
ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "icon",
        "enumColors",
        "dependsOn",
        "visible",
        "disabled",
        "dataset",
        "sort",
        "placeholder",
        "readOnly",
        "examples",
    }
)
CONSTRAINTS = frozenset(
    {
        "type",
        "format",
        "blueprint",
        "enum",
        "default",
        "items",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "encryption",
    }
)
#: Keys of ``userInputs`` itself besides ``properties`` and ``required``: form layout, ignored.
LAYOUT_KEYS = frozenset({"order", "steps", "titles"})
#: Port's only encryption algorithm name for secret inputs; kiosk encrypts every secret anyway.
PORT_ENCRYPTION = "aes256-gcm"


class InvalidInput(Exception):
    """A value breaks its input's definition; the message completes ``properties.<name><path> ...``.

    ``path`` locates the offending part inside the value (``[2]`` for an array's third item).
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


@dataclass(frozen=True)
class EntityRef:
    """An entity a run's input names: it must exist in ``blueprint`` (the service checks)."""

    input: str
    blueprint: str
    identifier: str


@dataclass(frozen=True)
class InputSpec:
    """One input, checked and ready to validate values (``check`` raises :class:`InvalidInput`)."""

    name: str
    type: str
    format: str | None
    blueprint: str | None
    items: InputSpec | None
    has_default: bool
    default: Any
    check: Callable[[Any], Any] = field(repr=False, compare=False)

    @property
    def is_secret(self) -> bool:
        return self.format == "secret"

    @property
    def entity_blueprints(self) -> set[str]:
        """Blueprints whose entities this input (or its items) must name."""
        out = {self.blueprint} if self.format == "entity" and self.blueprint else set()
        if self.items is not None:
            out |= self.items.entity_blueprints
        return out


@dataclass(frozen=True)
class ValidatedInputs:
    """A run's inputs after validation: clear values, the secret ones apart, entity references."""

    values: dict[str, Any]
    secrets: dict[str, str]
    entity_refs: tuple[EntityRef, ...]

    def masked(self) -> dict[str, Any]:
        """The values as they may be stored and shown: every secret replaced by :data:`MASK`."""
        return {name: (MASK if name in self.secrets else value) for name, value in self.values.items()}


@dataclass(frozen=True)
class UserInputs:
    """An action's compiled ``userInputs``."""

    specs: dict[str, InputSpec]
    required: tuple[str, ...]

    @property
    def secret_names(self) -> frozenset[str]:
        return frozenset(name for name, spec in self.specs.items() if spec.is_secret)

    @property
    def entity_blueprints(self) -> set[str]:
        out: set[str] = set()
        for spec in self.specs.values():
            out |= spec.entity_blueprints
        return out

    def validate(self, given: Any) -> ValidatedInputs:
        """Check a run's ``properties``: unknown inputs refused, defaults applied, required enforced.

        A JSON ``null`` counts as "not given", so an optional input may be cleared explicitly
        and a default still applies.
        """
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise _fail("properties", "properties must be a JSON object", code="invalid_request")
        values: dict[str, Any] = {}
        for name, value in given.items():
            spec = self.specs.get(name)
            if spec is None:
                known = ", ".join(sorted(self.specs)) or "none"
                raise _fail(
                    f"properties.{name}",
                    f"properties.{name}: the action has no input {name!r} (its inputs: {known})",
                    code="unknown_input",
                )
            if value is None:
                continue
            try:
                values[name] = spec.check(value)
            except InvalidInput as exc:
                where = f"properties.{name}{exc.path}"
                raise _fail(where, f"{where} {exc.message}", code="invalid_input") from None
        for name, spec in self.specs.items():
            if name not in values and spec.has_default:
                values[name] = copy.deepcopy(spec.default)
        for name in self.required:
            if name not in values:
                raise _fail(f"properties.{name}", f"properties.{name} is required", code="missing_required_input")
        secrets = {name: values[name] for name in self.secret_names if name in values}
        refs = tuple(ref for name, value in values.items() for ref in _entity_refs(self.specs[name], name, value))
        return ValidatedInputs(values=values, secrets=secrets, entity_refs=refs)

    def restore(self, stored: Mapping[str, Any], secrets: Mapping[str, str]) -> ValidatedInputs:
        """Stored (masked) values plus the decrypted secrets, as :meth:`validate` returned them."""
        values = {name: secrets.get(name, value) for name, value in stored.items()}
        secret_values = {name: secrets[name] for name in secrets if name in values}
        refs = tuple(
            ref
            for name, value in values.items()
            if name in self.specs
            for ref in _entity_refs(self.specs[name], name, value)
        )
        return ValidatedInputs(values=values, secrets=secret_values, entity_refs=refs)


def _entity_refs(spec: InputSpec, name: str, value: Any) -> list[EntityRef]:
    if spec.format == "entity" and spec.blueprint and isinstance(value, str):
        return [EntityRef(name, spec.blueprint, value)]
    if spec.items is not None and isinstance(value, list):
        return [ref for item in value for ref in _entity_refs(spec.items, name, item)]
    return []


def _fail(field: str, message: str, *, code: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, details={"field": field})


# --------------------------------------------------------------------------------- definitions


def compile_user_inputs(raw: Any, where: str = "trigger.userInputs") -> UserInputs:
    """Check a ``userInputs`` definition; a problem is a 422 naming the field (``where`` + path)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _definition_error(where, "must be an object with 'properties' and 'required'")
    unknown = sorted(set(raw) - {"properties", "required"} - LAYOUT_KEYS)
    if unknown:
        raise _definition_error(f"{where}.{unknown[0]}", "is not a userInputs key (properties, required, order)")
    props = raw.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise _definition_error(f"{where}.properties", "must be an object of input definitions")
    specs: dict[str, InputSpec] = {}
    for name, spec in props.items():
        if not is_schema_identifier(name):
            raise _definition_error(f"{where}.properties.{name}", "input names may use letters, digits, @ _ = -")
        specs[name] = _compile_spec(name, spec, f"{where}.properties.{name}", top_level=True)
    required = raw.get("required")
    if required is None:
        required = []
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise _definition_error(f"{where}.required", "must be a list of input names")
    for name in required:
        if name not in specs:
            raise _definition_error(f"{where}.required", f"names {name!r}, which is not an input")
    return UserInputs(specs=specs, required=tuple(dict.fromkeys(required)))


def _definition_error(field: str, problem: str) -> ValidationFailed:
    return ValidationFailed(f"{field} {problem}", code="invalid_action", details={"field": field})


def _compile_spec(name: str, spec: Any, where: str, *, top_level: bool) -> InputSpec:
    if not isinstance(spec, dict):
        raise _definition_error(where, "must be an object (type, format, ...)")
    unknown = sorted(set(spec) - CONSTRAINTS - ANNOTATIONS)
    if unknown:
        raise _definition_error(f"{where}.{unknown[0]}", "is not an input key kiosk knows")
    itype = spec.get("type")
    if itype not in INPUT_TYPES:
        raise _definition_error(f"{where}.type", f"must be one of {sorted(INPUT_TYPES)}")
    fmt = spec.get("format")
    if fmt is not None:
        if fmt not in STRING_FORMATS:
            raise _definition_error(f"{where}.format", f"must be one of {sorted(STRING_FORMATS)}")
        if itype != "string":
            raise _definition_error(f"{where}.format", f"{fmt!r} needs type 'string'")
    blueprint = spec.get("blueprint")
    if fmt == "entity":
        if not is_schema_identifier(blueprint):
            raise _definition_error(f"{where}.blueprint", "must name the blueprint of the entity (format 'entity')")
    elif blueprint is not None:
        raise _definition_error(f"{where}.blueprint", "is only meaningful with format 'entity'")
    if "encryption" in spec and (fmt != "secret" or spec["encryption"] != PORT_ENCRYPTION):
        raise _definition_error(f"{where}.encryption", f"only {PORT_ENCRYPTION!r}, on a format 'secret' input")
    if fmt == "secret" and not top_level:
        raise _definition_error(f"{where}.format", "a secret cannot be an array item (only a whole input)")
    _check_constraint_types(spec, itype, where)
    items: InputSpec | None = None
    if "items" in spec:
        if itype != "array":
            raise _definition_error(f"{where}.items", "is only meaningful on type 'array'")
        items = _compile_spec(name, spec["items"], f"{where}.items", top_level=False)
        if items.has_default:
            raise _definition_error(f"{where}.items.default", "items cannot have a default")
    base = _value_checker(spec, itype, fmt, items)
    enum = spec.get("enum")
    # Port's jq-valued ``enum``/``default`` ({"jqQuery": ...}) depend on the form being filled: the
    # portal's form evaluates them on the server; here they are only compiled, and the API (which
    # has no form) takes the value as given, with no default.
    if is_jq_rule(enum):
        _compile_rule(enum, f"{where}.enum")
        enum = None
    elif enum is not None:
        if not isinstance(enum, list) or not enum:
            raise _definition_error(f"{where}.enum", "must be a non-empty list")
        if fmt == "secret":
            raise _definition_error(f"{where}.enum", "a secret input cannot list its values")
        for i, option in enumerate(enum):
            try:
                base(option)
            except InvalidInput as exc:
                raise _definition_error(f"{where}.enum[{i}]{exc.path}", exc.message) from None
    check = _with_enum(base, enum)
    has_default = "default" in spec
    default = spec.get("default")
    if is_jq_rule(default):
        _compile_rule(default, f"{where}.default")
        has_default, default = False, None
    if has_default:
        if fmt == "secret":
            raise _definition_error(f"{where}.default", "a secret input cannot have a default (it would be in clear)")
        try:
            default = check(default)
        except InvalidInput as exc:
            raise _definition_error(f"{where}.default{exc.path}", exc.message) from None
    return InputSpec(
        name=name,
        type=itype,
        format=fmt,
        blueprint=blueprint if fmt == "entity" else None,
        items=items,
        has_default=has_default,
        default=default,
        check=check,
    )


def is_jq_rule(value: Any) -> bool:
    """Whether an input's ``enum``/``default``/``visible``/``disabled`` is Port's jq form."""
    return isinstance(value, dict) and set(value) == {"jqQuery"}


def _compile_rule(rule: Any, where: str) -> None:
    expression = rule["jqQuery"]
    if not isinstance(expression, str) or not expression.strip():
        raise _definition_error(f"{where}.jqQuery", "must be a jq expression")
    try:
        compile_jq(expression)
    except ValueError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "error")
        raise _definition_error(f"{where}.jqQuery", f"is not a valid jq expression: {first}") from None


def _check_constraint_types(spec: Mapping[str, Any], itype: str, where: str) -> None:
    """Constraint keywords must fit the type and have values of the right kind."""
    allowed = {
        "string": {"minLength", "maxLength", "pattern"},
        "number": {"minimum", "maximum"},
        "array": {"minItems", "maxItems"},
    }.get(itype, set())
    for key in ("minLength", "maxLength", "pattern", "minimum", "maximum", "minItems", "maxItems"):
        if key not in spec:
            continue
        if key not in allowed:
            raise _definition_error(f"{where}.{key}", f"does not apply to type {itype!r}")
        value = spec[key]
        if key == "pattern":
            if not isinstance(value, str):
                raise _definition_error(f"{where}.pattern", "must be a regular expression string")
            try:
                re.compile(value)
            except re.error as exc:
                raise _definition_error(f"{where}.pattern", f"is not a valid regular expression: {exc}") from None
        elif key in ("minimum", "maximum"):
            if type(value) not in (int, float):
                raise _definition_error(f"{where}.{key}", "must be a number")
        elif type(value) is not int or value < 0:
            raise _definition_error(f"{where}.{key}", "must be a non-negative integer")


# --------------------------------------------------------------------------------- values


def _with_enum(check: Callable[[Any], Any], enum: list[Any] | None) -> Callable[[Any], Any]:
    if enum is None:
        return check

    def checked(value: Any) -> Any:
        stored = check(value)
        if not any(_same_json(option, stored) for option in enum):
            raise InvalidInput(f"must be one of {enum}")
        return stored

    return checked


def _same_json(a: Any, b: Any) -> bool:
    """Equality of JSON values: ``true`` is not ``1`` (Python says it is), ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _value_checker(
    spec: Mapping[str, Any], itype: str, fmt: str | None, items: InputSpec | None
) -> Callable[[Any], Any]:
    if itype == "string":
        return _string_checker(spec, fmt)
    if itype == "number":
        return _number_checker(spec)
    if itype == "boolean":
        return _boolean_check
    if itype == "object":
        return _object_check
    return _array_checker(spec, items)


def _string_checker(spec: Mapping[str, Any], fmt: str | None) -> Callable[[Any], Any]:
    min_len, max_len = spec.get("minLength"), spec.get("maxLength")
    pattern = re.compile(spec["pattern"]) if isinstance(spec.get("pattern"), str) else None
    format_check = _FORMATS.get(fmt) if fmt else None

    def check(value: Any) -> Any:
        if fmt == "entity" and isinstance(value, dict) and "identifier" in value:
            value = value["identifier"]  # Port's forms send the entity object; keep its identifier
        if type(value) is not str:
            raise InvalidInput("must be a string")
        if min_len is not None and len(value) < min_len:
            raise InvalidInput(f"must be at least {min_len} characters")
        if max_len is not None and len(value) > max_len:
            raise InvalidInput(f"must be at most {max_len} characters")
        if pattern is not None and not pattern.search(value):
            raise InvalidInput(f"must match the pattern {pattern.pattern}")
        return format_check(value) if format_check is not None else value

    return check


def _format(name: str, test: Callable[[str], bool]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not test(value):
            raise InvalidInput(f"must be {name}")
        return value

    return check


def _date_time(value: str) -> str:
    if len(value) < 11 or value[10] not in "Tt":  # a date alone parses, but is not a date-time
        raise InvalidInput("must be a date-time (ISO 8601, e.g. 2026-11-24T10:00:00Z)")
    try:
        return canonical_datetime(value)
    except ValueError:
        raise InvalidInput("must be a date-time (ISO 8601, e.g. 2026-11-24T10:00:00Z)") from None


def _yaml(value: str) -> str:
    try:
        YAML(typ="safe", pure=True).load(value)
    except YAMLError as exc:
        # The parser's text quotes the offending part of the document; say only where it is.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise InvalidInput(f"must be a valid YAML document{where}") from None
    except (RecursionError, ValueError, TypeError):  # pathological nesting, odd scalars
        raise InvalidInput("must be a valid YAML document") from None
    return value


def _team(value: str) -> str:
    if not value.strip() or len(value) > 200:
        raise InvalidInput("must be a team name (1 to 200 characters)")
    return value


def _entity(value: str) -> str:
    if not is_entity_identifier(value):
        raise InvalidInput("must be an entity identifier")
    return value


def _secret(value: str) -> str:
    if not value:
        raise InvalidInput("must not be empty")
    return value


_FORMATS: dict[str, Callable[[str], str]] = {
    "url": _format("a URL (http:// or https://)", FORMAT_CHECKS["url"]),
    "email": _format("an email address", FORMAT_CHECKS["email"]),
    "user": _format("a user (their email address)", FORMAT_CHECKS["user"]),
    "date-time": _date_time,
    "yaml": _yaml,
    "team": _team,
    "entity": _entity,
    "secret": _secret,
}


def _number_checker(spec: Mapping[str, Any]) -> Callable[[Any], Any]:
    minimum, maximum = spec.get("minimum"), spec.get("maximum")

    def check(value: Any) -> Any:
        if type(value) not in (int, float):
            raise InvalidInput("must be a number")
        if minimum is not None and value < minimum:
            raise InvalidInput(f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise InvalidInput(f"must be at most {maximum}")
        return value

    return check


def _boolean_check(value: Any) -> Any:
    if type(value) is not bool:
        raise InvalidInput("must be true or false")
    return value


def _object_check(value: Any) -> Any:
    if not isinstance(value, dict):
        raise InvalidInput("must be a JSON object")
    return value


def _array_checker(spec: Mapping[str, Any], items: InputSpec | None) -> Callable[[Any], Any]:
    min_items, max_items = spec.get("minItems"), spec.get("maxItems")

    def check(value: Any) -> Any:
        if not isinstance(value, list):
            raise InvalidInput("must be an array")
        if min_items is not None and len(value) < min_items:
            raise InvalidInput(f"must have at least {min_items} items")
        if max_items is not None and len(value) > max_items:
            raise InvalidInput(f"must have at most {max_items} items")
        if items is None:
            return value
        out = []
        for i, item in enumerate(value):
            try:
                out.append(items.check(item))
            except InvalidInput as exc:
                raise InvalidInput(exc.message, f"[{i}]{exc.path}") from None
        return out

    return check
