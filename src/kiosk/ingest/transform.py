"""Raw items of one resource mapped to Port entity documents, with Ocean's semantics, fast.

A resource of an Ocean mapping (:class:`kiosk.ingest.mapping.ResourceConfig`) says how one raw
Azure DevOps item becomes one entity: every leaf of ``port.entity.mappings`` is a jq program over
the item. :func:`compile_resource` prepares those programs once; :meth:`CompiledResource.map` runs
them over a batch of items. What Ocean's ``JQEntityProcessor`` does, and so what kiosk does:

* ``itemsToParse`` (optional) is evaluated first: each element of the array it gives becomes one
  input, the item itself with the element under ``.item`` (``itemsToParseName``). With
  ``itemsToParseTopLevelTransform`` (the default) the array is removed from the item first
  (``del(path)``, the path being the first plain path of the ``itemsToParse`` program, found as
  Ocean finds it). Where Ocean finds no such path it deletes ``.``, which drops the item with
  only a warning in its log; kiosk keeps the item whole instead. A result that is not an array,
  or an item that is not an object, is a failure of that item (Ocean: a warning and a skip).
* ``selector.query`` must give ``true`` to keep the input, ``false`` to skip it (counted in
  :attr:`MappedBatch.filtered`); anything else, or a jq error, is a failure (Ocean raises
  "Expected boolean value"). ``true`` itself is not evaluated at all.
* ``identifier`` and ``blueprint`` must give a non-empty string, or no entity is produced and a
  failure says why (Ocean drops entities whose identifier or blueprint is falsy and counts them
  as mapping faults; a number or an object would be refused by Port).
* ``title``, ``icon``, ``team``, each property and each relation: the program's first output, null
  included (a null property is sent as null, as Ocean does). ``team`` may give a string or a list.
  A field whose program does not compile maps to null (Ocean's behaviour; listed by
  :meth:`CompiledResource.warnings` and shown by test-mapping).
* A jq error in any field fails that entity (one :class:`FieldFailure` per failing field, with
  jq's message), never the batch. Ocean logs such a field and sends null; kiosk refuses to write
  an entity it could not map faithfully, so the resync reports it and deletes nothing because
  of it.
* A search query (``{combinator, rules}``) as identifier, team or relation: kiosk's catalog has no
  search-query writes, so each entity fails with "… search queries are not supported".
* Programs are written as Ocean accepts them: a string in single quotes (``// ''``) is read as a
  double-quoted one (:func:`ocean_quotes`), so Ocean's own default work-item mapping gives ``""``
  for a missing description, as in Ocean, not null.

Speed: the resync maps tens of thousands of items per kind. Each program is prepared once into
the cheapest evaluator that gives libjq's answer: a literal is a constant (not evaluated), a
plain path (``.project.id``, ``.__includedFiles["README.md"]``) is a few dictionary lookups, a
path piped into ``gsub``/``sub`` with a literal, non-regex pattern is a ``str.replace``, anything
else in the compiled subset is a :mod:`kiosk.core.jq_compile` closure. The fast forms answer
only the common case (a string, a boolean, null, an integer within 2^53); anything else goes to
the compiled closure, which is checked against libjq by a differential test. What no closure can
answer (a program outside the subset, an input a closure defers) goes to the bounded libjq
workers (:func:`kiosk.core.jq_engine.engine`) in one round trip per batch, never per item.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kiosk.core.jq_compile import Deferred, JqRuntimeError, NotCompilable, compile_program
from kiosk.core.jq_engine import JqError, JqPool, JqResult, JqStopped, answer_in_process, engine, first_line
from kiosk.core.value_kinds import json_type
from kiosk.ingest.mapping import ResourceConfig, SearchQuery, jq_syntax_problem, ocean_quotes

__all__ = [
    "CompiledResource",
    "ExampleResult",
    "FieldFailure",
    "MappedBatch",
    "compile_resource",
    "deletion_path",
    "test_mapping",
]


@dataclass(frozen=True)
class FieldFailure:
    """Why one input produced no entity: the field whose program failed and jq's message.

    ``item`` is the index of the raw item in the batch (several inputs share it under
    ``itemsToParse``); ``field`` is ``identifier``, ``blueprint``, ``title``, ``icon``, ``team``,
    ``properties.<name>``, ``relations.<name>``, ``selector.query`` or ``itemsToParse``;
    ``identifier`` is the entity's, when it was mapped.
    """

    item: int
    field: str
    message: str
    identifier: str | None


@dataclass
class MappedBatch:
    """A batch mapped: the entity documents in item order, the failures, and how many inputs the
    selector left out."""

    entities: list[dict[str, Any]]
    failures: list[FieldFailure]
    filtered: int
    #: The index of the raw item each entity was made of (several share one under itemsToParse).
    owners: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ExampleResult:
    """One example as Port's mapping editor shows it: the entities it maps to (several under
    ``itemsToParse``), the fields that failed, and the fields mapped to null because their program
    does not compile."""

    example: int
    entities: list[dict[str, Any]]
    failures: list[FieldFailure]
    filtered: int
    warnings: list[FieldFailure] = field(default_factory=list)


# ------------------------------------------------------------------------------ jq as Ocean reads it

#: A path segment as Ocean's ``itemsToParse`` deletion recognises it: ``.key`` or ``.[…]`` first,
#: then ``.key``, ``[…]`` or ``.[…]``.
_DELETION_PATH: Final = re.compile(r"(\.\w+|\.\[[^\]]+\])(\.\w+|\[[^\]]+\]|\.\[[^\]]+\])*")
_BINDING: Final = re.compile(r"^\.\s+as\s+\$\w+")


def deletion_path(items_to_parse: str) -> str | None:
    """The path ``itemsToParseTopLevelTransform`` deletes from the item: the first plain path among
    the program's pipe segments (``.file.content.raw | fromjson | .items`` → ``.file.content.raw``),
    skipping ``. as $x``, ``.`` and variables; None when there is none."""
    text = items_to_parse.strip()
    if text.startswith("("):
        inner = re.match(r"\((.*?)\)", text, re.DOTALL)
        if inner is None:
            return None
        text = inner.group(1).strip()
    for segment in (part.strip() for part in text.split("|")):
        if _BINDING.match(segment) or segment == "." or segment.startswith("$"):
            continue
        found = _DELETION_PATH.match(segment)
        if found:
            return found.group(0).strip()
    return None


# ---------------------------------------------------------------------------- prepared programs

#: Evaluates a program over one input in process; raises JqRuntimeError (jq's error) or Deferred.
Evaluator = Callable[[Any], Any]

#: Integers past this are jq's to print (it holds doubles).
_EXACT: Final = 2**53
#: A plain path: ``.key`` first, then ``.key``, ``["key"]``, ``.["key"]`` or ``."key"`` (keys
#: without escapes), or ``.`` alone.
_PATH_START: Final = r'\.(?:[A-Za-z_][A-Za-z0-9_]*|"[^"\\]*"|\["[^"\\]*"\])'
_PATH_NEXT: Final = r'(?:\.[A-Za-z_][A-Za-z0-9_]*|\.?"[^"\\]*"|\.?\["[^"\\]*"\])'
_PATH_TEXT: Final = rf"{_PATH_START}{_PATH_NEXT}*"
_PATH: Final = re.compile(rf"\s*({_PATH_TEXT})\s*")
_PATH_KEY: Final = re.compile(r'\.?\["([^"\\]*)"\]|\.?"([^"\\]*)"|\.([A-Za-z_][A-Za-z0-9_]*)')
#: ``PATH | gsub("x"; "y")`` (or ``sub``) with literal strings, the pattern free of regex syntax.
_REPLACE: Final = re.compile(rf'\s*({_PATH_TEXT})\s*\|\s*(gsub|sub)\(\s*"([^"\\]*)"\s*;\s*"([^"\\]*)"\s*\)\s*')
_REGEX_SYNTAX: Final = set(".^$*+?()[]{}|\\")


def _path_keys(text: str) -> tuple[str, ...]:
    return tuple(next(group for group in match.groups() if group is not None) for match in _PATH_KEY.finditer(text))


def _plain(value: Any) -> bool:
    """Whether jq hands ``value`` back unchanged (so a fast form may return it as it is)."""
    kind = type(value)
    return kind is str or value is None or kind is bool or (kind is int and -_EXACT <= value <= _EXACT)


# The fast forms below inline :func:`_plain` and the lookups: they run once per field per item,
# and a function call costs as much as the work itself.


def _lookup(keys: tuple[str, ...], general: Evaluator) -> Evaluator:
    """A plain path as dictionary lookups; any other case (an array on the way, a float, an
    object at the end) is the general closure's, so errors and conversions stay jq's."""
    if len(keys) == 1:
        (key,) = keys

        def one(data: Any) -> Any:
            if type(data) is dict:
                value = data.get(key)
                kind: type = type(value)
                if kind is str or value is None or kind is bool or (kind is int and -_EXACT <= value <= _EXACT):
                    return value
            return general(data)

        return one
    if len(keys) == 2:
        outer, inner = keys

        def two(data: Any) -> Any:
            if type(data) is dict:
                middle = data.get(outer)
                if type(middle) is dict:
                    value = middle.get(inner)
                    kind: type = type(value)
                    if kind is str or value is None or kind is bool or (kind is int and -_EXACT <= value <= _EXACT):
                        return value
                elif middle is None:
                    return None
            return general(data)

        return two

    def many(data: Any) -> Any:
        value = data
        for key in keys:
            if type(value) is dict:
                value = value.get(key)
            elif value is None:
                return None
            else:
                return general(data)
        return value if _plain(value) else general(data)

    return many


def _replacing(keys: tuple[str, ...], pattern: str, replacement: str, every: bool, general: Evaluator) -> Evaluator:
    """``PATH | gsub("x"; "y")`` with a literal pattern as ``str.replace`` on a string; anything
    else (a non-string, which jq refuses with its own message) is the general closure's."""
    count = -1 if every else 1
    if len(keys) == 2:
        outer, inner = keys

        def replace_two(data: Any) -> Any:
            if type(data) is dict:
                middle = data.get(outer)
                if type(middle) is dict:
                    value = middle.get(inner)
                    if type(value) is str:
                        return value.replace(pattern, replacement, count)
            return general(data)

        return replace_two

    def replace(data: Any) -> Any:
        value = data
        for key in keys:
            if type(value) is not dict:
                return general(data)
            value = value.get(key)
        if type(value) is str:
            return value.replace(pattern, replacement, count)
        return general(data)

    return replace


