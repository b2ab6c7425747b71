"""Azure Pipelines' compile-time ``${{ }}`` expression language, as pure functions over plain data.

Template expansion (and the webhook emulator, which feeds the webhook body in as
``parameters.<WebHookName>``) needs exactly what Azure does at compile time: parse the expression,
evaluate it against ``parameters``/``variables``, and either insert the raw value (a scalar that is
only ``${{ x }}``) or render it into a string. Getting Azure's quirks right matters more than
elegance, because a portal that accepts a pipeline Azure would reject (or renders ``true`` where
Azure renders ``True``) teaches users the wrong thing. The rules follow Microsoft's "Expressions"
page; where it is silent, the choice is written down next to the code.

No IO here (see DESIGN.md, "Sans-IO core"): a lexer, a recursive-descent parser producing frozen
dataclass nodes, an evaluator, and the string helpers :func:`find_expressions`,
:func:`substitute` and :func:`render`. Every failure is an :class:`ExpressionError`; nothing else
escapes, not even on hostile input (depth is capped before Python's recursion limit is reached).

Values are JSON-like: ``None``, ``bool``, ``int``/``float``, ``str``, ``list``, ``dict`` (any
``Mapping``/``Sequence`` is accepted as object/array), plus :class:`Version` for version literals.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kiosk.core.value_kinds import json_type
from kiosk.pipelines.errors import ExpressionError

__all__ = [
    "FUNCTION_NAMES",
    "MAX_DEPTH",
    "Call",
    "Filter",
    "Index",
    "Literal",
    "Name",
    "Node",
    "Property",
    "Version",
    "evaluate",
    "find_expressions",
    "is_truthy",
    "parse",
    "render",
    "substitute",
    "to_string",
    "unparse",
]

MAX_DEPTH: Final = 50
"""Deepest nesting of function calls and ``[...]`` indexes accepted (Azure's own limit is 50)."""

_MAX_NUMBER_CHARS: Final = 300
_INT32_MAX: Final = 2**31 - 1


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Version:
    """A version literal such as ``1.2.3``: 2 to 4 non-negative parts, compared part by part.

    Ordering is plain tuple ordering, which matches .NET's ``System.Version`` (``1.2 < 1.2.0``).
    """

    parts: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """The version ``text`` spells (surrounding whitespace allowed), or ``None``."""
        match = _VERSION_TEXT.fullmatch(text.strip())
        if match is None:
            return None
        pieces = text.strip().split(".")
        if any(len(p) > 10 or int(p) > _INT32_MAX for p in pieces):
            return None
        return cls(tuple(int(p) for p in pieces))

    def __str__(self) -> str:
        return ".".join(str(p) for p in self.parts)


_VERSION_TEXT: Final = re.compile(r"[0-9]+(?:\.[0-9]+){1,3}")


class _Filtered(list[Any]):
    """The result of ``x.*``: a list whose further ``.p``/``[k]`` apply to every item.

    A distinct type only so the evaluator knows to project; everywhere else it is a list, and
    :func:`evaluate` hands back a plain ``list``.
    """


class _ConversionFailed(Exception):
    """Internal: a value cannot be converted to the requested type (never escapes the module)."""


def _kind(value: Any) -> str:
    """Azure's type name for ``value``: JSON's, plus ``version``; any mapping is an object, any other
    sequence an array (YAML and the runner hand over more than dicts and lists)."""
    if isinstance(value, Version):
        return "version"
    kind = json_type(value)
    if kind is not None:
        return kind
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, Sequence):
        return "array"
    raise ExpressionError(f"unsupported value of Python type {type(value).__name__}")


def is_truthy(value: Any) -> bool:
    """Azure's conversion to boolean: null, false, 0, NaN and '' are false; everything else true.

    Exposed because ``${{ if cond }}`` in template expansion needs exactly this rule.
    """
    kind = _kind(value)
    if kind == "null":
        return False
    if kind == "boolean":
        return bool(value)
    if kind == "number":
        return bool(value != 0 and not (isinstance(value, float) and math.isnan(value)))
    if kind == "string":
        return bool(value != "")
    return True


#: The text ``Double.TryParse`` accepts with the styles Microsoft's "Type casting" table names
#: (AllowDecimalPoint | AllowLeadingSign | AllowLeadingWhite | AllowThousands |
#: AllowTrailingWhite, invariant culture): .NET white space around, one leading sign, ASCII
#: digits, ``,`` group separators anywhere among the integer digits after the first one, one
#: ``.``; no exponent, no hex, no white space between sign and digits.
_NUMBER_TEXT: Final = re.compile(r"[\t\n\v\f\r ]*([+-]?)((?:[0-9][0-9,]*)?)(?:\.([0-9]*))?[\t\n\v\f\r ]*")


