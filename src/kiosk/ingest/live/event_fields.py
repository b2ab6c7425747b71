"""What the handlers read from a received envelope: which object it names, in which project.

An envelope is trusted only to say *which* object changed (its content is read again from Azure):
the ids are read from the places Azure puts them for each event type, also in the minimal
resource an org-scoped subscription sends (``id``, ``url``), and checked to be ids. An envelope
that names no object is a :class:`MalformedEvent`, which fails the event for good (a retry cannot
help).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from kiosk.ingest.fetch.base import FetchContext, Item

__all__ = [
    "MalformedEvent",
    "event_project_id",
    "event_resource",
    "find_project",
    "integer_at",
    "text_at",
]


class MalformedEvent(ValueError):
    """The envelope does not name the object its event type is about: never retried."""


def event_resource(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The envelope's ``resource`` (an object, as the endpoint checked)."""
    resource = event.get("resource")
    if not isinstance(resource, Mapping):
        raise MalformedEvent("the event has no resource object")
    return resource


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def integer_at(
    resource: Mapping[str, Any],
    *paths: tuple[str, ...],
    url_pattern: re.Pattern[str] | None = None,
    url_keys: tuple[str, ...] = ("url",),
) -> int:
    """The first positive integer (or integer text) at one of ``paths``, else found by
    ``url_pattern`` in one of the resource's URLs (``url_keys``); :class:`MalformedEvent` when none is there."""
    for path in paths:
        value = _at(resource, path)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value > 0:
            return value
        if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
            return int(value)
    for key in url_keys if url_pattern is not None else ():
        url = resource.get(key)
        found = url_pattern.search(url) if url_pattern is not None and isinstance(url, str) else None
        if found:
            return int(found.group(1))
    shown = " or ".join(".".join(path) for path in paths)
    raise MalformedEvent(f"the event's resource names no object: no id at {shown}")


def text_at(resource: Mapping[str, Any], *paths: tuple[str, ...]) -> str | None:
    """The first non-empty string at one of ``paths``, else None."""
    for path in paths:
        value = _at(resource, path)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


_GUID: Final = re.compile(r"^[0-9a-fA-F-]{36}$")


def event_project_id(event: Mapping[str, Any], *paths: tuple[str, ...]) -> str | None:
    """The project the event belongs to: ``resourceContainers.project.id``, else one of ``paths`` of
    its resource; None when neither names one (an org-level object)."""
    found = text_at(event, ("resourceContainers", "project", "id"))
    if found is None:
        found = text_at(event_resource(event), *paths)
    return found if found is not None and _GUID.match(found) else None


async def find_project(ctx: FetchContext, *, project_id: str | None = None, name: str | None = None) -> Item | None:
    """The project (as the projects list gives it, the same object a resync stamps on items) with
    this id or name; None when the organisation has none such, or it carries an excluded tag."""
    for project in await ctx.projects():
        if project_id is not None and str(project.get("id", "")).lower() == project_id.lower():
            return project
        if name is not None and str(project.get("name", "")).lower() == name.lower():
            return project
    return None