@dataclass(frozen=True)
class _Program:
    """One mapping program, prepared: a constant, an in-process evaluator, or libjq's (``run`` None)."""

    text: str
    constant: bool = False
    value: Any = None
    run: Evaluator | None = None
    #: Why the program does not compile (it then maps to null), else None.
    broken: str | None = None


def _prepare(source: str) -> _Program:
    """``source`` (as written in the mapping) prepared into its cheapest exact evaluator."""
    text = ocean_quotes(source)
    problem = jq_syntax_problem(text)
    if problem is not None:
        return _Program(text, constant=True, value=None, broken=problem)
    try:
        compiled = compile_program(text)
    except NotCompilable:
        return _Program(text)
    general = compiled.first
    stripped = text.strip()
    if stripped in ("true", "false", "null") or (
        stripped.startswith('"') and stripped.endswith('"') and "\\" not in stripped and stripped.count('"') == 2
    ):
        return _Program(text, constant=True, value=general(None))
    path = _PATH.fullmatch(text)
    if path:
        return _Program(text, run=_lookup(_path_keys(path.group(1)), general))
    replace = _REPLACE.fullmatch(text)
    if replace and replace.group(3) and not (set(replace.group(3)) & _REGEX_SYNTAX):
        keys = _path_keys(replace.group(1))
        every = replace.group(2) == "gsub"
        return _Program(text, run=_replacing(keys, replace.group(3), replace.group(4), every, general))
    return _Program(text, run=general)


