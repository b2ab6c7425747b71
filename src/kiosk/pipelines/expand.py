"""Compile-time expansion of an Azure Pipelines YAML document, as Azure does before queueing a run.

A webhook-triggered run only happens if the pipeline expands: Azure evaluates every ``${{ }}``
(with the webhook body bound to ``parameters.<alias>``), applies ``if``/``each``/``insert``
directives, validates parameters and inlines templates, and silently queues nothing when any step
fails. The emulator does the same work and reports *why* it failed, with file, line and column.

Pure: templates are read through an injected loader (see :mod:`kiosk.pipelines.yaml_source`).
Input is the read-only positioned tree of :mod:`~kiosk.pipelines.yaml_source`, parsed once per text
and cached; output is new plain data (sharing nothing with the tree or the caller's payloads),
printable with :func:`dump_yaml`.
``$(var)`` macros and ``$[ ]`` runtime expressions are left as written: they belong to run time.

Decisions where Azure is silent or too involved to emulate are marked "Decision:" below.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kiosk.pipelines.errors import ExpressionError, PipelineError
from kiosk.pipelines.expressions import evaluate, find_expressions, is_truthy, render, substitute, to_string
from kiosk.pipelines.yaml_source import (
    Loader,
    Position,
    YamlMap,
    YamlSeq,
    directory_loader,
    dump_yaml,
    is_block_scalar,
    is_quoted_scalar,
    item_position,
    key_position,
    node_position,
    parse_yaml_cached,
    plain_key,
    resolve_path,
    to_plain,
)

__all__ = [
    "MAX_NESTING",
    "MAX_TEMPLATES",
    "MAX_YAML_BYTES",
    "ExpansionError",
    "ParameterError",
    "TemplateError",
    "dump_yaml",
    "expand_pipeline",
]

MAX_TEMPLATES: Final = 100
"""Azure's limit on template files per expansion."""
MAX_NESTING: Final = 20
"""Azure's limit on template nesting levels."""
MAX_YAML_BYTES: Final = 10 * 1024 * 1024
"""Azure's limit on the total size of YAML read (pipeline file plus templates)."""

TEMPLATE_LISTS: Final = frozenset({"steps", "jobs", "stages", "variables"})
"""Sequences in which ``- template: x.yml`` items are inlined."""

_LIST_TYPES: Final = {
    "steplist": "step",
    "joblist": "job",
    "stagelist": "stage",
    "deploymentlist": "deployment",
    "containerlist": "container",
}
_OBJECT_TYPES: Final = frozenset(_LIST_TYPES.values())
_INLINED_LISTS: Final = {"steplist": "steps", "joblist": "jobs", "deploymentlist": "jobs", "stagelist": "stages"}
"""Parameter types whose values may hold ``- template:`` references, and the section they inline."""
_PARAMETER_KEYS: Final = frozenset({"name", "displayName", "type", "default", "values"})
_EXTENDS_KEPT: Final = ("name", "trigger", "pr", "schedules", "resources")

_IF: Final = re.compile(r"if\b\s*(?P<cond>\S.*)", re.DOTALL)
_ELSEIF: Final = re.compile(r"elseif\b\s*(?P<cond>\S.*)", re.DOTALL)
_EACH: Final = re.compile(r"each\s+(?P<var>[A-Za-z_][A-Za-z0-9_]*)\s+in\s+(?P<coll>\S.*)", re.DOTALL)
_INT: Final = re.compile(r"[+-]?[0-9]+")
_EMPTY: Final = YamlMap({}, (1, 1), {})
"""The tree of an empty file."""
_FLOAT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class ExpansionError(PipelineError):
    """The document is structurally wrong for expansion (misplaced directive, bad key, ...)."""


class ParameterError(ExpansionError):
    """A pipeline or template parameter is missing, unknown, mistyped or not an allowed value."""


class TemplateError(ExpansionError):
    """A template reference cannot be inlined (bad shape, missing body, limits exceeded)."""


