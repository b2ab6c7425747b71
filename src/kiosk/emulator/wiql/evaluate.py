"""Running a parsed WIQL query over an organisation's work items.

A query is compiled once into a predicate made of closures — field lookups, literals already
converted to the field's type, ``IN`` lists as sets — and the predicate is then applied to every
work item, so a query over 100,000 items costs a few closure calls per item and no parsing or
name resolution inside the loop.

Semantics (what the emulator promises; Microsoft documents the operators, not every corner):

- Strings, tree paths and identities compare case-insensitively. An empty value (no field, or
  ``''``) equals ``''`` and differs from everything else; ``<``, ``>``, ``<=``, ``>=`` are false on
  an empty value. ``<>`` and the ``NOT`` forms are the exact negation of their positive forms.
- Identity fields match a user by display name, unique name or ``Display Name <unique name>``;
  ``@Me`` is the caller (the PAT carries no user here: the org's first user).
- Dates: ``'2026-01-31'``, ISO 8601 with a time, or ``MM/DD/YYYY``. Without ``timePrecision``
  both sides compare by their UTC date; with it, by the instant. ``@Today ± n`` is the start of
  the current UTC day ± n days; ``@StartOfDay|Week|Month|Year ± n`` move by days, weeks (weeks
  start on Sunday), months, years.
- ``UNDER`` matches the path itself and everything below it. ``CONTAINS`` is a substring test,
  except on ``System.Tags`` where it matches a whole tag; ``CONTAINS WORDS`` needs every word of
  the value as a word of the field (``word*`` for a prefix).
- ``EVER`` is true when the field had the value in any revision (current included).
- Deleted work items (the recycle bin) are never returned. ``ASOF`` evaluates every item's
  fields as they were at that instant (items created later are left out).
- No ``ORDER BY``: by id. Several sort fields apply in order; an empty value sorts first
  ascending and last descending.
- Link queries (``FROM WorkItemLinks``) split the ``WHERE`` into the conditions on the source
  alone and the rest (link type, target, both): ``MustContain`` (the default) returns sources
  with at least one matching link, ``MayContain`` every matching source with its matching links,
  ``DoesNotContain`` sources without one, ``Recursive`` the hierarchy tree below every matching
  source through matching children (``queryType: tree``).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from operator import ge as operator_ge
from operator import gt as operator_gt
from operator import le as operator_le
from operator import lt as operator_lt
from typing import Any, Final

from kiosk.emulator.org.model import Organisation, Project, Team, User, WorkItem
from kiosk.emulator.wiql.errors import MAX_RESULTS, WiqlQueryError, WiqlResultSizeError
from kiosk.emulator.wiql.fields import LINK_TYPE_FIELD, FieldDef, find_field
from kiosk.emulator.wiql.nodes import And, Comparison, Condition, FieldRef, Literal, Macro, Not, Or, Query

__all__ = ["HIERARCHY_FORWARD", "LinkRow", "QueryContext", "QueryResult", "compile_condition", "run_query"]

HIERARCHY_FORWARD: Final = "System.LinkTypes.Hierarchy-Forward"

Row = tuple[Any, ...]
"""What a predicate reads: ``(item, fields)`` for a flat query, ``(source, source fields, link
type, target, target fields)`` for a link query."""
Predicate = Callable[[Row], bool]


@dataclass(frozen=True)
class QueryContext:
    """Where a query runs: the org, the URL's project and team, who asks, and when."""

    org: Organisation
    now: datetime
    project: Project | None = None
    team: Team | None = None
    me: User | None = None
    time_precision: bool = False


@dataclass(frozen=True, slots=True)
class LinkRow:
    """One ``workItemRelations`` entry: a top-level item (``rel``/``source`` None) or a link to ``target``."""

    rel: str | None
    source: int | None
    target: int


@dataclass
class QueryResult:
    query_type: str
    """``flat``, ``oneHop`` or ``tree``."""
    columns: list[FieldDef]
    sort_columns: list[tuple[FieldDef, bool]]
    as_of: datetime
    work_item_ids: list[int] = field(default_factory=list)
    relations: list[LinkRow] | None = None


