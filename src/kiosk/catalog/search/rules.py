"""Port's search rules as frozen models, and :func:`parse_query`, which checks a search body (pure).

Limits: nesting at most 10 queries deep, at most 500 rules (counting nested queries), at most
1,000 values in one list and 10,000 values in the whole query (SQLite caps bound parameters).
Every error is a ``ValidationFailed`` whose message starts with the path of the offending part,
e.g. ``rules[2].operator`` or ``rules[0].rules[1].value[3]``. Which values each operator takes is
in :mod:`kiosk.catalog.search`'s docstring.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiosk.catalog.dates import parse_datetime
from kiosk.catalog.indexes import PROPERTY_NAME
from kiosk.errors import ValidationFailed

MAX_DEPTH = 10
MAX_RULES = 500
MAX_LIST_VALUES = 1_000
MAX_TOTAL_VALUES = 10_000
MAX_RELATION_DEPTH = 10
MAX_STRING = 10_000
_INT64 = 2**63 - 1


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


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_range_operand(value: object, path: str, *, dates_only: bool) -> str | int | float:
    if not dates_only and is_number(value):
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
        if is_number(low) != is_number(high):
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


def as_query(query: Query | Mapping[str, Any]) -> Query:
    return query if isinstance(query, Query) else parse_query(dict(query))