@dataclass(frozen=True)
class _Directive:
    kind: str  # "if" | "elseif" | "else" | "each" | "insert"
    expression: str  # the inner text, for error messages
    argument: str = ""  # condition or collection expression
    variable: str = ""  # loop variable of "each"


@dataclass
class _Where:
    """Position of the node being expanded: errors are attached here."""

    file: str
    line: int | None
    column: int | None


@dataclass
class _State:
    """Counters shared by one expansion, so the Azure limits apply to the whole run."""

    load: Loader
    templates: int = 0
    size: int = 0
    sources: dict[str, str] = field(default_factory=dict)  # file -> text, for block-scalar error lines


def _where(file: str, pos: tuple[int, int] | None) -> _Where:
    return _Where(file, pos[0] if pos else None, pos[1] if pos else None)


def _fail(cls: type[PipelineError], message: str, where: _Where, expression: str | None = None) -> PipelineError:
    return cls(message, file=where.file, line=where.line, column=where.column, expression=expression)


def _directive(key: Any) -> _Directive | None:
    """Recognise ``${{ if/elseif/else/each/insert }}`` keys (the whole key is one expression)."""
    if not isinstance(key, str) or "${{" not in key:
        return None
    text = key.strip()
    if not (text.startswith("${{") and text.endswith("}}")):
        return None
    inner = text[3:-2].strip()
    if match := _IF.fullmatch(inner):
        return _Directive("if", inner, _unwrap(match["cond"].strip()))
    if match := _ELSEIF.fullmatch(inner):
        return _Directive("elseif", inner, _unwrap(match["cond"].strip()))
    if inner == "else":
        return _Directive("else", inner)
    if inner == "insert":
        return _Directive("insert", inner)
    if match := _EACH.fullmatch(inner):
        return _Directive("each", inner, match["coll"].strip(), match["var"])
    if inner.split(" ", 1)[0] in ("if", "elseif", "each") or inner.startswith(("else", "insert")):
        return _Directive("malformed", inner)
    return None


def _unwrap(condition: str) -> str:
    """``if(cond)`` is accepted by Azure; the expression language has no grouping parentheses,
    so one pair wrapping the whole condition is removed (quoted text is skipped while matching)."""
    if not (condition.startswith("(") and condition.endswith(")")):
        return condition
    depth, quoted = 0, False
    for index, char in enumerate(condition):
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth == 0:
                return condition[1:-1].strip() if index == len(condition) - 1 else condition
    return condition