def _parse_number(text: str) -> int | float:
    """A string as a number, by the documented rules, or :class:`_ConversionFailed`.

    Only the empty string is 0: white space alone does not parse (Azure's ``TryParse`` fails on
    it). Whole numbers stay ``int``, like the literals the lexer reads.
    """
    if text == "":
        return 0
    match = _NUMBER_TEXT.fullmatch(text)
    if match is None:
        raise _ConversionFailed
    sign, whole, fraction = match.groups()
    whole = whole.replace(",", "")
    if not whole and not fraction:  # "", ".", "-", "+." carry no digit
        raise _ConversionFailed
    if len(whole) + len(fraction or "") > _MAX_NUMBER_CHARS:
        raise _ConversionFailed
    if fraction is None:
        return int(sign + whole)
    number = float(f"{sign}{whole or '0'}.{fraction or '0'}")
    if math.isinf(number):
        raise _ConversionFailed
    return number


def _to_number(value: Any) -> int | float:
    """Convert to a number or raise :class:`_ConversionFailed` (Azure's NaN)."""
    kind = _kind(value)
    if kind == "null":
        return 0
    if kind == "boolean":
        return 1 if value else 0
    if kind == "number":
        return value  # type: ignore[no-any-return]
    if kind == "string":
        return _parse_number(value)
    raise _ConversionFailed


def _number_to_string(number: int | float) -> str:
    """Invariant culture, integers without ``.0`` or exponent; .NET names for the specials."""
    if isinstance(number, int):
        return str(number)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number.is_integer():
        return str(int(number))
    return repr(number)


def to_string(value: Any) -> str:
    """Azure's conversion to string; arrays and objects do not convert (:class:`ExpressionError`).

    Booleans become ``True``/``False`` (capitalised, as .NET prints them), null becomes ''.
    """
    try:
        return _to_string(value)
    except _ConversionFailed:
        raise ExpressionError(f"{_article(_kind(value))} cannot be converted to a string") from None


def _to_string(value: Any) -> str:
    kind = _kind(value)
    if kind == "null":
        return ""
    if kind == "boolean":
        return "True" if value else "False"
    if kind == "number":
        return _number_to_string(value)
    if kind in ("string", "version"):
        return str(value)
    raise _ConversionFailed


def _to_version(value: Any) -> Version:
    kind = _kind(value)
    if kind == "version":
        return value  # type: ignore[no-any-return]
    if kind in ("string", "number"):
        # Decision: a number converts when its text is a version (1.2 -> 1.2), like a string does.
        parsed = Version.parse(_to_string(value))
        if parsed is not None:
            return parsed
    raise _ConversionFailed


def _convert_like(left: Any, right: Any) -> tuple[Any, Any]:
    """Convert ``right`` to ``left``'s type (Azure's comparison rule); both returned comparable."""
    kind = _kind(left)
    if kind == "null":
        # The table's "String to Null": only '' converts ('' -> Null); null equals null and ''.
        if right is None or (isinstance(right, str) and right == ""):
            return 0, 0
        raise _ConversionFailed
    if kind == "boolean":
        return bool(left), is_truthy(right)
    if kind == "number":
        return left, _to_number(right)
    if kind == "string":
        return _fold(left), _fold(_to_string(right))
    if kind == "version":
        return left, _to_version(right)
    # Decision: arrays and objects only compare equal to the same kind with equal content (Azure
    # compares references, which means nothing for data that came from YAML/JSON).
    if _kind(right) != kind:
        raise _ConversionFailed
    return left, right


def _equals(left: Any, right: Any) -> bool:
    try:
        a, b = _convert_like(left, right)
    except _ConversionFailed:
        return False
    if isinstance(a, float) and math.isnan(a):
        return False
    return bool(a == b)


def _fold(text: str) -> str:
    """Ordinal ignore-case key: per-character upper-casing, like .NET's OrdinalIgnoreCase.

    Per character so 'ß' stays one character (``str.upper`` would make it 'SS' and call
    'straße' equal to 'STRASSE', which Azure does not).
    """
    if text.isascii():
        return text.upper()
    return "".join(u if len(u := c.upper()) == 1 else c for c in text)


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


# --------------------------------------------------------------------------------------------
# AST
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """``true``, ``null``, ``1.5``, ``'text'``, ``1.2.3``; ``pos`` is the 0-based offset."""

    value: Any
    pos: int = 0


@dataclass(frozen=True)
class Name:
    """A top-level named value such as ``parameters`` or ``variables``."""

    name: str
    pos: int = 0


