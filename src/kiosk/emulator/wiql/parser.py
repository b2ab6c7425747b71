"""WIQL text → :class:`~kiosk.emulator.wiql.nodes.Query`, by recursive descent.

The grammar (case-insensitive), as Microsoft's WIQL syntax page describes the clauses people write::

    query      := SELECT columns FROM (WorkItems | WorkItemLinks) [WHERE or]
                  { ORDER BY order {, order} | ASOF string | MODE ( word {, word} ) }
    columns    := field {, field}
    or         := and {OR and}
    and        := unary {AND unary}
    unary      := NOT unary | ( or ) | comparison
    comparison := field ( = | <> | != | < | > | <= | >= ) value
                | field [NOT] IN ( value {, value} )
                | field [NOT] CONTAINS [WORDS] value
                | field [NOT] UNDER value
                | field IS [NOT] EMPTY
                | field [NOT] [WAS] EVER value
    value      := string | [-] number | @macro [(+|-) number] | field
    field      := [name] | name | [Source].[name] | [Target].[name]
    order      := field [ASC | DESC]

Errors are :class:`~kiosk.emulator.wiql.errors.WiqlSyntaxError`, naming the token that broke the
rule and its position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from kiosk.emulator.wiql.errors import WiqlQueryError, WiqlSyntaxError
from kiosk.emulator.wiql.lexer import Token, tokenize
from kiosk.emulator.wiql.nodes import (
    And,
    Comparison,
    Condition,
    FieldRef,
    Literal,
    Macro,
    Not,
    Or,
    OrderBy,
    Query,
    Value,
)

__all__ = ["MAX_QUERY_LENGTH", "parse_wiql"]

_Item = TypeVar("_Item")

MAX_QUERY_LENGTH: Final = 32_768
"""Azure's limit on WIQL text (32K characters)."""

_COMPARE_OPS: Final = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_SOURCES: Final = {"WORKITEMS": "workitems", "WORKITEMLINKS": "workitemlinks"}
_MODES: Final = frozenset({"MUSTCONTAIN", "MAYCONTAIN", "DOESNOTCONTAIN", "RECURSIVE", "RETURNMATCHINGCHILDREN"})
_PREFIXES: Final = {"SOURCE": "source", "TARGET": "target"}
_CLAUSE_WORDS: Final = frozenset({"ORDER", "ASOF", "MODE"})


