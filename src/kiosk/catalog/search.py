"""Port's entity search rules: parsing, compiling to SQL, and a reference evaluator.

A query is ``{"combinator": "and"|"or", "rules": [rule | query, ...]}`` (Port's
``POST /v1/entities/search`` body). :func:`parse_query` checks it and returns frozen pydantic
models; :func:`compile_query` turns those into one SQLAlchemy ``WHERE`` clause over
:data:`kiosk.store.tables.entities` for SQLite or PostgreSQL; :func:`evaluate` answers the same
question for one in-memory entity and exists so tests can check the SQL against plain Python.
Every user value reaches the database as a bound parameter; property names are written into the
SQL text only after matching :data:`kiosk.catalog.indexes.PROPERTY_NAME`.

Limits: nesting at most 10 queries deep, at most 500 rules (counting nested queries), at most
1,000 values in one list and 10,000 values in the whole query (SQLite caps bound parameters).
Every error is a ``ValidationFailed`` whose message starts with the path of the offending part,
e.g. ``rules[2].operator`` or ``rules[0].rules[1].value[3]``.

Semantics
---------
Values are JSON values; "null" below includes a missing property: **a missing property reads as
null** everywhere, which keeps ``!=`` and ``notIn`` the exact negations of ``=`` and ``in``.

``=`` / ``!=`` (scalar value: string, number, boolean or null)
    Exact JSON equality: the string ``"1"`` is not the number ``1``, ``true`` is not ``1``;
    ``1`` equals ``1.0``. Arrays and objects never equal a scalar. ``!=`` is ``not =`` and so
    also matches entities without the property. A date-time string is compared as a string
    here (use ``between`` for instants). Equality is written as the indexed expression of
    :mod:`kiosk.catalog.indexes`, so an indexed property is looked up through its index.
``contains`` (string, number or boolean)
    On a string property, case-sensitive substring (``""`` is in every string); on an array
    property, membership of an element JSON-equal to the value. Anything else: no match.
``in`` / ``notIn`` (list of scalars, may be empty)
    ``in`` is ``=`` to any element (``in []`` matches nothing); ``notIn`` is ``not in``.
``>`` ``<`` ``>=`` ``<=`` ``between`` (a number, or an ISO 8601 date-time string)
    Numbers compare with number properties only. A date-time value compares with string
    properties only, **as strings**, after the value is normalised to kiosk's canonical form
    ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC, milliseconds; what JavaScript's ``toISOString`` and Port
    produce; a value without an offset is taken as UTC; see :func:`canonical_datetime`). Stored
    date-times must be in that form for this to be instant order; the entity service should
    normalise ``format: date-time`` properties on write. Values finer than a millisecond are
    rounded so the result is the exact instant comparison against millisecond values.
    ``between`` is ``{"from": a, "to": b}``, both ends inclusive, both numbers or both dates.
``isEmpty`` / ``isNotEmpty`` (no value)
    Empty is: missing, null, ``""``, ``[]`` or ``{}``.
``relatedTo``
    ``{"operator": "relatedTo", "blueprint": B, "value": id | [ids], "direction"?, "required"?}``
    matches entities connected to one of the given entities of blueprint ``B`` by a chain of at
    most 10 relation edges (any relation name). ``upstream``: entities the given entity points to
    (its dependencies, transitively); ``downstream``: entities that point to it; no direction:
    either set (not paths that change direction, so siblings are not related). An entity is not
    related to itself through a cycle (but one given entity may be related to another).
    ``required: true`` follows only relations the source blueprint declares ``required: true``;
    ``false`` only the others; absent, all. Unknown given entities simply match nothing.

Meta-properties map to columns: ``$identifier`` ``$title`` ``$blueprint`` ``$icon`` are strings
(``$title``/``$icon`` may be null): ``=``, ``!=``, ``in``, ``notIn`` (string or null values),
``contains`` (substring), ``isEmpty`` (null or ``""``). ``$team`` is a list of team names with
membership semantics: ``=``/``contains`` mean "is one of the teams", ``in`` means "shares a
team with the list", ``!=``/``notIn`` their negations, ``isEmpty`` no team. ``$createdAt`` and
``$updatedAt`` are instants compared at the millisecond precision the API shows them with (the
stored microseconds are truncated), with ``=``, ``!=``, ``in``, ``notIn``, the range operators
and ``between``; they are never empty. On SQLite they must be stored as UTC (SQLAlchemy keeps
them as offset-less text there), which is what the catalog service writes.
"""

from __future__ import annotations

import functools
import math
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple, Protocol, TypeAlias, TypedDict, cast, get_args

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.sql.elements import ColumnElement

from kiosk.catalog.dates import floor_ms, format_canonical, parse_datetime
from kiosk.catalog.indexes import (
    PROPERTY_NAME,
    postgres_json_key,
    property_value_expression,
    sqlite_json_path,
)
from kiosk.errors import ValidationFailed
from kiosk.store.engine import Database
from kiosk.store.tables import blueprints, entities, entity_relations

# --------------------------------------------------------------------------------------- limits

MAX_DEPTH = 10
MAX_RULES = 500
MAX_LIST_VALUES = 1_000
MAX_TOTAL_VALUES = 10_000
MAX_RELATION_DEPTH = 10
MAX_STRING = 10_000
_INT64 = 2**63 - 1
_MS = timedelta(milliseconds=1)

# -------------------------------------------------------------------------------------- models

Combinator = Literal["and", "or"]
PropertyOperator = Literal[
    "=", "!=", "contains", "in", "notIn", ">", "<", ">=", "<=", "between", "isEmpty", "isNotEmpty"
]
RangeOperator = Literal[">", "<", ">=", "<="]
Direction = Literal["upstream", "downstream"]
Scalar: TypeAlias = str | bool | int | float | None

PROPERTY_OPERATORS: frozenset[str] = frozenset(get_args(PropertyOperator))
RANGE_OPERATORS: frozenset[str] = frozenset(get_args(RangeOperator))
STRING_META = frozenset({"$identifier", "$title", "$blueprint", "$icon"})
TIME_META = frozenset({"$createdAt", "$updatedAt"})
META_PROPERTIES = STRING_META | TIME_META | {"$team"}
_META_COLUMN = {
    "$identifier": "identifier",
    "$title": "title",
    "$blueprint": "blueprint",
    "$icon": "icon",
    "$team": "team",
    "$createdAt": "created_at",
    "$updatedAt": "updated_at",
}
_META_ENTITY_KEY = {
    "$identifier": "identifier",
    "$title": "title",
    "$blueprint": "blueprint",
    "$icon": "icon",
    "$team": "team",
    "$createdAt": "createdAt",
    "$updatedAt": "updatedAt",
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)