@dataclass(frozen=True)
class Property:
    """``target.name``."""

    target: Node
    name: str
    pos: int = 0


@dataclass(frozen=True)
class Index:
    """``target[key]`` where ``key`` is any expression."""

    target: Node
    key: Node
    pos: int = 0


@dataclass(frozen=True)
class Filter:
    """``target.*``: every item of an array (or value of an object), projected by what follows."""

    target: Node
    pos: int = 0


@dataclass(frozen=True)
class Call:
    """``name(args...)``; ``name`` is stored as written, looked up case-insensitively."""

    name: str
    args: tuple[Node, ...]
    pos: int = 0


Node = Literal | Name | Property | Index | Filter | Call


def unparse(node: Node) -> str:
    """Canonical source text for ``node`` (used in messages about hand-built nodes)."""
    parts: list[str] = []
    chain: list[Property | Index | Filter] = []
    while isinstance(node, Property | Index | Filter):
        chain.append(node)
        node = node.target
    if isinstance(node, Literal):
        parts.append(_unparse_literal(node.value))
    elif isinstance(node, Name):
        parts.append(node.name)
    else:
        parts.append(f"{node.name}({', '.join(unparse(a) for a in node.args)})")
    for link in reversed(chain):
        if isinstance(link, Property):
            parts.append(f".{link.name}")
        elif isinstance(link, Index):
            parts.append(f"[{unparse(link.key)}]")
        else:
            parts.append(".*")
    return "".join(parts)


def _unparse_literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float) and not value.is_integer():
        return repr(value)
    return _to_string(value)


# --------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # ident, number, string, version, ( ) [ ] , . * end
    text: str
    pos: int
    value: Any = None


_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_HEX: Final = re.compile(r"-?0[xX][0-9A-Fa-f]+")
_VERSION_LITERAL: Final = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+(?:\.[0-9]+)?")
_DECIMAL: Final = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORD_TAIL: Final = re.compile(r"[A-Za-z0-9_.]*")
_PUNCTUATION: Final = frozenset("()[],*")
# After these a '.' dereferences; anywhere else it can only start a number such as .5
_DEREFERENCEABLE: Final = frozenset({"ident", ")", "]", "*"})


def _fail(message: str, pos: int, expression: str) -> ExpressionError:
    return ExpressionError(f"{message} at offset {pos}", column=pos + 1, expression=expression)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        previous = tokens[-1].kind if tokens else None
        if char in _PUNCTUATION:
            tokens.append(_Token(char, char, i))
            i += 1
        elif char == "." and previous in _DEREFERENCEABLE:
            tokens.append(_Token(".", ".", i))
            i += 1
        elif char == "'":
            i = _lex_string(text, i, tokens)
        elif char.isascii() and (char.isdigit() or char in "-."):
            i = _lex_number(text, i, tokens)
        elif (match := _IDENT.match(text, i)) is not None:
            tokens.append(_Token("ident", match.group(), i))
            i = match.end()
        else:
            raise _fail(f"unexpected character {char!r}", i, text)
    tokens.append(_Token("end", "", n))
    return tokens


def _lex_string(text: str, start: int, tokens: list[_Token]) -> int:
    chunks: list[str] = []
    i = start + 1
    while True:
        close = text.find("'", i)
        if close < 0:
            raise _fail("unterminated string literal", start, text)
        chunks.append(text[i:close])
        if text.startswith("''", close):
            chunks.append("'")
            i = close + 2
            continue
        end = close + 1
        tokens.append(_Token("string", text[start:end], start, "".join(chunks)))
        return end