# --- resolving names and values -------------------------------------------------------------------


def _field(ref: FieldRef) -> FieldDef:
    found = find_field(ref.name)
    if found is None:
        raise WiqlQueryError(
            f"TF51005: The query references a field that does not exist. The error is caused by «{ref.name[:200]}»."
        )
    return found


def _is_empty(value: Any) -> bool:
    return value is None or value == ""


def _parse_date(text: str) -> datetime:
    cleaned = text.strip()
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        for pattern in ("%m/%d/%Y", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p"):
            try:
                parsed = datetime.strptime(cleaned, pattern)  # naive: made UTC below
                break
            except ValueError:
                continue
        if parsed is None:
            raise WiqlQueryError(f"The string '{text[:60]}' is not a valid date. Use YYYY-MM-DD or ISO 8601.") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _add_months(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 + months
    return date(total // 12, total % 12 + 1, 1)


def _date_macro(macro: Macro, now: datetime) -> datetime:
    today = now.astimezone(UTC).date()
    name, offset = macro.name, macro.offset
    if name in ("TODAY", "STARTOFDAY"):
        day = today + timedelta(days=offset)
    elif name == "STARTOFWEEK":
        day = today - timedelta(days=(today.weekday() + 1) % 7) + timedelta(weeks=offset)
    elif name == "STARTOFMONTH":
        day = _add_months(today.replace(day=1), offset)
    else:  # STARTOFYEAR
        day = date(today.year + offset, 1, 1)
    return datetime.combine(day, time(), tzinfo=UTC)


_DATE_MACROS: Final = frozenset({"TODAY", "STARTOFDAY", "STARTOFWEEK", "STARTOFMONTH", "STARTOFYEAR"})


def _current_iteration(macro: Macro, context: QueryContext) -> str:
    """``@CurrentIteration ± n`` for the URL's team (or the project's default team): an iteration path."""
    project = context.project
    if project is None:
        raise WiqlQueryError("The @CurrentIteration macro needs a project (and a team) in the URL.")
    team = context.team or context.org.teams.get(project.default_team_id or "")
    root = context.org.iterations.get(project.id)
    if root is None:
        raise WiqlQueryError(f"The project {project.name} has no iterations.")
    prefix = "\\" + project.name + "\\Iteration"
    paths = []
    for node in root.walk():
        if node.start_date is None or node.finish_date is None:
            continue
        path = project.name + node.path[len(prefix) :] if node.path.startswith(prefix) else node.path.lstrip("\\")
        team_paths = {p.casefold() for p in team.iteration_paths} if team is not None else set()
        if not team_paths or path.casefold() in team_paths:
            paths.append((node.start_date, node.finish_date, path))
    paths.sort()
    if not paths:
        raise WiqlQueryError("The team has no iterations with dates, so @CurrentIteration has no value.")
    now = context.now
    index = 0
    for position, (start, _finish, _path) in enumerate(paths):
        if start <= now:
            index = position
    index = min(max(index + macro.offset, 0), len(paths) - 1)
    return paths[index][2]


def _macro_value(macro: Macro, field_def: FieldDef, context: QueryContext) -> Any:
    """A macro as a raw field value (User, datetime, or string)."""
    name = macro.name
    if name in _DATE_MACROS:
        if field_def.type != "dateTime":
            raise WiqlQueryError(f"The macro @{name.title()} can only be compared with a date field.")
        return _date_macro(macro, context.now)
    if macro.offset and name != "CURRENTITERATION":
        raise WiqlQueryError(f"The macro @{name.title()} takes no + or - offset.")
    if name == "ME":
        if context.me is None:
            raise WiqlQueryError("The @Me macro has no value: this organisation has no users.")
        return context.me
    if name == "PROJECT":
        if context.project is None:
            raise WiqlQueryError("The @Project macro needs a project in the URL.")
        return context.project.name
    if name == "CURRENTITERATION":
        return _current_iteration(macro, context)
    raise WiqlQueryError(f"The macro @{macro.name} is not supported by the emulator.")


def _raw_value(value: Literal | Macro, field_def: FieldDef, context: QueryContext) -> Any:
    """A literal or macro converted to the field's type (datetime, number, bool, User or string)."""
    if isinstance(value, Macro):
        return _macro_value(value, field_def, context)
    raw = value.value
    kind = field_def.type
    if kind == "dateTime":
        if not isinstance(raw, str):
            raise WiqlQueryError(f"The value {raw} is not a date, as the field {field_def.name} needs.")
        return None if raw.strip() == "" else _parse_date(raw)
    if kind in ("integer", "double"):
        if isinstance(raw, str):
            if raw.strip() == "":
                return None
            try:
                return float(raw)
            except ValueError:
                raise WiqlQueryError(
                    f"The value '{raw[:60]}' is not a number, as the field {field_def.name} needs."
                ) from None
        return float(raw)
    if kind == "boolean":
        return str(raw).casefold() == "true"
    return str(raw)


# --- normal forms: what comparisons compare -------------------------------------------------------


def _normaliser(field_def: FieldDef, time_precision: bool) -> Callable[[Any], Any]:
    """Field value → comparable form (None for an empty value)."""
    kind = field_def.type
    if field_def.is_identity:
        return lambda v: None if _is_empty(v) else (v.display_name if isinstance(v, User) else str(v)).casefold()
    if kind == "dateTime":
        if time_precision:
            return lambda v: v if isinstance(v, datetime) else None
        return _utc_date
    if kind in ("integer", "double"):
        return _number
    if kind == "boolean":
        return lambda v: None if v is None else bool(v)
    return _folded


def _number(value: Any) -> float | None:
    """A number's normal form (None when empty, or not a number: a value some mutation stored as text)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    """A value as the text CONTAINS and UNDER read: an identity's display name, '' when empty."""
    if value is None:
        return ""
    return value.display_name if isinstance(value, User) else str(value)


def _folded(value: Any) -> str | None:
    """A text value's normal form: case-folded, None when empty."""
    if value.__class__ is str:
        return value.casefold() if value else None
    return None if value is None else str(value).casefold() or None


def _utc_date(value: Any) -> date | None:
    """A date-time's UTC date (the model's are UTC already: no conversion then)."""
    if not isinstance(value, datetime):
        return None
    return value.date() if value.tzinfo is UTC else value.astimezone(UTC).date()


def _identity_keys(value: Any) -> frozenset[str]:
    if isinstance(value, User):
        return frozenset(
            {
                value.display_name.casefold(),
                value.principal_name.casefold(),
                f"{value.display_name} <{value.principal_name}>".casefold(),
            }
        )
    return frozenset() if _is_empty(value) else frozenset({str(value).casefold()})


# --- compiling conditions -------------------------------------------------------------------------


def _accessor(ref: FieldRef, field_def: FieldDef) -> Callable[[Row], Any]:
    if field_def is LINK_TYPE_FIELD:
        return lambda row: row[2]
    item_at = 3 if ref.prefix == "target" else 0
    fields_at = item_at + 1
    name = field_def.reference_name
    if name == "System.Parent":
        return lambda row: row[item_at].parent_id
    if name == "System.Rev":
        return lambda row: row[fields_at].get("System.Rev", row[item_at].rev)
    return lambda row: row[fields_at].get(name)


def _history(ref: FieldRef, field_def: FieldDef) -> Callable[[Row], Iterator[Any]]:
    """Every value the field had: the current one and each revision's old and new values."""
    item_at = 3 if ref.prefix == "target" else 0
    current = _accessor(ref, field_def)
    name = field_def.reference_name

    def values(row: Row) -> Iterator[Any]:
        yield current(row)
        item: WorkItem = row[item_at]
        for revision in item.revisions:
            change = revision.fields.get(name)
            if change is not None:
                yield change[0]
                yield change[1]

    return values


_WORD: Final = re.compile(r"\w+")


def _contains_words(needle: str) -> Callable[[str], bool]:
    wanted = [word.casefold() for word in re.findall(r"\w+\*?", needle)]

    def check(text: str) -> bool:
        words = set(_WORD.findall(text.casefold()))
        for word in wanted:
            if word.endswith("*"):
                stem = word[:-1]
                if not any(w.startswith(stem) for w in words):
                    return False
            elif word not in words:
                return False
        return True

    return check


def compile_condition(condition: Condition, context: QueryContext) -> Predicate:
    """``condition`` as one predicate over a row (see :data:`Row`); names and values are resolved now."""
    if isinstance(condition, And):
        return _both([compile_condition(part, context) for part in condition.parts])
    if isinstance(condition, Or):
        return _either([compile_condition(part, context) for part in condition.parts])
    if isinstance(condition, Not):
        inner = compile_condition(condition.part, context)
        return lambda row: not inner(row)
    return _compile_comparison(condition, context)


def _both(parts: list[Predicate]) -> Predicate:
    """AND of ``parts`` as nested two-way closures (cheaper per row than ``all()`` over a generator)."""
    if len(parts) == 1:
        return parts[0]
    first, rest = parts[0], _both(parts[1:])
    return lambda row: first(row) and rest(row)


def _either(parts: list[Predicate]) -> Predicate:
    """OR of ``parts``, as :func:`_both` does AND."""
    if len(parts) == 1:
        return parts[0]
    first, rest = parts[0], _either(parts[1:])
    return lambda row: first(row) or rest(row)


def _compile_comparison(comparison: Comparison, context: QueryContext) -> Predicate:
    operator = comparison.operator
    if operator.startswith("not "):
        positive = _compile_comparison(Comparison(comparison.field, operator[4:], comparison.values), context)
        return lambda row: not positive(row)
    if operator == "is not empty":
        empty = _compile_comparison(Comparison(comparison.field, "is empty"), context)
        return lambda row: not empty(row)
    if operator == "<>":
        equal = _compile_comparison(Comparison(comparison.field, "=", comparison.values), context)
        return lambda row: not equal(row)
    field_def = _field(comparison.field)
    get = _accessor(comparison.field, field_def)
    if operator == "is empty":
        return lambda row: _is_empty(get(row))
    norm = _normaliser(field_def, context.time_precision)
    if operator in ("=", "<", ">", "<=", ">=") and isinstance(comparison.values[0], FieldRef):
        other_ref = comparison.values[0]
        other_def = _field(other_ref)
        other = _accessor(other_ref, other_def)
        other_norm = _normaliser(other_def, context.time_precision)
        return _ordered(operator, lambda row: norm(get(row)), lambda row: other_norm(other(row)))
    if operator in ("=", "in"):
        return _membership(comparison, field_def, get, norm, context)
    if operator in ("<", ">", "<=", ">="):
        return _against_constant(operator, get, norm, norm(_raw_value(_value(comparison), field_def, context)))
    if operator == "ever":
        history = _history(comparison.field, field_def)
        equal = _membership(comparison, field_def, lambda value: value, norm, context)
        return lambda row: any(equal(value) for value in history(row))
    text_value = str(_raw_value(_value(comparison), field_def, context) or "")
    needle = text_value.casefold()
    if operator == "contains":
        if field_def.reference_name == "System.Tags":
            return lambda row: needle in {tag.strip().casefold() for tag in _text(get(row)).split(";")}
        return lambda row: needle in _text(get(row)).casefold()
    if operator == "contains words":
        check = _contains_words(text_value)
        return lambda row: check(_text(get(row)))
    if operator == "under":
        if field_def.type != "treePath":
            raise WiqlQueryError(f"UNDER needs a path field (Area Path, Iteration Path), not {field_def.name}.")
        below = needle.rstrip("\\") + "\\"
        return lambda row: (path := _text(get(row)).casefold()) == needle or path.startswith(below)
    raise WiqlQueryError(f"The operator {operator.upper()} is not supported by the emulator.")


def _value(comparison: Comparison) -> Literal | Macro:
    value = comparison.values[0]
    if isinstance(value, FieldRef):
        raise WiqlQueryError(f"{comparison.operator.upper()} takes a value, not the field [{value.name}].")
    return value


def _against_constant(operator: str, get: Callable[[Row], Any], norm: Callable[[Any], Any], constant: Any) -> Predicate:
    """``field op constant`` for ``<``, ``>``, ``<=``, ``>=``: false on an empty value or a constant of another kind."""
    if constant is None:
        return lambda row: False
    compare = {"<": operator_lt, ">": operator_gt, "<=": operator_le, ">=": operator_ge}[operator]

    def check(row: Row) -> bool:
        value = norm(get(row))
        if value is None:
            return False
        try:
            return bool(compare(value, constant))
        except TypeError:
            return False

    return check


def _ordered(operator: str, left: Callable[[Row], Any], right: Callable[[Row], Any]) -> Predicate:
    """``left op right`` on normal forms; false when either side is empty (equality: both empty is true)."""

    def compare(row: Row) -> bool:
        a, b = left(row), right(row)
        if a is None or b is None:
            return operator == "=" and a is None and b is None
        try:
            if operator == "=":
                return bool(a == b)
            if operator == "<":
                return bool(a < b)
            if operator == ">":
                return bool(a > b)
            if operator == "<=":
                return bool(a <= b)
            return bool(a >= b)
        except TypeError:
            return False

    return compare


def _membership(
    comparison: Comparison,
    field_def: FieldDef,
    get: Callable[[Any], Any],
    norm: Callable[[Any], Any],
    context: QueryContext,
) -> Callable[[Any], bool]:
    """``field = v`` / ``field IN (v, …)``: a set lookup of the field's normal form."""
    values: list[Any] = []
    for value in comparison.values:
        if isinstance(value, FieldRef):
            raise WiqlQueryError(f"IN takes values, not the field [{value.name}].")
        values.append(_raw_value(value, field_def, context))
    wants_empty = any(_is_empty(value) for value in values)
    if field_def.is_identity:
        keys: set[str] = set()
        for value in values:
            keys |= _identity_keys(value)
        ids = {user.id for user in context.org.users.values() if _identity_keys(user) & keys}

        def identity(row: Any) -> bool:
            found = get(row)
            if _is_empty(found):
                return wants_empty
            if isinstance(found, User):
                return found.id in ids
            return str(found).casefold() in keys

        return identity
    wanted = {norm(value) for value in values} - {None}

    def member(row: Any) -> bool:
        found = norm(get(row))
        return wants_empty if found is None else found in wanted

    return member


# --- running --------------------------------------------------------------------------------------


def _as_of_rows(items: Iterable[WorkItem], as_of: datetime | None) -> Iterator[tuple[WorkItem, dict[str, Any]]]:
    """Every live item with its fields now, or as they were at ``as_of`` (items created later left out)."""
    for item in items:
        if item.is_deleted:
            continue
        if as_of is None:
            yield item, item.fields
            continue
        revision = 0
        for entry in item.revisions:
            if entry.revised_date <= as_of:
                revision = entry.rev
        if revision == 0:
            created = item.fields.get("System.CreatedDate")
            if not item.revisions and isinstance(created, datetime) and created <= as_of:
                revision = item.rev
            else:
                continue
        fields = item.fields_at(revision) if revision != item.rev else dict(item.fields)
        fields["System.Rev"] = revision
        yield item, fields


def _sort_key(field_def: FieldDef, time_precision: bool) -> Callable[[tuple[WorkItem, dict[str, Any]]], Any]:
    ref = FieldRef(field_def.reference_name)
    get = _accessor(ref, field_def)
    norm = _normaliser(field_def, time_precision or field_def.type == "dateTime")

    def key(pair: tuple[WorkItem, dict[str, Any]]) -> tuple[int, str, Any]:
        value = norm(get(pair))
        # The type's name keeps a value of an unexpected type (stored by some mutation) comparable.
        return (0, "", 0) if value is None else (1, value.__class__.__name__, value)

    return key


def _order(
    rows: list[tuple[WorkItem, dict[str, Any]]], order: list[tuple[FieldDef, bool]], time_precision: bool
) -> list[tuple[WorkItem, dict[str, Any]]]:
    for field_def, descending in reversed(order):  # stable sorts, last key first
        rows.sort(key=_sort_key(field_def, time_precision), reverse=descending)
    return rows


def _conjuncts(condition: Condition | None) -> list[Condition]:
    if condition is None:
        return []
    return list(condition.parts) if isinstance(condition, And) else [condition]


def _sides(condition: Condition) -> set[str]:
    """Which parts of a link row a condition reads: ``source``, ``target``, ``link``."""
    if isinstance(condition, And | Or):
        return set().union(*(_sides(part) for part in condition.parts))
    if isinstance(condition, Not):
        return _sides(condition.part)
    refs = [condition.field, *(v for v in condition.values if isinstance(v, FieldRef))]
    sides = set()
    for ref in refs:
        if find_field(ref.name) is LINK_TYPE_FIELD:
            sides.add("link")
        else:
            sides.add(ref.prefix or "source")
    return sides


def _all_of(predicates: list[Predicate]) -> Predicate:
    if not predicates:
        return lambda row: True
    if len(predicates) == 1:
        return predicates[0]
    return lambda row: all(predicate(row) for predicate in predicates)


def _check_size(count: int, top: int | None) -> None:
    if count > MAX_RESULTS and (top is None or top > MAX_RESULTS):
        raise WiqlResultSizeError()


def run_query(query: Query, context: QueryContext, *, top: int | None = None) -> QueryResult:
    """Run ``query``: the matching ids (flat) or link rows, ordered, cut to ``top``.

    :class:`~kiosk.emulator.wiql.errors.WiqlResultSizeError` when more than 20,000 match and
    ``top`` does not cut them to at most that.

    The cyclic garbage collector is paused meanwhile: a run allocates a tuple per work item and
    frees them all at once, and a collection those allocations trigger walks the whole
    organisation (millions of objects) to find nothing — measured, it made the first queries over
    a freshly generated 100,000-item org take over a second instead of a tenth of one.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return _run(query, context, top)
    finally:
        if paused:
            gc.enable()


def _run(query: Query, context: QueryContext, top: int | None) -> QueryResult:
    columns = [_field(column) for column in query.columns]
    order = [(_field(item.field), item.descending) for item in query.order_by]
    as_of = _parse_date(query.as_of) if query.as_of is not None else None
    result_as_of = as_of or context.now
    items: Iterable[WorkItem] = context.org.work_items.values()
    if query.source == "workitems":
        pinned = _pinned_project(query.where) if as_of is None else None
        pinned_ids = _pinned_ids(query.where)
        if pinned_ids is not None:  # as Azure's index would: only the named items are looked at
            items = [context.org.work_items[i] for i in sorted(pinned_ids) if i in context.org.work_items]
        elif pinned is not None:  # likewise, only that project's items
            items = [item for item in items if str(item.fields.get("System.TeamProject", "")).casefold() == pinned]
        predicate = compile_condition(query.where, context) if query.where is not None else None
        rows = [row for row in _as_of_rows(items, as_of) if predicate is None or predicate(row)]
        _check_size(len(rows), top)
        if order:
            rows = _order(rows, order, context.time_precision)
        ids = [item.id for item, _ in rows]
        if top is not None:
            ids = ids[:top]
        return QueryResult("flat", columns, order, result_as_of, ids)
    return _run_link_query(query, context, columns, order, as_of, result_as_of, top)


def _pinned_ids(where: Condition | None) -> set[int] | None:
    """The ids that a ``[System.Id] = N`` (or ``IN (…)``) term of the WHERE's top-level conjunction
    pins, if any: only those items can match, so only they need evaluating (the term is still
    evaluated with the rest). Ids never change, so this holds for ``asOf`` too."""
    for part in _conjuncts(where):
        if not isinstance(part, Comparison) or part.operator not in ("=", "in") or part.field.prefix is not None:
            continue
        found = find_field(part.field.name)
        if found is None or found.reference_name != "System.Id" or not part.values:
            continue
        numbers = [value.value for value in part.values if isinstance(value, Literal)]
        if len(numbers) == len(part.values) and all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
            return {int(n) for n in numbers}
    return None


def _pinned_project(where: Condition | None) -> str | None:
    """The project (case-folded) that a ``[System.TeamProject] = 'name'`` term of the WHERE's
    top-level conjunction pins, if any: only its items can match, so only they need evaluating
    (the term is still evaluated with the rest). Items as they are now: not for ``asOf``."""
    parts = where.parts if isinstance(where, And) else (where,) if where is not None else ()
    for part in parts:
        if not isinstance(part, Comparison) or part.operator != "=" or part.field.prefix is not None:
            continue
        value = part.values[0] if len(part.values) == 1 else None
        if not isinstance(value, Literal) or not isinstance(value.value, str):
            continue
        found = find_field(part.field.name)
        if found is not None and found.reference_name == "System.TeamProject":
            return value.value.casefold()
    return None


def _run_link_query(
    query: Query,
    context: QueryContext,
    columns: list[FieldDef],
    order: list[tuple[FieldDef, bool]],
    as_of: datetime | None,
    result_as_of: datetime,
    top: int | None,
) -> QueryResult:
    source_parts: list[Predicate] = []
    link_parts: list[Predicate] = []
    for part in _conjuncts(query.where):
        (source_parts if _sides(part) <= {"source"} else link_parts).append(compile_condition(part, context))
    source_ok = _all_of(source_parts)
    link_ok = _all_of(link_parts)
    live = {item.id: (item, fields) for item, fields in _as_of_rows(context.org.work_items.values(), as_of)}
    mode = set(query.mode) or {"mustcontain"}
    recursive = "recursive" in mode
    sources = [pair for pair in live.values() if source_ok(pair)]
    if order:
        sources = _order(sources, order, context.time_precision)

    def links(item: WorkItem, fields: dict[str, Any]) -> Iterator[tuple[str, int]]:
        for relation in item.relations:
            target = relation.target
            if not isinstance(target, int) or target not in live:
                continue
            if recursive and relation.rel != HIERARCHY_FORWARD:
                continue
            target_item, target_fields = live[target]
            if link_ok((item, fields, relation.rel, target_item, target_fields)):
                yield relation.rel, target

    rows: list[LinkRow] = []
    if recursive:
        placed: set[int] = set()
        for item, fields in sources:
            if item.id in placed:
                continue
            placed.add(item.id)
            rows.append(LinkRow(None, None, item.id))
            stack = [(item, fields)]
            while stack:
                parent, parent_fields = stack.pop()
                children = [target for _rel, target in links(parent, parent_fields) if target not in placed]
                for child in children:
                    placed.add(child)
                    rows.append(LinkRow(HIERARCHY_FORWARD, parent.id, child))
                stack.extend(live[child] for child in reversed(children))
    else:
        for item, fields in sources:
            found = list(links(item, fields))
            if "doesnotcontain" in mode:
                if not found:
                    rows.append(LinkRow(None, None, item.id))
                continue
            if found or "maycontain" in mode:
                rows.append(LinkRow(None, None, item.id))
                rows.extend(LinkRow(rel, item.id, target) for rel, target in found)
    _check_size(len(rows), top)
    if top is not None:
        rows = rows[:top]
    return QueryResult("tree" if recursive else "oneHop", columns, order, result_as_of, [], rows)
