"""The jq that mappings use, compiled once into Python closures and evaluated in process.

A resync maps every item through the same few mapping programs (Ocean's defaults:
``.id | gsub(" "; "")``, ``.fields."System.Title"``, ``.__project.id + "/" + (.id | tostring)``).
Each one sent to a jq worker (:mod:`kiosk.core.jq_engine`) costs a round trip, and libjq itself
costs more per call than the few dictionary lookups most mappings are. This module compiles the
subset of jq those programs are written in into nested Python closures, once per program, so
they can run in the server process: the subset has no recursion, no loops but over the input's
own arrays and objects, and no way to grow a value beyond a small multiple of the input, so it
is bounded by construction and needs none of the worker's limits. No user text is ever given
to ``eval``/``exec``: the parser builds closures from a fixed set of Python functions.

Two ways out keep the answers jq's own:

* :class:`NotCompilable` (from :func:`compile_program`): the program uses something outside the
  subset (``reduce``, ``def``, ``..``, ``@base64``, regex syntax whose meaning differs between
  Oniguruma and Python's ``re``, …) or that libjq would reject. The caller uses libjq instead.
* :class:`Deferred` (from :meth:`CompiledProgram.run`): this *input* meets a case whose answer
  depends on libjq details not reproduced here — printing a float (jq 1.7+ keeps input
  literals), integers past 2^53 (jq holds doubles), an error message quoting a long or
  fractional value, a regex match of the empty string — or one that would cost more than the
  in-process budgets allow (:data:`STEP_BUDGET` steps, values of :data:`SIZE_BUDGET` items, texts
  longer than a regex's backtracking bound, inputs nested past Python's stack). The caller
  evaluates that one pair with libjq, whose workers have a time and a memory limit.

Everything else follows jq exactly: a program yields a stream of values; errors carry libjq's
message text (:class:`JqRuntimeError`); integral results come back as ``int`` as the ``jq``
bindings give them; object keys keep jq's order.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kiosk.core.value_kinds import json_type

__all__ = [
    "CompiledProgram",
    "Deferred",
    "JqRuntimeError",
    "NotCompilable",
    "compile_program",
]


class NotCompilable(Exception):
    """The program is outside the compiled subset: evaluate it with libjq."""


class Deferred(Exception):
    """This input needs libjq's own answer (see the module docstring); the program is fine."""


class JqRuntimeError(ValueError):
    """The program failed on its input; the message is libjq's."""


#: Bindings of ``$name`` variables given by the caller, by name without the ``$``.
Env = Mapping[str, Any]
#: Steps one evaluation may take in process (each value handed on by a pipe, each combination
#: a product forms): past it the evaluation is deferred to libjq's workers and their time limit.
STEP_BUDGET = 200_000
#: The longest string, array or object one operation may build in process (characters or items).
SIZE_BUDGET = 1 << 22


class _Context:
    """One evaluation's variables and step count. A program cannot loop, but products such as
    ``{a: .[], b: .[], c: .[]}`` grow polynomially with the input: the count bounds them."""

    __slots__ = ("steps", "variables")

    def __init__(self, variables: Env) -> None:
        self.variables = variables
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > STEP_BUDGET:
            raise Deferred(f"more than {STEP_BUDGET} steps")


#: A compiled filter: the input and the evaluation's context in, jq's output stream out.
Filter = Callable[[Any, _Context], Iterator[Any]]

#: The largest integer a double holds exactly; past it jq's answers depend on its number model.
_EXACT = 2**53
#: libjq quotes a value in an error message whole up to this many bytes, else truncated.
_QUOTED_BYTES = 29


# ----------------------------------------------------------------------------- values, as jq sees them


def _kind(value: Any) -> str:
    """jq's type name for ``value``; what JSON does not hold is left to libjq."""
    kind = json_type(value)
    if kind is None:
        raise Deferred(f"not a JSON value: {type(value).__name__}")
    return kind


def _truthy(value: Any) -> bool:
    return value is not None and value is not False


def _number(value: Any) -> float:
    """A number operand as the double jq computes with (big integers are jq's to judge)."""
    if isinstance(value, int):
        if -_EXACT <= value <= _EXACT:
            return float(value)
        raise Deferred("integer past 2^53")
    if not math.isfinite(value):
        raise Deferred("non-finite number")
    return float(value)


def _result_number(number: float) -> int | float:
    """A computed double as the bindings hand it over: integral ones as ``int``."""
    if not math.isfinite(number):
        raise Deferred("non-finite result")
    if number.is_integer() and -_EXACT <= number <= _EXACT:
        return int(number)
    return number