def _lex_number(text: str, start: int, tokens: list[_Token]) -> int:
    value: Any
    if (match := _HEX.match(text, start)) is not None:
        digits = match.group().lstrip("-")[2:]
        if len(digits) > _MAX_NUMBER_CHARS:
            raise _fail("number literal is too long", start, text)
        value = int(digits, 16) * (-1 if match.group().startswith("-") else 1)
        kind = "number"
    elif (match := _VERSION_LITERAL.match(text, start)) is not None:
        parsed = Version.parse(match.group())
        if parsed is None:
            raise _fail(f"version part out of range in {match.group()!r}", start, text)
        value, kind = parsed, "version"
    elif (match := _DECIMAL.match(text, start)) is not None:
        literal = match.group()
        if len(literal) > _MAX_NUMBER_CHARS:
            raise _fail("number literal is too long", start, text)
        if re.fullmatch(r"-?[0-9]+", literal):
            value = int(literal)
        else:
            value = float(literal)
            if math.isinf(value):
                raise _fail(f"number {literal!r} is out of range", start, text)
        kind = "number"
    else:
        tail = _WORD_TAIL.match(text, start + 1)
        bad = text[start] + (tail.group() if tail is not None else "")
        raise _fail(f"unexpected {bad!r}", start, text)
    end = match.end()
    tail = _WORD_TAIL.match(text, end)
    if tail is not None and tail.group():
        raise _fail(f"invalid number {text[start : tail.end()]!r}", start, text)
    tokens.append(_Token(kind, match.group(), start, value))
    return end


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; ``depth`` counts calls and ``[...]`` nesting.

    ``extra`` holds caller-supplied functions (see :func:`evaluate`), checked like built-ins.
    """

    def __init__(self, text: str, extra: Mapping[str, _Function] | None = None) -> None:
        self.text = text
        self.extra = extra
        self.tokens = _tokenize(text)
        self.at = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        if token.kind != "end":
            self.at += 1
        return token

    def expect(self, kind: str, what: str) -> _Token:
        token = self.take()
        if token.kind != kind:
            raise self.unexpected(token, f"expected {what}")
        return token

    def unexpected(self, token: _Token, hint: str | None = None) -> ExpressionError:
        found = "end of expression" if token.kind == "end" else repr(token.text)
        message = f"unexpected {found}" + (f" ({hint})" if hint else "")
        return _fail(message, token.pos, self.text)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise _fail("expected an expression, found nothing", 0, self.text)
        node = self.expression()
        token = self.peek()
        if token.kind != "end":
            raise self.unexpected(token)
        return node

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _fail(f"expression nests deeper than {MAX_DEPTH} levels", token.pos, self.text)

    def expression(self) -> Node:
        token = self.take()
        node: Node
        if token.kind in ("number", "string", "version"):
            return Literal(token.value, token.pos)
        if token.kind != "ident":
            raise self.unexpected(token, "expected a value, a name or a function call")
        keyword = token.text.lower()
        if self.peek().kind == "(":
            node = self.call(token)
        elif keyword in ("true", "false"):
            return Literal(keyword == "true", token.pos)
        elif keyword == "null":
            return Literal(None, token.pos)
        else:
            node = Name(token.text, token.pos)
        return self.postfix(node)

    def call(self, name: _Token) -> Call:
        spec = _lookup_function(name.text, name.pos, self.text, self.extra)
        opening = self.take()
        self.enter(opening)
        args: list[Node] = []
        if self.peek().kind != ")":
            while True:
                args.append(self.expression())
                separator = self.take()
                if separator.kind == ")":
                    break
                if separator.kind != ",":
                    raise self.unexpected(separator, f"expected ',' or ')' in the call to {spec.name}")
        else:
            self.take()
        self.depth -= 1
        _check_arity(spec, len(args), name.pos, self.text)
        return Call(name.text, tuple(args), name.pos)

    def postfix(self, node: Node) -> Node:
        while True:
            token = self.peek()
            if token.kind == ".":
                self.take()
                target = self.take()
                if target.kind == "*":
                    node = Filter(node, token.pos)
                elif target.kind == "ident":
                    node = Property(node, target.text, token.pos)
                else:
                    raise self.unexpected(target, "expected a property name or '*' after '.'")
            elif token.kind == "[":
                self.take()
                self.enter(token)
                key = self.expression()
                self.expect("]", "']'")
                self.depth -= 1
                node = Index(node, key, token.pos)
            else:
                return node


@functools.lru_cache(maxsize=1024)
def parse(expression: str) -> Node:
    """Parse the text between ``${{`` and ``}}`` into a node tree (cached: nodes are immutable).

    Function names and argument counts are checked here, so a typo fails before any evaluation,
    as it does in Azure.
    """
    return _Parser(expression).parse()


# --------------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------------

_Thunk = Callable[[], Any]


@dataclass(frozen=True)
class _Function:
    name: str
    min_args: int
    max_args: int | None
    impl: Callable[[list[_Thunk]], Any]


def _lookup_function(name: str, pos: int, expression: str, extra: Mapping[str, _Function] | None = None) -> _Function:
    spec = _FUNCTIONS.get(name.lower())
    if spec is None and extra is not None:
        spec = extra.get(name.lower())
    if spec is None:
        raise _fail(f"unknown function '{name}'", pos, expression)
    return spec


def _check_arity(spec: _Function, count: int, pos: int, expression: str) -> None:
    if spec.max_args is None:
        if count < spec.min_args:
            raise _fail(
                f"function '{spec.name}' takes at least {spec.min_args} arguments, got {count}", pos, expression
            )
    elif not spec.min_args <= count <= spec.max_args:
        wanted = f"exactly {spec.min_args}" if spec.min_args == spec.max_args else f"{spec.min_args} to {spec.max_args}"
        plural = "" if spec.max_args == 1 else "s"
        raise _fail(f"function '{spec.name}' takes {wanted} argument{plural}, got {count}", pos, expression)


def _strings(name: str, args: list[_Thunk]) -> list[str]:
    """Evaluate and cast every argument to string, naming the function when one cannot be."""
    out: list[str] = []
    for number, thunk in enumerate(args, start=1):
        value = thunk()
        try:
            out.append(_to_string(value))
        except _ConversionFailed:
            raise ExpressionError(
                f"argument {number} of {name}() is {_article(_kind(value))}, which cannot be converted to a string"
            ) from None
    return out


def _compare(name: str, args: list[_Thunk]) -> int:
    """-1/0/1 after converting the right operand to the left's type; failure is an error."""
    left, right = args[0](), args[1]()
    try:
        a, b = _convert_like(left, right)
        if _kind(left) in ("array", "object"):
            raise _ConversionFailed
    except _ConversionFailed:
        # Azure raises here too (only eq/ne swallow conversion failures).
        raise ExpressionError(
            f"{name}() cannot compare {_article(_kind(left))} with {_article(_kind(right))}"
            f" ({_describe(right)} does not convert to {_kind(left)})"
        ) from None
    if any(isinstance(x, float) and math.isnan(x) for x in (a, b)):
        raise ExpressionError(f"{name}() cannot order NaN")
    return (a > b) - (a < b)  # type: ignore[no-any-return]


