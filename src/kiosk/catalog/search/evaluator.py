"""The reference evaluator: whether one in-memory entity matches a query, in plain Python.

:func:`evaluate` answers the question :func:`~kiosk.catalog.search.compile_query` answers in SQL,
by the semantics in :mod:`kiosk.catalog.search`'s docstring; it exists so tests can check the SQL
of both dialects against it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypeAlias, TypedDict, cast

from kiosk.catalog.dates import floor_ms, format_canonical, parse_datetime
from kiosk.catalog.search.rules import (
    MAX_RELATION_DEPTH,
    STRING_META,
    TIME_META,
    Between,
    Direction,
    PropertyRule,
    Query,
    RelatedToRule,
    Rule,
    Scalar,
    as_query,
    is_number,
)
from kiosk.catalog.search.windows import Window, between_window, instant_window, parse_instant
from kiosk.core.value_kinds import json_type

_META_ENTITY_KEY = {
    "$identifier": "identifier",
    "$title": "title",
    "$blueprint": "blueprint",
    "$icon": "icon",
    "$team": "team",
    "$createdAt": "createdAt",
    "$updatedAt": "updatedAt",
}

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
    return _eval_query(as_query(query), entity, relations_index)


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
    """JSON's type name, ``other`` for what JSON does not hold (it equals nothing a rule names)."""
    return json_type(value) or "other"


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
        if is_number(value.from_):
            return _eval_json_range(stored, ">=", value.from_) and _eval_json_range(stored, "<=", value.to)
        return _in_date_window(stored, between_window(value))
    return _eval_json_range(stored, op, cast(str | int | float, value))


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": lambda a, b: bool(a > b),
    "<": lambda a, b: bool(a < b),
    ">=": lambda a, b: bool(a >= b),
    "<=": lambda a, b: bool(a <= b),
}


def _eval_json_range(stored: Any, op: str, value: str | int | float) -> bool:
    if is_number(value):
        return _kind(stored) == "number" and _COMPARE[op](stored, value)
    return _in_date_window(stored, instant_window(op, cast(str, value)))


def _in_date_window(stored: Any, window: Window) -> bool:
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
        return (shown == parse_instant(cast(str, value))) == (op == "=")
    if op in ("in", "notIn"):
        found = any(shown == parse_instant(cast(str, v)) for v in cast(tuple[Scalar, ...], value))
        return found if op == "in" else not found
    if op == "between":
        assert isinstance(value, Between)
        return shown >= parse_instant(cast(str, value.from_)) and shown <= parse_instant(cast(str, value.to))
    return _COMPARE[op](shown, parse_instant(cast(str, value)))