def _output(value: Any) -> Any:
    """An output value as the ``jq`` bindings return it (integral numbers as ``int``)."""
    if value is None or value is True or value is False or isinstance(value, str):
        return value
    if isinstance(value, int):
        if -_EXACT <= value <= _EXACT:
            return value
        raise Deferred("integer past 2^53")
    if isinstance(value, float):
        return _result_number(value)
    if isinstance(value, list):
        return [_output(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise Deferred("an object key that is not a string")
        return {key: _output(item) for key, item in value.items()}
    raise Deferred(f"not a JSON value: {type(value).__name__}")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _dump(value: Any) -> str:
    """``value`` as jq's ``tojson`` writes it (numbers only where that is certain)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return '"' + _NEEDS_ESCAPE.sub(_escape_char, value) + '"'
    if isinstance(value, int):
        if -_EXACT <= value <= _EXACT:
            return str(value)
        raise Deferred("integer past 2^53")
    if isinstance(value, float):
        raise Deferred("printing a float (jq 1.7+ prints an input number as it was written)")
    if isinstance(value, list):
        return "[" + ",".join(_dump(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(_dump(key) + ":" + _dump(item) for key, item in value.items()) + "}"
    raise Deferred(f"not a JSON value: {type(value).__name__}")


def _quoted(value: Any) -> str:
    """``kind (value)`` as libjq's error messages quote a value."""
    text = _dump(value)
    if len(text.encode()) > _QUOTED_BYTES:
        raise Deferred("error message quoting a long value")
    return f"{_kind(value)} ({text})"


def _tostring(value: Any) -> str:
    return value if isinstance(value, str) else _dump(value)


_ORDER = {"null": 0, "boolean": 1, "number": 3, "string": 4, "array": 5, "object": 6}


def _rank(value: Any) -> int:
    if value is True:
        return 2
    return _ORDER[_kind(value)]


def _compare(left: Any, right: Any) -> int:
    """jq's total order of values (``jv_cmp``): -1, 0 or 1."""
    rank_left, rank_right = _rank(left), _rank(right)
    if rank_left != rank_right:
        return -1 if rank_left < rank_right else 1
    if rank_left == 3:
        a, b = _number(left), _number(right)
        return (a > b) - (a < b)
    if rank_left == 4:
        return int(left > right) - int(left < right)
    if rank_left == 5:
        for a, b in zip(left, right, strict=False):
            order = _compare(a, b)
            if order:
                return order
        return (len(left) > len(right)) - (len(left) < len(right))
    if rank_left == 6:
        keys_left, keys_right = sorted(left), sorted(right)
        if keys_left != keys_right:
            return (keys_left > keys_right) - (keys_left < keys_right)
        for key in keys_left:
            order = _compare(left[key], right[key])
            if order:
                return order
    return 0


# ------------------------------------------------------------------------------------ operators


def _add(left: Any, right: Any) -> Any:
    if left is None:
        return right
    if right is None:
        return left
    kind_left, kind_right = _kind(left), _kind(right)
    if kind_left == kind_right:
        if kind_left == "number":
            return _result_number(_number(left) + _number(right))
        if kind_left in ("string", "array"):
            return _sized(left + right)
        if kind_left == "object":
            return _sized({**left, **right})
    raise JqRuntimeError(f"{_quoted(left)} and {_quoted(right)} cannot be added")


def _sized(value: Any) -> Any:
    if len(value) > SIZE_BUDGET:
        raise Deferred(f"a value of more than {SIZE_BUDGET} items")
    return value


def _subtract(left: Any, right: Any) -> Any:
    kind_left, kind_right = _kind(left), _kind(right)
    if kind_left == kind_right == "number":
        return _result_number(_number(left) - _number(right))
    if kind_left == kind_right == "array":
        return [item for item in left if all(_compare(item, other) != 0 for other in right)]
    raise JqRuntimeError(f"{_quoted(left)} and {_quoted(right)} cannot be subtracted")


def _deep_merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    merged = dict(left)
    for key, value in right.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _multiply(left: Any, right: Any) -> Any:
    kind_left, kind_right = _kind(left), _kind(right)
    if kind_left == kind_right == "number":
        return _result_number(_number(left) * _number(right))
    if kind_left == kind_right == "object":
        return _deep_merge(left, right)
    if {kind_left, kind_right} == {"string", "number"}:
        raise Deferred("repeating a string")
    raise JqRuntimeError(f"{_quoted(left)} and {_quoted(right)} cannot be multiplied")


def _divide(left: Any, right: Any) -> Any:
    kind_left, kind_right = _kind(left), _kind(right)
    if kind_left == kind_right == "number":
        divisor = _number(right)
        if divisor == 0:
            raise JqRuntimeError(f"{_quoted(left)} and {_quoted(right)} cannot be divided because the divisor is zero")
        return _result_number(_number(left) / divisor)
    if kind_left == kind_right == "string":
        return _split(left, right)
    raise JqRuntimeError(f"{_quoted(left)} and {_quoted(right)} cannot be divided")


def _modulo(left: Any, right: Any) -> Any:
    kind_left, kind_right = _kind(left), _kind(right)
    if kind_left == kind_right == "number":
        dividend, divisor = int(_number(left)), int(_number(right))
        if divisor == 0:
            raise JqRuntimeError(
                f"{_quoted(left)} and {_quoted(right)} cannot be divided (remainder) because the divisor is zero"
            )
        remainder = abs(dividend) % abs(divisor)
        return -remainder if dividend < 0 else remainder
    raise JqRuntimeError(f"{_quoted(left)} and {_quoted(right)} cannot be divided (remainder)")


def _equal(left: Any, right: Any) -> bool:
    return _compare(left, right) == 0


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add,
    "-": _subtract,
    "*": _multiply,
    "/": _divide,
    "%": _modulo,
    "==": _equal,
    "!=": lambda a, b: not _equal(a, b),
    "<": lambda a, b: _compare(a, b) < 0,
    "<=": lambda a, b: _compare(a, b) <= 0,
    ">": lambda a, b: _compare(a, b) > 0,
    ">=": lambda a, b: _compare(a, b) >= 0,
}


# ------------------------------------------------------------------------------------ indexing


def _index(value: Any, key: Any) -> Any:
    if isinstance(key, str) and isinstance(value, dict):
        return value.get(key)
    if isinstance(key, (int, float)) and not isinstance(key, bool) and isinstance(value, list):
        position = _whole(key)
        if position < 0:
            position += len(value)
        return value[position] if 0 <= position < len(value) else None
    if value is None and (isinstance(key, str) or (isinstance(key, (int, float)) and not isinstance(key, bool))):
        return None
    if isinstance(key, (list, dict)) or (value is None and key is None):
        raise Deferred("indexing with an array, an object or null")
    raise JqRuntimeError(f"Cannot index {_kind(value)} with {_kind(key)} ({_dump_short(key)})")


def _whole(number: Any) -> int:
    """An array position: fractional ones are jq's to round."""
    as_double = _number(number)
    if not as_double.is_integer():
        raise Deferred("a fractional array index")
    return int(as_double)


def _dump_short(value: Any) -> str:
    text = _dump(value)
    if len(text.encode()) > _QUOTED_BYTES:
        raise Deferred("error message quoting a long value")
    return text


def _slice(value: Any, start: Any, end: Any) -> Any:
    if value is None:
        return None
    bounds: list[int | None] = []
    for bound in (start, end):
        if bound is None:
            bounds.append(None)
        elif isinstance(bound, int) and not isinstance(bound, bool) and -_EXACT <= bound <= _EXACT:
            bounds.append(bound)
        else:
            raise Deferred("a slice bound that is not an integer")
    if isinstance(value, (list, str)):
        return value[bounds[0] : bounds[1]]
    raise Deferred("slicing something other than an array, a string or null")


def _iterate(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        return iter(value)
    if isinstance(value, dict):
        return iter(value.values())
    raise JqRuntimeError(f"Cannot iterate over {_quoted(value)}")


# ------------------------------------------------------------------------------------ builtins


def _length(value: Any) -> Any:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise JqRuntimeError(f"{_quoted(value)} has no length")
    if isinstance(value, (int, float)):
        return _result_number(abs(_number(value)))
    return len(value)


def _keys(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted(value)
    if isinstance(value, list):
        return list(range(len(value)))
    raise JqRuntimeError(f"{_quoted(value)} has no keys")


def _has(value: Any, key: Any) -> bool:
    if value is None:
        if isinstance(key, str):
            return False
        raise Deferred("has() on null with a key other than a string")
    if isinstance(value, dict) and isinstance(key, str):
        return key in value
    if isinstance(value, list) and isinstance(key, (int, float)) and not isinstance(key, bool):
        return 0 <= _whole(key) < len(value)
    raise JqRuntimeError(f"Cannot check whether {_kind(value)} has a {_kind(key)} key")


def _string_test(name: str) -> Callable[[Any, Any], Any]:
    def check(value: Any, affix: Any) -> bool:
        if not isinstance(value, str) or not isinstance(affix, str):
            raise JqRuntimeError(f"{name}() requires string inputs")
        return value.startswith(affix) if name == "startswith" else value.endswith(affix)

    return check


def _ltrimstr(value: Any, prefix: Any) -> Any:
    if not isinstance(value, str) or not isinstance(prefix, str):
        raise JqRuntimeError("startswith() requires string inputs")
    return value[len(prefix) :] if value.startswith(prefix) else value


def _rtrimstr(value: Any, suffix: Any) -> Any:
    if not isinstance(value, str) or not isinstance(suffix, str):
        raise JqRuntimeError("endswith() requires string inputs")
    if not suffix:
        raise Deferred("trimming the empty string")
    return value[: len(value) - len(suffix)] if value.endswith(suffix) else value


def _split(value: Any, separator: Any) -> Any:
    if not isinstance(value, str) or not isinstance(separator, str):
        raise JqRuntimeError("split input and separator must be strings")
    if not separator:
        raise Deferred("splitting on the empty string")
    return value.split(separator) if value else []


def _join(value: Any, separator: Any) -> Any:
    joined: Any = None
    for item in _iterate(value):
        joined = "" if joined is None else _add(joined, separator)
        if item is None:
            piece: Any = ""
        elif isinstance(item, str):
            piece = item
        elif isinstance(item, (bool, int, float)):
            piece = _dump(item)
        else:
            piece = item
        joined = _add(joined, piece)
    return "" if joined is None else joined


def _ascii_case(upper: bool) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if not isinstance(value, str):
            raise JqRuntimeError("explode input must be a string")
        table = _UPPER if upper else _LOWER
        return value.translate(table)

    return convert


_UPPER = {code: code - 32 for code in range(ord("a"), ord("z") + 1)}
_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}
_INTEGER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]{0,15})")


