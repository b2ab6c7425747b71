"""Run names (Azure's "build number") from a pipeline's ``name:`` format.

The name is how a webhook-triggered run is found again: the incoming-webhook call returns no run
id, so a pipeline sets ``name: kiosk-${{ parameters.<alias>.context.runId }}`` and kiosk matches
the run-state events by that name. The ``${{ }}`` part is resolved by template expansion; what is
left here are Azure's run-time tokens:

* ``$(Rev:r)`` (``rr``… zero-pads): 1, 2, 3… counting runs whose name is otherwise the same;
* ``$(Date:yyyyMMdd)`` with .NET's custom date tokens, ``$(Year:yy)``, ``$(Month)``,
  ``$(DayOfMonth)``, ``$(DayOfYear)``, ``$(Hours)``, ``$(Minutes)``, ``$(Seconds)``;
* ``$(BuildID)``, ``$(BuildDefinitionName)``, ``$(DefinitionName)``, ``$(TeamProject)``,
  ``$(SourceBranch)``, ``$(SourceBranchName)`` and any run variable (``$(Build.Reason)``).

Azure refuses names holding ``" / : < > \\ | ? @ *`` or ending with ``.``; so does this module,
with a :class:`BuildNumberError` naming the character, because a run that cannot be named is not
queued. Pure: the clock and the revision counter are passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final

from kiosk.pipelines.errors import PipelineError

__all__ = ["DEFAULT_FORMAT", "MAX_LENGTH", "BuildNumberError", "format_build_number"]

DEFAULT_FORMAT: Final = "$(Date:yyyyMMdd).$(Rev:r)"
"""Azure's format when the pipeline has no ``name:``."""
MAX_LENGTH: Final = 255
_INVALID: Final = frozenset('"/:<>\\|?@*')
_TOKEN: Final = re.compile(r"\$\(([A-Za-z0-9_.]+)(?::([^)]*))?\)")
_DATE_PART: Final = re.compile(r"yyyy|yy|MM|M|dd|d|HH|H|hh|h|mm|m|ss|s|fff|ff|f|'[^']*'")
_REV_MARK: Final = "\x00REV\x00"

_ALIASES: Final = {
    "buildid": "build.buildid",
    "builddefinitionname": "build.definitionname",
    "definitionname": "build.definitionname",
    "teamproject": "system.teamproject",
    "sourcebranch": "build.sourcebranch",
    "sourcebranchname": "build.sourcebranchname",
}


class BuildNumberError(PipelineError):
    """The ``name:`` format yields a name Azure would not accept."""


def _date(fmt: str, now: datetime) -> str:
    def part(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("'"):
            return token[1:-1]
        hour12 = now.hour % 12 or 12
        values = {
            "yyyy": f"{now.year:04d}",
            "yy": f"{now.year % 100:02d}",
            "MM": f"{now.month:02d}",
            "M": str(now.month),
            "dd": f"{now.day:02d}",
            "d": str(now.day),
            "HH": f"{now.hour:02d}",
            "H": str(now.hour),
            "hh": f"{hour12:02d}",
            "h": str(hour12),
            "mm": f"{now.minute:02d}",
            "m": str(now.minute),
            "ss": f"{now.second:02d}",
            "s": str(now.second),
            "fff": f"{now.microsecond // 1000:03d}",
            "ff": f"{now.microsecond // 10000:02d}",
            "f": str(now.microsecond // 100000),
        }
        return values[token]

    return _DATE_PART.sub(part, fmt)


def format_build_number(
    fmt: str | None,
    *,
    variables: Mapping[str, str],
    now: datetime,
    next_revision: Callable[[str], int],
) -> str:
    """The run name for ``fmt`` (``None`` → Azure's default).

    ``variables`` are looked up case-insensitively; an unknown ``$(x)`` stays as written, as Azure
    leaves unknown macros. ``next_revision(key)`` returns the next ``$(Rev:r)`` for runs whose
    name, without the revision, is ``key`` — it is called only when the format uses ``$(Rev)``.
    """
    lowered = {name.lower(): value for name, value in variables.items()}
    has_rev = False

    def token(match: re.Match[str]) -> str:
        nonlocal has_rev
        name, arg = match.group(1), match.group(2)
        key = name.lower()
        if key == "rev":
            has_rev = True
            width = len(arg) if arg and set(arg) == {"r"} else 1
            return f"{_REV_MARK}{width}{_REV_MARK}"
        if key == "date":
            return _date(arg or "yyyyMMdd", now)
        if key == "year":
            return _date(arg or "yyyy", now)
        simple = {
            "month": now.month,
            "dayofmonth": now.day,
            "dayofyear": now.timetuple().tm_yday,
            "hours": now.hour,
            "minutes": now.minute,
            "seconds": now.second,
        }
        if key in simple and arg is None:
            return f"{simple[key]:02d}" if key != "dayofyear" else str(simple[key])
        value = lowered.get(_ALIASES.get(key, key))
        return value if value is not None and arg is None else match.group(0)

    text = _TOKEN.sub(token, fmt if fmt is not None and fmt.strip() else DEFAULT_FORMAT).strip()
    if has_rev:
        pattern = re.compile(re.escape(_REV_MARK) + r"(\d+)" + re.escape(_REV_MARK))
        key = pattern.sub("$(Rev)", text)
        revision = next_revision(key)
        text = pattern.sub(lambda m: f"{revision:0{int(m.group(1))}d}", text)
    bad = sorted(_INVALID & set(text))
    if bad:
        shown = " ".join(bad)
        raise BuildNumberError(f"the run name {text!r} contains characters Azure does not allow in a name: {shown}")
    if text.endswith("."):
        raise BuildNumberError(f"the run name {text!r} must not end with '.'")
    if not text:
        raise BuildNumberError("the run name is empty")
    if len(text) > MAX_LENGTH:
        raise BuildNumberError(f"the run name is {len(text)} characters long; Azure allows {MAX_LENGTH}")
    return text
