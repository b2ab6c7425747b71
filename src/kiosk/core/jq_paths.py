"""The commonest jq programs, evaluated without jq: plain paths such as ``.inputs.version``.

Most user jq is a path into the input — action body templates (``{{ .run.id }}``), receivers'
mappings, and Ocean-style entity mappings (``.name``, ``.project.id``), which a resync evaluates
for every object it maps. Each of those costs a round trip to a jq worker process
(:mod:`kiosk.core.jq_engine`, ~150 to 250 µs with the wake-up) for work that is a few dictionary
lookups. A path cannot loop, allocate or reach outside its input, so it needs none of the
worker's bounds, and :func:`follow` evaluates it in place.

Only what jq itself answers the same way is taken here: ``.`` and dot-chains of identifier keys
(``.a.b_c``), over objects and ``null`` (a missing key or a ``null`` gives ``null``, as in jq),
ending on a scalar. Scalars come back as jq hands them over: an integral float as an integer
(jq's ``1.0`` is ``1``, ``-0.0`` is ``0``). Everything else goes to the worker, so errors and edge
cases stay jq's own: other programs, a path that meets a value jq would refuse to index (``.a`` on
a string or an array), objects and arrays (their contents would need the same conversion, deep),
integers past 2^53 (jq holds numbers as doubles) and anything that is not JSON.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

__all__ = ["NOT_FOLLOWED", "follow", "simple_path"]

#: ``.`` or ``.key`` segments of identifier keys, with surrounding white space.
_PATH = re.compile(r"\s*\.(?:\s*|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\s*)")

#: What :func:`follow` returns when jq would have to decide (an error, most likely).
NOT_FOLLOWED: Any = object()


@functools.lru_cache(maxsize=4096)
def simple_path(expression: str) -> tuple[str, ...] | None:
    """The keys of ``expression`` when it is a plain path (``()`` for ``.``), else None."""
    if not _PATH.fullmatch(expression):
        return None
    text = expression.strip()
    return () if text == "." else tuple(text[1:].split("."))


#: The largest integer a double holds exactly: jq rounds beyond it.
_EXACT = 2**53


def follow(value: Any, path: tuple[str, ...]) -> Any:
    """``value`` at ``path`` as jq gives it, or :data:`NOT_FOLLOWED` where jq must decide."""
    for key in path:
        if value is None:
            return None
        if not isinstance(value, dict):
            return NOT_FOLLOWED
        value = value.get(key)
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value if -_EXACT <= value <= _EXACT else NOT_FOLLOWED
    if isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() and -_EXACT <= value <= _EXACT else value
    return NOT_FOLLOWED