def parse_wiql(text: str) -> Query:
    """Parse ``text``; :class:`WiqlSyntaxError` if it is not a WIQL query, :class:`WiqlQueryError` if it
    is longer than Azure takes (:data:`MAX_QUERY_LENGTH`)."""
    if len(text) > MAX_QUERY_LENGTH:
        raise WiqlQueryError(
            f"The query is {len(text)} characters long; WIQL queries may be at most {MAX_QUERY_LENGTH} characters."
        )
    return _Parser(tokenize(text)).query()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    # -- cursor --

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "END":
            self.index += 1
        return token

    def fail(self, message: str, token: Token | None = None) -> WiqlSyntaxError:
        where = token or self.token
        return WiqlSyntaxError(message, where.position, where.text)

    def expect_word(self, *words: str) -> Token:
        if not self.token.is_word(*words):
            raise self.fail(f"Expecting {' or '.join(words)}.")
        return self.advance()

    def expect_op(self, op: str) -> Token:
        if not (self.token.kind == "OP" and self.token.text == op):
            raise self.fail(f"Expecting '{op}'.")
        return self.advance()

    def at_op(self, *ops: str) -> bool:
        return self.token.kind == "OP" and self.token.text in ops

    # -- clauses --

    def query(self) -> Query:
        self.expect_word("SELECT")
        columns = self._comma_list(self.field)
        self.expect_word("FROM")
        if not (self.token.kind in ("WORD", "FIELD") and self.token.text.upper() in _SOURCES):
            raise self.fail("Expecting WorkItems or WorkItemLinks after FROM.")
        source = _SOURCES[self.advance().text.upper()]
        where: Condition | None = None
        if self.token.is_word("WHERE"):
            self.advance()
            where = self.or_()
        order_by: tuple[OrderBy, ...] = ()
        as_of: str | None = None
        mode: tuple[str, ...] = ()
        seen: set[str] = set()
        while self.token.is_word(*_CLAUSE_WORDS):
            clause = self.token.text.upper()
            if clause == "MODE" and source != "workitemlinks":
                raise self.fail("MODE is only allowed in a query FROM WorkItemLinks.")
            if clause in seen:
                raise self.fail(f"The {clause} clause is given twice.")
            seen.add(clause)
            self.advance()
            if clause == "ORDER":
                self.expect_word("BY")
                order_by = self.order_list()
            elif clause == "ASOF":
                if self.token.kind != "STRING":
                    raise self.fail("Expecting a date in quotes after ASOF.")
                as_of = self.advance().text
            else:
                mode = self.mode_list()
        if self.token.kind != "END":
            raise self.fail("Expecting end of query.")
        return Query(tuple(columns), source, where, order_by, as_of, mode)

    def order_list(self) -> tuple[OrderBy, ...]:
        items = []
        while True:
            field = self.field()
            descending = False
            if self.token.is_word("ASC", "DESC"):
                descending = self.advance().text.upper() == "DESC"
            items.append(OrderBy(field, descending))
            if not self.at_op(","):
                return tuple(items)
            self.advance()

    def mode_list(self) -> tuple[str, ...]:
        self.expect_op("(")
        words = []
        while True:
            if not self.token.is_word(*_MODES):
                raise self.fail("Expecting MustContain, MayContain, DoesNotContain or Recursive in MODE.")
            words.append(self.advance().text.lower())
            if self.at_op(")"):
                self.advance()
                return tuple(words)
            self.expect_op(",")

    # -- conditions --

    def _comma_list(self, item: Callable[[], _Item]) -> list[_Item]:
        """``item (, item)*``: the SELECT columns, an IN list."""
        items = [item()]
        while self.at_op(","):
            self.advance()
            items.append(item())
        return items

    def or_(self) -> Condition:
        return self._joined("OR", self.and_, Or)

    def and_(self) -> Condition:
        return self._joined("AND", self.unary, And)

    def _joined(
        self, word: str, operand: Callable[[], Condition], join: Callable[[tuple[Condition, ...]], Condition]
    ) -> Condition:
        """``operand (word operand)*``: the one operand alone, else ``join`` of them all (AND binds tighter)."""
        parts = [operand()]
        while self.token.is_word(word):
            self.advance()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else join(tuple(parts))

    def unary(self) -> Condition:
        if self.token.is_word("NOT"):
            self.advance()
            return Not(self.unary())
        if self.at_op("("):
            self.advance()
            inner = self.or_()
            self.expect_op(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        field = self.field()
        token = self.token
        if token.kind == "OP" and token.text in _COMPARE_OPS:
            self.advance()
            return Comparison(field, _COMPARE_OPS[token.text], (self.value(),))
        negated = False
        if token.is_word("NOT"):
            self.advance()
            negated = True
        prefix = "not " if negated else ""
        if self.token.is_word("IN"):
            self.advance()
            if self.token.is_word("GROUP"):
                raise self.fail("IN GROUP is not supported by the emulator.")
            self.expect_op("(")
            values = self._comma_list(self.value)
            self.expect_op(")")
            return Comparison(field, prefix + "in", tuple(values))
        if self.token.is_word("CONTAINS"):
            self.advance()
            operator = "contains"
            if self.token.is_word("WORDS"):
                self.advance()
                operator = "contains words"
            return Comparison(field, prefix + operator, (self.value(),))
        if self.token.is_word("UNDER"):
            self.advance()
            return Comparison(field, prefix + "under", (self.value(),))
        if self.token.is_word("WAS", "EVER"):
            if self.advance().text.upper() == "WAS":
                self.expect_word("EVER")
            return Comparison(field, prefix + "ever", (self.value(),))
        if not negated and self.token.is_word("IS"):
            self.advance()
            empty = "is empty"
            if self.token.is_word("NOT"):
                self.advance()
                empty = "is not empty"
            self.expect_word("EMPTY")
            return Comparison(field, empty)
        raise self.fail("Expecting an operator (=, <>, <, >, <=, >=, IN, CONTAINS, UNDER, IS, EVER).")

    # -- operands --

    def field(self) -> FieldRef:
        token = self.token
        if token.kind == "FIELD" or (token.kind == "WORD" and token.text.upper() not in _RESERVED):
            self.advance()
            if token.text.upper() in _PREFIXES and self.at_op("."):
                self.advance()
                inner = self.token
                if inner.kind not in ("FIELD", "WORD"):
                    raise self.fail("Expecting a field name after the link prefix.")
                self.advance()
                return FieldRef(inner.text, _PREFIXES[token.text.upper()], inner.position)
            return FieldRef(token.text, None, token.position)
        raise self.fail("Expecting a field name.")

    def value(self) -> Value:
        token = self.token
        if token.kind == "STRING":
            self.advance()
            return Literal(token.text, token.position)
        if token.kind == "NUMBER" or (token.kind == "OP" and token.text == "-"):
            return Literal(self.number(), token.position)
        if token.kind == "MACRO":
            self.advance()
            offset = 0
            if self.at_op("+", "-"):
                sign = -1 if self.advance().text == "-" else 1
                if self.token.kind != "NUMBER" or "." in self.token.text:
                    raise self.fail("Expecting a whole number after the macro's + or -.")
                offset = sign * int(self.advance().text)
            return Macro(token.text.upper(), offset, token.position)
        if token.kind == "FIELD":
            return self.field()
        if token.is_word("TRUE", "FALSE"):
            self.advance()
            return Literal(token.text.lower(), token.position)
        raise self.fail("Expecting a value: a string in quotes, a number, a macro or a field.")

    def number(self) -> int | float:
        sign = 1
        if self.at_op("-"):
            self.advance()
            sign = -1
        if self.token.kind != "NUMBER":
            raise self.fail("Expecting a number.")
        text = self.advance().text
        return sign * (float(text) if "." in text else int(text))


_RESERVED: Final = frozenset(
    {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "ORDER", "BY", "ASC", "DESC", "ASOF", "MODE", "IN", "IS"}
    | {"CONTAINS", "UNDER", "EVER", "WAS", "EMPTY"}
)
"""Words that cannot be a bare (unbracketed) field name."""
