"""Whether an event reaches a subscription: its publisher inputs against the event's values.

An :class:`~kiosk.emulator.org.events.OrgEvent` carries, per filter input (lower-cased name), every
value it has for it; a subscription's input matches when it matches one of them. ``projectId``
compares with the event's project. How a value compares depends on the input, as in Azure's
subscription dialog:

- ``areaPath``: the event's area is the filter's or under it (``Fabrikam\\Web`` matches ``Fabrikam\\Web\\UI``);
- ``changedFields``: the filter is a comma-separated list; any of its fields changed;
- ``commentPattern``: the comment contains the text;
- ``branch``: a full ref (``refs/heads/main``) or a short name (``main``) on either side;
- anything else: equality.

All comparisons ignore case. An empty input is no filter; an input whose values the event lacks
does not match. Inputs the server adds (``hostId``, ``tfsSubscriptionId``) are not filters. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kiosk.emulator.hooks.catalogue import SERVER_INPUTS
from kiosk.emulator.org.events import OrgEvent

__all__ = ["input_matches", "matches"]

_HEADS = "refs/heads/"


def _short_branch(value: str) -> str:
    lowered = value.strip().lower()
    return lowered[len(_HEADS) :] if lowered.startswith(_HEADS) else lowered


def input_matches(name: str, wanted: str, values: Iterable[str]) -> bool:
    """Whether the filter ``name`` = ``wanted`` (lower-cased name) matches one of the event's ``values``."""
    want = wanted.strip().lower()
    seen = [str(v).lower() for v in values]
    if name == "areapath":
        want = want.rstrip("\\")
        return any(v == want or v.startswith(want + "\\") for v in seen)
    if name == "changedfields":
        fields = {f.strip() for f in want.split(",") if f.strip()}
        return any(v in fields for v in seen)
    if name == "commentpattern":
        return any(want in v for v in seen)
    if name == "branch":
        return any(_short_branch(v) == _short_branch(want) for v in seen)
    return want in seen


def matches(publisher_inputs: Mapping[str, str], event: OrgEvent) -> bool:
    """Whether every non-empty input of a subscription matches ``event``."""
    for key, wanted in publisher_inputs.items():
        name = key.lower()
        if not wanted.strip() or name in SERVER_INPUTS:
            continue
        if name == "projectid":
            if event.project_id is None or event.project_id.lower() != wanted.strip().lower():
                return False
            continue
        if not input_matches(name, wanted, event.filters.get(name, ())):
            return False
    return True