@dataclass(frozen=True)
class _Field:
    """One entity field: where its value goes and how it is computed (or why it cannot be)."""

    name: str  # "identifier", "properties.url", … (FieldFailure.field)
    key: str  # the key inside its section
    program: _Program | None
    unsupported: str | None = None


def _query_field(name: str, key: str, what: str) -> _Field:
    return _Field(name, key, None, f"{what} search queries are not supported by kiosk's catalog")


# ------------------------------------------------------------------------------ the compiled resource


class CompiledResource:
    """A resource's mapping, prepared once (:func:`compile_resource`); :meth:`map` runs it."""

    def __init__(self, resource: ResourceConfig, *, pool: JqPool | None = None) -> None:
        self.resource = resource
        self._pool = pool
        mappings = resource.port.entity.mappings
        port = resource.port
        prepare = _prepare

        self._selector = prepare(resource.selector.query)
        self._items = prepare(port.itemsToParse) if port.itemsToParse is not None else None
        self._items_name = port.itemsToParseName
        deletion = (
            deletion_path(port.itemsToParse) if port.itemsToParse and port.itemsToParseTopLevelTransform else None
        )
        self._delete = prepare(f"del({deletion})") if deletion is not None else None

        top: list[_Field] = []
        if isinstance(mappings.identifier, SearchQuery):
            top.append(_query_field("identifier", "identifier", "identifier"))
        else:
            top.append(_Field("identifier", "identifier", prepare(mappings.identifier)))
        top.append(_Field("blueprint", "blueprint", prepare(mappings.blueprint)))
        for name in ("title", "icon"):
            source = getattr(mappings, name)
            if source is not None:
                top.append(_Field(name, name, prepare(source)))
        if isinstance(mappings.team, SearchQuery):
            top.append(_query_field("team", "team", "team"))
        elif mappings.team is not None:
            top.append(_Field("team", "team", prepare(mappings.team)))
        self._top = top
        self._properties = [
            _Field(f"properties.{key}", key, prepare(source)) for key, source in mappings.properties.items()
        ]
        self._relations = [
            _query_field(f"relations.{key}", key, "relation")
            if isinstance(source, SearchQuery)
            else _Field(f"relations.{key}", key, prepare(source))
            for key, source in mappings.relations.items()
        ]
        #: Field names in mapping order: an entity's failures are listed in it.
        self._order = {f.name: n for n, f in enumerate((*self._top, *self._properties, *self._relations))}
        self._sections = (
            self._section(self._top, 0)[0],
            self._section(self._properties, 1)[0] if mappings.properties else None,
            self._section(self._relations, 2)[0] if mappings.relations else None,
        )
        self._elsewhere = [
            pair
            for number, fields in enumerate((self._top, self._properties, self._relations))
            for pair in self._section(fields, number)[1]
        ]

    @staticmethod
    def _section(
        fields: list[_Field], number: int
    ) -> tuple[tuple[dict[str, Any], list[tuple[str, Evaluator, str]]], list[tuple[int, _Field]]]:
        """A section's template (every key, in mapping order: constants filled in, the rest null),
        its in-process evaluators (key, evaluator, field name), and its fields that need the jq
        workers or cannot be mapped (section number, field)."""
        template: dict[str, Any] = {}
        runs: list[tuple[str, Evaluator, str]] = []
        elsewhere: list[tuple[int, _Field]] = []
        for f in fields:
            program = f.program
            template[f.key] = program.value if program is not None and program.constant else None
            if program is None or (not program.constant and program.run is None):
                elsewhere.append((number, f))
            elif program.run is not None:
                runs.append((f.key, program.run, f.name))
        return (template, runs), elsewhere

    # ------------------------------------------------------------------------------------ API

    def map(self, items: Sequence[Any]) -> MappedBatch:
        """Map ``items`` (raw items of this resource's kind) to entity documents, in item order.

        Raises :class:`kiosk.core.jq_engine.JqUnavailable` when a program needed the jq workers
        and none could take it (transient: the caller retries the batch or fails the kind)."""
        owners, entities, failures, filtered = self._run(items)
        made = [(owner, entity) for owner, entity in zip(owners, entities, strict=True) if entity is not None]
        return MappedBatch([entity for _, entity in made], failures, len(filtered), [owner for owner, _ in made])

    def warnings(self) -> list[FieldFailure]:
        """The fields mapped to null because their program does not compile (item -1: every item)."""
        return [
            FieldFailure(-1, f.name, f.program.broken, None)
            for f in (*self._top, *self._properties, *self._relations)
            if f.program is not None and f.program.broken is not None
        ]

    # ------------------------------------------------------------------------------ the work

    def _run(
        self, items: Sequence[Any]
    ) -> tuple[list[int], list[dict[str, Any] | None], list[FieldFailure], list[int]]:
        """(owner item of each input, entity of each input or None, failures, owner item of each
        input the selector left out)."""
        failures: list[FieldFailure] = []
        if self._items is None:
            inputs: Sequence[Any] = items
            owners = list(range(len(items)))
        else:
            inputs, owners = self._expand(items, failures)
        count = len(inputs)
        selector = self._selector
        kept: list[int]
        filtered: list[int] = []
        if selector.constant and selector.value is True:
            kept = list(range(count))
        else:
            kept = []
            for n, result in enumerate(self._each(selector, inputs, range(count))):
                if result.error is not None:
                    failures.append(FieldFailure(owners[n], "selector.query", result.error, None))
                elif result.value is True:
                    kept.append(n)
                elif result.value is False:
                    filtered.append(owners[n])
                else:
                    message = f"the selector query must give true or false, not {_describe(result.value)}"
                    failures.append(FieldFailure(owners[n], "selector.query", message, None))
        out = self._entities(inputs, kept, owners, failures)
        failures.sort(key=lambda failure: failure.item)
        return owners, out, failures, filtered

    def _expand(self, items: Sequence[Any], failures: list[FieldFailure]) -> tuple[list[Any], list[int]]:
        """``itemsToParse``: one input per element of each item's array (see the module docstring)."""
        assert self._items is not None
        arrays = self._each(self._items, items, range(len(items)))
        bases: list[JqResult] = (
            self._each(self._delete, items, range(len(items)))
            if self._delete is not None
            else [JqResult(item) for item in items]
        )
        inputs: list[Any] = []
        owners: list[int] = []
        name = self._items_name
        for index, (array, base) in enumerate(zip(arrays, bases, strict=True)):
            if array.error is not None:
                failures.append(FieldFailure(index, "itemsToParse", array.error, None))
                continue
            if not isinstance(array.value, list):
                failures.append(
                    FieldFailure(
                        index, "itemsToParse", f"itemsToParse must give an array, not {_describe(array.value)}", None
                    )
                )
                continue
            if base.error is not None or not isinstance(base.value, dict):
                problem = base.error or f"the item must be an object to hold .{name}, not {_describe(base.value)}"
                failures.append(FieldFailure(index, "itemsToParse", problem, None))
                continue
            for element in array.value:
                merged = dict(base.value)
                merged[name] = element
                inputs.append(merged)
                owners.append(index)
        return inputs, owners

    def _entities(
        self, inputs: Sequence[Any], kept: list[int], owners: list[int], failures: list[FieldFailure]
    ) -> list[dict[str, Any] | None]:
        """The entity of each kept input (None for the others, and for those that failed: their
        failures are appended to ``failures``).

        The hot loop of a resync: each section starts as a copy of its template (keys in mapping
        order, constants filled in), the in-process evaluators fill the rest; what needs libjq is
        noted and answered by the workers in one round trip afterwards."""
        out: list[dict[str, Any] | None] = [None] * len(inputs)
        errors: dict[int, dict[str, str]] = {}
        pending: list[tuple[int, int, str, str, str]] = []  # (input, section, key, field name, program)
        suspects: list[int] = []  # inputs whose identifier or blueprint is not (yet) a non-empty string
        top, properties, relations = self._sections
        for n in kept:
            data = inputs[n]
            entity = _filled(top, 0, data, n, errors, pending)
            if properties is not None:
                entity["properties"] = _filled(properties, 1, data, n, errors, pending)
            if relations is not None:
                entity["relations"] = _filled(relations, 2, data, n, errors, pending)
            out[n] = entity
            identifier, blueprint = entity["identifier"], entity["blueprint"]
            if not (type(identifier) is str and identifier and type(blueprint) is str and blueprint):
                suspects.append(n)
        if self._elsewhere:
            for n in kept:
                for section, f in self._elsewhere:
                    if f.program is None:
                        errors.setdefault(n, {})[f.name] = f.unsupported or "not supported"
                    else:
                        pending.append((n, section, f.key, f.name, f.program.text))
        if pending:
            texts = {f.name: f.program.text for f in (*self._top, *self._properties, *self._relations) if f.program}
            results = self._workers([(text or texts[name], inputs[n]) for n, _, _, name, text in pending])
            for (n, section, key, name, _), result in zip(pending, results, strict=True):
                if result.error is not None:
                    errors.setdefault(n, {})[name] = result.error
                    continue
                answered = out[n]
                assert answered is not None
                target = answered if section == 0 else answered["properties" if section == 1 else "relations"]
                target[key] = result.value
        # Only the inputs that may have failed are looked at again: the hot loop checked the rest.
        for n in sorted({*suspects, *errors, *(p[0] for p in pending)}):
            mapped = out[n]
            assert mapped is not None
            identifier, blueprint = mapped["identifier"], mapped["blueprint"]
            problems = errors.get(n)
            if problems is None and type(identifier) is str and identifier and type(blueprint) is str and blueprint:
                continue
            ident = identifier if type(identifier) is str and identifier else None
            required = {
                name: _required_problem(name, value)
                for name, value in (("identifier", identifier), ("blueprint", blueprint))
                if (type(value) is not str or not value) and (problems is None or name not in problems)
            }
            problems = {**required, **(problems or {})}
            order = self._order
            problems = dict(sorted(problems.items(), key=lambda pair: order.get(pair[0], len(order))))
            failures.extend(FieldFailure(owners[n], name, message, ident) for name, message in problems.items())
            out[n] = None
        return out

    # --------------------------------------------------------------------------- evaluation

    def _each(self, program: _Program, inputs: Sequence[Any], indexes: range) -> list[JqResult]:
        """``program`` over each of ``inputs[indexes]``: in process where it can be, the rest in
        one worker round trip."""
        if program.broken is not None:
            return [JqResult(error=program.broken) for _ in indexes]
        if program.constant:
            return [JqResult(program.value) for _ in indexes]
        results: list[JqResult | None] = []
        rest: list[int] = []
        run = program.run
        for n in indexes:
            result = answer_in_process(run, inputs[n]) if run is not None else None
            results.append(result)
            if result is None:  # deferred to jq, or no compiled program
                rest.append(n)
        if rest:
            answered = iter(self._workers([(program.text, inputs[n]) for n in rest]))
            return [result if result is not None else next(answered) for result in results]
        return [result for result in results if result is not None]

    def _workers(self, pairs: list[tuple[str, Any]]) -> list[JqResult]:
        """(program, input) pairs evaluated by the jq workers, in as few round trips as it takes:
        one, unless a limit stops a program on some input. That pair fails (its message is the
        limit's) and the others are evaluated again without it."""
        pool = self._pool or engine()
        programs = list(dict.fromkeys(program for program, _ in pairs))
        number = {program: i for i, program in enumerate(programs)}
        inputs = [data for _, data in pairs]
        results: list[JqResult | None] = [None] * len(pairs)
        todo = list(range(len(pairs)))
        while todo:
            try:
                answered = pool.evaluate(programs, inputs, [(number[pairs[i][0]], i) for i in todo])
            except JqError:  # an input jq cannot be given (not JSON): find it, one pair at a time
                for i in todo:
                    results[i] = self._alone(pool, pairs[i])
                break
            except JqStopped as stopped:
                where = stopped.index if stopped.index is not None and 0 <= stopped.index < len(todo) else None
                if where is None:  # no position known: the pairs one at a time
                    for i in todo:
                        results[i] = self._alone(pool, pairs[i])
                    break
                results[todo[where]] = JqResult(error=stopped.message)
                del todo[where]
                continue
            for i, result in zip(todo, answered, strict=True):
                results[i] = result
            break
        return [result if result is not None else JqResult(error="not evaluated") for result in results]

    @staticmethod
    def _alone(pool: JqPool, pair: tuple[str, Any]) -> JqResult:
        try:
            return pool.evaluate([pair[0]], [pair[1]])[0]
        except JqStopped as stopped:
            return JqResult(error=stopped.message)
        except JqError as exc:
            return JqResult(error=str(exc))