def _tonumber(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if _INTEGER_TEXT.fullmatch(value) and value != "-0" and abs(int(value)) <= _EXACT:
            return int(value)
        raise Deferred("number text other than a plain integer")
    raise JqRuntimeError(f"{_quoted(value)} cannot be parsed as a number")


def _to_entries(value: Any) -> Any:
    if isinstance(value, dict):
        return [{"key": key, "value": item} for key, item in value.items()]
    if isinstance(value, list):
        return [{"key": index, "value": item} for index, item in enumerate(value)]
    raise JqRuntimeError(f"{_quoted(value)} has no keys")


_ENTRY_NAMES = {"k", "name", "Name", "K", "Key", "v"}


def _from_entries(value: Any) -> Any:
    built: dict[str, Any] = {}
    for entry in _iterate(value):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("key"), str)
            or "value" not in entry
            or _ENTRY_NAMES.intersection(entry)
        ):
            raise Deferred("an entry other than {key: string, value: …}")
        built[entry["key"]] = entry["value"]
    return built


def _type(value: Any) -> str:
    return _kind(value)


# ------------------------------------------------------------------------------------ regular expressions

#: Characters that are literal in both Oniguruma (jq's Perl_NT syntax) and Python outside classes.
_REGEX_ESCAPABLE = set(".*+?()[]{}|\\^$/-")


#: Backtracking steps a regex may take in process, as estimated by :func:`_translate_regex`.
REGEX_WORK = 10_000_000


@dataclass(frozen=True)
class _RegexShape:
    """A translated pattern and what bounds its backtracking: with quantifiers on single atoms
    only (never on groups, so none nest), matching a text of n characters takes at most about
    ``n ** (unbounded + 1) * 2 ** branches`` steps."""

    python: str
    unbounded: int
    branches: int


