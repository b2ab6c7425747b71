"""Semantic versions and version ranges, for tag filters such as ``^1.2`` or ``>=1.0 <2``.

No dependency covers this: ``packaging`` implements PEP 440 (Python's versions), not semver, and
the ranges users write in a watch are the npm/Masterminds kind Helm and Kargo use. The grammar:

* a range is one or more comparator sets joined by ``||``; a version satisfies the range when it
  satisfies every comparator of at least one set;
* a set is comparators separated by spaces or commas (``>=1.0 <2``, ``>=1.0, <2``), or a hyphen
  range ``1.2 - 1.4`` (inclusive at both ends, a partial upper end covering what it names);
* a comparator is an optional operator (``=``, ``>``, ``>=``, ``<``, ``<=``, ``^``, ``~``) and a
  version that may be partial (``1``, ``1.2``) or carry wildcards (``1.x``, ``1.2.*``).

``^`` allows changes that do not modify the left-most non-zero part (``^1.2`` → ``>=1.2.0 <2.0.0``,
``^0.2.3`` → ``>=0.2.3 <0.3.0``); ``~`` allows patch changes when a minor is given (``~1.2`` →
``>=1.2.0 <1.3.0``), minor changes otherwise (``~1`` → ``>=1.0.0 <2.0.0``); a bare partial version
means every version it names (``1.2`` → ``>=1.2.0 <1.3.0``).

Versions are read leniently, as container tags are written: an optional ``v``, missing minor or
patch taken as 0 (``v1.2`` is 1.2.0). A pre-release (``1.3.0-rc.1``) satisfies a set only if one of
the set's comparators itself names a pre-release of the same major.minor.patch, so ``^1.2`` never
picks up release candidates (npm's rule). Build metadata (``+build.5``) is ignored in comparisons.

Pure: no IO.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

__all__ = ["Range", "Version", "parse_range", "parse_version"]

_VERSION = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*)(?:\.(?P<patch>0|[1-9]\d*))?)?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_WILDCARDS = frozenset({"x", "X", "*"})
_PART = re.compile(r"^(?:0|[1-9]\d*|[xX*])$")
_OPERATORS = ("<=", ">=", "<", ">", "=", "^", "~")


@total_ordering
@dataclass(frozen=True)
class Version:
    """A semantic version; ordered by semver precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric ones.
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.prerelease)
        return (self.core, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(p) for p in self.prerelease)
        return text


def _prerelease(text: str | None) -> tuple[int | str, ...]:
    if not text:
        return ()
    return tuple(int(p) if p.isdigit() and (p == "0" or not p.startswith("0")) else p for p in text.split("."))


