"""Azure's query parameters that need more than a type: enumerations, id lists, RFC 3339 times.

Azure takes ``queryOrder=IdDescending`` as well as ``iddescending``, and flag enumerations as
comma-separated lists (``deploymentStatus=succeeded,failed``); a value it does not know is a 400.
The patterns go into the OpenAPI description so that every value the description allows is one
the route accepts (schemathesis checks both ways); they spell case-insensitivity out as
character classes, which every regex engine reads the same way (no inline flags).

Times (``minCreatedTime``…) are RFC 3339 date-times, what Microsoft's client sends
(``2024-01-02T03:04:05.000Z``); a bare number, which pydantic would read as a Unix time, is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Final

from pydantic import BeforeValidator

from kiosk.emulator.errors import AzureError

__all__ = ["IDS_PATTERN", "Time", "choices", "enum_pattern", "ids"]

_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)

IDS_PATTERN = r"^\s*[0-9]{1,9}\s*(,\s*[0-9]{1,9}\s*)*$"
"""A comma-separated list of integer ids."""


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def enum_pattern(values: Iterable[str], *, many: bool = False) -> str:
    """A pattern matching one of ``values`` in any letter case (``many``: a comma-separated list of them)."""
    one = "(?:" + "|".join(_any_case(value) for value in sorted(values)) + ")"
    if many:
        return rf"^\s*{one}\s*(?:,\s*{one}\s*)*$"
    return f"^{one}$"


def choices(name: str, value: str | None, allowed: frozenset[str]) -> set[str]:
    """The lower-cased values of a comma-separated enumeration parameter; Azure's 400 for one it does not know."""
    if not value:
        return set()
    chosen = {part.strip().lower() for part in value.split(",") if part.strip()}
    unknown = sorted(chosen - allowed)
    if unknown:
        raise AzureError(400, "ArgumentException", f"{name}: {unknown[0][:60]!r} is not a valid value")
    return chosen


def ids(name: str, value: str | None) -> set[int] | None:
    """A comma-separated list of ids (None when not given)."""
    if not value:
        return None
    try:
        return {int(part) for part in value.split(",") if part.strip()}
    except ValueError:
        raise AzureError(400, "ArgumentException", f"{name}: a comma-separated list of ids is expected") from None


def _rfc3339(value: object) -> object:
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise ValueError("an RFC 3339 date-time is expected, e.g. 2024-01-02T03:04:05Z")
    return value


Time = Annotated[datetime | None, BeforeValidator(_rfc3339)]
"""An optional RFC 3339 time; name it with ``Annotated[Time, Query(alias=…)]``."""
