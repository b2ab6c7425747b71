"""Search rules compiled to one SQL ``WHERE`` clause: the structure every dialect shares.

:class:`SqlCompiler` walks a :class:`~kiosk.catalog.search.rules.Query` and spells the
meta-properties (columns), the date windows and ``relatedTo`` (a nested recursive CTE over the
relation edges); its dialects (:mod:`kiosk.catalog.search.dialects`) spell the JSON primitives.
Every user value reaches the database as a bound parameter; property names are written into the
SQL text only after matching :data:`kiosk.catalog.indexes.PROPERTY_NAME`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from kiosk.catalog.dates import format_canonical
from kiosk.catalog.search.rules import (
    MAX_RELATION_DEPTH,
    STRING_META,
    TIME_META,
    Between,
    PropertyRule,
    Query,
    RelatedToRule,
    Rule,
    Scalar,
    is_number,
)
from kiosk.catalog.search.windows import Window, between_window, instant_window
from kiosk.store.tables import blueprints, entities, entity_relations

META_COLUMN = {
    "$identifier": "identifier",
    "$title": "title",
    "$blueprint": "blueprint",
    "$icon": "icon",
    "$team": "team",
    "$createdAt": "created_at",
    "$updatedAt": "updated_at",
}


def negate(expr: ColumnElement[bool]) -> ColumnElement[bool]:
    """``NOT expr`` with SQL NULL read as false, so negated rules also match missing properties.

    Only leaves are ever negated (the query language has no NOT), so a positive leaf may yield
    NULL: inside AND/OR trees without NOT, NULL behaves exactly like false in a WHERE clause.
    """
    return sa.not_(sa.func.coalesce(expr, sa.false(), type_=sa.Boolean()))


def any_of(parts: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return sa.or_(*parts) if parts else sa.false()


def all_of(parts: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return sa.and_(*parts) if parts else sa.true()


def const(sql: str) -> ColumnElement[Any]:
    """A fixed SQL constant (never user data: those are always bound)."""
    return sa.literal_column(sql)


def one_of(expr: ColumnElement[Any], constants: tuple[str, ...]) -> ColumnElement[bool]:
    """``expr = c`` or ``expr IN (c1, c2, ...)`` over fixed SQL constants."""
    if len(constants) == 1:
        return expr == const(constants[0])
    return expr.in_([const(c) for c in constants])


class SqlCompiler(ABC):
    """Dialect-independent structure; subclasses spell the JSON primitives."""

    dialect: str

    def query(self, query: Query) -> ColumnElement[bool]:
        parts = [self.rule(rule) for rule in query.rules]
        return all_of(parts) if query.combinator == "and" else any_of(parts)

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
            return negate(self.json_equals(prop, cast(Scalar, value)))
        if op == "in":
            return self.json_in(prop, cast(tuple[Scalar, ...], value))
        if op == "notIn":
            return negate(self.json_in(prop, cast(tuple[Scalar, ...], value)))
        if op == "contains":
            return self.json_contains(prop, cast(str | int | float | bool, value))
        if op == "isEmpty":
            return self.json_is_empty(prop)
        if op == "isNotEmpty":
            return negate(self.json_is_empty(prop))
        if op == "between":
            assert isinstance(value, Between)
            if is_number(value.from_):
                return sa.and_(
                    self.json_number_compare(prop, ">=", cast(int | float, value.from_)),
                    self.json_number_compare(prop, "<=", cast(int | float, value.to)),
                )
            return self.json_date_window(prop, between_window(value))
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
        return any_of(parts)

    def json_range(self, prop: str, op: str, value: str | int | float) -> ColumnElement[bool]:
        if is_number(value):
            return self.json_number_compare(prop, op, cast(int | float, value))
        return self.json_date_window(prop, instant_window(op, cast(str, value)))

    def json_date_window(self, prop: str, window: Window) -> ColumnElement[bool]:
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
        column: ColumnElement[Any] = entities.c[META_COLUMN[rule.property]]
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
            return any_of(parts)

        if op in ("=", "!="):
            matched = equals_any([cast(Scalar, value)])
            return matched if op == "=" else negate(matched)
        if op in ("in", "notIn"):
            matched = equals_any(cast(tuple[Scalar, ...], value))
            return matched if op == "in" else negate(matched)
        if op == "contains":
            return self.substring(column, cast(str, value))
        empty = sa.or_(column.is_(None), column == const("''"))
        return empty if op == "isEmpty" else negate(empty)

    def team_rule(self, rule: PropertyRule) -> ColumnElement[bool]:
        op, value = rule.operator, rule.value
        if op in ("=", "contains"):
            return self.team_has_any([cast(str, value)])
        if op == "!=":
            return negate(self.team_has_any([cast(str, value)]))
        if op == "in":
            return self.team_has_any(cast(tuple[str, ...], value))
        if op == "notIn":
            return negate(self.team_has_any(cast(tuple[str, ...], value)))
        return self.team_is_empty() if op == "isEmpty" else negate(self.team_is_empty())

    def time_bind(self, value: datetime) -> ColumnElement[Any]:
        return sa.literal(value, sa.DateTime(timezone=True))

    def time_rule(self, rule: PropertyRule) -> ColumnElement[bool]:
        column: ColumnElement[Any] = entities.c[META_COLUMN[rule.property]]
        op, value = rule.operator, rule.value
        if op == "isEmpty":
            return sa.false()
        if op == "isNotEmpty":
            return sa.true()

        def within(window: Window) -> ColumnElement[bool]:
            if window.empty:
                return sa.false()
            parts: list[ColumnElement[bool]] = []
            if window.lower is not None:
                parts.append(column >= self.time_bind(window.lower))
            if window.upper is not None:
                parts.append(column < self.time_bind(window.upper))
            return all_of(parts)

        if op in ("=", "!="):
            matched = within(instant_window("=", cast(str, value)))
            return matched if op == "=" else negate(matched)
        if op in ("in", "notIn"):
            matched = any_of([within(instant_window("=", cast(str, v))) for v in cast(tuple[Scalar, ...], value)])
            return matched if op == "in" else negate(matched)
        if op == "between":
            assert isinstance(value, Between)
            return within(between_window(value))
        return within(instant_window(op, cast(str, value)))

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
        return any_of(parts)

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