def parse_version(text: str) -> Version | None:
    """The version a tag names (``1.2.3``, ``v1.2``, ``2.0.0-rc.1+b7``), or None if it names none."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    return Version(
        int(match["major"]),
        int(match["minor"] or 0),
        int(match["patch"] or 0),
        _prerelease(match["pre"]),
    )


# ------------------------------------------------------------------------------------ ranges


@dataclass(frozen=True)
class _Comparator:
    op: str  # one of < <= > >= =
    version: Version

    def test(self, v: Version) -> bool:
        if self.op == "=":
            return v == self.version
        if self.op == "<":
            return v < self.version
        if self.op == "<=":
            return v <= self.version
        if self.op == ">":
            return v > self.version
        return v >= self.version


@dataclass(frozen=True)
class _Set:
    comparators: tuple[_Comparator, ...]

    def test(self, v: Version) -> bool:
        if not all(c.test(v) for c in self.comparators):
            return False
        if not v.prerelease:
            return True
        return any(c.version.prerelease and c.version.core == v.core for c in self.comparators)


@dataclass(frozen=True)
class Range:
    """A parsed range; :meth:`matches` tests a tag."""

    text: str
    sets: tuple[_Set, ...]

    def contains(self, version: Version) -> bool:
        return any(s.test(version) for s in self.sets)

    def matches(self, tag: str) -> bool:
        """Does ``tag`` name a version in this range? (A tag that is no version never does.)"""
        version = parse_version(tag)
        return version is not None and self.contains(version)


@dataclass(frozen=True)
class _Partial:
    """A version as written in a range: parts after the first wildcard or missing part are None."""

    major: int | None
    minor: int | None
    patch: int | None
    prerelease: tuple[int | str, ...]

    def floor(self) -> Version:
        return Version(self.major or 0, self.minor or 0, self.patch or 0, self.prerelease)


def _parse_partial(text: str, whole: str) -> _Partial:
    body = text[1:] if text[:1] in ("v", "V") else text
    body, _, _build = body.partition("+")
    core, dash, pre = body.partition("-")
    parts = core.split(".")
    if not core or (dash and not pre) or len(parts) > 3 or not all(_PART.match(p) for p in parts):
        raise ValueError(f"{whole!r} is not a version range: {text!r} is not a version")
    values: list[int | None] = []
    for part in parts:
        values.append(None if part in _WILDCARDS or (values and values[-1] is None) else int(part))
    while len(values) < 3:
        values.append(None)
    if pre and values[2] is None:
        raise ValueError(f"{whole!r} is not a version range: a pre-release needs a full version in {text!r}")
    if pre and not re.fullmatch(r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*", pre):
        raise ValueError(f"{whole!r} is not a version range: bad pre-release in {text!r}")
    return _Partial(values[0], values[1], values[2], _prerelease(pre))


def _next(p: _Partial) -> Version:
    """The first version after everything a partial version names (``1.2`` → 1.3.0)."""
    if p.major is None:
        raise AssertionError("a wildcard version has no upper bound")
    if p.minor is None:
        return Version(p.major + 1, 0, 0)
    return Version(p.major, p.minor + 1, 0)


def _comparators(op: str, p: _Partial) -> list[_Comparator]:
    """Primitive comparators for one operator and partial version."""
    if p.major is None:  # *, x, >=*, ^*: everything (nothing for < and >)
        if op in ("<", ">"):
            return [_Comparator("<", Version(0, 0, 0, (0,)))]
        return []
    low = p.floor()
    complete = p.patch is not None
    if op in ("", "="):
        if complete:
            return [_Comparator("=", low)]
        return [_Comparator(">=", low), _Comparator("<", _next(p))]
    if op == ">=":
        return [_Comparator(">=", low)]
    if op == "<":
        return [_Comparator("<", low)]
    if op == ">":
        return [_Comparator(">", low)] if complete else [_Comparator(">=", _next(p))]
    if op == "<=":
        return [_Comparator("<=", low)] if complete else [_Comparator("<", _next(p))]
    if op == "~":
        upper = Version(p.major + 1, 0, 0) if p.minor is None else Version(p.major, p.minor + 1, 0)
        return [_Comparator(">=", low), _Comparator("<", upper)]
    # "^": the left-most non-zero part may not change.
    if p.major > 0 or p.minor is None:
        upper = Version(p.major + 1, 0, 0)
    elif p.minor > 0 or p.patch is None:
        upper = Version(0, p.minor + 1, 0)
    else:
        upper = Version(0, 0, p.patch + 1)
    return [_Comparator(">=", low), _Comparator("<", upper)]


def _hyphen(low_text: str, high_text: str, whole: str) -> list[_Comparator]:
    low, high = _parse_partial(low_text, whole), _parse_partial(high_text, whole)
    out = [] if low.major is None else [_Comparator(">=", low.floor())]
    if high.major is not None:
        out += [_Comparator("<=", high.floor())] if high.patch is not None else [_Comparator("<", _next(high))]
    return out


def _split_operator(token: str) -> tuple[str, str]:
    for op in _OPERATORS:
        if token.startswith(op):
            return op, token[len(op) :]
    return "", token


def _parse_set(text: str, whole: str) -> _Set:
    tokens = text.replace(",", " ").split()
    if not tokens:
        raise ValueError(f"{whole!r} is not a version range: an empty alternative")
    if len(tokens) == 3 and tokens[1] == "-":
        return _Set(tuple(_hyphen(tokens[0], tokens[2], whole)))
    comparators: list[_Comparator] = []
    pending = ""  # an operator written apart from its version: ">= 1.0"
    for token in tokens:
        op, rest = _split_operator(token)
        if pending:
            if op:
                raise ValueError(f"{whole!r} is not a version range: two operators in a row")
            op, pending = pending, ""
        if not rest:
            if not op:
                raise ValueError(f"{whole!r} is not a version range")
            pending = op
            continue
        comparators += _comparators(op, _parse_partial(rest, whole))
    if pending:
        raise ValueError(f"{whole!r} is not a version range: {pending!r} needs a version")
    return _Set(tuple(comparators))


def parse_range(text: str) -> Range:
    """Parse a range; ValueError (saying what is wrong) if ``text`` is not one."""
    if not text.strip():
        raise ValueError("an empty version range")
    return Range(text, tuple(_parse_set(part, text) for part in text.split("||")))
