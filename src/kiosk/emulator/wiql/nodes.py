"""The parsed form of a WIQL query: plain frozen dataclasses, no evaluation.

Field names are kept as written (``State``, ``System.State``); resolving them to field
definitions is the evaluator's job (:mod:`kiosk.emulator.wiql.evaluate`), so parsing needs no
organisation and syntax tests need no data.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "And",
    "Comparison",
    "Condition",
    "FieldRef",
    "Literal",
    "Macro",
    "Not",
    "Or",
    "OrderBy",
    "Query",
    "Value",
]


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str
    """As written, without brackets: ``System.State`` or ``Assigned To``."""
    prefix: str | None = None
    """``source`` or ``target`` in a link query (``[Source].[System.Id]``); None otherwise."""
    position: int = 0


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float
    """A string as written (dates stay strings until the field's type is known), or a number."""
    position: int = 0


@dataclass(frozen=True, slots=True)
class Macro:
    name: str
    """Upper-cased without ``@``: ``TODAY``, ``ME``, ``PROJECT``, ``STARTOFWEEK``, ``CURRENTITERATION``…"""
    offset: int = 0
    """``@Today - 7`` → -7."""
    position: int = 0


Value = Literal | Macro | FieldRef
"""The right-hand side of a comparison: a literal, a macro, or another field (``= [System.CreatedBy]``)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    field: FieldRef
    operator: str
    """``=``, ``<>``, ``<``, ``>``, ``<=``, ``>=``, ``in``, ``not in``, ``contains``, ``not contains``,
    ``contains words``, ``not contains words``, ``under``, ``not under``, ``is empty``, ``is not empty``,
    ``ever``, ``not ever``."""
    values: tuple[Value, ...] = ()
    """One value, several for ``in``/``not in``, none for ``is [not] empty``."""


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Condition


Condition = Comparison | And | Or | Not


@dataclass(frozen=True, slots=True)
class OrderBy:
    field: FieldRef
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    columns: tuple[FieldRef, ...]
    source: str
    """``workitems`` or ``workitemlinks``."""
    where: Condition | None = None
    order_by: tuple[OrderBy, ...] = ()
    as_of: str | None = None
    mode: tuple[str, ...] = ()
    """Link queries' ``MODE (…)`` words, lower-cased: ``mustcontain``, ``maycontain``,
    ``doesnotcontain``, ``recursive``, ``returnmatchingchildren``."""