def _describe(value: Any) -> str:
    kind = _kind(value)
    if kind in ("array", "object"):
        return f"the {kind}"
    text = _to_string(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return repr(text) if kind == "string" else text


def _fn_and(args: list[_Thunk]) -> bool:
    return all(is_truthy(a()) for a in args)  # all() short-circuits


def _fn_or(args: list[_Thunk]) -> bool:
    return any(is_truthy(a()) for a in args)


def _fn_xor(args: list[_Thunk]) -> bool:
    return is_truthy(args[0]()) != is_truthy(args[1]())


def _fn_in(args: list[_Thunk]) -> bool:
    needle = args[0]()
    return any(_equals(needle, h()) for h in args[1:])


def _fn_contains(args: list[_Thunk]) -> bool:
    haystack, needle = _strings("contains", args)
    return _fold(needle) in _fold(haystack)


def _fn_contains_value(args: list[_Thunk]) -> bool:
    collection, needle = args[0](), args[1]()
    kind = _kind(collection)
    if kind == "array":
        items = list(collection)
    elif kind == "object":
        items = list(collection.values())
    else:
        return False  # Decision: a scalar collection contains nothing (no error), like a miss.
    # Each item is converted to the needle's type, i.e. eq(needle, item).
    return any(_equals(needle, item) for item in items)


def _fn_starts_with(args: list[_Thunk]) -> bool:
    text, prefix = _strings("startsWith", args)
    return _fold(text).startswith(_fold(prefix))


def _fn_ends_with(args: list[_Thunk]) -> bool:
    text, suffix = _strings("endsWith", args)
    return _fold(text).endswith(_fold(suffix))


_FORMAT_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def _fn_format(args: list[_Thunk]) -> str:
    template = _strings("format", args[:1])[0]
    values: dict[int, str] = {}

    def value(index: int) -> str:
        if index not in values:
            values[index] = _strings("format", [args[index + 1]])[0]
        return values[index]

    def replace(match: re.Match[str]) -> str:
        token = match.group()
        if token in ("{{", "}}"):
            return token[0]
        spec = match.group(1)
        if spec is None:
            raise ExpressionError(f"format(): unmatched {token!r} at offset {match.start()} of the format string")
        index_text, _, fmt = spec.partition(":")
        if re.fullmatch(r"\s*[0-9]{1,9}\s*", index_text) is None:
            raise ExpressionError(f"format(): invalid placeholder {token!r}")
        index = int(index_text)
        if index >= len(args) - 1:
            raise ExpressionError(f"format(): placeholder {token!r} but only {len(args) - 1} argument(s) given")
        if fmt:
            # Date/number format specifiers apply to runtime values only; not supported here.
            raise ExpressionError(f"format(): format specifier in {token!r} is not supported")
        return value(index)

    return _FORMAT_TOKEN.sub(replace, template)


def _fn_coalesce(args: list[_Thunk]) -> Any:
    for thunk in args:
        value = thunk()
        if value is not None and value != "":
            return value
    return None


def _fn_join(args: list[_Thunk]) -> str:
    separator = _strings("join", args[:1])[0]
    items = args[1]()
    if _kind(items) != "array":
        return _strings("join", [lambda: items])[0]
    # Documented: each element converted to string; complex objects become the empty string.
    return separator.join("" if _kind(i) in ("array", "object") else _to_string(i) for i in items)


def _fn_replace(args: list[_Thunk]) -> str:
    text, old, new = _strings("replace", args)
    # Ordinal, case-sensitive (.NET String.Replace). Decision: an empty old string changes nothing
    # (.NET would throw).
    return text.replace(old, new) if old else text


def _fn_split(args: list[_Thunk]) -> list[str]:
    text, delimiter = _strings("split", args)
    # Decision: the delimiter is a whole string, not a set of characters; empty ones do not split.
    return text.split(delimiter) if delimiter else [text]


def _fn_length(args: list[_Thunk]) -> int:
    value = args[0]()
    kind = _kind(value)
    if kind == "string":
        return len(value.encode("utf-16-le")) // 2  # .NET counts UTF-16 code units
    if kind in ("array", "object"):
        return len(value)
    if kind == "null":
        return 0  # Decision: a missing parameter has length 0 rather than failing.
    raise ExpressionError(f"length() needs a string, array or object, not {_article(kind)}")


def _fn_convert_to_json(args: list[_Thunk]) -> str:
    value = args[0]()
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ExpressionError(f"convertToJson(): value cannot be serialised ({exc})") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Version):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"unsupported value of Python type {type(value).__name__}")


