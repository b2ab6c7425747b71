"""The JSON primitives of search rules, per dialect, and :func:`compile_query`.

SQLite spells them with JSON1 (``json_extract``, ``json_type``, ``json_each``), PostgreSQL with
JSONB (``->``, ``jsonb_typeof``, ``@>``); both use the indexed expression of
:mod:`kiosk.catalog.indexes` for equality, so an indexed property is looked up through its index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.sql.elements import ColumnElement

from kiosk.catalog.indexes import postgres_json_key, property_value_expression, sqlite_json_path
from kiosk.catalog.search.rules import Query, Scalar, as_query
from kiosk.catalog.search.sql import SqlCompiler, any_of, const, one_of
from kiosk.store.engine import Database
from kiosk.store.tables import entities


class SqliteCompiler(SqlCompiler):
    """SQLite's JSON1: ``json_extract`` (the indexed expression), ``json_type``, ``json_each``."""

    dialect = "sqlite"

    _NUMBER: tuple[str, ...] = ("'integer'", "'real'")
    _TEXT: tuple[str, ...] = ("'text'",)

    def _x(self, prop: str) -> ColumnElement[Any]:
        return property_value_expression("sqlite", prop)

    def _type_is(self, prop: str, sql_types: tuple[str, ...]) -> ColumnElement[bool]:
        return one_of(sa.func.json_type(entities.c.properties, const(sqlite_json_path(prop))), sql_types)

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
        return any_of(parts)

    def json_is_null(self, prop: str) -> ColumnElement[bool]:
        kind = sa.func.json_type(entities.c.properties, const(sqlite_json_path(prop)))
        return sa.or_(kind.is_(None), kind == const("'null'"))

    def json_is_empty(self, prop: str) -> ColumnElement[bool]:
        x = self._x(prop)
        return sa.or_(
            self.json_is_null(prop),
            sa.and_(self._type_is(prop, self._TEXT), x == const("''")),
            sa.and_(self._type_is(prop, ("'array'", "'object'")), one_of(x, ("'[]'", "'{}'"))),
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
        args: list[ColumnElement[Any]] = [source] if path is None else [source, const(path)]
        element = sa.func.json_each(*args).table_valued("value", "type").alias()
        match = element.c.value == binds[0] if len(binds) == 1 else element.c.value.in_(binds)
        return sa.exists(sa.select(sa.literal(1)).select_from(element).where(one_of(element.c.type, types), match))

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
        return sa.func.json_type(source_blueprint, path) == const("'true'")


class PostgresCompiler(SqlCompiler):
    """PostgreSQL JSONB: ``properties -> 'p'`` (the indexed expression), ``jsonb_typeof``, ``@>``."""

    dialect = "postgresql"

    def _j(self, prop: str) -> ColumnElement[Any]:
        return property_value_expression("postgresql", prop)

    def _text(self, prop: str) -> ColumnElement[Any]:
        return entities.c.properties.op("->>", return_type=sa.Text())(const(postgres_json_key(prop)))

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
        return sa.or_(j.is_(None), j == const("'null'::jsonb"))

    def json_is_empty(self, prop: str) -> ColumnElement[bool]:
        j = self._j(prop)
        return sa.or_(j.is_(None), one_of(j, ("'null'::jsonb", "'\"\"'::jsonb", "'[]'::jsonb", "'{}'::jsonb")))

    def json_is_string(self, prop: str) -> ColumnElement[bool]:
        return self._typeof(prop) == const("'string'")

    def json_contains(self, prop: str, value: str | int | float | bool) -> ColumnElement[bool]:
        # [[1]] @> [1] is false and [true] @> [1] is false: containment of a one-scalar array is
        # exactly "has an element JSON-equal to the scalar".
        in_array = sa.and_(self._typeof(prop) == const("'array'"), self._j(prop).bool_op("@>")(self._bind([value])))
        if not isinstance(value, str):
            return in_array
        return sa.or_(sa.and_(self.json_is_string(prop), self.substring(self._text(prop), value)), in_array)

    def json_number_compare(self, prop: str, op: str, value: int | float) -> ColumnElement[bool]:
        # jsonb vs jsonb comparison never raises (a ::numeric cast could, whatever the guard's order).
        return sa.and_(self._typeof(prop) == const("'number'"), self._j(prop).bool_op(op)(self._bind(value)))

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
        return sa.or_(entities.c.team.is_(None), one_of(entities.c.team, ("'[]'::jsonb", "'null'::jsonb")))

    def required_edge(self, relation: Any, source_blueprint: Any) -> ColumnElement[bool]:
        relations = source_blueprint.op("->", return_type=JSONB)(const("'relations'"))
        flag = relations.op("->", return_type=JSONB)(relation).op("->", return_type=JSONB)(const("'required'"))
        return sa.func.coalesce(flag == const("'true'::jsonb"), sa.false())


def compile_query(query: Query | Mapping[str, Any], db: Database) -> ColumnElement[bool]:
    """A ``WHERE`` clause over ``entities`` selecting exactly the entities :func:`evaluate` accepts.

    The clause refers to the ``entities`` table itself (not an alias), so select from it; the
    subqueries use aliases of their own, so joining ``blueprints`` or ``entities`` again is safe.
    A raw mapping is parsed first (``ValidationFailed`` on errors).
    """
    return compile_query_for_dialect(query, db.dialect)


def compile_query_for_dialect(query: Query | Mapping[str, Any], dialect: str) -> ColumnElement[bool]:
    """:func:`compile_query` for a dialect name (``sqlite`` or ``postgresql``), without a database."""
    compiler: SqlCompiler
    if dialect == "sqlite":
        compiler = SqliteCompiler()
    elif dialect == "postgresql":
        compiler = PostgresCompiler()
    else:
        raise ValueError(f"unsupported database dialect {dialect!r}: kiosk runs on sqlite or postgresql")
    return compiler.query(as_query(query))
