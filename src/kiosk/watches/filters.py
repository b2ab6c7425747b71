"""Branch and tag filters: exact names, globs and semver ranges, told apart by how they are written.

* a **semver range** starts with an operator (``^ ~ > < =``) or contains a space or ``||``
  (``^1.2``, ``>=1.0 <2``, ``1.2 - 1.4``): neither git ref names nor container tags may contain
  those characters, so the reading is never ambiguous;
* a **glob** contains ``*``, ``?`` or ``[`` (``1.*``, ``release/*``); ``*`` matches any run of
  characters, ``/`` included (so ``release/*`` also takes ``release/1.2/hotfix``);
* anything else is an **exact** name.

A list of filters matches a name when any one of them does. An empty list is refused when the
config is loaded rather than read as "no filter": the system kiosk replaces treated an empty
filter as "everything", so one forgotten line refreshed every subscriber. Every name is written
``*``.

Pure: no IO.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kiosk.watches.semver import Range, parse_range

__all__ = ["Filter", "FilterSet", "compile_filter", "compile_filters"]

_SEMVER_START = ("^", "~", ">", "<", "=")
_GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class Filter:
    """One filter as written, with what it was read as."""

    text: str
    kind: Literal["exact", "glob", "semver"]
    _pattern: re.Pattern[str] | None = None
    _range: Range | None = None

    def matches(self, name: str) -> bool:
        if self.kind == "exact":
            return name == self.text
        if self.kind == "glob":
            assert self._pattern is not None
            return self._pattern.match(name) is not None
        assert self._range is not None
        return self._range.matches(name)


def _is_semver(text: str) -> bool:
    return text.startswith(_SEMVER_START) or "||" in text or any(c.isspace() for c in text)


def compile_filter(text: str) -> Filter:
    """Read one filter; ValueError (saying why) for an empty one or a malformed range/glob."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a filter must be a non-empty string (write '*' for every name)")
    text = text.strip()
    if _is_semver(text):
        return Filter(text, "semver", _range=parse_range(text))
    if any(c in text for c in _GLOB_CHARS):
        try:
            pattern = re.compile(fnmatch.translate(text))
        except re.error as exc:  # an unclosed [ ... for instance
            raise ValueError(f"{text!r} is not a valid glob: {exc}") from None
        return Filter(text, "glob", _pattern=pattern)
    return Filter(text, "exact")


@dataclass(frozen=True)
class FilterSet:
    """Filters of one subscription field; matches when any filter does."""

    filters: tuple[Filter, ...]

    def matches(self, name: str) -> bool:
        for f in self.filters:  # noqa: SIM110 - a loop, not any(<generator>): this runs for every event
            if f.matches(name):
                return True
        return False

    def describe(self) -> str:
        return ", ".join(f.text for f in self.filters)


def compile_filters(texts: Iterable[str]) -> FilterSet:
    """Read a list of filters; ValueError for an empty list or a bad filter."""
    filters = tuple(compile_filter(t) for t in texts)
    if not filters:
        raise ValueError("an empty filter list matches nothing; write ['*'] to match every name")
    return FilterSet(filters)