def _translate_regex(pattern: str) -> _RegexShape:
    """``pattern`` as a Python regex with the same meaning, for the syntax both engines read
    alike: literals, ``.``, ``* + ?`` (lazy too) and ``{n}``/``{n,}``/``{n,m}`` on a single atom,
    groups (named too) without a quantifier, alternation, ``^``/``$`` and plain bracket classes.
    Anything else is not compilable: other syntax may mean something else to Oniguruma, and a
    quantified group can backtrack exponentially, which in process nothing would stop."""
    out: list[str] = []
    position = 0
    length = len(pattern)
    unbounded = branches = 0
    after_atom = False
    while position < length:
        char = pattern[position]
        quantifier = False
        if char == "\\":
            if position + 1 >= length or pattern[position + 1] not in _REGEX_ESCAPABLE:
                raise NotCompilable(f"regex escape {pattern[position : position + 2]!r}")
            out.append(re.escape(pattern[position + 1]))
            position += 2
        elif char == "[":
            end, text = _translate_class(pattern, position)
            out.append(text)
            position = end
        elif char == "(":
            if pattern.startswith("(?:", position):
                out.append("(?:")
                position += 3
            elif pattern.startswith("(?<", position) and not pattern.startswith(("(?<=", "(?<!"), position):
                match = re.compile(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>").match(pattern, position)
                if match is None:
                    raise NotCompilable("regex group name")
                out.append(f"(?P<{match.group(1)}>")
                position = match.end()
            elif pattern.startswith("(?", position):
                raise NotCompilable("regex group option")
            else:
                out.append("(")
                position += 1
            after_atom = False
            continue
        elif char == "{":
            match = re.compile(r"\{([0-9]+)(,([0-9]+)?)?\}").match(pattern, position)
            if match is None:
                raise NotCompilable("regex brace")
            quantifier = True
            if match.group(2) and match.group(3) != match.group(1):
                unbounded += 1
            out.append(match.group())
            position = match.end()
        elif char in "*+?":
            quantifier = True
            if char == "?":
                branches += 1
            else:
                unbounded += 1
            out.append(char)
            position += 1
        elif char in "|)^$":
            if char == "|":
                branches += 1
            out.append(char)
            position += 1
            after_atom = False
            continue
        elif char == "." or char.isprintable():
            out.append(char if char == "." else re.escape(char))
            position += 1
        else:
            raise NotCompilable("regex control character")
        if quantifier:
            if not after_atom:
                raise NotCompilable("a regex quantifier on a group, an anchor or nothing")
            if position < length and pattern[position] == "?" and char != "{":
                out.append("?")  # lazy
                position += 1
            if position < length and pattern[position] in "*+?{":
                raise NotCompilable("regex possessive or stacked quantifier")
            after_atom = False
        else:
            after_atom = True
    translated = "".join(out)
    if branches > 12:
        raise NotCompilable("too many regex alternatives and optional parts to bound")
    try:
        re.compile(translated)
    except re.error as exc:
        raise NotCompilable(f"regex: {exc}") from None
    return _RegexShape(translated, unbounded, branches)


def _translate_class(pattern: str, start: int) -> tuple[int, str]:
    position = start + 1
    out = ["["]
    if position < len(pattern) and pattern[position] == "^":
        out.append("^")
        position += 1
    first = True
    while position < len(pattern):
        char = pattern[position]
        if char == "]" and not first:
            out.append("]")
            return position + 1, "".join(out)
        if char in "[]&\\:" or not char.isprintable() or ord(char) > 127:
            raise NotCompilable("regex class syntax")
        if char == "-" and not first and position + 1 < len(pattern) and pattern[position + 1] != "]":
            out.append("-")
        else:
            out.append(re.escape(char))
        first = False
        position += 1
    raise NotCompilable("unterminated regex class")


@dataclass(frozen=True)
class _Regex:
    compiled: re.Pattern[str]
    names: tuple[str, ...]
    #: Longer texts are matched by libjq's workers, under their time limit.
    longest_text: int


def _regex(pattern_node: _Node, flags_node: _Node | None) -> tuple[_Regex, str]:
    if not isinstance(pattern_node, _Literal) or not isinstance(pattern_node.value, str):
        raise NotCompilable("a regex that is not a string literal")
    flags = ""
    if flags_node is not None:
        if not isinstance(flags_node, _Literal) or not isinstance(flags_node.value, str):
            raise NotCompilable("regex flags that are not a string literal")
        flags = flags_node.value
        if set(flags) - {"g"}:
            raise NotCompilable(f"regex flags {flags!r}")
    shape = _translate_regex(pattern_node.value)
    compiled = re.compile(shape.python)
    longest = int((REGEX_WORK / 2**shape.branches) ** (1 / (shape.unbounded + 1)))
    return _Regex(compiled, tuple(compiled.groupindex), longest), flags


def _matched_string(value: Any) -> str:
    if not isinstance(value, str):
        raise JqRuntimeError(f"{_quoted(value)} cannot be matched, as it is not a string")
    return value


def _matches(regex: _Regex, text: str, every: bool, allow_empty: bool = False) -> list[re.Match[str]]:
    if len(text) > regex.longest_text:
        raise Deferred("a text too long to match in process with this regex")
    found = []
    for match in regex.compiled.finditer(text):
        if match.start() == match.end() and not allow_empty:
            raise Deferred("a regex match of the empty string")
        found.append(match)
        if not every:
            break
    return found


# ------------------------------------------------------------------------------------ lexer

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n\\]*(?:\n|$))
  | (?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
  | (?P<variable>\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>\?//|\.\.|!=|==|//=|//|<=|>=|\|=|\+=|-=|\*=|/=|%=|[.\[\]{}(),:;|+\-*/%<>=?@])
  | (?P<quote>")
    """,
    re.VERBOSE,
)

_STRING_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True)
class _Token:
    kind: str  # number, field, variable, ident, op, string, end
    text: str
    #: For strings: literal pieces and interpolated token lists, in order.
    parts: tuple[str | tuple[_Token, ...], ...] = ()


def _tokenize(text: str, position: int = 0, closing: bool = False) -> tuple[list[_Token], int]:
    """Tokens of ``text`` from ``position``; with ``closing``, up to the ``)`` that ends an
    interpolation (returned position just past it)."""
    tokens: list[_Token] = []
    depth = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise NotCompilable(f"unexpected character {text[position]!r}")
        kind = match.lastgroup or ""
        position = match.end()
        if kind == "space":
            continue
        if kind == "quote":
            token, position = _string(text, position)
            tokens.append(token)
            continue
        symbol = match.group()
        if closing and kind == "op":
            if symbol == "(":
                depth += 1
            elif symbol == ")":
                if depth == 0:
                    tokens.append(_Token("end", ""))
                    return tokens, position
                depth -= 1
        tokens.append(_Token(kind, symbol))
    if closing:
        raise NotCompilable("unterminated string interpolation")
    tokens.append(_Token("end", ""))
    return tokens, position


def _string(text: str, position: int) -> tuple[_Token, int]:
    parts: list[str | tuple[_Token, ...]] = []
    literal: list[str] = []
    while True:
        if position >= len(text):
            raise NotCompilable("unterminated string")
        char = text[position]
        if char == '"':
            if literal or not parts:
                parts.append("".join(literal))
            return _Token("string", "", tuple(parts)), position + 1
        if char == "\\":
            escape = text[position + 1 : position + 2]
            if escape in _STRING_ESCAPES:
                literal.append(_STRING_ESCAPES[escape])
                position += 2
            elif escape == "u":
                digits = text[position + 2 : position + 6]
                if not re.fullmatch(r"[0-9A-Fa-f]{4}", digits):
                    raise NotCompilable("bad \\u escape")
                code = int(digits, 16)
                if 0xD800 <= code <= 0xDFFF:
                    raise NotCompilable("surrogate \\u escape")
                literal.append(chr(code))
                position += 6
            elif escape == "(":
                parts.append("".join(literal))
                literal = []
                inner, position = _tokenize(text, position + 2, closing=True)
                parts.append(tuple(inner))
            else:
                raise NotCompilable(f"string escape \\{escape}")
        else:
            literal.append(char)
            position += 1


# ------------------------------------------------------------------------------------ syntax tree


class _Node(ABC):
    """A parsed expression; :meth:`build` turns it into a :data:`Filter` (each kind of node says how)."""

    @abstractmethod
    def build(self) -> Filter:
        """The closure that evaluates this node over an input."""


@dataclass
class _Literal(_Node):
    value: Any

    def build(self) -> Filter:
        value = self.value

        def literal(_input: Any, _ctx: _Context) -> Iterator[Any]:
            yield value

        return literal


class _Identity(_Node):
    def build(self) -> Filter:
        def identity(value: Any, _ctx: _Context) -> Iterator[Any]:
            yield value

        return identity


@dataclass
class _Variable(_Node):
    name: str

    def build(self) -> Filter:
        name = self.name

        def variable(_input: Any, ctx: _Context) -> Iterator[Any]:
            yield ctx.variables[name]

        return variable


@dataclass
class _Pipe(_Node):
    left: _Node
    right: _Node

    def build(self) -> Filter:
        left, right = self.left.build(), self.right.build()

        def pipe(value: Any, ctx: _Context) -> Iterator[Any]:
            for item in left(value, ctx):
                ctx.step()
                yield from right(item, ctx)

        return pipe


@dataclass
class _Comma(_Node):
    left: _Node
    right: _Node

    def build(self) -> Filter:
        left, right = self.left.build(), self.right.build()

        def comma(value: Any, ctx: _Context) -> Iterator[Any]:
            yield from left(value, ctx)
            yield from right(value, ctx)

        return comma


@dataclass
class _Binary(_Node):
    operator: str
    left: _Node
    right: _Node

    def build(self) -> Filter:
        left, right, apply = self.left.build(), self.right.build(), _BINARY[self.operator]

        def binary(value: Any, ctx: _Context) -> Iterator[Any]:
            for b in right(value, ctx):
                for a in left(value, ctx):
                    ctx.step()
                    yield apply(a, b)

        return binary


@dataclass
class _And(_Node):
    left: _Node
    right: _Node
    is_or: bool

    def build(self) -> Filter:
        left, right, is_or = self.left.build(), self.right.build(), self.is_or

        def logic(value: Any, ctx: _Context) -> Iterator[Any]:
            for a in left(value, ctx):
                if _truthy(a) == is_or:
                    yield is_or
                    continue
                for b in right(value, ctx):
                    ctx.step()
                    yield _truthy(b)

        return logic


@dataclass
class _Alternative(_Node):
    left: _Node
    right: _Node

    def build(self) -> Filter:
        left, right = self.left.build(), self.right.build()

        def alternative(value: Any, ctx: _Context) -> Iterator[Any]:
            found = False
            for item in left(value, ctx):
                if _truthy(item):
                    found = True
                    yield item
            if not found:
                yield from right(value, ctx)

        return alternative


@dataclass
class _If(_Node):
    branches: list[tuple[_Node, _Node]]
    otherwise: _Node

    def build(self) -> Filter:
        condition, then = self.branches[0][0].build(), self.branches[0][1].build()
        rest = _If(self.branches[1:], self.otherwise).build() if len(self.branches) > 1 else self.otherwise.build()

        def conditional(value: Any, ctx: _Context) -> Iterator[Any]:
            for test in condition(value, ctx):
                ctx.step()
                yield from (then if _truthy(test) else rest)(value, ctx)

        return conditional


@dataclass
class _Try(_Node):
    """``term?``: the term's outputs until its first error, which ends the stream quietly."""

    body: _Node

    def build(self) -> Filter:
        body = self.body.build()

        def attempt(value: Any, ctx: _Context) -> Iterator[Any]:
            try:
                yield from body(value, ctx)
            except JqRuntimeError:
                return

        return attempt


@dataclass
class _Index(_Node):
    """``target[key]``; ``optional`` (``.a?``, ``.[k]?``) drops the outputs whose indexing
    fails, as jq's INDEX_OPT does (errors of the target or key still count)."""

    target: _Node
    key: _Node
    optional: bool = False

    def build(self) -> Filter:
        target, key = self.target.build(), self.key.build()
        step = _index_or_skip if self.optional else _index
        if isinstance(self.key, _Literal):
            constant = self.key.value

            def index_constant(value: Any, ctx: _Context) -> Iterator[Any]:
                for item in target(value, ctx):
                    result = step(item, constant)
                    if result is not _SKIP:
                        yield result

            return index_constant

        def index(value: Any, ctx: _Context) -> Iterator[Any]:
            for k in key(value, ctx):
                for item in target(value, ctx):
                    ctx.step()
                    result = step(item, k)
                    if result is not _SKIP:
                        yield result

        return index


#: What an optional step gives for an output it drops.
_SKIP: Any = object()


def _index_or_skip(value: Any, key: Any) -> Any:
    try:
        return _index(value, key)
    except JqRuntimeError:
        return _SKIP


def _slice_or_skip(value: Any, start: Any, end: Any) -> Any:
    try:
        return _slice(value, start, end)
    except JqRuntimeError:
        return _SKIP


@dataclass
class _Slice(_Node):
    target: _Node
    start: _Node | None
    end: _Node | None
    optional: bool = False

    def build(self) -> Filter:
        target = self.target.build()
        start = self.start.build() if self.start else _Literal(None).build()
        end = self.end.build() if self.end else _Literal(None).build()
        step = _slice_or_skip if self.optional else _slice

        def slice_(value: Any, ctx: _Context) -> Iterator[Any]:
            for e in end(value, ctx):
                for s in start(value, ctx):
                    for item in target(value, ctx):
                        ctx.step()
                        result = step(item, s, e)
                        if result is not _SKIP:
                            yield result

        return slice_


@dataclass
class _Iterate(_Node):
    target: _Node
    optional: bool = False

    def build(self) -> Filter:
        target = self.target.build()
        optional = self.optional

        def iterate(value: Any, ctx: _Context) -> Iterator[Any]:
            for item in target(value, ctx):
                if optional and not isinstance(item, (list, dict)):
                    continue
                for element in _iterate(item):
                    ctx.step()
                    yield element

        return iterate


@dataclass
class _Negate(_Node):
    body: _Node

    def build(self) -> Filter:
        body = self.body.build()

        def negate(value: Any, ctx: _Context) -> Iterator[Any]:
            for item in body(value, ctx):
                if not isinstance(item, (int, float)) or isinstance(item, bool):
                    raise JqRuntimeError(f"{_quoted(item)} cannot be negated")
                yield _result_number(-_number(item))

        return negate


@dataclass
class _Array(_Node):
    body: _Node | None

    def build(self) -> Filter:
        if self.body is None:

            def empty_array(_value: Any, _ctx: _Context) -> Iterator[Any]:
                yield []

            return empty_array
        body = self.body.build()

        def collect(value: Any, ctx: _Context) -> Iterator[Any]:
            yield list(body(value, ctx))

        return collect


@dataclass
class _Object(_Node):
    entries: list[tuple[_Node, _Node]]

    def build(self) -> Filter:
        entries = [(key.build(), item.build()) for key, item in self.entries]

        def construct(value: Any, ctx: _Context) -> Iterator[Any]:
            partials: list[dict[str, Any]] = [{}]
            for key, item in entries:
                grown: list[dict[str, Any]] = []
                for built in partials:
                    for k in key(value, ctx):
                        if not isinstance(k, str):
                            raise JqRuntimeError(f"Cannot use {_quoted(k)} as object key")
                        for v in item(value, ctx):
                            ctx.step()
                            grown.append({**built, k: v})
                partials = grown
            yield from partials

        return construct


@dataclass
class _Interpolation(_Node):
    parts: list[str | _Node]

    def build(self) -> Filter:
        pieces: list[str | Filter] = [part if isinstance(part, str) else part.build() for part in self.parts]

        def upto(count: int, value: Any, ctx: _Context) -> Iterator[str]:
            """The texts of the first ``count`` pieces: jq evaluates the last piece first
            (outer loop), as it builds ``"a\\(x)b"`` from right to left."""
            if count == 0:
                yield ""
                return
            piece = pieces[count - 1]
            if isinstance(piece, str):
                for prefix in upto(count - 1, value, ctx):
                    yield prefix + piece
                return
            for item in piece(value, ctx):
                text = _tostring(item)
                for prefix in upto(count - 1, value, ctx):
                    ctx.step()
                    yield _sized(prefix + text)

        def interpolate(value: Any, ctx: _Context) -> Iterator[Any]:
            return upto(len(pieces), value, ctx)

        return interpolate


@dataclass
class _Call(_Node):
    """A builtin by name, over the input, with filter arguments (``map(f)``, ``split(s)``)."""

    name: str
    args: list[_Node]

    def build(self) -> Filter:
        return _builtin(self.name, self.args)


# ------------------------------------------------------------------------------------ builtins, compiled


def _unary(function: Callable[[Any], Any]) -> Filter:
    def apply(value: Any, _ctx: _Context) -> Iterator[Any]:
        yield function(value)

    return apply


def _with_argument(function: Callable[[Any, Any], Any], argument: _Node) -> Filter:
    built = argument.build()

    def apply(value: Any, ctx: _Context) -> Iterator[Any]:
        for item in built(value, ctx):
            yield function(value, item)

    return apply


def _empty(_value: Any, _ctx: _Context) -> Iterator[Any]:
    return iter(())


def _error_of(message: Any) -> JqRuntimeError:
    if not isinstance(message, str):
        raise Deferred("error with a value other than a string")
    return JqRuntimeError(message)


def _error(value: Any, _ctx: _Context) -> Iterator[Any]:
    raise _error_of(value)


def _first(value: Any, _ctx: _Context) -> Iterator[Any]:
    yield _index(value, 0)


def _last(value: Any, _ctx: _Context) -> Iterator[Any]:
    yield _index(value, -1)


def _not(value: Any, _ctx: _Context) -> Iterator[Any]:
    yield not _truthy(value)


def _any_all(generator: Filter, condition: Filter, want: bool) -> Filter:
    def check(value: Any, ctx: _Context) -> Iterator[Any]:
        for item in generator(value, ctx):
            for verdict in condition(item, ctx):
                ctx.step()
                if _truthy(verdict) == want:
                    yield want
                    return
        yield not want

    return check


def _iterate_filter(value: Any, _ctx: _Context) -> Iterator[Any]:
    return _iterate(value)


def _identity_filter(value: Any, _ctx: _Context) -> Iterator[Any]:
    yield value


def _regex_builtin(name: str, args: list[_Node]) -> Filter:
    regex, flags = _regex(args[0], args[2] if name in ("sub", "gsub") and len(args) == 3 else None)
    if name == "test":
        if len(args) == 2:
            _regex(args[0], args[1])

        def test(value: Any, _ctx: _Context) -> Iterator[Any]:
            text = _matched_string(value)
            yield bool(_matches(regex, text, every=False, allow_empty=True))

        return test
    replacement = args[1].build()
    every = name == "gsub" or "g" in flags

    def substitute(value: Any, ctx: _Context) -> Iterator[Any]:
        text = _matched_string(value)
        pieces: list[str] = []
        last = 0
        for match in _matches(regex, text, every):
            captures = {name: match.group(name) for name in regex.names}
            if None in captures.values():
                raise Deferred("a named group that did not take part in the match")
            outputs = list(replacement(captures, ctx))
            if len(outputs) != 1 or not isinstance(outputs[0], str):
                raise Deferred("a replacement other than one string")
            pieces.append(text[last : match.start()])
            pieces.append(outputs[0])
            last = match.end()
        pieces.append(text[last:])
        yield "".join(pieces)

    return substitute


_SIMPLE: dict[str, Callable[[Any], Any]] = {
    "length": _length,
    "keys": _keys,
    "type": _type,
    "tostring": _tostring,
    "tojson": _dump,
    "tonumber": _tonumber,
    "ascii_downcase": _ascii_case(upper=False),
    "ascii_upcase": _ascii_case(upper=True),
    "to_entries": _to_entries,
    "from_entries": _from_entries,
}

_WITH_ARGUMENT: dict[str, Callable[[Any, Any], Any]] = {
    "has": _has,
    "startswith": _string_test("startswith"),
    "endswith": _string_test("endswith"),
    "ltrimstr": _ltrimstr,
    "rtrimstr": _rtrimstr,
    "split": _split,
    "join": _join,
}


def _builtin(name: str, args: list[_Node]) -> Filter:
    arity = len(args)
    if arity == 0 and name in _SIMPLE:
        return _unary(_SIMPLE[name])
    if arity == 1 and name in _WITH_ARGUMENT:
        return _with_argument(_WITH_ARGUMENT[name], args[0])
    if (name, arity) == ("empty", 0):
        return _empty
    if (name, arity) == ("not", 0):
        return _not
    if (name, arity) == ("error", 0):
        return _error
    if (name, arity) == ("error", 1):
        message = args[0].build()

        def error(value: Any, ctx: _Context) -> Iterator[Any]:
            for item in message(value, ctx):
                raise _error_of(item)
            return
            yield  # a generator, so the message is evaluated only when the stream is read

        return error
    if (name, arity) == ("first", 0):
        return _first
    if (name, arity) == ("last", 0):
        return _last
    if (name, arity) in (("first", 1), ("last", 1)):
        body = args[0].build()
        want_first = name == "first"

        def pick(value: Any, ctx: _Context) -> Iterator[Any]:
            if want_first:
                for item in body(value, ctx):
                    yield item
                    return
                return
            outputs = list(body(value, ctx))
            if outputs:
                yield outputs[-1]

        return pick
    if (name, arity) == ("select", 1):
        condition = args[0].build()

        def select(value: Any, ctx: _Context) -> Iterator[Any]:
            for verdict in condition(value, ctx):
                ctx.step()
                if _truthy(verdict):
                    yield value

        return select
    if (name, arity) == ("map", 1):
        return _Array(_Pipe(_IterateNode(), args[0])).build()
    if name in ("any", "all") and arity <= 2:
        want = name == "any"
        if arity == 0:
            return _any_all(_iterate_filter, _identity_filter, want)
        if arity == 1:
            return _any_all(_iterate_filter, args[0].build(), want)
        return _any_all(args[0].build(), args[1].build(), want)
    if name == "test" and arity in (1, 2):
        return _regex_builtin(name, args)
    if name in ("sub", "gsub") and arity in (2, 3):
        return _regex_builtin(name, args)
    raise NotCompilable(f"{name}/{arity} is not in the compiled subset")


class _IterateNode(_Node):
    def build(self) -> Filter:
        return _iterate_filter


# ------------------------------------------------------------------------------------ parser

#: Words jq reserves; outside the subset ones make the program not compilable.
_KEYWORDS = {
    "def",
    "as",
    "if",
    "then",
    "elif",
    "else",
    "end",
    "and",
    "or",
    "not",
    "reduce",
    "foreach",
    "try",
    "catch",
    "label",
    "import",
    "include",
    "__loc__",
}
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}


class _Parser:
    """Recursive descent over jq's grammar, for the subset (precedence as in jq's parser.y)."""

    def __init__(self, tokens: list[_Token], variables: frozenset[str]) -> None:
        self.tokens = tokens
        self.position = 0
        self.variables = variables

    def peek(self) -> _Token:
        return self.tokens[self.position]

    def take(self) -> _Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.peek()
        return token.kind == kind and (text is None or token.text == text)

    def expect(self, kind: str, text: str) -> None:
        if not self.at(kind, text):
            raise NotCompilable(f"expected {text!r}")
        self.take()

    def whole(self) -> _Node:
        node = self.pipe()
        if not self.at("end"):
            raise NotCompilable(f"unexpected {self.peek().text!r}")
        return node

    def pipe(self) -> _Node:
        left = self.comma()
        if self.at("ident", "as"):
            raise NotCompilable("variable binding")
        if self.at("op", "|"):
            self.take()
            return _Pipe(left, self.pipe())
        return left

    def comma(self) -> _Node:
        node = self.alternative()
        while self.at("op", ","):
            self.take()
            node = _Comma(node, self.alternative())
        return node

    def alternative(self) -> _Node:
        left = self.logic_or()
        if self.at("op", "//"):
            self.take()
            return _Alternative(left, self.alternative())
        if self.peek().kind == "op" and self.peek().text in ("=", "|=", "+=", "-=", "*=", "/=", "%=", "//=", "?//"):
            raise NotCompilable("assignment")
        return left

    def logic_or(self) -> _Node:
        node = self.logic_and()
        while self.at("ident", "or"):
            self.take()
            node = _And(node, self.logic_and(), is_or=True)
        return node

    def logic_and(self) -> _Node:
        node = self.comparison()
        while self.at("ident", "and"):
            self.take()
            node = _And(node, self.comparison(), is_or=False)
        return node

    def comparison(self) -> _Node:
        left = self.additive()
        token = self.peek()
        if token.kind == "op" and token.text in _COMPARISONS:
            self.take()
            node = _Binary(token.text, left, self.additive())
            following = self.peek()
            if following.kind == "op" and following.text in _COMPARISONS:
                raise NotCompilable("chained comparison")
            return node
        return left

    def additive(self) -> _Node:
        node = self.multiplicative()
        while self.peek().kind == "op" and self.peek().text in ("+", "-"):
            operator = self.take().text
            node = _Binary(operator, node, self.multiplicative())
        return node

    def multiplicative(self) -> _Node:
        negated = self.at("op", "-")
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in ("*", "/", "%"):
            if negated:
                raise NotCompilable("unary minus before * / %: jq groups it differently")
            operator = self.take().text
            if self.at("op", "-"):
                raise NotCompilable("unary minus after * / %: jq groups it differently")
            node = _Binary(operator, node, self.unary())
        return node

    def unary(self) -> _Node:
        if self.at("op", "-"):
            self.take()
            return _Negate(self.unary())
        return self.postfix()

    def postfix(self) -> _Node:
        first = self.peek()
        # jq reads ``.a?`` and ``x[k]?`` as an optional *step* (only that indexing may fail
        # quietly, and the stream goes on); ``?`` after anything else is ``try`` (stops it)
        stepped = first.kind == "field" or (
            first.kind == "op" and first.text == "." and self.tokens[self.position + 1].kind == "string"
        )
        stepped = stepped or (first.kind == "op" and first.text == "." and self.tokens[self.position + 1].text == "[")
        node = self.term()
        while True:
            token = self.peek()
            if token.kind == "field":
                self.take()
                node, stepped = _Index(node, _Literal(token.text[1:])), True
            elif token.kind == "op" and token.text == "." and self.tokens[self.position + 1].kind == "string":
                self.take()
                node, stepped = _Index(node, self.string_literal_key()), True
            elif token.kind == "op" and token.text == "." and self.tokens[self.position + 1].text == "[":
                self.take()
                node, stepped = self.bracket(node), True
            elif token.kind == "op" and token.text == "[":
                node, stepped = self.bracket(node), True
            elif token.kind == "op" and token.text == "?":
                self.take()
                if stepped and isinstance(node, (_Index, _Slice, _Iterate)):
                    node.optional = True
                else:
                    node = _Try(node)
                stepped = False
            else:
                return node

    def string_literal_key(self) -> _Node:
        token = self.take()
        if len(token.parts) != 1 or not isinstance(token.parts[0], str):
            raise NotCompilable("interpolated field name")
        return _Literal(token.parts[0])

    def bracket(self, target: _Node) -> _Node:
        self.expect("op", "[")
        if self.at("op", "]"):
            self.take()
            return _Iterate(target)
        if self.at("op", ":"):
            self.take()
            end = self.pipe()
            self.expect("op", "]")
            return _Slice(target, None, end)
        key = self.pipe()
        if self.at("op", ":"):
            self.take()
            if self.at("op", "]"):
                self.take()
                return _Slice(target, key, None)
            end = self.pipe()
            self.expect("op", "]")
            return _Slice(target, key, end)
        self.expect("op", "]")
        return _Index(target, key)

    def term(self) -> _Node:
        token = self.peek()
        if token.kind == "number":
            self.take()
            number = float(token.text)
            if not math.isfinite(number):
                raise NotCompilable("number literal out of range")
            if re.fullmatch(r"[0-9]+", token.text) and int(token.text) <= _EXACT:
                return _Literal(int(token.text))
            if number.is_integer() and abs(number) <= _EXACT and "." not in token.text:
                raise NotCompilable("integer literal written with an exponent")
            if number.is_integer():
                raise NotCompilable("integral literal written as a fraction")
            return _Literal(number)
        if token.kind == "string":
            self.take()
            return self.string(token)
        if token.kind == "field":
            self.take()
            return _Index(_Identity(), _Literal(token.text[1:]))
        if token.kind == "variable":
            self.take()
            name = token.text[1:]
            if name not in self.variables:
                raise NotCompilable(f"unknown variable ${name}")
            return _Variable(name)
        if token.kind == "op":
            return self.punctuation(token)
        if token.kind == "ident":
            return self.word(token)
        raise NotCompilable("unexpected end of program")

    def punctuation(self, token: _Token) -> _Node:
        if token.text == ".":
            following = self.tokens[self.position + 1]
            if following.kind == "string":
                self.take()
                return _Index(_Identity(), self.string_literal_key())
            if following.kind == "op" and following.text == "[":
                self.take()
                return self.bracket(_Identity())
            self.take()
            return _Identity()
        if token.text == "(":
            self.take()
            node = self.pipe()
            self.expect("op", ")")
            return node
        if token.text == "[":
            self.take()
            if self.at("op", "]"):
                self.take()
                return _Array(None)
            node = self.pipe()
            self.expect("op", "]")
            return _Array(node)
        if token.text == "{":
            self.take()
            return self.object()
        raise NotCompilable(f"{token.text!r} is not in the compiled subset")

    def word(self, token: _Token) -> _Node:
        name = token.text
        if name in ("true", "false", "null"):
            self.take()
            return _Literal({"true": True, "false": False, "null": None}[name])
        if name == "if":
            self.take()
            return self.conditional()
        if (name in _KEYWORDS and name != "not") or "::" in name:
            raise NotCompilable(f"{name} is not in the compiled subset")
        self.take()
        args: list[_Node] = []
        if self.at("op", "("):
            self.take()
            args.append(self.pipe())
            while self.at("op", ";"):
                self.take()
                args.append(self.pipe())
            self.expect("op", ")")
        return _Call(name, args)

    def conditional(self) -> _Node:
        branches = [(self.pipe(), self.after("then"))]
        while self.at("ident", "elif"):
            self.take()
            branches.append((self.pipe(), self.after("then")))
        if self.at("ident", "else"):
            self.take()
            otherwise: _Node = self.pipe()
        else:
            otherwise = _Identity()
        self.expect("ident", "end")
        return _If(branches, otherwise)

    def after(self, keyword: str) -> _Node:
        self.expect("ident", keyword)
        return self.pipe()

    def string(self, token: _Token) -> _Node:
        if all(isinstance(part, str) for part in token.parts):
            return _Literal("".join(part for part in token.parts if isinstance(part, str)))
        parts: list[str | _Node] = []
        for part in token.parts:
            if isinstance(part, str):
                parts.append(part)
            else:
                parts.append(_Parser(list(part), self.variables).whole())
        return _Interpolation(parts)

    def object(self) -> _Node:
        entries: list[tuple[_Node, _Node]] = []
        if self.at("op", "}"):
            self.take()
            return _Object(entries)
        while True:
            entries.append(self.object_entry())
            if self.at("op", "}"):
                self.take()
                return _Object(entries)
            self.expect("op", ",")

    def object_entry(self) -> tuple[_Node, _Node]:
        token = self.take()
        if token.kind == "variable":
            name = token.text[1:]
            if name not in self.variables:
                raise NotCompilable(f"unknown variable ${name}")
            if self.at("op", ":"):
                raise NotCompilable("variable as an object key with a value")
            return _Literal(name), _Variable(name)
        if token.kind == "ident" and token.text not in ("__loc__",):
            key: _Node = _Literal(token.text)
            if not self.at("op", ":"):
                if token.text in _KEYWORDS:
                    raise NotCompilable("keyword shorthand in an object")
                return key, _Index(_Identity(), key)
        elif token.kind == "string":
            key = self.string(token)
            if not self.at("op", ":"):
                if not isinstance(key, _Literal):
                    raise NotCompilable("interpolated shorthand in an object")
                return key, _Index(_Identity(), key)
        elif token.kind == "op" and token.text == "(":
            key = self.pipe()
            self.expect("op", ")")
        else:
            raise NotCompilable("object key outside the compiled subset")
        self.expect("op", ":")
        return key, self.object_value()

    def object_value(self) -> _Node:
        """jq's ``ExpD``: terms joined by ``|``, optionally negated — nothing looser."""
        if self.at("op", "-"):
            self.take()
            node: _Node = _Negate(self.object_value())
        else:
            node = self.postfix()
        if self.at("op", "|"):
            self.take()
            return _Pipe(node, self.object_value())
        return node


# ------------------------------------------------------------------------------------ the API


@dataclass(frozen=True)
class CompiledProgram:
    """A jq program compiled to closures; :meth:`run` evaluates it over one input."""

    expression: str
    variables: frozenset[str]
    _filter: Filter

    def run(self, value: Any, variables: Env | None = None) -> list[Any]:
        """Every output of the program over ``value``, as the ``jq`` bindings return them.

        Raises :class:`JqRuntimeError` with libjq's message when the program fails, and
        :class:`Deferred` when this input needs libjq itself.
        """
        context = _Context(self._env(variables))
        try:
            return [_output(item) for item in self._filter(value, context)]
        except RecursionError:  # an input nested deeper than Python's stack: jq's to judge
            raise Deferred("input nested too deeply") from None

    def first(self, value: Any, variables: Env | None = None) -> Any:
        """The program's first output (None when it has none), as Port and Ocean take it."""
        context = _Context(self._env(variables))
        try:
            for item in self._filter(value, context):
                return _output(item)
        except RecursionError:  # an input nested deeper than Python's stack: jq's to judge
            raise Deferred("input nested too deeply") from None
        return None

    def _env(self, variables: Env | None) -> Env:
        given = variables or {}
        missing = self.variables - set(given)
        if missing:
            raise KeyError(f"variables not given: {sorted(missing)}")
        return given


def compile_program(expression: str, variables: frozenset[str] | set[str] = frozenset()) -> CompiledProgram:
    """``expression`` compiled, with ``$name`` for each of ``variables`` (names without ``$``),
    or :class:`NotCompilable` when it is outside the subset."""
    names = frozenset(variables)
    if len(expression) > 10_000:
        raise NotCompilable("program too long for the compiler")
    try:
        tokens, _ = _tokenize(expression)
        tree = _Parser(tokens, names).whole()
        built = tree.build()
    except RecursionError:
        raise NotCompilable("program nested too deeply") from None
    return CompiledProgram(expression, names, built)