class _Expander:
    """Walks one file's parsed tree; a new instance per template file (its own ``file``).

    The tree is read-only and may be shared through the parse cache, so nothing here modifies it:
    every mapping and sequence produced is new, and values an expression inserts are copied.
    Positions travel as ``(line, column)`` tuples and become a :class:`_Where` only when an error
    is raised, because a pipeline has thousands of keys and almost never an error.
    """

    def __init__(self, state: _State, file: str, depth: int) -> None:
        self.state = state
        self.file = file
        self.depth = depth

    def at(self, pos: Position | None) -> _Where:
        return _where(self.file, pos)

    # ---------------------------------------------------------------- expressions in scalars

    def _locate(self, err: PipelineError, value: Any, where: _Where) -> PipelineError:
        """Turn an offset inside a scalar into a file position (exact for one-line and ``|`` scalars)."""
        if where.line is None or where.column is None:
            return err.located(where.file, where.line, where.column)
        text = str(value)
        offset = (err.column or 1) - 1
        if is_block_scalar(value):
            line = where.line + 1 + text[:offset].count("\n")
            lines = self.state.sources.get(self.file, "").splitlines()
            source = lines[line - 1] if 0 < line <= len(lines) else ""
            indent = len(source) - len(source.lstrip(" "))
            column = indent + offset - (text.rfind("\n", 0, offset) + 1) + 1
            return err.located(where.file, line, column)
        if "\n" not in text[:offset]:
            column = where.column + offset + (1 if is_quoted_scalar(value) else 0)
            return err.located(where.file, where.line, column)
        return err.located(where.file, where.line + text[:offset].count("\n"), where.column)

    def scalar(self, value: Any, ctx: Mapping[str, Any], pos: Position | None) -> Any:
        """A scalar: whole-scalar expression → raw value (structures kept), embedded → rendered text."""
        if not isinstance(value, str):
            return value  # None, bool, int, float: immutable
        if "${{" not in value:
            return str(value)  # a plain str for quoted and block scalars too
        try:
            result = substitute(str(value), ctx)
        except PipelineError as err:
            raise self._locate(err, value, self.at(pos)) from None
        # Structures come from parameters or payloads: copied, so the output never shares them.
        return copy.deepcopy(result) if isinstance(result, dict | list) else result

    def key(self, key: Any, ctx: Mapping[str, Any], pos: Position | None) -> str:
        """A mapping key must end up a string: a structure in key position is an error."""
        if not isinstance(key, str) or "${{" not in key:
            return plain_key(key)
        result = self.scalar(key, ctx, pos)
        if isinstance(result, str):
            return result
        expression = find_expressions(str(key))[0][2]
        try:
            return render(result, expression)
        except ExpressionError as err:
            where = self.at(pos)
            raise err.located(where.file, where.line, where.column) from None

    def condition(self, directive: _Directive, ctx: Mapping[str, Any], pos: Position | None) -> bool:
        try:
            return is_truthy(evaluate(directive.argument, ctx))
        except PipelineError as err:
            where = self.at(pos)
            raise err.located(where.file, where.line, where.column, expression=directive.expression) from None

    def collection(self, directive: _Directive, ctx: Mapping[str, Any], pos: Position | None) -> list[Any]:
        """``each`` iterates arrays item by item and objects as ``{key, value}`` pairs."""
        try:
            items = evaluate(directive.argument, ctx)
        except PipelineError as err:
            where = self.at(pos)
            raise err.located(where.file, where.line, where.column, expression=directive.expression) from None
        if items is None:
            return []
        if isinstance(items, Mapping):
            return [{"key": k, "value": v} for k, v in items.items()]
        if isinstance(items, list):
            return list(items)
        raise _fail(
            ExpansionError,
            f"'each' needs an array or an object, got {type(items).__name__}",
            self.at(pos),
            directive.expression,
        )

    # ---------------------------------------------------------------- structures

    def value(self, node: Any, ctx: Mapping[str, Any], pos: Position | None, parent_key: str | None = None) -> Any:
        if isinstance(node, YamlMap):
            if parent_key == "variables":
                return self.mapping(node, ctx, variables_block=True)
            return self.mapping(node, ctx)
        if isinstance(node, YamlSeq):
            out: list[Any] = []
            self.sequence(node, ctx, parent_key, out)
            return out
        return self.scalar(node, ctx, pos)

    def mapping(
        self,
        node: YamlMap,
        ctx: Mapping[str, Any],
        *,
        skip: frozenset[str] = frozenset(),
        done: Mapping[str, Any] | None = None,
        variables_block: bool = False,
    ) -> dict[str, Any]:
        """Expand a mapping; ``done`` holds values already expanded (top-level ``variables``).

        A ``variables:`` mapping (``variables_block``) is expanded entry by entry, each entry's
        value visible to the ``${{ variables.x }}`` of the entries after it (see
        :func:`_with_variables`).
        """
        out: dict[str, Any] = {}
        chain: bool | None = None  # None: no open if-chain; False: open, nothing taken; True: taken
        locations = node.locations
        for raw_key, raw_value in node.items():
            key_pos, value_pos = locations[raw_key]
            directive = _directive(raw_key) if isinstance(raw_key, str) and "${{" in raw_key else None
            if directive is None:
                chain = None
                if raw_key in skip:
                    continue
                # The common case (a plain text key) without a call.
                key = raw_key if type(raw_key) is str and "${{" not in raw_key else self.key(raw_key, ctx, key_pos)
                if done is not None and raw_key in done:
                    value = done[raw_key]
                else:
                    value = self.value(raw_value, ctx, value_pos, key)
                if key in out:
                    raise _fail(ExpansionError, f"key '{key}' is defined more than once", self.at(key_pos))
                out[key] = value
                if variables_block:
                    ctx = _with_variables(ctx, {key: value})
                continue
            chain, produced = self.directive(directive, chain, raw_value, ctx, key_pos, value_pos, None)
            merged = self._merge(produced, directive, value_pos, key_pos)
            for key, value in merged.items():
                self._put(out, key, value, key_pos)
            if variables_block and merged:
                ctx = _with_variables(ctx, merged)
        return out

    def _merge(
        self, produced: list[Any], directive: _Directive, body_pos: Position | None, key_pos: Position | None
    ) -> dict[str, Any]:
        """Merge the mappings a directive produced (one per taken branch or loop iteration)."""
        merged: dict[str, Any] = {}
        for item in produced:
            if item is None:
                continue
            if not isinstance(item, dict):
                raise _fail(
                    ExpansionError,
                    f"'{directive.kind}' in a mapping must produce a mapping, got {_kind_name(item)}",
                    self.at(body_pos),
                    directive.expression,
                )
            for key, value in item.items():
                self._put(merged, key, value, key_pos)
        return merged

    def _put(self, out: dict[str, Any], key: str, value: Any, pos: Position | None) -> None:
        if key in out:
            raise _fail(ExpansionError, f"key '{key}' is defined more than once", self.at(pos))
        out[key] = value

    def directive(
        self,
        directive: _Directive,
        chain: bool | None,
        body: Any,
        ctx: Mapping[str, Any],
        key_pos: Position | None,
        body_pos: Position | None,
        list_key: str | None,
    ) -> tuple[bool | None, list[Any]]:
        """Apply one directive; returns the new if-chain state and the expanded bodies produced.

        In a mapping (``list_key is None``) each produced body is a value to merge. In a sequence
        (``list_key`` is the template-list name or '') the result is the flat list of items to
        insert: a sequence body's items, or a scalar body's value (an array value is flattened).
        """
        kind = directive.kind
        if kind == "malformed":
            raise _fail(ExpansionError, "malformed template directive", self.at(key_pos), directive.expression)
        if kind in ("elseif", "else") and chain is None:
            raise _fail(
                ExpansionError,
                f"'{kind}' without a preceding 'if' or 'elseif'",
                self.at(key_pos),
                directive.expression,
            )
        bodies: list[Mapping[str, Any]] = []
        new_chain: bool | None = None
        if kind == "if":
            taken = self.condition(directive, ctx, key_pos)
            new_chain = taken
            if taken:
                bodies.append(ctx)
        elif kind == "elseif":
            new_chain = True
            if not chain:
                taken = self.condition(directive, ctx, key_pos)
                new_chain = taken
                if taken:
                    bodies.append(ctx)
        elif kind == "else":
            if not chain:
                bodies.append(ctx)
        elif kind == "insert":
            if list_key is not None:
                raise _fail(ExpansionError, "'insert' is only allowed in a mapping", self.at(key_pos))
            bodies.append(ctx)
        else:  # each
            for item in self.collection(directive, ctx, key_pos):
                bodies.append({**ctx, directive.variable: item})
        if list_key is None:
            return new_chain, [self.value(body, c, body_pos) for c in bodies]
        items: list[Any] = []
        for c in bodies:
            if isinstance(body, YamlSeq):
                self.sequence(body, c, list_key or None, items)
                continue
            value = self.value(body, c, body_pos)
            if isinstance(value, list):
                items.extend(value)
            elif value is not None:  # Decision: an empty directive body inserts nothing
                items.append(value)
        return new_chain, items

    def sequence(self, node: YamlSeq, ctx: Mapping[str, Any], parent_key: str | None, out: list[Any]) -> None:
        """Expand a sequence into ``out``: directives and expression items that yield arrays are
        flattened one level (as Azure does), and ``- template:`` items are inlined in step, job,
        stage and variable lists."""
        chain: bool | None = None
        list_key = parent_key if parent_key in TEMPLATE_LISTS else ""
        variables_block = list_key == "variables"
        defined_from = len(out)
        locations = node.locations
        for index, item in enumerate(node):
            if variables_block:  # what the items before this one defined, visible to it
                ctx = _with_variables(ctx, _variables_from(out[defined_from:]))
                defined_from = len(out)
            pos = locations[index]
            if isinstance(item, YamlMap) and len(item) == 1:
                (raw_key,) = item
                directive = _directive(raw_key) if isinstance(raw_key, str) and "${{" in raw_key else None
                if directive is not None:
                    key_pos, body_pos = item.locations[raw_key]
                    if directive.kind == "insert":
                        raise _fail(ExpansionError, "'insert' is only allowed in a mapping", self.at(key_pos))
                    body = item[raw_key]
                    if isinstance(body, YamlMap):
                        # A mapping body builds one item (Microsoft's `- ${{ each pair in step }}:`
                        # copy idiom); Decision: an item left empty (a false `if`) is dropped.
                        chain, produced = self.directive(directive, chain, body, ctx, key_pos, body_pos, None)
                        merged = self._merge(produced, directive, body_pos, key_pos)
                        if merged:
                            self._emit(merged, list_key, ctx, pos, out)
                        continue
                    chain, items = self.directive(directive, chain, body, ctx, key_pos, body_pos, list_key)
                    out.extend(items)
                    continue
            chain = None
            if isinstance(item, YamlMap):
                self._emit(self.mapping(item, ctx), list_key, ctx, pos, out)
            elif isinstance(item, YamlSeq):
                nested: list[Any] = []
                self.sequence(item, ctx, None, nested)
                out.append(nested)
            else:
                value = self.scalar(item, ctx, pos)
                if isinstance(value, list) and isinstance(item, str) and "${{" in item:
                    out.extend(value)
                else:
                    out.append(value)

    def _emit(self, item: dict[str, Any], list_key: str, ctx: Mapping[str, Any], pos: Position, out: list[Any]) -> None:
        """Append one expanded mapping item, inlining it when it is a template reference."""
        if list_key and "template" in item:
            out.extend(self.include(list_key, item, ctx, self.at(pos)))
        else:
            out.append(item)

    # ---------------------------------------------------------------- templates

    def include(self, list_key: str, ref: dict[str, Any], ctx: Mapping[str, Any], where: _Where) -> list[Any]:
        """Inline ``- template: path`` in a ``steps``/``jobs``/``stages``/``variables`` list."""
        extra = sorted(set(ref) - {"template", "parameters"})
        if extra:
            raise _fail(TemplateError, f"unexpected key(s) next to 'template': {', '.join(extra)}", where)
        body = self.template(ref.get("template"), ref.get("parameters"), ctx, where)
        if list_key not in body:
            raise _fail(TemplateError, f"template '{ref['template']}' has no '{list_key}' section", where)
        items = body[list_key]
        if list_key == "variables":
            return _variable_list(items, where)
        if items is None:
            return []
        if not isinstance(items, list):
            raise _fail(TemplateError, f"template '{ref['template']}': '{list_key}' must be a list", where)
        return items

    def template(self, path: Any, given: Any, ctx: Mapping[str, Any], where: _Where) -> dict[str, Any]:
        """Load, check parameters of and expand one template file; returns its expanded body."""
        if not isinstance(path, str):
            raise _fail(TemplateError, "the template path must be a string", where)
        if given is not None and not isinstance(given, dict):
            raise _fail(ParameterError, "template 'parameters' must be a mapping", where)
        if self.depth + 1 > MAX_NESTING:
            raise _fail(TemplateError, f"templates nest more than {MAX_NESTING} levels (Azure's limit)", where)
        self.state.templates += 1
        if self.state.templates > MAX_TEMPLATES:
            raise _fail(TemplateError, f"more than {MAX_TEMPLATES} template files (Azure's limit)", where)
        try:
            resolved = resolve_path(self.file, path)
            text = self.state.load(resolved)
        except PipelineError as err:
            raise err.located(where.file, where.line, where.column) from None
        except (OSError, KeyError) as err:
            raise _fail(TemplateError, f"template '{path}' cannot be read: {err}", where) from None
        child = _Expander(self.state, resolved, self.depth + 1)
        root = child.parse(text)
        variables = ctx.get("variables", {})
        given = self.inline_list_parameters(root, given or {}, ctx, where)
        params = child.parameters(root, given, where, {})
        return child.document(root, {"parameters": params, "variables": variables}, where)

    def inline_list_parameters(
        self, root: YamlMap, given: dict[str, Any], ctx: Mapping[str, Any], where: _Where
    ) -> dict[str, Any]:
        """Inline ``- template:`` items of the values given for a template's list parameters.

        Decision: a ``stepList``/``jobList``/``stageList``/``deploymentList`` value may reference
        templates (``steps: [- template: build.yml]``); they are inlined here, by the file passing
        the value, so paths resolve against the file that wrote them and the receiving template
        (an ``each step in parameters.steps`` check in an extends template) sees the real steps.
        """
        declared = root.get("parameters")
        if not given or not isinstance(declared, YamlSeq):
            return given
        inlined = dict(given)
        for decl in declared:
            if not isinstance(decl, YamlMap) or not isinstance(decl.get("name"), str):
                continue  # reported by parameters()
            list_key = _INLINED_LISTS.get(str(decl.get("type", "")).strip().lower())
            value = given.get(decl["name"])
            if list_key is None or not isinstance(value, list):
                continue
            if any(isinstance(item, dict) and "template" in item for item in value):
                items: list[Any] = []
                for item in value:
                    if isinstance(item, dict) and "template" in item:
                        items.extend(self.include(list_key, item, ctx, where))
                    else:
                        items.append(item)
                inlined[decl["name"]] = items
        return inlined

    def parse(self, text: str) -> YamlMap:
        self.state.size += len(text) if text.isascii() else len(text.encode("utf-8"))
        if self.state.size > MAX_YAML_BYTES:
            raise PipelineError(
                f"more than {MAX_YAML_BYTES // (1024 * 1024)} MB of YAML in total (Azure's limit)", file=self.file
            )
        self.state.sources[self.file] = text
        root = parse_yaml_cached(text, self.file)
        if root is None:
            return _EMPTY
        if not isinstance(root, YamlMap):
            raise ExpansionError("a pipeline or template file must be a mapping", file=self.file, line=1, column=1)
        return root

    def document(self, root: YamlMap, ctx: dict[str, Any], ref_where: _Where | None) -> dict[str, Any]:
        """Expand a whole file: top-level ``variables`` first (they feed ``variables.*``), then the rest."""
        done: dict[str, Any] = {}
        if "variables" in root:
            done["variables"] = self.value(root["variables"], ctx, root.value_position("variables"), "variables")
            if ref_where is None:  # the pipeline file itself: its variables become compile-time values
                defined = _variables_from(done["variables"])
                ctx = {**ctx, "variables": {**ctx.get("variables", {}), **defined}}
        doc = self.mapping(root, ctx, skip=frozenset({"parameters"}), done=done)
        if "extends" in doc:
            doc = self.extends(root, doc, ctx)
        return doc

    def extends(self, root: YamlMap, doc: dict[str, Any], ctx: Mapping[str, Any]) -> dict[str, Any]:
        """``extends: {template, parameters}``: the template's expansion replaces the document."""
        where = _where(self.file, key_position(root, "extends") if "extends" in root else node_position(root))
        spec = doc["extends"]
        if not isinstance(spec, dict) or "template" not in spec:
            raise _fail(TemplateError, "'extends' needs a 'template' key", where)
        extra = sorted(set(spec) - {"template", "parameters"})
        if extra:
            raise _fail(TemplateError, f"unexpected key(s) in 'extends': {', '.join(extra)}", where)
        body = self.template(spec["template"], spec.get("parameters"), ctx, where)
        # Decision: the including file keeps its identity and triggers; other keys it defines
        # alongside 'extends' are merged in too, and a clash with the template is an error.
        result: dict[str, Any] = {}
        for key, value in doc.items():
            if key != "extends":
                result[key] = value
        for key, value in body.items():
            if key in result and key not in _EXTENDS_KEPT:
                raise _fail(TemplateError, f"'{key}' is defined both in the pipeline and its extends template", where)
            result.setdefault(key, value)
        return result

    # ---------------------------------------------------------------- parameters

    def parameters(
        self, root: YamlMap, given: Mapping[str, Any], where: _Where, reserved: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Check ``given`` against the file's ``parameters:`` declarations; returns the bound values.

        ``reserved`` are names bound by other means (webhook aliases) that a declaration may not reuse.
        """
        declared = root.get("parameters")
        params: dict[str, Any] = {}
        decl_where = _where(self.file, key_position(root, "parameters") if "parameters" in root else None)
        if declared is None:
            pass
        elif isinstance(declared, YamlMap):
            # Old-style template parameters: name → default, no types.
            for name in declared:
                params[plain_key(name)] = to_plain(declared[name])
        elif isinstance(declared, YamlSeq):
            for index, decl in enumerate(declared):
                item_where = _where(self.file, item_position(declared, index))
                name, value = self._parameter(decl, given, item_where)
                if name in params or name in reserved:
                    raise _fail(ParameterError, f"parameter '{name}' is declared more than once", item_where)
                params[name] = value
        else:
            raise _fail(ParameterError, "'parameters' must be a list of declarations", decl_where)
        if isinstance(declared, YamlMap):
            for name, value in given.items():
                if name not in params:
                    raise _fail(ParameterError, f"unexpected parameter '{name}'", where)
                params[name] = value
        else:
            unknown = sorted(set(given) - set(params))
            if unknown:
                raise _fail(ParameterError, f"unexpected parameter(s): {', '.join(unknown)}", where)
        params.update(reserved)
        return params

    def _parameter(self, decl: Any, given: Mapping[str, Any], where: _Where) -> tuple[str, Any]:
        if not isinstance(decl, YamlMap) or not isinstance(decl.get("name"), str):
            raise _fail(ParameterError, "a parameter declaration needs a 'name'", where)
        name = str(decl["name"])
        extra = sorted(str(k) for k in decl if k not in _PARAMETER_KEYS)
        if extra:
            raise _fail(ParameterError, f"parameter '{name}': unknown key(s) {', '.join(extra)}", where)
        type_name = str(decl.get("type", "")).strip()
        if name in given:
            value = given[name]
        elif "default" in decl:
            value = to_plain(decl["default"])
        else:
            raise _fail(ParameterError, f"a value for required parameter '{name}' was not provided", where)
        value = _coerce(type_name, value, name, where)
        allowed = decl.get("values")
        if allowed is not None:
            if not isinstance(allowed, YamlSeq):
                raise _fail(ParameterError, f"parameter '{name}': 'values' must be a list", where)
            choices = []
            for choice in to_plain(allowed):
                try:
                    choices.append(_coerce(type_name, choice, name, where))
                except ParameterError:
                    continue
            if not any(_same(value, choice) for choice in choices):
                shown = ", ".join(str(c) for c in to_plain(allowed))
                raise _fail(ParameterError, f"parameter '{name}': value '{value}' is not one of: {shown}", where)
        return name, value


def _same(left: Any, right: Any) -> bool:
    return type(left) is type(right) and left == right


def _kind_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a sequence"
    return "a scalar"


def _coerce(type_name: str, value: Any, name: str, where: _Where) -> Any:
    """Azure's parameter type checks, with its conversions (``'true'`` is a boolean, ``'3'`` a number)."""
    kind = type_name.lower()

    def bad(expected: str) -> ParameterError:
        message = f"parameter '{name}' must be {expected}, got {value!r}"
        return ParameterError(message, file=where.file, line=where.line, column=where.column)

    if kind == "":  # Decision: an untyped declaration accepts anything, as 'object' does.
        return value
    if kind == "string":
        if isinstance(value, dict | list):
            raise bad("a string")
        return value if isinstance(value, str) else to_string(value)
    if kind == "number":
        if isinstance(value, bool) or value is None:
            raise bad("a number")
        if isinstance(value, int | float):
            return value
        if isinstance(value, str):
            text = value.strip()
            if _INT.fullmatch(text):
                return int(text)
            if _FLOAT.fullmatch(text):
                return float(text)
        raise bad("a number")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise bad("a boolean")
    if kind == "object":
        return value
    if kind in _OBJECT_TYPES:
        if not isinstance(value, dict):
            raise bad(f"a {kind} (a mapping)")
        return value
    if kind in _LIST_TYPES:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise bad(f"a {_LIST_TYPES[kind]}List (a list of mappings)")
        return value
    raise _fail(ParameterError, f"not supported: parameter type '{type_name}' (parameter '{name}')", where)


def _variable_list(items: Any, where: _Where) -> list[Any]:
    """Normalise a variables section (mapping or list form) to list form for inlining."""
    if items is None:
        return []
    if isinstance(items, dict):
        return [{"name": k, "value": v} for k, v in items.items()]
    if isinstance(items, list):
        return items
    raise _fail(TemplateError, "'variables' must be a mapping or a list", where)


def _with_variables(ctx: Mapping[str, Any], defined: Mapping[str, Any]) -> Mapping[str, Any]:
    """``ctx`` with ``defined`` added to its compile-time ``variables`` (a new context).

    Azure evaluates a ``variables:`` block entry by entry: ``${{ variables.x }}`` (and
    ``variables['x']``, and the ``${{ if }}``/``${{ each }}`` directives) in an entry sees the
    entries defined before it in the same block (names and values, from templates too), and
    not the ones after it. Runtime ``$[ ]`` and macro ``$( )`` references are left to run time.
    """
    if not defined:
        return ctx
    return {**ctx, "variables": {**ctx.get("variables", {}), **defined}}


def _variables_from(section: Any) -> dict[str, Any]:
    """Compile-time variable values defined by a variables section (groups are runtime-only)."""
    if isinstance(section, dict):
        return dict(section)
    out: dict[str, Any] = {}
    if isinstance(section, list):
        for item in section:
            if isinstance(item, dict) and "name" in item and "value" in item:
                out[str(item["name"])] = item["value"]
    return out


def _webhook_aliases(root: YamlMap) -> list[str]:
    resources = root.get("resources")
    if not isinstance(resources, YamlMap):
        return []
    hooks = resources.get("webhooks")
    if not isinstance(hooks, YamlSeq):
        return []
    return [str(h["webhook"]) for h in hooks if isinstance(h, YamlMap) and isinstance(h.get("webhook"), str)]


def expand_pipeline(
    text: str,
    *,
    file: str = "azure-pipelines.yml",
    parameters: Mapping[str, Any] | None = None,
    webhook_payloads: Mapping[str, Any] | None = None,
    variables: Mapping[str, Any] | None = None,
    load: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Expand a pipeline document the way Azure does before queueing a run.

    ``parameters`` are the run's template parameters (checked against the declarations);
    ``webhook_payloads`` binds each ``resources.webhooks`` alias to its JSON body as
    ``parameters.<alias>``; ``variables`` are queue-time values for ``${{ variables.x }}``
    (YAML-defined top-level variables win, as in Azure). ``load`` reads template files by
    root-relative path; by default they are read from the current directory.
    """
    state = _State(load=load if load is not None else directory_loader(Path.cwd()))
    expander = _Expander(state, file, 0)
    root = expander.parse(text)
    aliases = _webhook_aliases(root)
    payloads = dict(webhook_payloads or {})
    unknown = sorted(set(payloads) - set(aliases))
    if unknown:
        raise ParameterError(
            f"no webhook resource named {', '.join(unknown)} (declared: {', '.join(aliases) or 'none'})", file=file
        )
    # Not copied: expressions only read them, and what they insert into the output is copied.
    reserved = {alias: payloads.get(alias) for alias in aliases}
    top = _where(file, key_position(root, "parameters") if "parameters" in root else (1, 1))
    params = expander.parameters(root, dict(parameters or {}), top, reserved)
    ctx: dict[str, Any] = {"parameters": params, "variables": dict(variables or {})}
    return expander.document(root, ctx, None)
