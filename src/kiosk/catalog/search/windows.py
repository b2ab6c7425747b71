"""Date-time rules as half-open windows of instants, at the milliseconds the API shows (pure).

Shared by the SQL compilers and the reference evaluator, so both bound a range rule the same way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from kiosk.catalog.dates import floor_ms, parse_datetime
from kiosk.catalog.search.rules import Between

_MS = timedelta(milliseconds=1)


def _plus_ms(value: datetime) -> datetime | None:
    """``value + 1ms``, or None past ``datetime.max`` (an upper bound nothing reaches)."""
    try:
        return value + _MS
    except OverflowError:
        return None


def _ceil_ms(value: datetime) -> datetime | None:
    floor = floor_ms(value)
    return floor if floor == value else _plus_ms(floor)


@functools.lru_cache(maxsize=4096)
def parse_instant(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:  # parse_query let only date-times through
        raise ValueError(f"not a date-time: {value!r}")
    return parsed


@dataclass(frozen=True)
class Window:
    """Instants ``t`` with ``lower <= t < upper``; None means unbounded; ``empty`` means none at all."""

    lower: datetime | None = None
    upper: datetime | None = None
    empty: bool = False

    def __and__(self, other: Window) -> Window:
        lowers = [b for b in (self.lower, other.lower) if b is not None]
        uppers = [b for b in (self.upper, other.upper) if b is not None]
        return Window(max(lowers) if lowers else None, min(uppers) if uppers else None, self.empty or other.empty)


def instant_window(operator: str, value: str) -> Window:
    """The instants ``t`` with ``floor_ms(t) <operator> value``, as a half-open window.

    Used for the timestamp columns (microseconds, compared at the milliseconds the API shows)
    and for canonical date strings (already milliseconds, so the truncation changes nothing).
    ``datetime.max`` overflows: a lower bound past it matches nothing, an upper one everything.
    """
    instant = parse_instant(value)
    floor = floor_ms(instant)
    if operator == "=":
        if floor != instant:  # a value shown in milliseconds never equals a finer one
            return Window(empty=True)
        return Window(instant, _plus_ms(instant))
    if operator in (">", ">="):
        lower = _plus_ms(floor) if operator == ">" else _ceil_ms(instant)
        return Window(lower) if lower is not None else Window(empty=True)
    if operator in ("<", "<="):
        return Window(upper=_ceil_ms(instant) if operator == "<" else _plus_ms(floor))
    raise ValueError(f"no instant window for {operator!r}")


def between_window(value: Between) -> Window:
    return instant_window(">=", cast(str, value.from_)) & instant_window("<=", cast(str, value.to))