def _fn_iif(args: list[_Thunk]) -> Any:
    return args[1]() if is_truthy(args[0]()) else args[2]()


def _unary_string(name: str, convert: Callable[[str], str]) -> Callable[[list[_Thunk]], str]:
    return lambda args: convert(_strings(name, args)[0])


def _comparison(name: str, test: Callable[[int], bool]) -> Callable[[list[_Thunk]], bool]:
    return lambda args: test(_compare(name, args))


_FUNCTION_LIST: Final = [
    _Function("and", 2, None, _fn_and),
    _Function("or", 2, None, _fn_or),
    _Function("not", 1, 1, lambda args: not is_truthy(args[0]())),
    _Function("xor", 2, 2, _fn_xor),
    _Function("eq", 2, 2, lambda args: _equals(args[0](), args[1]())),
    _Function("ne", 2, 2, lambda args: not _equals(args[0](), args[1]())),
    _Function("gt", 2, 2, _comparison("gt", lambda c: c > 0)),
    _Function("ge", 2, 2, _comparison("ge", lambda c: c >= 0)),
    _Function("lt", 2, 2, _comparison("lt", lambda c: c < 0)),
    _Function("le", 2, 2, _comparison("le", lambda c: c <= 0)),
    _Function("in", 1, None, _fn_in),
    _Function("notIn", 1, None, lambda args: not _fn_in(args)),
    _Function("contains", 2, 2, _fn_contains),
    _Function("containsValue", 2, 2, _fn_contains_value),
    _Function("startsWith", 2, 2, _fn_starts_with),
    _Function("endsWith", 2, 2, _fn_ends_with),
    _Function("format", 1, None, _fn_format),
    _Function("coalesce", 2, None, _fn_coalesce),
    _Function("join", 2, 2, _fn_join),
    _Function("replace", 3, 3, _fn_replace),
    _Function("lower", 1, 1, _unary_string("lower", str.lower)),
    _Function("upper", 1, 1, _unary_string("upper", str.upper)),
    _Function("trim", 1, 1, _unary_string("trim", str.strip)),
    _Function("split", 2, 2, _fn_split),
    _Function("length", 1, 1, _fn_length),
    _Function("convertToJson", 1, 1, _fn_convert_to_json),
    _Function("iif", 3, 3, _fn_iif),
]
_FUNCTIONS: Final = {f.name.lower(): f for f in _FUNCTION_LIST}

FUNCTION_NAMES: Final = tuple(f.name for f in _FUNCTION_LIST)
"""The functions available in template expressions, spelled as Microsoft documents them."""


# --------------------------------------------------------------------------------------------
# Evaluator
# --------------------------------------------------------------------------------------------


def _get_key(mapping: Mapping[Any, Any], key: str) -> Any:
    """Case-insensitive key lookup (Azure's objects are); exact match wins; miss is ``None``."""
    if key in mapping:
        return mapping[key]
    folded = _fold(key)
    for candidate, value in mapping.items():
        if _fold(candidate if isinstance(candidate, str) else str(candidate)) == folded:
            return value
    return None