def compile_resource(resource: ResourceConfig, *, pool: JqPool | None = None) -> CompiledResource:
    """``resource``'s programs prepared once, for :meth:`CompiledResource.map` over many batches.

    ``pool`` is the jq engine for what cannot run in process (the process's :func:`engine` by
    default)."""
    return CompiledResource(resource, pool=pool)


def test_mapping(resource: ResourceConfig, examples: Sequence[Any]) -> list[ExampleResult]:
    """Each example mapped as Port's mapping editor shows it: its entities, or the jq error of each
    failing field, and the fields mapped to null because their program does not compile."""
    compiled = compile_resource(resource)
    owners, entities, failures, filtered = compiled._run(examples)
    warnings = compiled.warnings()
    out: list[ExampleResult] = []
    for index in range(len(examples)):
        mine = [entity for owner, entity in zip(owners, entities, strict=True) if owner == index and entity is not None]
        out.append(
            ExampleResult(
                example=index,
                entities=mine,
                failures=[failure for failure in failures if failure.item == index],
                filtered=filtered.count(index),
                warnings=[FieldFailure(index, w.field, w.message, None) for w in warnings],
            )
        )
    return out


test_mapping.__test__ = False  # type: ignore[attr-defined]  # a "test_" name pytest must not collect


# ------------------------------------------------------------------------------------ wording


def _filled(
    section: tuple[dict[str, Any], list[tuple[str, Evaluator, str]]],
    number: int,
    data: Any,
    n: int,
    errors: dict[int, dict[str, str]],
    pending: list[tuple[int, int, str, str, str]],
) -> dict[str, Any]:
    """Section ``number`` of input ``n``'s entity: a copy of its template with the in-process
    evaluators' values over ``data``. A jq error is noted in ``errors`` (by field name), a
    program the compiled evaluator defers to libjq in ``pending`` (answered by the workers)."""
    template, runs = section
    target = template.copy()
    for key, run, name in runs:
        try:
            target[key] = run(data)
        except JqRuntimeError as exc:
            errors.setdefault(n, {})[name] = first_line(str(exc))
        except Deferred:
            pending.append((n, number, key, name, ""))
    return target


def _describe(value: Any) -> str:
    """A result named in a failure: its JSON type and, when short, its text."""
    kind = json_type(value) or type(value).__name__
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return f"{kind} {str(value).lower() if isinstance(value, bool) else value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:39] + "…"
        return f"{kind} {shown!r}" if value else "an empty string"
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _required_problem(name: str, value: Any) -> str:
    return f"{name} must be a non-empty string, not {_describe(value)}: no entity is produced"