class Between(_Model):
    """``{"from": a, "to": b}``: both numbers or both date-time strings, ends inclusive."""

    from_: str | int | float = Field(alias="from")
    to: str | int | float


class PropertyRule(_Model):
    """``{"property", "operator", "value"}``; ``value`` is a scalar, a tuple, a ``Between`` or absent."""

    property: str
    operator: PropertyOperator
    value: Scalar | tuple[Scalar, ...] | Between = None


class RelatedToRule(_Model):
    """``{"operator": "relatedTo", "blueprint", "value", "direction"?, "required"?}``; ``value`` is a tuple."""

    operator: Literal["relatedTo"] = "relatedTo"
    blueprint: str
    value: tuple[str, ...]
    direction: Direction | None = None
    required: bool | None = None


class Query(_Model):
    """``{"combinator", "rules"}``; an empty ``and`` matches everything, an empty ``or`` nothing."""

    combinator: Combinator
    rules: tuple[PropertyRule | RelatedToRule | Query, ...]


Rule: TypeAlias = PropertyRule | RelatedToRule | Query
Query.model_rebuild()

# ------------------------------------------------------------------------------------- parsing

_QUERY_KEYS = ("combinator", "rules")
_PROPERTY_RULE_KEYS = ("property", "operator", "value")
_RELATED_KEYS = ("operator", "blueprint", "value", "direction", "required")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _shown(value: object) -> str:
    """``repr(value)`` cut to 40 characters: user input echoed in a message stays short."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's str-conversion digit limit
        return f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(path: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{path or 'query'}: {message}", details={"path": path or "query"})


@dataclass
class _Budget:
    rules: int = 0
    values: int = 0

    def add_values(self, count: int, path: str) -> None:
        self.values += count
        if self.values > MAX_TOTAL_VALUES:
            raise _fail(path, f"a query may hold at most {MAX_TOTAL_VALUES} values in all")


def parse_query(raw: object) -> Query:
    """Check a search body and return it as a :class:`Query`; ``ValidationFailed`` names the bad part."""
    try:
        return _parse_query(raw, "", 1, _Budget())
    except ValidationError as exc:  # a check below missed something pydantic caught: still a 422
        raise ValidationFailed(f"query: {exc.errors()[0]['msg']}", details={"path": "query"}) from None


def _check_keys(raw: dict[Any, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in raw:
        if key not in allowed:
            if isinstance(key, str) and PROPERTY_NAME.fullmatch(key):
                where = _join(path, key)
            else:  # an odd key: quoted and cut short, so the message stays one readable line
                where = f"{path}[{_shown(key)}]"
            raise _fail(where, f"unknown key (allowed here: {', '.join(allowed)})")


def _parse_query(raw: object, path: str, depth: int, budget: _Budget) -> Query:
    if not isinstance(raw, dict):
        raise _fail(path, "expected an object with 'combinator' and 'rules'")
    if depth > MAX_DEPTH:
        raise _fail(path, f"queries nest at most {MAX_DEPTH} levels deep")
    _check_keys(raw, _QUERY_KEYS, path)
    combinator = raw.get("combinator")
    if combinator not in ("and", "or"):
        what = "is required" if "combinator" not in raw else f"must be 'and' or 'or', not {_shown(combinator)}"
        raise _fail(_join(path, "combinator"), what)
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list):
        raise _fail(_join(path, "rules"), "expected a list of rules")
    rules: list[Rule] = []
    for index, item in enumerate(rules_raw):
        item_path = _join(_join(path, "rules"), index)
        budget.rules += 1
        if budget.rules > MAX_RULES:
            raise _fail(item_path, f"a query may hold at most {MAX_RULES} rules")
        if not isinstance(item, dict):
            raise _fail(item_path, "expected a rule or a nested query (an object)")
        if "combinator" in item or "rules" in item:
            rules.append(_parse_query(item, item_path, depth + 1, budget))
        elif item.get("operator") == "relatedTo":
            rules.append(_parse_related(item, item_path, budget))
        else:
            rules.append(_parse_property_rule(item, item_path, budget))
    return Query(combinator=cast(Combinator, combinator), rules=tuple(rules))


def _check_string(value: str, path: str) -> str:
    if len(value) > MAX_STRING:
        raise _fail(path, f"strings are limited to {MAX_STRING} characters")
    if "\x00" in value:
        raise _fail(path, "NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(path, "not valid Unicode text (lone surrogate)") from None
    return value


def _check_scalar(value: object, path: str, *, allow_null: bool = True) -> Scalar:
    """A JSON scalar the engines can bind: finite numbers, 64-bit integers, clean strings."""
    if value is None:
        if allow_null:
            return None
        raise _fail(path, "must not be null")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value <= _INT64:
            raise _fail(path, "integers must fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(path, "numbers must be finite")
        return value
    if isinstance(value, str):
        return _check_string(value, path)
    raise _fail(path, f"expected a string, number, boolean{' or null' if allow_null else ''}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_range_operand(value: object, path: str, *, dates_only: bool) -> str | int | float:
    if not dates_only and _is_number(value):
        return cast(int | float, _check_scalar(value, path))
    if isinstance(value, str) and parse_datetime(value) is not None:
        return value
    kind = "an ISO 8601 date-time string" if dates_only else "a number or an ISO 8601 date-time string"
    raise _fail(path, f"expected {kind}")


def _check_list(value: object, path: str, budget: _Budget, item: Callable[[object, str], Scalar]) -> tuple[Scalar, ...]:
    if not isinstance(value, list):
        raise _fail(path, "expected a list of values")
    if len(value) > MAX_LIST_VALUES:
        raise _fail(path, f"lists are limited to {MAX_LIST_VALUES} values")
    budget.add_values(len(value), path)
    return tuple(item(element, _join(path, index)) for index, element in enumerate(value))


def _parse_property_rule(raw: dict[Any, Any], path: str, budget: _Budget) -> PropertyRule:
    _check_keys(raw, _PROPERTY_RULE_KEYS, path)
    operator = raw.get("operator")
    if "operator" not in raw:
        raise _fail(_join(path, "operator"), "is required")
    if not isinstance(operator, str) or operator not in PROPERTY_OPERATORS:
        raise _fail(
            _join(path, "operator"),
            f"unknown operator {_shown(operator)} (expected one of {', '.join(sorted(PROPERTY_OPERATORS))}, relatedTo)",
        )
    prop_path = _join(path, "property")
    if "property" not in raw:
        raise _fail(prop_path, "is required")
    prop = raw["property"]
    if not isinstance(prop, str) or PROPERTY_NAME.fullmatch(prop) is None:
        raise _fail(prop_path, "not a property name (1-100 characters of A-Z a-z 0-9 _ @ = - $)")
    if prop.startswith("$") and prop not in META_PROPERTIES:
        raise _fail(prop_path, f"unknown meta-property {prop!r} (known: {', '.join(sorted(META_PROPERTIES))})")
    value_path = _join(path, "value")
    value = _check_value(prop, operator, raw, value_path, budget)
    return PropertyRule(property=prop, operator=cast(PropertyOperator, operator), value=value)


def _check_value(
    prop: str, operator: str, raw: dict[Any, Any], path: str, budget: _Budget
) -> Scalar | tuple[Scalar, ...] | Between:
    """The value checks for one (target, operator) pair; the table is in the module docstring."""
    has_value = "value" in raw
    value = raw.get("value")
    if operator in ("isEmpty", "isNotEmpty"):
        if value is not None:
            raise _fail(path, f"{operator} takes no value")
        return None
    if not has_value:
        raise _fail(path, f"is required for {operator}")
    is_time = prop in TIME_META
    is_string_meta = prop in STRING_META
    is_team = prop == "$team"

    def time_value(item: object, item_path: str) -> str:
        if not isinstance(item, str) or parse_datetime(item) is None:
            raise _fail(item_path, f"{prop} compares with ISO 8601 date-time strings")
        return item

    def string_value(item: object, item_path: str) -> Scalar:
        if item is None and not is_team:
            return None
        if not isinstance(item, str):
            raise _fail(item_path, f"{prop} compares with strings{'' if is_team else ' (or null)'}")
        return _check_string(item, item_path)

    def json_value(item: object, item_path: str) -> Scalar:
        return _check_scalar(item, item_path)

    element: Callable[[object, str], Scalar]
    element = time_value if is_time else string_value if (is_string_meta or is_team) else json_value

    if operator in ("=", "!="):
        budget.add_values(1, path)
        return element(value, path)
    if operator in ("in", "notIn"):
        return _check_list(value, path, budget, element)
    if operator == "contains":
        if is_time:
            raise _fail(_join(path.rsplit(".", 1)[0], "operator"), f"contains does not apply to {prop}")
        budget.add_values(1, path)
        if is_string_meta or is_team:
            if not isinstance(value, str):
                raise _fail(path, "contains takes a string here")
            return _check_string(value, path)
        return _check_scalar(value, path, allow_null=False)
    # range operators and between
    if is_string_meta or is_team:
        raise _fail(_join(path.rsplit(".", 1)[0], "operator"), f"{operator} does not apply to {prop}")
    if operator == "between":
        if not isinstance(value, dict):
            raise _fail(path, 'between takes {"from": ..., "to": ...}')
        _check_keys(value, ("from", "to"), path)
        if "from" not in value or "to" not in value:
            raise _fail(path, 'between takes {"from": ..., "to": ...}')
        low = _check_range_operand(value["from"], _join(path, "from"), dates_only=is_time)
        high = _check_range_operand(value["to"], _join(path, "to"), dates_only=is_time)
        if _is_number(low) != _is_number(high):
            raise _fail(path, "from and to must both be numbers or both be date-times")
        budget.add_values(2, path)
        return Between.model_validate({"from": low, "to": high})
    budget.add_values(1, path)
    return _check_range_operand(value, path, dates_only=is_time)


def _parse_related(raw: dict[Any, Any], path: str, budget: _Budget) -> RelatedToRule:
    _check_keys(raw, _RELATED_KEYS, path)
    blueprint = raw.get("blueprint")
    if not isinstance(blueprint, str) or not re.fullmatch(r"[A-Za-z0-9@_=\-]{1,100}", blueprint):
        raise _fail(_join(path, "blueprint"), "expected a blueprint identifier")
    value_path = _join(path, "value")
    value = raw.get("value")
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise _fail(value_path, "expected an entity identifier or a non-empty list of them")
    if len(items) > MAX_LIST_VALUES:
        raise _fail(value_path, f"lists are limited to {MAX_LIST_VALUES} values")
    budget.add_values(len(items), value_path)
    identifiers: list[str] = []
    for index, item in enumerate(items):
        item_path = _join(value_path, index) if isinstance(value, list) else value_path
        if not isinstance(item, str) or not item:
            raise _fail(item_path, "expected an entity identifier (a non-empty string)")
        identifiers.append(_check_string(item, item_path))
    direction = raw.get("direction")
    if direction not in (None, "upstream", "downstream"):
        raise _fail(_join(path, "direction"), "must be 'upstream' or 'downstream'")
    required = raw.get("required")
    if required is not None and not isinstance(required, bool):
        raise _fail(_join(path, "required"), "must be true or false")
    return RelatedToRule(
        blueprint=blueprint,
        value=tuple(identifiers),
        direction=cast(Direction | None, direction),
        required=required,
    )


def _as_query(query: Query | Mapping[str, Any]) -> Query:
    return query if isinstance(query, Query) else parse_query(dict(query))


# ------------------------------------------------------------------------- millisecond bounds


def _plus_ms(value: datetime) -> datetime | None:
    """``value + 1ms``, or None past ``datetime.max`` (an upper bound nothing reaches)."""
    try:
        return value + _MS
    except OverflowError:
        return None


def _ceil_ms(value: datetime) -> datetime | None:
    floor = floor_ms(value)
    return floor if floor == value else _plus_ms(floor)


@functools.lru_cache(maxsize=4096)
def _instant(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:  # parse_query let only date-times through
        raise ValueError(f"not a date-time: {value!r}")
    return parsed


@dataclass(frozen=True)
class _Window:
    """Instants ``t`` with ``lower <= t < upper``; None means unbounded; ``empty`` means none at all."""

    lower: datetime | None = None
    upper: datetime | None = None
    empty: bool = False

    def __and__(self, other: _Window) -> _Window:
        lowers = [b for b in (self.lower, other.lower) if b is not None]
        uppers = [b for b in (self.upper, other.upper) if b is not None]
        return _Window(max(lowers) if lowers else None, min(uppers) if uppers else None, self.empty or other.empty)


def _window(operator: str, value: str) -> _Window:
    """The instants ``t`` with ``floor_ms(t) <operator> value``, as a half-open window.

    Used for the timestamp columns (microseconds, compared at the milliseconds the API shows)
    and for canonical date strings (already milliseconds, so the truncation changes nothing).
    ``datetime.max`` overflows: a lower bound past it matches nothing, an upper one everything.
    """
    instant = _instant(value)
    floor = floor_ms(instant)
    if operator == "=":
        if floor != instant:  # a value shown in milliseconds never equals a finer one
            return _Window(empty=True)
        return _Window(instant, _plus_ms(instant))
    if operator in (">", ">="):
        lower = _plus_ms(floor) if operator == ">" else _ceil_ms(instant)
        return _Window(lower) if lower is not None else _Window(empty=True)
    if operator in ("<", "<="):
        return _Window(upper=_ceil_ms(instant) if operator == "<" else _plus_ms(floor))
    raise ValueError(f"no instant window for {operator!r}")


def _between_window(value: Between) -> _Window:
    return _window(">=", cast(str, value.from_)) & _window("<=", cast(str, value.to))


# --------------------------------------------------------------------------------- SQL compile


def compile_query(query: Query | Mapping[str, Any], db: Database) -> ColumnElement[bool]:
    """A ``WHERE`` clause over ``entities`` selecting exactly the entities :func:`evaluate` accepts.

    The clause refers to the ``entities`` table itself (not an alias), so select from it; the
    subqueries use aliases of their own, so joining ``blueprints`` or ``entities`` again is safe.
    A raw mapping is parsed first (``ValidationFailed`` on errors).
    """
    return compile_query_for_dialect(query, db.dialect)


def compile_query_for_dialect(query: Query | Mapping[str, Any], dialect: str) -> ColumnElement[bool]:
    """:func:`compile_query` for a dialect name (``sqlite`` or ``postgresql``), without a database."""
    compiler: _SqlCompiler
    if dialect == "sqlite":
        compiler = _SqliteCompiler()
    elif dialect == "postgresql":
        compiler = _PostgresCompiler()
    else:
        raise ValueError(f"unsupported database dialect {dialect!r}: kiosk runs on sqlite or postgresql")
    return compiler.query(_as_query(query))


def _negate(expr: ColumnElement[bool]) -> ColumnElement[bool]:
    """``NOT expr`` with SQL NULL read as false, so negated rules also match missing properties.

    Only leaves are ever negated (the query language has no NOT), so a positive leaf may yield
    NULL: inside AND/OR trees without NOT, NULL behaves exactly like false in a WHERE clause.
    """
    return sa.not_(sa.func.coalesce(expr, sa.false(), type_=sa.Boolean()))


def _any(parts: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return sa.or_(*parts) if parts else sa.false()


def _all(parts: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return sa.and_(*parts) if parts else sa.true()


def _const(sql: str) -> ColumnElement[Any]:
    """A fixed SQL constant (never user data: those are always bound)."""
    return sa.literal_column(sql)


def _one_of(expr: ColumnElement[Any], constants: tuple[str, ...]) -> ColumnElement[bool]:
    """``expr = c`` or ``expr IN (c1, c2, ...)`` over fixed SQL constants."""
    if len(constants) == 1:
        return expr == _const(constants[0])
    return expr.in_([_const(c) for c in constants])


class _SqlCompiler(ABC):
    """Dialect-independent structure; subclasses spell the JSON primitives."""

    dialect: str

    def query(self, query: Query) -> ColumnElement[bool]:
        parts = [self.rule(rule) for rule in query.rules]
        return _all(parts) if query.combinator == "and" else _any(parts)

    def rule(self, rule: Rule) -> ColumnElement[bool]:
        if isinstance(rule, Query):
            return self.query(rule)
        if isinstance(rule, RelatedToRule):
            return self.related(rule)
        if rule.property in TIME_META:
            return self.time_rule(rule)
        if rule.property in STRING_META:
            return self.string_meta_rule(rule)
        if rule.property == "$team":
            return self.team_rule(rule)
        return self.property_rule(rule)

    # -- ordinary properties -----------------------------------------------------------------

    def property_rule(self, rule: PropertyRule) -> ColumnElement[bool]:
        prop, op, value = rule.property, rule.operator, rule.value
        if op == "=":
            return self.json_equals(prop, cast(Scalar, value))
        if op == "!=":
            return _negate(self.json_equals(prop, cast(Scalar, value)))
        if op == "in":
            return self.json_in(prop, cast(tuple[Scalar, ...], value))
        if op == "notIn":
            return _negate(self.json_in(prop, cast(tuple[Scalar, ...], value)))
        if op == "contains":
            return self.json_contains(prop, cast(str | int | float | bool, value))
        if op == "isEmpty":
            return self.json_is_empty(prop)
        if op == "isNotEmpty":
            return _negate(self.json_is_empty(prop))
        if op == "between":
            assert isinstance(value, Between)
            if _is_number(value.from_):
                return sa.and_(
                    self.json_number_compare(prop, ">=", cast(int | float, value.from_)),
                    self.json_number_compare(prop, "<=", cast(int | float, value.to)),
                )
            return self.json_date_window(prop, _between_window(value))
        return self.json_range(prop, op, cast(str | int | float, value))

    def json_equals(self, prop: str, value: Scalar) -> ColumnElement[bool]:
        if value is None:
            return self.json_is_null(prop)
        return self.json_equals_value(prop, value)

    def json_in(self, prop: str, values: tuple[Scalar, ...]) -> ColumnElement[bool]:
        present = [v for v in values if v is not None]
        parts = [self.json_in_values(prop, present)] if present else []
        if len(present) < len(values):
            parts.append(self.json_is_null(prop))
        return _any(parts)

    def json_range(self, prop: str, op: str, value: str | int | float) -> ColumnElement[bool]:
        if _is_number(value):
            return self.json_number_compare(prop, op, cast(int | float, value))
        return self.json_date_window(prop, _window(op, cast(str, value)))

    def json_date_window(self, prop: str, window: _Window) -> ColumnElement[bool]:
        if window.empty:
            return sa.false()
        parts = [self.json_is_string(prop)]
        if window.lower is not None:
            parts.append(self.json_string_compare(prop, ">=", format_canonical(window.lower)))
        if window.upper is not None:
            parts.append(self.json_string_compare(prop, "<", format_canonical(window.upper)))
        return sa.and_(*parts)

    # the JSON primitives ----------------------------------------------------------------

    @abstractmethod
    def json_equals_value(self, prop: str, value: str | int | float | bool) -> ColumnElement[bool]: ...

    @abstractmethod
    def json_in_values(self, prop: str, values: Sequence[Scalar]) -> ColumnElement[bool]: ...

    @abstractmethod
    def json_is_null(self, prop: str) -> ColumnElement[bool]: ...

    @abstractmethod
    def json_is_empty(self, prop: str) -> ColumnElement[bool]: ...

    @abstractmethod
    def json_is_string(self, prop: str) -> ColumnElement[bool]: ...

    @abstractmethod
    def json_contains(self, prop: str, value: str | int | float | bool) -> ColumnElement[bool]: ...

    @abstractmethod
    def json_number_compare(self, prop: str, op: str, value: int | float) -> ColumnElement[bool]: ...

    @abstractmethod
    def json_string_compare(self, prop: str, op: str, value: str) -> ColumnElement[bool]:
        """``prop <op> value`` in code-point order; the caller adds the is-a-string guard."""
        ...

    @abstractmethod
    def substring(self, haystack: ColumnElement[Any], needle: str) -> ColumnElement[bool]: ...

    @abstractmethod
    def team_has_any(self, values: Sequence[str]) -> ColumnElement[bool]: ...

    @abstractmethod
    def team_is_empty(self) -> ColumnElement[bool]: ...

    @abstractmethod
    def required_edge(self, relation: Any, source_blueprint: Any) -> ColumnElement[bool]: ...

    # -- meta-properties ---------------------------------------------------------------------

    def string_meta_rule(self, rule: PropertyRule) -> ColumnElement[bool]:
        column: ColumnElement[Any] = entities.c[_META_COLUMN[rule.property]]
        op, value = rule.operator, rule.value

        def equals_any(values: Iterable[Scalar]) -> ColumnElement[bool]:
            listed = list(values)
            strings = [v for v in listed if isinstance(v, str)]
            parts: list[ColumnElement[bool]] = []
            if len(strings) == 1:
                parts.append(column == sa.literal(strings[0], sa.String()))
            elif strings:
                parts.append(column.in_([sa.literal(v, sa.String()) for v in strings]))
            if None in listed:
                parts.append(column.is_(None))
            return _any(parts)

        if op in ("=", "!="):
            matched = equals_any([cast(Scalar, value)])
            return matched if op == "=" else _negate(matched)
        if op in ("in", "notIn"):
            matched = equals_any(cast(tuple[Scalar, ...], value))
            return matched if op == "in" else _negate(matched)
        if op == "contains":
            return self.substring(column, cast(str, value))
        empty = sa.or_(column.is_(None), column == _const("''"))
        return empty if op == "isEmpty" else _negate(empty)

    def team_rule(self, rule: PropertyRule) -> ColumnElement[bool]:
        op, value = rule.operator, rule.value
        if op in ("=", "contains"):
            return self.team_has_any([cast(str, value)])
        if op == "!=":
            return _negate(self.team_has_any([cast(str, value)]))
        if op == "in":
            return self.team_has_any(cast(tuple[str, ...], value))
        if op == "notIn":
            return _negate(self.team_has_any(cast(tuple[str, ...], value)))
        return self.team_is_empty() if op == "isEmpty" else _negate(self.team_is_empty())

    def time_bind(self, value: datetime) -> ColumnElement[Any]:
        return sa.literal(value, sa.DateTime(timezone=True))

    def time_rule(self, rule: PropertyRule) -> ColumnElement[bool]:
        column: ColumnElement[Any] = entities.c[_META_COLUMN[rule.property]]
        op, value = rule.operator, rule.value
        if op == "isEmpty":
            return sa.false()
        if op == "isNotEmpty":
            return sa.true()

        def within(window: _Window) -> ColumnElement[bool]:
            if window.empty:
                return sa.false()
            parts: list[ColumnElement[bool]] = []
            if window.lower is not None:
                parts.append(column >= self.time_bind(window.lower))
            if window.upper is not None:
                parts.append(column < self.time_bind(window.upper))
            return _all(parts)

        if op in ("=", "!="):
            matched = within(_window("=", cast(str, value)))
            return matched if op == "=" else _negate(matched)
        if op in ("in", "notIn"):
            matched = _any([within(_window("=", cast(str, v))) for v in cast(tuple[Scalar, ...], value)])
            return matched if op == "in" else _negate(matched)
        if op == "between":
            assert isinstance(value, Between)
            return within(_between_window(value))
        return within(_window(op, cast(str, value)))

    # -- relatedTo ---------------------------------------------------------------------------

    def related(self, rule: RelatedToRule) -> ColumnElement[bool]:
        given = entities.alias()
        seeds = sa.select(given.c.id).where(
            given.c.blueprint == sa.literal(rule.blueprint, sa.String()),
            given.c.identifier.in_([sa.literal(v, sa.String()) for v in rule.value]),
        )
        parts: list[ColumnElement[bool]] = []
        if rule.direction in (None, "upstream"):
            parts.append(entities.c.id.in_(self._walk(seeds, rule.required, upstream=True)))
        if rule.direction in (None, "downstream"):
            parts.append(entities.c.id.in_(self._walk(seeds, rule.required, upstream=False)))
        return _any(parts)

    def _walk(self, seeds: sa.Select[tuple[int]], required: bool | None, *, upstream: bool) -> sa.Select[Any]:
        """Ids reachable from ``seeds`` in 1..10 steps, as a nested recursive CTE.

        Rows are ``(seed, node, depth)``; UNION (not UNION ALL) drops repeated rows, and the depth
        bound ends the walk on cycles. ``node <> seed`` leaves out the way back to where it began.
        """

        def edge_step(edge: Any) -> tuple[Any, Any, list[ColumnElement[bool]]]:
            near, far = (edge.c.entity_id, edge.c.target_id) if upstream else (edge.c.target_id, edge.c.entity_id)
            conditions: list[ColumnElement[bool]] = []
            if required is not None:
                # Aliases throughout: a caller joining entities or blueprints must not correlate.
                source = entities.alias()
                owner = blueprints.alias()
                is_required = sa.exists(
                    sa.select(sa.literal(1))
                    .select_from(source.join(owner, owner.c.identifier == source.c.blueprint))
                    .where(source.c.id == edge.c.entity_id, self.required_edge(edge.c.relation, owner.c.definition))
                )
                conditions.append(is_required if required else sa.not_(is_required))
            return near, far, conditions

        first = entity_relations.alias()
        near, far, conditions = edge_step(first)
        walk = (
            sa.select(near.label("seed"), far.label("node"), sa.literal(1, sa.Integer()).label("depth"))
            .where(near.in_(seeds), *conditions)
            .cte(recursive=True, nesting=True)
        )
        step = entity_relations.alias()
        near, far, conditions = edge_step(step)
        walk = walk.union(
            sa.select(walk.c.seed, far, walk.c.depth + sa.literal(1, sa.Integer()))
            .select_from(walk.join(step, near == walk.c.node))
            .where(walk.c.depth < sa.literal(MAX_RELATION_DEPTH, sa.Integer()), *conditions)
        )
        return sa.select(walk.c.node).where(walk.c.node != walk.c.seed)


class _SqliteCompiler(_SqlCompiler):
    """SQLite's JSON1: ``json_extract`` (the indexed expression), ``json_type``, ``json_each``."""

    dialect = "sqlite"

    _NUMBER: tuple[str, ...] = ("'integer'", "'real'")
    _TEXT: tuple[str, ...] = ("'text'",)

    def _x(self, prop: str) -> ColumnElement[Any]:
        return property_value_expression("sqlite", prop)

    def _type_is(self, prop: str, sql_types: tuple[str, ...]) -> ColumnElement[bool]:
        return _one_of(sa.func.json_type(entities.c.properties, _const(sqlite_json_path(prop))), sql_types)

    @staticmethod
    def _bind(value: str | int | float | bool) -> ColumnElement[Any]:
        if isinstance(value, bool):
            return sa.literal(int(value), sa.Integer())
        if isinstance(value, str):
            return sa.literal(value, sa.String())
        if isinstance(value, int):
            return sa.literal(value, sa.Integer())
        return sa.literal(value, sa.Float())

    @classmethod
    def _types_of(cls, value: str | int | float | bool) -> tuple[str, ...]:
        """The ``json_type`` names a stored value must have to be JSON-equal to ``value``."""
        if isinstance(value, bool):
            return ("'true'",) if value else ("'false'",)
        if isinstance(value, str):
            return cls._TEXT
        return cls._NUMBER

    def json_equals_value(self, prop: str, value: str | int | float | bool) -> ColumnElement[bool]:
        # The json_extract comparison is what the expression index answers; json_type then keeps
        # true from equalling 1 and an array (extracted as JSON text) from equalling a string.
        return sa.and_(self._x(prop) == self._bind(value), self._type_is(prop, self._types_of(value)))

    def json_in_values(self, prop: str, values: Sequence[Scalar]) -> ColumnElement[bool]:
        groups: dict[tuple[str, ...], list[str | int | float | bool]] = {}
        for value in values:
            assert value is not None
            groups.setdefault(self._types_of(value), []).append(value)
        parts: list[ColumnElement[bool]] = []
        for types, members in groups.items():
            binds = [self._bind(v) for v in members]
            match = self._x(prop) == binds[0] if len(binds) == 1 else self._x(prop).in_(binds)
            parts.append(sa.and_(match, self._type_is(prop, types)))
        return _any(parts)

    def json_is_null(self, prop: str) -> ColumnElement[bool]:
        kind = sa.func.json_type(entities.c.properties, _const(sqlite_json_path(prop)))
        return sa.or_(kind.is_(None), kind == _const("'null'"))

    def json_is_empty(self, prop: str) -> ColumnElement[bool]:
        x = self._x(prop)
        return sa.or_(
            self.json_is_null(prop),
            sa.and_(self._type_is(prop, self._TEXT), x == _const("''")),
            sa.and_(self._type_is(prop, ("'array'", "'object'")), _one_of(x, ("'[]'", "'{}'"))),
        )

    def json_is_string(self, prop: str) -> ColumnElement[bool]:
        return self._type_is(prop, self._TEXT)

    def _array_has(
        self,
        source: ColumnElement[Any],
        path: str | None,
        types: tuple[str, ...],
        binds: list[ColumnElement[Any]],
    ) -> ColumnElement[bool]:
        args: list[ColumnElement[Any]] = [source] if path is None else [source, _const(path)]
        element = sa.func.json_each(*args).table_valued("value", "type").alias()
        match = element.c.value == binds[0] if len(binds) == 1 else element.c.value.in_(binds)
        return sa.exists(sa.select(sa.literal(1)).select_from(element).where(_one_of(element.c.type, types), match))

    def json_contains(self, prop: str, value: str | int | float | bool) -> ColumnElement[bool]:
        # json_each over a scalar yields the scalar itself, hence the 'array' guard.
        in_array = sa.and_(
            self._type_is(prop, ("'array'",)),
            self._array_has(entities.c.properties, sqlite_json_path(prop), self._types_of(value), [self._bind(value)]),
        )
        if not isinstance(value, str):
            return in_array
        return sa.or_(sa.and_(self.json_is_string(prop), self.substring(self._x(prop), value)), in_array)

    def json_number_compare(self, prop: str, op: str, value: int | float) -> ColumnElement[bool]:
        return sa.and_(self._type_is(prop, self._NUMBER), self._x(prop).bool_op(op)(self._bind(value)))

    def json_string_compare(self, prop: str, op: str, value: str) -> ColumnElement[bool]:
        # BINARY collation: byte order of UTF-8, which is code-point order, as in Python.
        return self._x(prop).bool_op(op)(self._bind(value))

    def substring(self, haystack: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        # instr, not LIKE: no wildcards to escape, and case-sensitive like Python's ``in``.
        return sa.func.instr(haystack, sa.literal(needle, sa.String())) > 0

    def team_has_any(self, values: Sequence[str]) -> ColumnElement[bool]:
        if not values:
            return sa.false()
        return self._array_has(entities.c.team, None, self._TEXT, [sa.literal(v, sa.String()) for v in values])

    def team_is_empty(self) -> ColumnElement[bool]:
        return sa.func.coalesce(sa.func.json_array_length(entities.c.team), 0) == 0

    def time_bind(self, value: datetime) -> ColumnElement[Any]:
        # SQLite keeps timestamps as UTC text without an offset; bind the same form.
        return sa.literal(value.astimezone(UTC).replace(tzinfo=None), sa.DateTime())

    def required_edge(self, relation: Any, source_blueprint: Any) -> ColumnElement[bool]:
        # Relation names are schema identifiers (no quotes), so the built path is well-formed.
        path = sa.literal('$.relations."', sa.String()) + relation + sa.literal('".required', sa.String())
        return sa.func.json_type(source_blueprint, path) == _const("'true'")


class _PostgresCompiler(_SqlCompiler):
    """PostgreSQL JSONB: ``properties -> 'p'`` (the indexed expression), ``jsonb_typeof``, ``@>``."""

    dialect = "postgresql"

    def _j(self, prop: str) -> ColumnElement[Any]:
        return property_value_expression("postgresql", prop)

    def _text(self, prop: str) -> ColumnElement[Any]:
        return entities.c.properties.op("->>", return_type=sa.Text())(_const(postgres_json_key(prop)))

    def _typeof(self, prop: str) -> ColumnElement[Any]:
        return sa.func.jsonb_typeof(self._j(prop))

    @staticmethod
    def _bind(value: Any) -> ColumnElement[Any]:
        return sa.literal(value, JSONB())

    def json_equals_value(self, prop: str, value: str | int | float | bool) -> ColumnElement[bool]:
        # jsonb equality is typed: "1" <> 1, true <> 1, 1 = 1.0.
        return self._j(prop) == self._bind(value)

    def json_in_values(self, prop: str, values: Sequence[Scalar]) -> ColumnElement[bool]:
        if len(values) == 1:
            return self._j(prop) == self._bind(values[0])
        return self._j(prop).in_([self._bind(v) for v in values])

    def json_is_null(self, prop: str) -> ColumnElement[bool]:
        j = self._j(prop)
        return sa.or_(j.is_(None), j == _const("'null'::jsonb"))

    def json_is_empty(self, prop: str) -> ColumnElement[bool]:
        j = self._j(prop)
        return sa.or_(j.is_(None), _one_of(j, ("'null'::jsonb", "'\"\"'::jsonb", "'[]'::jsonb", "'{}'::jsonb")))

    def json_is_string(self, prop: str) -> ColumnElement[bool]:
        return self._typeof(prop) == _const("'string'")

    def json_contains(self, prop: str, value: str | int | float | bool) -> ColumnElement[bool]:
        # [[1]] @> [1] is false and [true] @> [1] is false: containment of a one-scalar array is
        # exactly "has an element JSON-equal to the scalar".
        in_array = sa.and_(self._typeof(prop) == _const("'array'"), self._j(prop).bool_op("@>")(self._bind([value])))
        if not isinstance(value, str):
            return in_array
        return sa.or_(sa.and_(self.json_is_string(prop), self.substring(self._text(prop), value)), in_array)

    def json_number_compare(self, prop: str, op: str, value: int | float) -> ColumnElement[bool]:
        # jsonb vs jsonb comparison never raises (a ::numeric cast could, whatever the guard's order).
        return sa.and_(self._typeof(prop) == _const("'number'"), self._j(prop).bool_op(op)(self._bind(value)))

    def json_string_compare(self, prop: str, op: str, value: str) -> ColumnElement[bool]:
        # COLLATE "C": byte order whatever the database's locale, matching SQLite and Python.
        return sa.collate(self._text(prop), "C").bool_op(op)(sa.literal(value, sa.Text()))

    def substring(self, haystack: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        return sa.func.strpos(haystack, sa.literal(needle, sa.Text())) > 0

    def team_has_any(self, values: Sequence[str]) -> ColumnElement[bool]:
        if not values:
            return sa.false()
        if len(values) == 1:
            return entities.c.team.bool_op("@>")(self._bind([values[0]]))
        return entities.c.team.bool_op("?|")(sa.literal(list(values), ARRAY(sa.Text())))

    def team_is_empty(self) -> ColumnElement[bool]:
        return sa.or_(entities.c.team.is_(None), _one_of(entities.c.team, ("'[]'::jsonb", "'null'::jsonb")))

    def required_edge(self, relation: Any, source_blueprint: Any) -> ColumnElement[bool]:
        relations = source_blueprint.op("->", return_type=JSONB)(_const("'relations'"))
        flag = relations.op("->", return_type=JSONB)(relation).op("->", return_type=JSONB)(_const("'required'"))
        return sa.func.coalesce(flag == _const("'true'::jsonb"), sa.false())


# ------------------------------------------------------------------------- reference evaluator

EntityKey: TypeAlias = tuple[str, str]
"""``(blueprint, identifier)``: how an entity is named across blueprints."""


class EntityDoc(TypedDict, total=False):
    """The entity shape :func:`evaluate` reads (Port's rendering; timestamps as datetime or ISO text)."""

    identifier: str
    title: str | None
    blueprint: str
    team: list[str]
    icon: str | None
    properties: dict[str, Any]
    createdAt: datetime | str
    updatedAt: datetime | str


class RelationsIndex(Protocol):
    """Answers ``relatedTo`` for :func:`evaluate` (semantics in the module docstring)."""

    def is_related(
        self,
        entity: EntityKey,
        blueprint: str,
        identifiers: Sequence[str],
        direction: Direction | None,
        required: bool | None,
    ) -> bool: ...


class Edge(NamedTuple):
    """One relation edge: ``source`` points at ``target`` through ``relation``."""

    source: EntityKey
    target: EntityKey
    relation: str = ""
    required: bool = False


@dataclass
class EdgeListRelations:
    """A :class:`RelationsIndex` over an in-memory edge list, by breadth-first search (cached)."""

    edges: Sequence[Edge]
    max_depth: int = MAX_RELATION_DEPTH
    _reach: dict[tuple[EntityKey, bool, bool | None], frozenset[EntityKey]] = field(
        default_factory=dict, init=False, repr=False
    )

    def reachable(self, start: EntityKey, *, upstream: bool, required: bool | None) -> frozenset[EntityKey]:
        """Entities 1..max_depth edges away from ``start`` (itself excluded), in one direction."""
        key = (start, upstream, required)
        cached = self._reach.get(key)
        if cached is not None:
            return cached
        adjacency: dict[EntityKey, list[EntityKey]] = {}
        for edge in self.edges:
            if required is not None and edge.required != required:
                continue
            near, far = (edge.source, edge.target) if upstream else (edge.target, edge.source)
            adjacency.setdefault(near, []).append(far)
        seen: set[EntityKey] = set()
        frontier: deque[tuple[EntityKey, int]] = deque([(start, 0)])
        visited_at: dict[EntityKey, int] = {start: 0}
        while frontier:
            node, depth = frontier.popleft()
            if depth == self.max_depth:
                continue
            for nxt in adjacency.get(node, ()):
                seen.add(nxt)
                if nxt not in visited_at:
                    visited_at[nxt] = depth + 1
                    frontier.append((nxt, depth + 1))
        seen.discard(start)
        result = frozenset(seen)
        self._reach[key] = result
        return result

    def is_related(
        self,
        entity: EntityKey,
        blueprint: str,
        identifiers: Sequence[str],
        direction: Direction | None,
        required: bool | None,
    ) -> bool:
        for identifier in identifiers:
            start = (blueprint, identifier)
            if direction in (None, "upstream") and entity in self.reachable(start, upstream=True, required=required):
                return True
            if direction in (None, "downstream") and entity in self.reachable(start, upstream=False, required=required):
                return True
        return False


def evaluate(query: Query | Mapping[str, Any], entity: Mapping[str, Any], relations_index: RelationsIndex) -> bool:
    """Whether ``entity`` matches ``query``: the reference semantics :func:`compile_query` must agree with."""
    return _eval_query(_as_query(query), entity, relations_index)


def _eval_query(query: Query, entity: Mapping[str, Any], relations: RelationsIndex) -> bool:
    results = (_eval_rule(rule, entity, relations) for rule in query.rules)
    return all(results) if query.combinator == "and" else any(results)


def _eval_rule(rule: Rule, entity: Mapping[str, Any], relations: RelationsIndex) -> bool:
    if isinstance(rule, Query):
        return _eval_query(rule, entity, relations)
    if isinstance(rule, RelatedToRule):
        key = (str(entity["blueprint"]), str(entity["identifier"]))
        return relations.is_related(key, rule.blueprint, rule.value, rule.direction, rule.required)
    if rule.property in TIME_META:
        return _eval_time(rule, entity.get(_META_ENTITY_KEY[rule.property]))
    if rule.property == "$team":
        return _eval_team(rule, entity.get("team"))
    if rule.property in STRING_META:
        return _eval_string_meta(rule, entity.get(_META_ENTITY_KEY[rule.property]))
    properties = entity.get("properties") or {}
    return _eval_json(rule, properties.get(rule.property))


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "other"


def _json_equal(stored: object, value: Scalar) -> bool:
    """Exact JSON equality against a scalar: kinds must match (so ``True`` is not ``1``)."""
    return _kind(stored) == _kind(value) and stored == value


def _is_empty(value: object) -> bool:
    return value is None or (_kind(value) in ("string", "array", "object") and len(cast(Any, value)) == 0)


def _eval_json(rule: PropertyRule, stored: Any) -> bool:
    op, value = rule.operator, rule.value
    if op == "=":
        return _json_equal(stored, cast(Scalar, value))
    if op == "!=":
        return not _json_equal(stored, cast(Scalar, value))
    if op in ("in", "notIn"):
        found = any(_json_equal(stored, v) for v in cast(tuple[Scalar, ...], value))
        return found if op == "in" else not found
    if op == "contains":
        if isinstance(stored, str) and isinstance(value, str):
            return value in stored
        if isinstance(stored, list):
            return any(_json_equal(element, cast(Scalar, value)) for element in stored)
        return False
    if op == "isEmpty":
        return _is_empty(stored)
    if op == "isNotEmpty":
        return not _is_empty(stored)
    if op == "between":
        assert isinstance(value, Between)
        if _is_number(value.from_):
            return _eval_json_range(stored, ">=", value.from_) and _eval_json_range(stored, "<=", value.to)
        return _in_date_window(stored, _between_window(value))
    return _eval_json_range(stored, op, cast(str | int | float, value))


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": lambda a, b: bool(a > b),
    "<": lambda a, b: bool(a < b),
    ">=": lambda a, b: bool(a >= b),
    "<=": lambda a, b: bool(a <= b),
}


def _eval_json_range(stored: Any, op: str, value: str | int | float) -> bool:
    if _is_number(value):
        return _kind(stored) == "number" and _COMPARE[op](stored, value)
    return _in_date_window(stored, _window(op, cast(str, value)))


def _in_date_window(stored: Any, window: _Window) -> bool:
    """String comparison against the canonical bounds: the SQL's semantics, on purpose."""
    if not isinstance(stored, str) or window.empty:
        return False
    if window.lower is not None and not stored >= format_canonical(window.lower):
        return False
    return window.upper is None or bool(stored < format_canonical(window.upper))


def _eval_string_meta(rule: PropertyRule, stored: Any) -> bool:
    op, value = rule.operator, rule.value
    if op in ("=", "!="):
        return _json_equal(stored, cast(Scalar, value)) == (op == "=")
    if op in ("in", "notIn"):
        found = any(_json_equal(stored, v) for v in cast(tuple[Scalar, ...], value))
        return found == (op == "in")
    if op == "contains":
        return isinstance(stored, str) and cast(str, value) in stored
    empty = stored is None or stored == ""
    return empty if op == "isEmpty" else not empty


def _eval_team(rule: PropertyRule, stored: Any) -> bool:
    teams = [t for t in (stored or []) if isinstance(t, str)]
    op, value = rule.operator, rule.value
    if op in ("=", "contains"):
        return value in teams
    if op == "!=":
        return value not in teams
    if op in ("in", "notIn"):
        shared = any(t in cast(tuple[Scalar, ...], value) for t in teams)
        return shared if op == "in" else not shared
    return (not teams) if op == "isEmpty" else bool(teams)


def _as_instant(stored: Any) -> datetime | None:
    if isinstance(stored, datetime):
        return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)
    if isinstance(stored, str):
        return parse_datetime(stored)
    return None


def _eval_time(rule: PropertyRule, stored: Any) -> bool:
    op, value = rule.operator, rule.value
    instant = _as_instant(stored)
    if op == "isEmpty":
        return instant is None
    if op == "isNotEmpty":
        return instant is not None
    if instant is None:
        return op in ("!=", "notIn")
    shown = floor_ms(instant)  # compared at the precision the API renders
    if op in ("=", "!="):
        return (shown == _instant(cast(str, value))) == (op == "=")
    if op in ("in", "notIn"):
        found = any(shown == _instant(cast(str, v)) for v in cast(tuple[Scalar, ...], value))
        return found if op == "in" else not found
    if op == "between":
        assert isinstance(value, Between)
        return shown >= _instant(cast(str, value.from_)) and shown <= _instant(cast(str, value.to))
    return _COMPARE[op](shown, _instant(cast(str, value)))