def _property(value: Any, name: str) -> Any:
    return _get_key(value, name) if isinstance(value, Mapping) else None


def _index(value: Any, key: Any) -> Any:
    kind, key_kind = _kind(value), _kind(key)
    if kind == "object":
        if key_kind in ("array", "object"):
            return None
        return _get_key(value, _to_string(key))
    if kind == "array" and key_kind == "number":
        # Decision: only whole, in-range numbers index arrays; anything else is a miss (null).
        if isinstance(key, float) and not key.is_integer():
            return None
        position = int(key)
        return value[position] if 0 <= position < len(value) else None
    return None


def _project(value: Any, step: Callable[[Any], Any]) -> Any:
    """Apply an accessor; on a filtered array apply it to each item and drop misses."""
    if not isinstance(value, _Filtered):
        return step(value)
    out = _Filtered()
    for item in value:
        result = step(item)
        if result is not None:
            out.append(result)
    return out


def _expand(value: Any) -> Any:
    """``x.*``: the items of an array or values of an object; on a filtered array, flattened."""

    def items(v: Any) -> list[Any]:
        kind = _kind(v)
        if kind == "array":
            return list(v)
        if kind == "object":
            return list(v.values())
        return []

    if isinstance(value, _Filtered):
        return _Filtered(x for item in value for x in items(item))
    kind = _kind(value)
    return _Filtered(items(value)) if kind in ("array", "object") else None


class _Evaluator:
    def __init__(self, context: Mapping[str, Any], extra: Mapping[str, _Function] | None = None) -> None:
        self.context = context
        self.extra = extra

    def eval(self, node: Node) -> Any:
        chain: list[Property | Index | Filter] = []
        while isinstance(node, Property | Index | Filter):  # iterative: long chains never recurse
            chain.append(node)
            node = node.target
        value = self.eval_base(node)
        for link in reversed(chain):
            if isinstance(link, Property):
                value = _project(value, functools.partial(_property, name=link.name))
            elif isinstance(link, Index):
                key = self.eval(link.key)
                value = _project(value, functools.partial(_index, key=key))
            else:
                value = _expand(value)
        return value

    def eval_base(self, node: Literal | Name | Call) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Name):
            if not any(_fold(key) == _fold(node.name) for key in self.context):
                known = ", ".join(sorted(self.context)) or "none"
                raise ExpressionError(f"unrecognized value '{node.name}' (known: {known})", column=node.pos + 1)
            return _get_key(self.context, node.name)
        spec = _lookup_function(node.name, node.pos, "", self.extra)
        _check_arity(spec, len(node.args), node.pos, "")
        thunks: list[_Thunk] = [functools.partial(self.eval, arg) for arg in node.args]
        try:
            return spec.impl(thunks)
        except ExpressionError as err:
            if err.column is None:
                raise err.located(column=node.pos + 1) from None
            raise


def evaluate(
    expression: str | Node,
    context: Mapping[str, Any],
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
) -> Any:
    """Evaluate ``expression`` against ``context`` (top-level names → JSON-like values).

    A missing key or index is ``None``, never an error; an unknown top-level name is an error
    (Azure rejects unrecognized named values). Errors carry the 1-based column inside the
    expression and the expression text.

    ``functions`` adds functions that exist only where the caller evaluates: the pipeline runner's
    ``succeeded()``, ``failed()``, ``always()``... which compile-time ``${{ }}`` must keep
    rejecting. Names are case-insensitive and may not shadow a built-in (:class:`ValueError`).
    Each function is called with its arguments already evaluated; how many it accepts is read
    from its signature and checked at parse time, exactly like a built-in's.
    """
    text = expression if isinstance(expression, str) else None
    extra = _caller_functions(functions) if functions else None
    try:
        if isinstance(expression, str):
            # Uncached with extra functions: the cache key would have to include their arities.
            node = parse(expression) if extra is None else _Parser(expression, extra).parse()
        else:
            node = expression
        value = _Evaluator(context, extra).eval(node)
    except ExpressionError as err:
        raise err.located(expression=text if text is not None else _safe_unparse(expression)) from None
    except RecursionError:
        raise ExpressionError("value nests too deeply to evaluate", expression=text) from None
    return list(value) if isinstance(value, _Filtered) else value


def _caller_functions(functions: Mapping[str, Callable[..., Any]]) -> dict[str, _Function]:
    """Wrap caller-supplied functions as :class:`_Function` specs, arity taken from signatures."""
    specs: dict[str, _Function] = {}
    for name, function in functions.items():
        if _IDENT.fullmatch(name) is None:
            raise ValueError(f"function name {name!r} is not an identifier")
        if name.lower() in _FUNCTIONS:
            raise ValueError(f"function {name!r} would shadow the built-in function of that name")
        minimum, maximum = _arity(function)
        specs[name.lower()] = _Function(name, minimum, maximum, _eager(function))
    return specs


