"""Port's entity search rules: parsing, compiling to SQL, and a reference evaluator.

    rules       the rules as frozen models, and parse_query (pure)
    windows     date-time rules as windows of instants, at millisecond precision (pure)
    sql         SqlCompiler: the WHERE clause every dialect shares, relatedTo as a recursive CTE
    dialects    the JSON primitives of SQLite and PostgreSQL, and compile_query
    evaluator   evaluate: the same answer in plain Python, for the tests to hold the SQL to

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

from kiosk.catalog.search.dialects import compile_query, compile_query_for_dialect
from kiosk.catalog.search.evaluator import Edge, EdgeListRelations, EntityDoc, EntityKey, RelationsIndex, evaluate
from kiosk.catalog.search.rules import Between, PropertyRule, Query, RelatedToRule, Rule, parse_query

__all__ = [
    "Between",
    "Edge",
    "EdgeListRelations",
    "EntityDoc",
    "EntityKey",
    "PropertyRule",
    "Query",
    "RelatedToRule",
    "RelationsIndex",
    "Rule",
    "compile_query",
    "compile_query_for_dialect",
    "evaluate",
    "parse_query",
]