def _arity(function: Callable[..., Any]) -> tuple[int, int | None]:
    """(required, maximum or ``None`` for ``*args``) positional arguments of ``function``."""
    minimum, maximum = 0, 0
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return minimum, None
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            maximum += 1
            if parameter.default is inspect.Parameter.empty:
                minimum += 1
        elif parameter.default is inspect.Parameter.empty and parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            raise ValueError(f"function {function!r} has a required keyword-only parameter {parameter.name!r}")
    return minimum, maximum


def _eager(function: Callable[..., Any]) -> Callable[[list[_Thunk]], Any]:
    return lambda args: function(*(arg() for arg in args))


def _safe_unparse(node: Any) -> str:
    try:
        return unparse(node)
    except (AttributeError, TypeError, ExpressionError, RecursionError):
        return repr(node)


def render(value: Any, expression: str | None = None) -> str:
    """Text inserted when an expression sits inside a larger string (``echo ${{ x }}``).

    Arrays and objects cannot be inserted: Azure produces invalid YAML and queues no run (the
    webhook page's ``parameters.WebHook.resource.message`` example), so we fail loudly instead.
    """
    kind = _kind(value)
    if kind in ("array", "object"):
        raise ExpressionError(
            f"the value cannot be inserted into a string: it is {_article(kind)}"
            f" (use convertToJson(...) to insert it as JSON, or select a scalar inside it)",
            expression=expression,
        )
    return _to_string(value)


# --------------------------------------------------------------------------------------------
# Expressions embedded in text
# --------------------------------------------------------------------------------------------


def _unterminated(what: str, text: str, start: int) -> ExpressionError:
    return ExpressionError(
        f"unterminated expression: no closing {what} after '${{{{'",
        column=start + 1,
        expression=text[start + 3 :].strip(),
    )


@functools.lru_cache(maxsize=4096)
def find_expressions(text: str) -> tuple[tuple[int, int, str], ...]:
    """Locate every ``${{ ... }}`` in ``text`` as ``(start, end, inner)`` with ``text[start:end]``
    the whole span and ``inner`` the stripped expression.

    Single-quoted strings are skipped while looking for the closing ``}}``, so ``'}}'`` inside a
    literal does not end the expression. A ``${{`` without its ``}}`` is an error at its column.
    Cached: the emulator expands the same pipeline text on every trigger, and the answer depends
    on the text alone (a tuple, so no caller can change what the next one gets).
    """
    spans: list[tuple[int, int, str]] = []
    i = 0
    while (start := text.find("${{", i)) >= 0:
        j = start + 3
        while True:  # jump from quote to quote with str.find: a per-character loop is the hot spot
            quote = text.find("'", j)
            close = text.find("}}", j)
            if quote >= 0 and (close < 0 or quote < close):
                end_quote = text.find("'", quote + 1)  # '' inside a string closes and reopens: still fine
                if end_quote < 0:
                    raise _unterminated("string literal", text, start)
                j = end_quote + 1
                continue
            if close < 0:
                raise _unterminated("'}}'", text, start)
            break
        spans.append((start, close + 2, text[start + 3 : close].strip()))
        i = close + 2
    return tuple(spans)


def substitute(text: str, context: Mapping[str, Any]) -> Any:
    """Expand the ``${{ }}`` expressions in one YAML scalar.

    If the scalar is exactly one expression its raw value is returned (objects stay objects: that
    is how Azure inserts mappings and sequences); otherwise each value is rendered and spliced in.
    Errors carry the 1-based column (character offset + 1 within ``text``) where the offending
    ``${{`` starts; template expansion adds file and line with :meth:`ExpressionError.located`.
    """
    spans = find_expressions(text)
    if not spans:
        return text
    if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(text):
        value = _evaluate_at(spans[0], context)
        return str(value) if isinstance(value, Version) else value
    pieces: list[str] = []
    last = 0
    for span in spans:
        start, end, inner = span
        pieces.append(text[last:start])
        value = _evaluate_at(span, context)
        try:
            pieces.append(render(value, inner))
        except ExpressionError as err:
            raise err.located(column=start + 1) from None
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def _evaluate_at(span: tuple[int, int, str], context: Mapping[str, Any]) -> Any:
    start, _, inner = span
    try:
        return evaluate(inner, context)
    except ExpressionError as err:
        raise err.located(column=start + 1) from None
